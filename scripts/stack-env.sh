# Sourced by scripts/backup.sh and scripts/restore.sh: this stack's settings as `make up` reads
# them (the environment, then the env file, then the defaults) and a `compose` for it.

# A setting from the environment, else from the env file, else the default.
setting() {
  local v
  if [ -n "${!1+set}" ]; then echo "${!1}"; return; fi
  v=$(grep -s "^$1=" "$ENV_FILE" | tail -1 | cut -d= -f2- | sed -E "s/^([\"'])(.*)\1\$/\2/")
  echo "${v:-$2}"
}
project=$(setting COMPOSE_PROJECT_NAME demohub)
instance=$(setting DEMOHUB_INSTANCE main)
image_tag=$(setting DEMOHUB_IMAGE_TAG local)
# Compose reads the whole file, and refuses without the secrets even where a command needs none.
for _key in DJANGO_SECRET_KEY PROXY_SHARED_SECRET SECRETS_ENCRYPTION_KEY; do
  export "$_key=$(setting "$_key" unused)"
done
export DEMOHUB_IMAGE_TAG=$image_tag DEMOHUB_INSTANCE=$instance COMPOSE_PROJECT_NAME=$project
compose() {
  local env_file=()
  if [ -f "$ENV_FILE" ]; then env_file=(--env-file "$ENV_FILE"); fi
  docker-compose -p "$project" "${env_file[@]}" "$@"
}
