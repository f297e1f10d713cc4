#!/usr/bin/env bash
# Demohub proxy: render the nginx config, run nginx, reload it when the routes change.
#
# Renders deploy/nginx/nginx.conf.template into $PROXY_RUN_DIR/nginx.conf, starts nginx in
# the foreground of this script (as a child), then polls the generation file
# ($PROXY_ROUTES_DIR/../generation, bumped by runner/proxy.py) every 0.2 s. When it changes:
# `nginx -t`, then a graceful reload (SIGHUP to the master, which is what `nginx -s reload`
# sends): new workers take new connections, old ones finish their open requests, streams
# and WebSockets first. A config that fails the test is not loaded; the running one stays.
# SIGTERM/SIGINT/SIGQUIT are forwarded to nginx; the script exits when nginx exits, with
# its status.
#
# Environment:
#   PROXY_ROUTES_DIR     (required) directory of <label>.conf files
#   PROXY_RUN_DIR        pid, logs, temp files, rendered config (default: <routes>/../run)
#   PROXY_LISTEN         address(es) to listen on, space-separated (default 0.0.0.0:8080)
#   HUB_UPSTREAM         host:port of the hub for unknown hosts / unreachable apps
#                        (default 127.0.0.1:8000)
#   HUB_HOST             Host header sent to the hub (default: $HUB_UPSTREAM)
#   SPACES_DOMAIN        apps domain (default spaces.localhost)
#   PROXY_MAX_BODY_SIZE  client_max_body_size (default 100m)
#   PROXY_SHARED_SECRET  sent to the hub as X-Demohub-Proxy-Key on fallback requests
#   PROXY_WORKERS        worker_processes (default auto)
#   PROXY_USER           worker user when started as root (default www-data, else nobody)
#   PROXY_POLL_INTERVAL  seconds between generation checks (default 0.2)
#   NGINX_BIN            nginx binary (default: nginx on PATH, else /usr/sbin/nginx)
#   PROXY_TEMPLATE       template (default: ../nginx/nginx.conf.template next to this script)
#   NGINX_MIME_TYPES     mime.types to include (default /etc/nginx/mime.types)
#   SPACES_SCHEME        http or https, as the hub's (default http): on https only the
#                        __Host- space cookie is read
#   NJS_MODULE           nginx's njs module (default
#                        /usr/lib/nginx/modules/ngx_http_js_module.so, Debian's
#                        libnginx-mod-http-js)
#   NGINX_MODULES_DIR    where ndk_http_module.so and ngx_http_set_misc_module.so are
#                        (default: NJS_MODULE's directory; libnginx-mod-http-set-misc)
#   NJS_SCRIPT           the proxy's njs code (default: ../nginx/demohub.js next to this script)
set -euo pipefail
shopt -u patsub_replacement 2>/dev/null || true   # '&' in a value must stay literal

log() { printf '%s proxy: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
die() { log "error: $*"; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

: "${PROXY_ROUTES_DIR:?PROXY_ROUTES_DIR is required}"
PROXY_LISTEN=${PROXY_LISTEN:-0.0.0.0:8080}
HUB_UPSTREAM=${HUB_UPSTREAM:-127.0.0.1:8000}
HUB_HOST=${HUB_HOST:-$HUB_UPSTREAM}
SPACES_DOMAIN=${SPACES_DOMAIN:-spaces.localhost}
PROXY_MAX_BODY_SIZE=${PROXY_MAX_BODY_SIZE:-100m}
PROXY_SHARED_SECRET=${PROXY_SHARED_SECRET:-}
PROXY_WORKERS=${PROXY_WORKERS:-auto}
PROXY_POLL_INTERVAL=${PROXY_POLL_INTERVAL:-0.2}
PROXY_TEMPLATE=${PROXY_TEMPLATE:-$here/../nginx/nginx.conf.template}
NGINX_MIME_TYPES=${NGINX_MIME_TYPES:-/etc/nginx/mime.types}
SPACES_SCHEME=${SPACES_SCHEME:-http}
NJS_MODULE=${NJS_MODULE:-/usr/lib/nginx/modules/ngx_http_js_module.so}
NGINX_MODULES_DIR=${NGINX_MODULES_DIR:-$(dirname "$NJS_MODULE")}
NJS_SCRIPT=${NJS_SCRIPT:-$(cd "$here/../nginx" && pwd)/demohub.js}
if [[ -z ${NGINX_BIN:-} ]]; then
    NGINX_BIN=$(command -v nginx || true)
    NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
fi

# ---- check every value before it goes into a config file (no config injection)
safe_path='^/[A-Za-z0-9._/@+=,~-]*$'
[[ $PROXY_ROUTES_DIR =~ $safe_path ]] || die "PROXY_ROUTES_DIR must be an absolute path of [A-Za-z0-9._/@+=,~-]: '$PROXY_ROUTES_DIR'"
PROXY_ROUTES_DIR=${PROXY_ROUTES_DIR%/}
proxy_dir=$(dirname "$PROXY_ROUTES_DIR")
GENERATION_FILE=$proxy_dir/generation
PROXY_RUN_DIR=${PROXY_RUN_DIR:-$proxy_dir/run}
[[ $PROXY_RUN_DIR =~ $safe_path ]] || die "PROXY_RUN_DIR must be an absolute path of [A-Za-z0-9._/@+=,~-]: '$PROXY_RUN_DIR'"
PROXY_RUN_DIR=${PROXY_RUN_DIR%/}
[[ $NGINX_MIME_TYPES =~ $safe_path ]] || die "bad NGINX_MIME_TYPES '$NGINX_MIME_TYPES'"
[[ -f $PROXY_TEMPLATE ]] || die "template not found: $PROXY_TEMPLATE"
[[ -x $NGINX_BIN ]] || die "nginx not found (set NGINX_BIN)"
[[ $NJS_MODULE =~ $safe_path && -f $NJS_MODULE ]] \
    || die "nginx's njs module not found at '$NJS_MODULE' (install libnginx-mod-http-js, or set NJS_MODULE)"
[[ $NJS_SCRIPT =~ $safe_path && -f $NJS_SCRIPT ]] || die "njs script not found: '$NJS_SCRIPT'"
for m in ndk_http_module.so ngx_http_set_misc_module.so; do
    [[ $NGINX_MODULES_DIR =~ $safe_path && -f $NGINX_MODULES_DIR/$m ]] \
        || die "nginx module $m not found in '$NGINX_MODULES_DIR' (install libnginx-mod-http-set-misc)"
done
case $SPACES_SCHEME in
    https) SPACE_COOKIE_NAME=__Host-demohub_space ;;
    http) SPACE_COOKIE_NAME=demohub_space ;;
    *) die "bad SPACES_SCHEME '$SPACES_SCHEME' (expected http or https)" ;;
esac

addr_re='^([0-9]{1,5}|[A-Za-z0-9.*-]+:[0-9]{1,5}|\[[0-9A-Fa-f:.]+\]:[0-9]{1,5})$'
read -r -a listen_addrs <<<"$PROXY_LISTEN"
((${#listen_addrs[@]})) || die "PROXY_LISTEN is empty"
for a in "${listen_addrs[@]}"; do
    [[ $a =~ $addr_re ]] || die "bad PROXY_LISTEN address '$a' (expected [host:]port)"
done
[[ $HUB_UPSTREAM =~ ^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}$|^unix:/[A-Za-z0-9._/@+=,~-]+$ ]] \
    || die "bad HUB_UPSTREAM '$HUB_UPSTREAM' (expected host:port or unix:/path)"
[[ $HUB_HOST =~ ^[]A-Za-z0-9.:[-]+$ ]] || die "bad HUB_HOST '$HUB_HOST'"
[[ $SPACES_DOMAIN =~ ^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$ ]] || die "bad SPACES_DOMAIN '$SPACES_DOMAIN'"
[[ $PROXY_MAX_BODY_SIZE =~ ^[0-9]+[kKmMgG]?$ ]] || die "bad PROXY_MAX_BODY_SIZE '$PROXY_MAX_BODY_SIZE'"
[[ $PROXY_WORKERS =~ ^(auto|[1-9][0-9]{0,3})$ ]] || die "bad PROXY_WORKERS '$PROXY_WORKERS'"
[[ $PROXY_SHARED_SECRET =~ ^[A-Za-z0-9._~+/=-]*$ ]] \
    || die "PROXY_SHARED_SECRET may only contain [A-Za-z0-9._~+/=-]"
[[ $PROXY_POLL_INTERVAL =~ ^[0-9]*\.?[0-9]+$ ]] || die "bad PROXY_POLL_INTERVAL '$PROXY_POLL_INTERVAL'"
[[ -n $PROXY_SHARED_SECRET ]] || log "warning: PROXY_SHARED_SECRET is empty; the hub may refuse fallback requests"

USER_DIRECTIVE=""
if [[ $(id -u) -eq 0 ]]; then
    if [[ -n ${PROXY_USER:-} ]]; then
        [[ $PROXY_USER =~ ^[a-z_][a-z0-9_-]*( [a-z_][a-z0-9_-]*)?$ ]] || die "bad PROXY_USER '$PROXY_USER'"
        USER_DIRECTIVE="user $PROXY_USER;"
    elif id -u www-data >/dev/null 2>&1; then
        USER_DIRECTIVE="user www-data www-data;"
    else
        USER_DIRECTIVE="user nobody $(id -gn nobody 2>/dev/null || echo nogroup);"
    fi
fi

# ---- directories (the workers need to reach the temp directories). The routes directory
# is not created here: its writer (runner/proxy.py, the hub's user) creates it; until then
# the include matches nothing and only the default server answers.
[[ -d $PROXY_ROUTES_DIR ]] || log "note: $PROXY_ROUTES_DIR does not exist yet (no routes)"
mkdir -p "$PROXY_RUN_DIR/logs" "$PROXY_RUN_DIR/tmp" "$PROXY_RUN_DIR/cache"
chmod 0755 "$PROXY_RUN_DIR" "$PROXY_RUN_DIR/tmp" "$PROXY_RUN_DIR/cache" 2>/dev/null || true

# ---- render
DEFAULT_LISTEN=""
listen_conf="# Generated by deploy/proxy/run.sh: where every space's server block listens."$'\n'
for a in "${listen_addrs[@]}"; do
    DEFAULT_LISTEN+="        listen $a default_server;"$'\n'
    listen_conf+="listen $a;"$'\n'
done
DEFAULT_LISTEN=${DEFAULT_LISTEN%$'\n'}

conf=$(<"$PROXY_TEMPLATE")
PROXY_STATE_DIR=$proxy_dir           # generation, applied, activity.log (shared with the hub)
mkdir -p "$PROXY_STATE_DIR"
# nginx appends (O_APPEND) to activity.log; the hub reads it and truncates it (spaces/lifecycle/sleep.py),
# so it belongs to whoever owns the shared directory (the hub's user), not to root.
touch "$PROXY_STATE_DIR/activity.log"
chown --reference="$PROXY_STATE_DIR" "$PROXY_STATE_DIR/activity.log" 2>/dev/null || true
chmod 0644 "$PROXY_STATE_DIR/activity.log" 2>/dev/null || true
for name in USER_DIRECTIVE PROXY_WORKERS PROXY_RUN_DIR PROXY_ROUTES_DIR SPACES_DOMAIN \
            PROXY_MAX_BODY_SIZE HUB_UPSTREAM HUB_HOST PROXY_SHARED_SECRET DEFAULT_LISTEN \
            NGINX_MIME_TYPES PROXY_STATE_DIR NJS_MODULE NGINX_MODULES_DIR NJS_SCRIPT SPACE_COOKIE_NAME; do
    conf=${conf//"\${$name}"/"${!name}"}
done
if [[ $conf == *'${'* ]]; then
    die "template has placeholders run.sh does not know: $(grep -o '\${[A-Za-z_]*}' <<<"$conf" | sort -u | tr '\n' ' ')"
fi

umask 077          # nginx.conf holds the shared secret
printf '%s\n' "$conf" >"$PROXY_RUN_DIR/nginx.conf.new"
mv -f "$PROXY_RUN_DIR/nginx.conf.new" "$PROXY_RUN_DIR/nginx.conf"
umask 022
printf '%s' "$listen_conf" >"$PROXY_RUN_DIR/demohub-listen.conf.new"
mv -f "$PROXY_RUN_DIR/demohub-listen.conf.new" "$PROXY_RUN_DIR/demohub-listen.conf"

nginx_args=(-p "$PROXY_RUN_DIR/" -e stderr -c "$PROXY_RUN_DIR/nginx.conf")

APPLIED_FILE=$proxy_dir/applied
# Tell the hub which routes generation is live, so a space shows RUNNING only once the proxy
# really routes to it (runner/proxy.py wait_applied).
mark_applied() {
    printf '%s\n' "$1" >"$APPLIED_FILE.tmp" 2>/dev/null && mv -f "$APPLIED_FILE.tmp" "$APPLIED_FILE" 2>/dev/null || true
}

# The processes of the running nginx master: workers (and its cache manager and loader).
nginx_children() {
    local f
    for f in /proc/"$nginx_pid"/task/*/children; do
        cat "$f" 2>/dev/null || true
    done
}

# A reload has taken effect once every process of the previous configuration has exited or is
# "shutting down": such a worker has closed its listening sockets (nginx retitles it just
# before), so every new connection reaches a new worker and the new routes. Until then a
# space switched to a new container could still get requests on its old one (spaces/drain.py
# stops that one only after the generation is applied). Bounded: a master that failed to
# apply the config keeps its old workers, and the generation is not marked applied.
reload_took() {
    local deadline=$((SECONDS + 10)) pid cmd pending
    while :; do
        pending=""
        for pid in $1; do
            cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || continue
            [[ -z $cmd || $cmd == *"shutting down"* ]] && continue
            pending=$pid
            break
        done
        [[ -z $pending ]] && return 0
        ((SECONDS < deadline)) || return 1
        sleep 0.02
    done
}

read_generation() {
    local g=""
    { read -r g <"$GENERATION_FILE"; } 2>/dev/null || true
    printf '%s' "${g:-0}"
}

# Best effort: let each worker hold its connections (2 descriptors per proxied request).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---- start
last_gen=$(read_generation)          # read before the config is loaded: no change is missed
"$NGINX_BIN" "${nginx_args[@]}" -t -q || die "nginx config test failed ($PROXY_RUN_DIR/nginx.conf)"
"$NGINX_BIN" "${nginx_args[@]}" -g 'daemon off;' &
nginx_pid=$!
log "nginx started (pid $nginx_pid) on ${listen_addrs[*]}, routes $PROXY_ROUTES_DIR, generation $last_gen"

stopping=""
forward() {
    stopping=1
    log "received SIG$1, stopping nginx"
    kill -s "$1" "$nginx_pid" 2>/dev/null || true
}
trap 'forward TERM' TERM
trap 'forward INT' INT
trap 'forward QUIT' QUIT
trap 'kill -s HUP "$nginx_pid" 2>/dev/null || true' HUP    # manual reload
sleep 0.2 || true; mark_applied "$last_gen"

while kill -0 "$nginx_pid" 2>/dev/null; do
    sleep "$PROXY_POLL_INTERVAL" || true
    [[ -z $stopping ]] || continue
    gen=$(read_generation)
    [[ $gen != "$last_gen" ]] || continue
    last_gen=$gen
    if "$NGINX_BIN" "${nginx_args[@]}" -t -q; then
        before=$(nginx_children)
        kill -s HUP "$nginx_pid" 2>/dev/null || true            # == nginx -s reload
        [[ -n $before ]] || sleep 0.1                           # no /proc children list: a guess
        if reload_took "$before"; then
            mark_applied "$gen"
            log "routes generation $gen: reloaded"
        else
            log "routes generation $gen: nginx kept its old workers (see its error log); not applied"
        fi
    else
        log "routes generation $gen: config test FAILED, keeping the running config"
    fi
done

status=0
wait "$nginx_pid" || status=$?
log "nginx exited with status $status"
exit "$status"
