"""The container engine this installation runs on, built once per process from settings.

The domain reads Django settings and hands `runner/` plain values, so `runner/` never imports
Django (an import-linter contract holds it to that).
"""
from __future__ import annotations

from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from runner.backends import Backend


@cache
def get_backend() -> Backend:
    cls = import_string(settings.RUNNER_BACKEND)
    if cls.__name__ == "DockerBackend":
        return cls(instance=settings.DEMOHUB_INSTANCE, network=settings.SPACES_NETWORK,
                   subnet=settings.SPACES_SUBNET, base_image=settings.BASE_IMAGE,
                   builds_network=settings.BUILDS_NETWORK, builds_subnet=settings.BUILDS_SUBNET,
                   ca_bundle=settings.BUILD_CA_BUNDLE, pull_missing_base=settings.RUNNER_PULL_MISSING_BASE,
                   build_memory=settings.BUILD_MEMORY_LIMIT, build_cpus=settings.BUILD_CPUS,
                   build_cpu_shares=settings.BUILD_CPU_SHARES, build_cgroup_parent=settings.BUILD_CGROUP_PARENT,
                   isolation_file=settings.ISOLATION_STATE_FILE, allow_unisolated=settings.ALLOW_UNISOLATED,
                   build_timeout=settings.BUILD_TIMEOUT, timeout=settings.DOCKER_TIMEOUT,
                   allowed_images=tuple(settings.BUILD_ALLOWED_IMAGES),
                   registry=settings.RUNNER_REGISTRY, publish_address=settings.RUNNER_PUBLISH_ADDRESS)
    return cls()
