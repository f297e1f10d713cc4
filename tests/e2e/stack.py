"""The real stack for end-to-end tests: hub processes on this machine, real everything else.

Starts the web (uvicorn), a builds worker, the lifecycle, starts and routes workers, beat and the nginx proxy as
subprocesses against this machine's Postgres and Redis and the real Docker engine, each under
a fresh installation id, database, Redis db, data dir, ports and spaces subnet, so a test run
never touches another stack. Teardown removes every container, image and network labelled
with that installation id.

`new_stack(private_redis=True)` gives the stack a redis-server of its own (process "redis", on
a free loopback port, no persistence) instead of the machine's shared one, so a test may kill
and restart it (tests/e2e/test_restarts.py). `private_postgres=True` does the same for Postgres
(process "postgres", a cluster of its own under the data dir, run as the postgres user):
tests/e2e/test_dependency_restarts.py restarts and kills it.
"""
from __future__ import annotations

import base64
import ipaddress
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.archives import make_archive  # noqa: F401  (re-exported for tests and bench)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
# Installation ids of the stacks this process started: their containers are this run's own.
STARTED_INSTANCES: set[str] = set()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, *, timeout: float = 60, headers: dict | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2, headers=headers or {}, allow_redirects=False)
            return
        except requests.RequestException as exc:
            last = exc
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s: {last}")


@dataclass
class Stack:
    instance: str
    hub_port: int
    proxy_port: int
    subnet: str
    builds_subnet: str
    data_dir: Path
    db_name: str
    redis_db: int
    redis_port: int | None = None  # a private redis-server on this port (None: the machine's)
    pg_port: int | None = None     # a private Postgres on this port (None: the machine's, 5432)
    spaces_domain: str = "spaces.localhost"
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)  # hub settings of this stack only
    log_dir: Path = ARTIFACTS / "e2e-logs"  # one sub-folder per installation, see __post_init__
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    # A Fernet key (spaces/lifecycle/crypto.py): 32 random bytes, URL-safe base64.
    secrets_key: str = field(default_factory=lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())

    def __post_init__(self) -> None:
        self.log_dir = self.log_dir / self.instance

    @property
    def hub_url(self) -> str:
        return f"http://localhost:{self.hub_port}"

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "DJANGO_SETTINGS_MODULE": "hub.settings",
            # Real keys: the hub refuses short or published ones (hub/settings.py).
            "DJANGO_SECRET_KEY": self.secret_key,
            "SECRETS_ENCRYPTION_KEY": self.secrets_key,
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:{self.pg_port or 5432}/{self.db_name}",
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port or 6379}/{self.redis_db}",
            "HUB_URL": self.hub_url,
            "SPACES_DOMAIN": self.spaces_domain,
            "SPACES_PORT": str(self.proxy_port),
            "DEMOHUB_INSTANCE": self.instance,
            "DATA_DIR": str(self.data_dir),
            "SPACES_SUBNET": self.subnet,
            "BUILDS_SUBNET": self.builds_subnet,
            "PROXY_SHARED_SECRET": "e2e-proxy-" + self.instance,
            "METRICS_TOKEN": "e2e-metrics-" + self.instance,
            "LOG_FORMAT": "json",  # as in production (the unit tests' settings set "console")
            "RECONCILE_INTERVAL": "10",
            "RUN_LOG_INTERVAL": "1",
            "SPACE_STARTUP_TIMEOUT": "180",
            "BUILD_TIMEOUT": "900",
            "PYTHONUNBUFFERED": "1",
            "SIGNUP_OPEN": "true",
            # Spaces sleep only where a test asks (sleep_after), and then quickly.
            "SPACE_SLEEP_AFTER_DEFAULT": "-1",
            "SPACE_SLEEP_AFTER_MIN": "5",
            # The tests' webhook receivers listen on loopback (issue 14); a retry comes quickly.
            "WEBHOOK_ALLOW_CIDRS": "127.0.0.0/8",
            "WEBHOOK_RETRY_BASE_SECONDS": "1",
            "SPACE_FREEZE_AFTER": "4",
            "SLEEP_CHECK_INTERVAL": "1",
            # The beat rolls up the proxy's analytics log this often (tests/e2e/test_analytics.py).
            "ANALYTICS_INTERVAL": "3",
            # Every client of this stack is 127.0.0.1: per-address limits would count all
            # tests as one person (the limits themselves are tested in tests/unit).
            "SIGNUP_RATE_PER_IP": "1000/10m",
            "LOGIN_RATE_PER_IP": "1000/m",
            # Session-wide users (alice) own many spaces over a run: per-user quotas off here;
            # tests/e2e/test_quotas.py restarts the web process with its own small ones.
            "SPACE_CREATE_RATE_PER_USER": "100000/h",
            "QUOTA_SPACES_PER_USER": "0",
            "QUOTA_RUNNING_SPACES_PER_USER": "0",
            "QUOTA_QUEUED_BUILDS_PER_USER": "0",
            "QUOTA_STORAGE_PER_USER": "0",
            "LOGIN_RATE_PER_USERNAME_AND_IP": "1000/m",
        })
        ca = "/etc/ssl/certs/ca-certificates.crt"
        if "BUILD_CA_BUNDLE" not in os.environ and Path(ca).is_file():
            env["BUILD_CA_BUNDLE"] = ca
        env.update(self.settings)
        return env

    # -- processes ------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str], extra_env: dict[str, str] | None = None) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        out = open(self.log_dir / f"{name}.log", "ab")
        env = {**self.env, **(extra_env or {})}
        self.procs[name] = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def start_redis(self) -> None:
        """The stack's private redis-server (with redis_port): empty at every start, as a Redis
        restarted without persistence is."""
        assert self.redis_port, "this stack uses the machine's Redis"
        self._spawn("redis", ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--dir", str(self.data_dir)])
        import redis

        deadline = time.monotonic() + 20
        while True:
            try:
                redis.Redis(port=self.redis_port, socket_timeout=1).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {self.redis_port} did not answer within 20 s")
                time.sleep(0.1)

    @property
    def pg_dir(self) -> Path:
        return self.data_dir / "pg"

    def start_postgres(self) -> None:
        """The stack's private Postgres (with pg_port): initialised on first start, then started
        on the same cluster (a restart keeps the data, as a database server's does)."""
        assert self.pg_port, "this stack uses the machine's Postgres"
        as_pg = ["runuser", "-u", "postgres", "--"]
        if not (self.pg_dir / "PG_VERSION").exists():
            self.pg_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.data_dir, 0o755)
            shutil.chown(self.pg_dir, "postgres", "postgres")
            subprocess.run([*as_pg, "initdb", "-D", str(self.pg_dir), "-A", "trust", "-U", "postgres"],
                           check=True, capture_output=True)
        self._spawn("postgres", [*as_pg, "postgres", "-D", str(self.pg_dir), "-p", str(self.pg_port),
                                 "-c", "listen_addresses=127.0.0.1", "-k", str(self.pg_dir), "-c", "fsync=off"])
        deadline = time.monotonic() + 30
        while subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.pg_port)]).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres on port {self.pg_port} did not answer within 30 s")
            time.sleep(0.1)

    def start_web(self, extra_env: dict[str, str] | None = None) -> None:
        self._spawn("web", [sys.executable, "-m", "uvicorn", "hub.asgi:application", "--host", "127.0.0.1",
                            "--port", str(self.hub_port), "--no-access-log"], extra_env)

    def restart_web(self, extra_env: dict[str, str] | None = None) -> None:
        """The web process again, with `extra_env` over the stack's settings (none: as before)."""
        self.stop("web")
        self.start_web(extra_env)
        wait_http(self.hub_url + "/api/spaces", timeout=60)

    def start_builds_worker(self) -> None:
        self._spawn("worker-builds", [sys.executable, "-m", "celery", "-A", "hub", "worker", "-Q", "builds",
                                      "-c", "1", "--prefetch-multiplier", "1", "-n", f"builds-{self.instance}@%h",
                                      "--loglevel", "INFO"])

    def start_lifecycle_worker(self, extra_env: dict[str, str] | None = None) -> None:
        """The lifecycle worker, and beside it (started again with the same settings) the starts
        and routes workers: the queues of spaces/lifecycle/tasks.py, as docker-compose.yml runs them."""
        self._spawn("worker-lifecycle", [sys.executable, "-m", "celery", "-A", "hub", "worker", "-Q", "lifecycle",
                                         "-c", "4", "-n", f"lifecycle-{self.instance}@%h", "--loglevel", "INFO"],
                    extra_env)
        for name, queue, concurrency in (("worker-starts", "starts", "4"), ("worker-routes", "routes", "2")):
            self.stop(name)
            self._spawn(name, [sys.executable, "-m", "celery", "-A", "hub", "worker", "-Q", queue, "-c", concurrency,
                               "-n", f"{queue}-{self.instance}@%h", "--loglevel", "INFO"], extra_env)

    def start_webhooks_worker(self) -> None:
        """Webhook deliveries, on their own queue as in docker-compose.yml."""
        self._spawn("worker-webhooks", [sys.executable, "-m", "celery", "-A", "hub", "worker", "-Q", "webhooks",
                                        "-c", "2", "-n", f"webhooks-{self.instance}@%h", "--loglevel", "INFO"])

    def start_beat(self) -> None:
        self._spawn("beat", [sys.executable, "-m", "celery", "-A", "hub", "beat", "--loglevel", "INFO",
                             "-s", str(self.data_dir / "celerybeat-schedule")])

    def start_proxy(self) -> None:
        routes = self.data_dir / "proxy" / "routes"
        routes.mkdir(parents=True, exist_ok=True)
        self._spawn("proxy", ["bash", str(ROOT / "deploy/proxy/run.sh")], {
            "PROXY_LISTEN": f"127.0.0.1:{self.proxy_port}",
            "HUB_UPSTREAM": f"127.0.0.1:{self.hub_port}",
            "PROXY_ROUTES_DIR": str(routes),
            "PROXY_RUN_DIR": str(self.data_dir / "proxy" / "run"),
            "PROXY_WORKERS": "2",
        })

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def manage(self, *args: str) -> str:
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, check=True,
                              capture_output=True, text=True, timeout=300).stdout

    def up(self) -> None:
        if self.pg_port:
            self.start_postgres()
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.pg_port or 5432), "-U", "postgres", "-q", "-c",
                        f'DROP DATABASE IF EXISTS "{self.db_name}"', "-c", f'CREATE DATABASE "{self.db_name}"'],
                       check=True, capture_output=True)
        STARTED_INSTANCES.add(self.instance)
        if self.redis_port:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.start_redis()
        self.forget_redis_keys()
        # Every e2e subnet (spaces and builds) lies in 10.216.0.0/13: one idempotent rule set
        # covers them all. The hub reads what was installed from its data dir.
        self.isolate("10.216.0.0/13")
        # Build steps under a cgroup of this stack's own, whose pids.max caps them.
        parent = subprocess.run(["bash", str(ROOT / "scripts/build-cgroup.sh"), self.build_cgroup],
                                check=True, capture_output=True, text=True).stdout.strip()
        self.settings.setdefault("BUILD_CGROUP_PARENT", parent)
        self.manage("migrate", "--noinput")
        self.start_proxy()
        self.start_web()
        self.start_builds_worker()
        self.start_lifecycle_worker()
        self.start_webhooks_worker()
        self.start_beat()
        wait_http(self.hub_url + "/api/spaces", timeout=60)
        wait_http(f"http://127.0.0.1:{self.proxy_port}/", timeout=30)

    @property
    def build_cgroup(self) -> str:
        return f"demohub-{self.instance}-builds"

    def isolate(self, *subnets: str, egress_allow: str = "") -> None:
        """scripts/isolate.sh as `make up` runs it (root), writing this stack's firewall state."""
        env = {**os.environ, "EGRESS_ALLOW": egress_allow,
               "ISOLATION_STATE_FILE": str(self.data_dir / "isolation.json")}
        subprocess.run(["bash", str(ROOT / "scripts/isolate.sh"), *subnets], check=True, env=env)

    def down(self) -> None:
        for name in [n for n in self.procs if n not in ("redis", "postgres")]:
            self.stop(name)
        self.purge_engine()
        for hierarchy in Path("/sys/fs/cgroup").glob(f"*/{self.build_cgroup}"):
            try:
                hierarchy.rmdir()  # empty once no build runs
            except OSError:
                pass
        if self.pg_port:
            self.stop("postgres", signal.SIGINT)   # fast shutdown; its cluster goes with the data dir
        else:
            subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-q", "-c",
                            f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)'], capture_output=True)
        if self.redis_port:
            self.stop("redis")  # its keys go with it
        else:
            self.forget_redis_keys()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def forget_redis_keys(self) -> None:
        """Delete this installation's Redis keys only (other stacks may share the db)."""
        import redis

        client = redis.Redis(port=self.redis_port or 6379, db=self.redis_db)
        for key in client.scan_iter(f"demohub:{self.instance}:*", count=1000):
            client.delete(key)

    def purge_engine(self) -> None:
        """Remove every container, image and network of this installation (labels only)."""
        import docker

        client = docker.from_env()
        flt = {"label": f"demohub.instance={self.instance}"}
        for c in client.containers.list(all=True, filters=flt):
            c.remove(force=True, v=True)  # with their anonymous volumes (a Dockerfile VOLUME)
        for img in client.images.list(filters=flt):
            for tag in img.tags or [img.id]:
                try:
                    client.images.remove(tag, force=True, noprune=True)
                except docker.errors.APIError:
                    pass
        for net in client.networks.list(filters=flt):
            try:
                net.remove()
            except docker.errors.APIError:
                pass

    # -- clients --------------------------------------------------------------------------
    def api(self, token: str | None = None) -> requests.Session:
        s = requests.Session()
        if token:
            s.headers["Authorization"] = f"Bearer {token}"
        return s

    def new_user(self, username: str | None = None, password: str = "correct-horse-9") -> tuple[str, str]:
        username = username or f"u{uuid.uuid4().hex[:8]}"
        r = requests.post(f"{self.hub_url}/api/users", json={"username": username, "password": password})
        assert r.status_code == 201, r.text
        r = requests.post(f"{self.hub_url}/api/token", json={"username": username, "password": password})
        assert r.status_code == 201, r.text
        return username, r.json()["token"]

    def create_space(self, token: str, name: str, sdk: str, **extra) -> dict:
        r = self.api(token).post(f"{self.hub_url}/api/spaces", json={"name": name, "sdk": sdk, **extra})
        assert r.status_code == 201, r.text
        return r.json()

    def upload(self, token: str, owner: str, name: str, archive: bytes, filename: str = "repo.tar.gz"):
        return self.api(token).post(f"{self.hub_url}/api/spaces/{owner}/{name}/revisions",
                                    files={"archive": (filename, archive)})

    def deploy(self, token: str, owner: str, name: str, sdk: str, archive: bytes, *,
               wanted: set[str] | str | None = "RUNNING", timeout: float = 300, **extra) -> dict:
        """Create the space, upload `archive` and wait for `wanted` (the space as the API shows
        it); with wanted=None, return the upload's 202 body (the queued revision) at once."""
        self.create_space(token, name, sdk, **extra)
        r = self.upload(token, owner, name, archive)
        assert r.status_code == 202, r.text
        if wanted is None:
            return r.json()
        return self.wait_status(token, owner, name, wanted, timeout=timeout)

    def space(self, token: str | None, owner: str, name: str) -> dict:
        r = self.api(token).get(f"{self.hub_url}/api/spaces/{owner}/{name}")
        assert r.status_code == 200, r.text
        return r.json()

    def wait_status(self, token: str | None, owner: str, name: str, wanted: set[str] | str, *,
                    timeout: float = 600, revision: int | None = None) -> dict:
        wanted = {wanted} if isinstance(wanted, str) else wanted
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            s = self.space(token, owner, name)
            if not seen or seen[-1] != s["status"]:
                seen.append(s["status"])
            if s["status"] in wanted and (revision is None or s["running_revision"] == revision
                                          or s["status"] not in {"RUNNING"}):
                return s
            time.sleep(0.5)
        log = self.api(token).get(f"{self.hub_url}/api/spaces/{owner}/{name}/logs/build").text[-3000:]
        raise AssertionError(f"{owner}/{name} never reached {wanted}; went through {seen}; "
                             f"last: {json.dumps(s)[:800]}\nbuild log tail:\n{log}")

    def get_app(self, url: str, path: str = "/", **kwargs) -> requests.Response:
        return requests.get(url.rstrip("/") + path, timeout=kwargs.pop("timeout", 10), **kwargs)


def _subnet(k: int) -> str:
    return f"10.{216 + k // 16}.{(k % 16) * 16}.0/20"


def _free_subnets() -> list[int]:
    """The /20s of 10.216.0.0/13 (numbered 0-127) that no Docker network uses and that no other
    process of this test run may pick: pytest-xdist worker gwI of N takes those numbered I mod N
    (scripts/test.sh runs several), so two stacks of one run never overlap, whatever the
    timing; a network of another run or a leftover is seen on the engine."""
    import docker

    used = []
    try:
        for net in docker.from_env().networks.list():
            for conf in (net.attrs.get("IPAM") or {}).get("Config") or []:
                if conf.get("Subnet", "").count(".") == 3:
                    used.append(ipaddress.ip_network(conf["Subnet"], strict=False))
    except docker.errors.DockerException:
        pass  # the stack's own start reports an engine that does not answer
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    index = int(worker[2:]) % count if worker[2:].isdigit() else 0
    return [k for k in range(128) if k % count == index
            and not any(ipaddress.ip_network(_subnet(k)).overlaps(u) for u in used)]


def new_stack(*, private_redis: bool = False, private_postgres: bool = False) -> Stack:
    instance = "t" + uuid.uuid4().hex[:8]
    # A /20 per stack out of 10.216.0.0/13, none in use and none another worker of this run may
    # take, so parallel or leftover stacks do not overlap. The builds network gets another.
    subnet, builds_subnet = (_subnet(k) for k in random.sample(_free_subnets(), 2))
    return Stack(instance=instance, hub_port=free_port(), proxy_port=free_port(), subnet=subnet,
                 builds_subnet=builds_subnet,
                 data_dir=Path(f"/tmp/demohub-e2e-{instance}"), db_name=f"demohub_e2e_{instance}",
                 redis_db=0 if private_redis else 9, redis_port=free_port() if private_redis else None,
                 pg_port=free_port() if private_postgres else None)
