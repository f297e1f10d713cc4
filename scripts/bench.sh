#!/usr/bin/env bash
# Benchmarks (make bench): each brings up its own real stack (tests/e2e/stack.py), measures,
# and tears it down. Output, human lines plus a final JSON line each, goes to artifacts/bench/:
#   upload_to_live.txt / .json     upload POST -> first 200 through the proxy
#   hf_upload_to_live.txt / .json  huggingface_hub upload_folder via /hf -> first 200 (issue 11)
#   proxy_throughput.txt / .json   proxy req/s as a ratio to a minimal nginx, same container
#   redeploy.txt / .json           failed requests and switch times of redeploys under load,
#                                  memory of a running space and of the hub per running space
#   visibility_latency.txt / .json public -> private refused at the proxy, with starts stuck and
#                                  a sleep check in progress (issue 15, finding 2)
#   browse_search.txt / .json      server time of browse/search/list pages on 10,000 seeded spaces
#                                  (no stack: in-process, its own database demohub_bench)
#   analytics_rollup.txt / .json   seconds to roll up one million proxy access-log lines (no
#                                  stack: its own database demohub_bench_rollup_<pid>)
#   nodes.txt / .json              a space on a second node (netns): upload -> live, proxy
#                                  ratio to nginx at node-address:port, node loss -> answers again
# --cold is never used here (it removes the gradio SDK image and costs a pip install): run
# bench/upload_to_live.py --cold by hand for that figure.
# Exit status: 0 when all ran (whatever the figures), else 1.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
py=${PYTHON:-$root/.venv/bin/python}
[[ -x $py ]] || py=$(command -v python3)
out=$root/artifacts/bench
mkdir -p "$out"
rm -rf "$out"/logs-*          # process logs of the previous run's stacks

if ! command -v wrk >/dev/null 2>&1; then
    echo "bench: installing wrk (apt-get install -y wrk)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null || true
fi

status=0
run() {
    local name=$1; shift
    echo "== $name ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
    # Bounded: a benchmark that hangs gets SIGTERM (it then tears its stack down). --foreground
    # keeps it in the terminal's process group so Ctrl-C reaches it too; tee -i outlives Ctrl-C
    # so the teardown lines still reach the file.
    timeout --foreground -k 60 "${BENCH_TIMEOUT:-1800}" "$py" "bench/$name.py" "$@" 2>&1 \
        | tee -i "$out/$name.txt"
    local rc=${PIPESTATUS[0]}
    tail -n 1 "$out/$name.txt" >"$out/$name.json"
    if [[ $rc -ne 0 ]]; then
        echo "bench: $name exited with $rc (see $out/$name.txt)"
        status=1
    fi
}

# BENCH_REPEAT: samples per warm upload scenario (the median is reported).
run upload_to_live --repeat "${BENCH_REPEAT:-3}"
run hf_upload_to_live --repeat "${BENCH_REPEAT:-3}"
run proxy_throughput
run browse_search
run analytics_rollup
run private_throughput
run wake_latency
run visibility_latency
run redeploy
run nodes
echo "== results in $out"
exit "$status"
