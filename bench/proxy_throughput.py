#!/usr/bin/env python3
"""Proxy throughput: requests/s of a public space through the Demohub proxy, as a ratio to a
minimal hand-written nginx in front of the same container, in the same run.

* Brings up a real stack (tests/e2e/stack.py) and deploys a docker-SDK space FROM
  demohub/base:bookworm whose app is a minimal asyncio HTTP responder (a fixed 1 KiB body,
  keep-alive), so the proxy, not the app, is what is measured.
* Starts a reference nginx (own temp prefix, a free loopback port, the same worker count as
  the stack's proxy):
      upstream x { server <container-ip>:<port>; keepalive 32; }
      location / { proxy_pass http://x; proxy_http_version 1.1; proxy_set_header Connection ""; }
  plus `access_log off` and `keepalive_requests 10000` (as the Demohub template has), so
  neither side pays for logging or client reconnects the other does not.
* Runs wrk against 127.0.0.1 with the space's Host header, same -t/-c/-d for both,
  alternating demohub/reference for --rounds rounds after a short warm-up, and keeps the
  best of each: ratio = best demohub / best reference. Also measures the container directly
  (context: is the app the limit?).
* Also reports the cost side, which other load on a shared 2-core machine barely moves:
  requests per CPU-second of the nginx processes (master + workers, from /proc), summed over
  the rounds, and its ratio. When the req/s ratio swings between runs, trust this one.
* --variants additionally measures reference configs with one Demohub setting added each
  (paired, alternating with the reference), to attribute a gap (investigation aid; slower).

Usage:  .venv/bin/python bench/proxy_throughput.py [-t 2] [-c 32] [-d 10] [--rounds 3] [--variants]
Target: demohub / reference >= 0.9. Exits 0 whatever the ratio (a measurement); 1 only if
the stack or the reference could not be used.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (  # noqa: E402
    BENCH_ARTIFACTS,
    AppClient,
    deploy_space,
    final_json,
    log,
    machine,
    make_archive,
    poll,
    safe_down,
    sigterm_raises,
    start_stack,
)

TARGET = 0.9
BODY_BYTES = 1024

RESPONDER = r'''
import asyncio

BODY = b"x" * %(body)d
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %%d\r\n"
            b"Connection: keep-alive\r\n\r\n" %% len(BODY)) + BODY


class Responder(asyncio.Protocol):
    """One fixed answer per request head; GET only, pipelining tolerated."""

    def connection_made(self, transport):
        self.transport = transport
        self.buf = b""

    def data_received(self, data):
        buf = self.buf + data
        n = buf.count(b"\r\n\r\n")
        if n:
            self.transport.write(RESPONSE * n)
            buf = buf[buf.rfind(b"\r\n\r\n") + 4:]
        if len(buf) > 65536:
            self.transport.close()
        self.buf = buf


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Responder, "0.0.0.0", 7860, backlog=1024, reuse_address=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
''' % {"body": BODY_BYTES}


def responder_repo() -> bytes:
    return make_archive({
        "README.md": "---\ntitle: Bench responder\nsdk: docker\napp_port: 7860\n---\n",
        "Dockerfile": "FROM demohub/base:bookworm\nCOPY server.py /srv/server.py\n"
                      "CMD [\"python3\", \"/srv/server.py\"]\n",
        "server.py": RESPONDER,
    })


# --------------------------------------------------------------------------- wrk


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    log("wrk not found: apt-get install -y wrk")
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False, timeout=300,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    path = shutil.which("wrk")
    if not path:
        raise RuntimeError("wrk is not installed and apt-get install -y wrk did not install it")
    return path


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(us|ms|s)", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def run_wrk(wrk: str, url: str, host: str, *, threads: int, conns: int, seconds: float,
            nginx_master: int | None = None, headers: dict[str, str] | None = None) -> dict:
    assert url.startswith("http://127.0.0.1:") or re.match(r"http://10\.2(1[6-9]|2[0-3])\.", url), url
    extra = [arg for k, v in (headers or {}).items() for arg in ("-H", f"{k}: {v}")]
    argv = [wrk, f"-t{threads}", f"-c{conns}", f"-d{int(round(seconds))}s", "--timeout", "5s", "--latency",
            "-H", f"Host: {host}", *extra, url]
    cpu0 = nginx_cpu_seconds(nginx_master) if nginx_master else None
    with open("/proc/loadavg") as fh:
        load = float(fh.read().split()[0])
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    out = proc.stdout
    res = {"rps": 0.0, "non_2xx": 0, "socket_errors": 0, "load1_before": load}
    if nginx_master:
        res["nginx_cpu_s"] = round(nginx_cpu_seconds(nginx_master) - cpu0, 2)
    m = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    if m:
        res["rps"] = float(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        res["non_2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        res["socket_errors"] = sum(int(x) for x in m.groups())
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        if m:
            res[f"p{pct}_ms"] = round(_ms(m.group(1)), 3)
    m = re.search(r"(\d+) requests in", out)
    if m:
        res["requests"] = int(m.group(1))
    if res.get("nginx_cpu_s") and res.get("requests"):
        res["req_per_cpu_s"] = round(res["requests"] / res["nginx_cpu_s"], 1)
    if res["rps"] == 0.0:
        res["raw"] = (out + proc.stderr)[-800:]
    # Errors make a rate meaningless: only clean 200s count.
    res["clean"] = res["non_2xx"] == 0 and res["socket_errors"] == 0 and res["rps"] > 0
    return res


# --------------------------------------------------------------------------- nginx CPU time

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2:].split()   # [0]=state [1]=ppid ... [11]=utime [12]=stime


def nginx_cpu_seconds(master_pid: int) -> float:
    """CPU seconds (user+system) used so far by an nginx master and its workers: requests per
    CPU-second of the proxy is a cost figure that other load on the machine barely moves,
    unlike requests per wall-clock second."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = _stat(int(entry))
        if st and (int(entry) == master_pid or int(st[1]) == master_pid):
            total += int(st[11]) + int(st[12])
    return total / _TICK


# --------------------------------------------------------------------------- reference nginx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


REF_HTTP_EXTRA_DEFAULT = ["access_log off;", "keepalive_requests 10000;"]


def reference_conf(prefix: Path, *, port: int, upstream: str, workers: int, http_extra: list[str] = (),
                   upstream_extra: list[str] = (), location_extra: list[str] = ()) -> str:
    tmp = prefix / "tmp"
    lines = [
        f"worker_processes {workers};",
        f"pid {prefix}/nginx.pid;",
        f"error_log {prefix}/error.log error;",
        "events { worker_connections 4096; }",
        "http {",
        *(f"    {x}" for x in REF_HTTP_EXTRA_DEFAULT),
        *(f"    {x}" for x in http_extra),
        f"    client_body_temp_path {tmp}/body;",
        f"    proxy_temp_path {tmp}/proxy;",
        f"    fastcgi_temp_path {tmp}/fastcgi;",
        f"    uwsgi_temp_path {tmp}/uwsgi;",
        f"    scgi_temp_path {tmp}/scgi;",
        "    upstream x {",
        f"        server {upstream};",
        "        keepalive 32;",
        *(f"        {x}" for x in upstream_extra),
        "    }",
        "    server {",
        f"        listen 127.0.0.1:{port};",
        "        location / {",
        "            proxy_pass http://x;",
        "            proxy_http_version 1.1;",
        '            proxy_set_header Connection "";',
        *(f"            {x}" for x in location_extra),
        "        }",
        "    }",
        "}",
    ]
    return "\n".join(lines) + "\n"


class ReferenceNginx:
    """A throwaway nginx on a free loopback port with its own prefix; stopped by its pid."""

    def __init__(self, conf_text_fn, name: str = "reference"):
        self.prefix = Path(tempfile.mkdtemp(prefix="demohub-bench-nginx-"))
        os.chmod(self.prefix, 0o755)
        (self.prefix / "tmp").mkdir()
        os.chmod(self.prefix / "tmp", 0o777)
        self.port = free_port()
        self.conf = self.prefix / "nginx.conf"
        self.conf.write_text(conf_text_fn(self.prefix, self.port))
        self.name = name
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        base = ["nginx", "-p", f"{self.prefix}/", "-e", str(self.prefix / "error.log"), "-c", str(self.conf)]
        test = subprocess.run(base + ["-t", "-q"], capture_output=True, text=True, timeout=30)
        if test.returncode != 0:
            raise RuntimeError(f"reference nginx config test failed: {test.stderr}")
        self.proc = subprocess.Popen(base + ["-g", "daemon off;"], start_new_session=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"reference nginx did not listen on 127.0.0.1:{self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGQUIT)          # graceful stop of the master
                self.proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
            if self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)    # its own session: master + workers
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        self.proc = None
        shutil.rmtree(self.prefix, ignore_errors=True)


# --------------------------------------------------------------------------- helpers


def container_address(stack, space_full_name: str) -> tuple[str, int]:
    import docker

    client = docker.from_env()
    found = client.containers.list(filters={"label": [f"demohub.instance={stack.instance}",
                                                      f"demohub.space={space_full_name}"],
                                            "status": "running"})
    if len(found) != 1:
        raise RuntimeError(f"expected one running container of {space_full_name}, found {len(found)}")
    nets = found[0].attrs["NetworkSettings"]["Networks"]
    ip = next(iter(nets.values()))["IPAddress"]
    return ip, 7860


def proxy_workers(stack) -> int:
    conf = (stack.data_dir / "proxy" / "run" / "nginx.conf").read_text()
    m = re.search(r"^\s*worker_processes\s+(\d+);", conf, re.M)
    return int(m.group(1)) if m else os.cpu_count() or 1


def check_200(url: str, host: str) -> None:
    import requests

    s = requests.Session()
    s.trust_env = False
    r = s.get(url, headers={"Host": host}, timeout=5)
    if r.status_code != 200 or len(r.content) != BODY_BYTES:
        raise RuntimeError(f"{url} (Host {host}) answered {r.status_code} with {len(r.content)} bytes")


# Variants: the reference plus one Demohub setting each (what the generated config adds).
VARIANTS = {
    "ref+buffering_off": dict(location_extra=["proxy_buffering off;", "proxy_request_buffering off;"]),
    "ref+headers": dict(location_extra=[
        "proxy_set_header Upgrade $http_upgrade;", "proxy_set_header Host $http_host;",
        "proxy_set_header X-Forwarded-Host $http_host;", "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Forwarded-For $remote_addr;", "proxy_set_header X-Real-IP $remote_addr;",
        'proxy_set_header X-Gradio-Server "";', 'proxy_set_header X-HF-Authorization "";',
        "proxy_set_header Authorization $http_authorization;", 'proxy_set_header X-Demohub-Proxy-Key "";',
        'proxy_set_header Proxy "";']),
    "ref+authorization_map": dict(
        http_extra=['map $http_authorization $demohub_app_authorization { default $http_authorization; '
                    '"~*^[ \\t]*bearer[ \\t]+dh_" ""; }'],
        location_extra=["proxy_set_header Authorization $demohub_app_authorization;"]),
    "ref+upstream_keepalive_timeout_4s": dict(upstream_extra=["keepalive_timeout 4s;"]),
    "ref+globals": dict(http_extra=["sendfile on;", "tcp_nopush on;", "tcp_nodelay on;",
                                    "server_names_hash_max_size 131072;", "server_names_hash_bucket_size 256;",
                                    "large_client_header_buffers 4 32k;", "gzip off;"]),
}


def wrk_arguments(ap: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse the wrk options every throughput benchmark takes (clamped to sane bounds)."""
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-c", "--connections", type=int, default=32)
    ap.add_argument("-d", "--duration", type=int, default=10, help="seconds per wrk run (max 60)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (max 8); best of each is kept")
    args = ap.parse_args()
    args.duration = max(1, min(args.duration, 60))
    args.rounds = max(1, min(args.rounds, 8))
    return args


def wrk_payload(name: str, info: dict, target: float, args: argparse.Namespace) -> dict:
    """The start of a throughput benchmark's JSON line: what ran, where, with which wrk options."""
    return {"bench": name, "machine": info, "target": target,
            "wrk": {"threads": args.threads, "connections": args.connections, "duration_s": args.duration,
                    "rounds": args.rounds}, "body_bytes": BODY_BYTES}


def compare_runs(runs: dict[str, list[dict]], subject: str, base: str) -> dict:
    """Best clean req/s of each side, subject/base of the bests, the per-round (adjacent, so
    less exposed to load drift) ratios, and requests per nginx CPU-second over clean rounds."""
    best = {k: max((x["rps"] for x in v if x["clean"]), default=0.0) for k, v in runs.items()}
    eff = {}
    for k, v in runs.items():
        reqs = sum(x.get("requests", 0) for x in v if x["clean"])
        cpu = sum(x.get("nginx_cpu_s", 0) for x in v if x["clean"])
        eff[k] = reqs / cpu if cpu else 0.0
    return {
        "best": best,
        "ratio": best[subject] / best[base] if best[base] else None,
        "paired": [round(a["rps"] / b["rps"], 3) for a, b in zip(runs[subject], runs[base])
                   if a["clean"] and b["clean"]],
        "req_per_cpu_s": eff,
        "cpu_ratio": eff[subject] / eff[base] if eff[base] else None,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", action="store_true", help="also measure reference+one-setting variants")
    args = wrk_arguments(ap)
    sigterm_raises()

    wrk = ensure_wrk()
    info = machine()
    log(f"proxy_throughput: {info['date_utc']}, {info['cores']} cores, load {info.get('loadavg_at_start')}")
    wrk_opts = dict(threads=args.threads, conns=args.connections, seconds=args.duration)
    payload = wrk_payload("proxy_throughput", info, TARGET, args)
    stack = start_stack()
    refs: list[ReferenceNginx] = []
    status = 0
    try:
        stack.up()
        log(f"stack {stack.instance} up (proxy 127.0.0.1:{stack.proxy_port})")
        owner, token, space = deploy_space(stack, "tput", "docker", responder_repo(), timeout=300)
        app = AppClient(stack, space["url"])
        host = app.host
        poll(lambda: app.get("/").status_code == 200, started=time.monotonic(), timeout=30)
        ip, port = container_address(stack, f"{owner}/tput")
        workers = proxy_workers(stack)
        log(f"space {owner}/tput: Host {host}, container {ip}:{port}, proxy workers {workers}")

        # Keep the generated config and the reference config with the figures.
        BENCH_ARTIFACTS.mkdir(parents=True, exist_ok=True)
        label = host.split(".", 1)[0]
        route_file = stack.data_dir / "proxy" / "routes" / f"{label}.conf"
        shutil.copyfile(route_file, BENCH_ARTIFACTS / "proxy-route-space.conf")
        main_conf = (stack.data_dir / "proxy" / "run" / "nginx.conf").read_text()
        (BENCH_ARTIFACTS / "proxy-main.conf").write_text(      # without the (throwaway) shared secret
            re.sub(r'(\$demohub_proxy_key\s*\{\s*default\s*)"[^"]*"', r'\1"<redacted>"', main_conf))

        ref = ReferenceNginx(lambda p, prt: reference_conf(p, port=prt, upstream=f"{ip}:{port}", workers=workers))
        refs.append(ref)
        ref.start()
        (BENCH_ARTIFACTS / "proxy-reference.conf").write_text(ref.conf.read_text())

        targets = {
            "demohub": f"http://127.0.0.1:{stack.proxy_port}/",
            "reference": f"http://127.0.0.1:{ref.port}/",
        }
        masters = {"demohub": int((stack.data_dir / "proxy" / "run" / "nginx.pid").read_text().strip()),
                   "reference": ref.proc.pid}
        for name, url in targets.items():
            check_200(url, host)
        check_200(f"http://{ip}:{port}/", host)

        # Warm-up (connections, caches), not counted.
        for url in targets.values():
            run_wrk(wrk, url, host, threads=args.threads, conns=args.connections, seconds=2)

        runs: dict[str, list[dict]] = {k: [] for k in targets}
        for rnd in range(args.rounds):
            order = list(targets) if rnd % 2 == 0 else list(reversed(targets))
            for name in order:
                res = run_wrk(wrk, targets[name], host, nginx_master=masters[name], **wrk_opts)
                runs[name].append(res)
                log(f"  round {rnd + 1} {name:<10} {res['rps']:10.0f} req/s  p50 {res.get('p50_ms', '?')} ms  "
                    f"p99 {res.get('p99_ms', '?')} ms  nginx {res.get('req_per_cpu_s', 0):8.0f} req/cpu-s  "
                    f"non-2xx {res['non_2xx']}  sock-err {res['socket_errors']}  load {res['load1_before']}")
        direct = run_wrk(wrk, f"http://{ip}:{port}/", host, **wrk_opts)
        log(f"  direct     {direct['rps']:10.0f} req/s  (wrk -> container, no proxy; context only)")

        cmp = compare_runs(runs, "demohub", "reference")
        best, ratio, paired = cmp["best"], cmp["ratio"], cmp["paired"]
        payload["paired_ratios"] = paired
        # Cost: requests per CPU-second of the nginx processes, over all clean rounds.
        eff, cpu_ratio = cmp["req_per_cpu_s"], cmp["cpu_ratio"]
        payload.update({"demohub_req_per_cpu_s": round(eff["demohub"], 1),
                        "reference_req_per_cpu_s": round(eff["reference"], 1),
                        "cpu_efficiency_ratio": round(cpu_ratio, 3) if cpu_ratio else None})
        payload.update({
            "demohub_rps": round(best["demohub"], 1), "reference_rps": round(best["reference"], 1),
            "direct_rps": round(direct["rps"], 1), "ratio": round(ratio, 3) if ratio is not None else None,
            "met": ratio is not None and ratio >= TARGET, "runs": runs, "direct": direct,
            "proxy_workers": workers,
        })

        if args.variants:
            variants = {}
            for vname, kw in VARIANTS.items():
                v = ReferenceNginx(lambda p, prt, kw=kw: reference_conf(p, port=prt, upstream=f"{ip}:{port}",
                                                                       workers=workers, **kw), vname)
                refs.append(v)
                v.start()
                try:
                    vurl = f"http://127.0.0.1:{v.port}/"
                    check_200(vurl, host)
                    run_wrk(wrk, vurl, host, threads=args.threads, conns=args.connections, seconds=2)
                    # Paired with the reference, alternating, so load drift hits both alike.
                    pair = {"reference": [], vname: []}
                    for rnd in range(args.rounds):
                        for which in ((vname, "reference") if rnd % 2 == 0 else ("reference", vname)):
                            pair[which].append(run_wrk(wrk, vurl if which == vname else targets["reference"],
                                                       host, nginx_master=v.proc.pid if which == vname
                                                       else masters["reference"], **wrk_opts))
                finally:
                    v.stop()
                vcmp = compare_runs(pair, vname, "reference")
                pbest = vcmp["best"]
                variants[vname] = {"rps": round(pbest[vname], 1), "reference_rps": round(pbest["reference"], 1),
                                   "vs_reference": round(vcmp["ratio"], 3) if vcmp["ratio"] is not None else None,
                                   "cpu_efficiency_vs_reference": round(vcmp["cpu_ratio"], 3)
                                   if vcmp["cpu_ratio"] is not None else None}
                log(f"  variant {vname:<34} {pbest[vname]:8.0f} req/s vs reference {pbest['reference']:8.0f} "
                    f"({variants[vname]['vs_reference']}x); req/cpu-s "
                    f"{variants[vname]['cpu_efficiency_vs_reference']}x reference")
            payload["variants"] = variants

        log("")
        log(f"demohub proxy   {best['demohub']:10.0f} req/s (best of {args.rounds})")
        log(f"reference nginx {best['reference']:10.0f} req/s (best of {args.rounds})")
        log(f"direct          {direct['rps']:10.0f} req/s")
        if ratio is not None:
            log(f"ratio demohub/reference = {ratio:.3f}   target >= {TARGET}   {'MET' if ratio >= TARGET else 'MISSED'}"
                f"   (per-round ratios {paired})")
        if cpu_ratio is not None:
            log(f"nginx cost: demohub {eff['demohub']:.0f} vs reference {eff['reference']:.0f} requests per CPU-second"
                f" -> efficiency ratio {cpu_ratio:.3f} (barely moved by other load on the machine)")
    except KeyboardInterrupt as exc:
        log(f"interrupted: {exc}")
        payload["error"] = f"interrupted: {exc}"
        status = 1
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc()
        payload["error"] = f"{type(exc).__name__}: {exc}"
        status = 1
    finally:
        for ref in refs:
            ref.stop()
        safe_down(stack)
    final_json(payload)
    return status


if __name__ == "__main__":
    sys.exit(main())
