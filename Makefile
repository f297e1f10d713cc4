# Demohub: `make up` runs the whole stack (docker-compose.yml), `make test` runs the tests.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Builds reach PyPI through this host's trust store (an intercepting or corporate proxy) when it
# exists, unless BUILD_CA_BUNDLE is set in the environment, on the make command line or in .env
# (set it empty to turn it off). See .env.example.
ENV_FILE := $(or $(DEMOHUB_ENV_FILE),.env)
ifeq ($(shell grep -s '^BUILD_CA_BUNDLE=' $(ENV_FILE)),)
BUILD_CA_BUNDLE ?= $(wildcard /etc/ssl/certs/ca-certificates.crt)
export BUILD_CA_BUNDLE
endif

.PHONY: help up down clean-data test bootstrap bench backup restore node

help: ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

up: ## build and start the stack; returns once the hub (:8000) and the proxy (:8080) answer
	bash scripts/up.sh

down: ## stop the stack (data volumes are kept)
	bash scripts/down.sh

clean-data: ## stop the stack and delete its volumes, space containers, networks and images
	bash scripts/down.sh --volumes

backup: ## one archive of the database, the uploads and .env (BACKUP_PASSPHRASE encrypts it)
	bash scripts/backup.sh

restore: ## restore FILE=<archive> into a fresh stack (make up first); spaces rebuild and start
	bash scripts/restore.sh "$(FILE)"

test: ## run the test suite (includes a smoke test of the compose stack)
	bash scripts/test.sh

bootstrap: ## host tools, engine, base image and a .venv with the dev requirements
	bash scripts/host-tools.sh
	bash scripts/base-image.sh
	test -x .venv/bin/python || python3 -m venv .venv
	.venv/bin/pip install -q -r requirements-dev.txt

node: ## on a new machine: run it as a node of the hub HUB=<address> (NODE_NAME, NODE_ADDRESS: docs/scale.md)
	@test -n "$(HUB)" || { echo "make node HUB=<the hub's address> NODE_NAME=<name> NODE_ADDRESS=<this machine's address>"; exit 2; }
	HUB_ADDRESS="$(HUB)" REGISTRY="$${REGISTRY:-$(HUB):5000}" bash scripts/node.sh up

bench: ## benchmarks
	bash scripts/bench.sh
