"""Every setting of the hub, read from the environment (see .env.example for the list).

Defaults let a fresh checkout run against the machine's Postgres and Redis on loopback; a
malformed value stops the hub with ImproperlyConfigured instead of being guessed at.
"""
from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

from hub.sites import same_site, site_of
from spaces.operations import logconfig as operations_logconfig
from runner import egress

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# The env file fills in what the environment leaves unset. DEMOHUB_ENV_FILE names another one
# (scripts/up.sh reads the same variable); /dev/null reads none, which is how tests check the
# settings without depending on what a developer's .env holds.
ENV_FILE = Path(env.str("DEMOHUB_ENV_FILE", default=str(BASE_DIR / ".env")))
environ.Env.read_env(ENV_FILE, overwrite=False)


def env_secret(name: str, default: str) -> str:
    """A secret from NAME, or from the file named by NAME_FILE (Docker secrets)."""
    path = env.str(f"{name}_FILE", default="")
    if path:
        return Path(path).read_text().strip()
    return env.str(name, default=default)


DEBUG = env.bool("DJANGO_DEBUG", default=False)
# The key signs sessions, the space cookie and its tickets (spaces/access/proxy_gate.py): with a
# known key anyone could sign a cookie naming any share link. Without DEBUG the hub refuses
# to start on an empty, short or published key (`make up` generates one into .env).
_DEV_SECRET_KEY = "dev-insecure-change-me"
SECRET_KEY = env_secret("DJANGO_SECRET_KEY", "").strip()
SECRET_KEY_MIN_LENGTH = 32
if not DEBUG and (len(SECRET_KEY) < SECRET_KEY_MIN_LENGTH or SECRET_KEY == _DEV_SECRET_KEY
                  or SECRET_KEY.startswith("django-insecure")):
    raise ImproperlyConfigured(
        f"DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) is empty, shorter than {SECRET_KEY_MIN_LENGTH} "
        "characters or a published default: set a random one (make up writes one into .env), or set "
        "DJANGO_DEBUG=true for local development")
SECRET_KEY = SECRET_KEY or _DEV_SECRET_KEY

# --- URLs and origins (design.md §3) -------------------------------------------------------
HUB_URL = env.str("HUB_URL", default="http://localhost:8000").rstrip("/")
SPACES_DOMAIN = env.str("SPACES_DOMAIN", default="spaces.localhost").strip(".").lower()
SPACES_PORT = env.int("SPACES_PORT", default=8080)
SPACES_SCHEME = env.str("SPACES_SCHEME", default="http")

_hub_host = (urlsplit(HUB_URL).hostname or "").lower()
if not _hub_host:
    raise ImproperlyConfigured(f"HUB_URL={HUB_URL!r} has no host name")
# Spaces must never share an origin or a site with the hub (design.md §3). "localhost" is
# the one exception: browsers treat it as a public suffix, so localhost and x.spaces.localhost
# are different sites (measured in Chromium: a cross-site, third-party iframe).
if _hub_host != "localhost" and (SPACES_DOMAIN == _hub_host or SPACES_DOMAIN.endswith("." + _hub_host)):
    raise ImproperlyConfigured(
        f"SPACES_DOMAIN={SPACES_DOMAIN!r} is equal to or under the hub's host {_hub_host!r}; "
        "spaces must be served from a separate domain"
    )
# Nor the same *site* (registrable domain, hub/sites.py): a space on hub.example.com's site
# (say x.spaces.example.com) could set a cookie for example.com, a `sessionid` the hub would
# take (session fixation). An operator who cannot give spaces their own domain may accept
# that risk knowingly with SPACES_SAME_SITE_AS_HUB=true (README "Security").
SPACES_SAME_SITE_AS_HUB = env.bool("SPACES_SAME_SITE_AS_HUB", default=False)
if not SPACES_SAME_SITE_AS_HUB and same_site(_hub_host, "x." + SPACES_DOMAIN):
    raise ImproperlyConfigured(
        f"SPACES_DOMAIN={SPACES_DOMAIN!r} is on the same site ({site_of(_hub_host)!r}) as the hub's host "
        f"{_hub_host!r}: a space could set cookies for the hub. Serve spaces from a separate registrable "
        "domain (as hf.space is to huggingface.co), or set SPACES_SAME_SITE_AS_HUB=true to accept the risk"
    )

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[_hub_host, "localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[HUB_URL])

# --- Installation identity and files -----------------------------------------------------
DEMOHUB_INSTANCE = env.str("DEMOHUB_INSTANCE", default="main")
if not DEMOHUB_INSTANCE.replace("-", "").isalnum():
    raise ImproperlyConfigured("DEMOHUB_INSTANCE may hold only letters, digits and '-'")
DATA_DIR = Path(env.str("DATA_DIR", default=str(BASE_DIR / "var"))).resolve()
SNAPSHOTS_DIR = DATA_DIR / "snapshots"
REPOS_DIR = Path(env.str("REPOS_DIR", default=str(DATA_DIR / "repos"))).resolve()  # <space id>.git
GIT_PUSH_MAX_BYTES = env.int("GIT_PUSH_MAX_BYTES", default=200 * 2**20)  # receive.maxInputSize
SITES_DIR = DATA_DIR / "sites"
BUILDS_DIR = DATA_DIR / "builds"
PROXY_ROUTES_DIR = Path(env.str("PROXY_ROUTES_DIR", default=str(DATA_DIR / "proxy" / "routes")))
PROXY_SHARED_SECRET = env_secret("PROXY_SHARED_SECRET", "").strip()
# The proxy's callbacks (/internal/proxy/*) are trusted on this key alone, and the views refuse
# every call while it is empty: a hub without one could not serve spaces, so it does not start
# (`make up` generates one into .env). DJANGO_DEBUG lets a developer run the hub without it.
if not PROXY_SHARED_SECRET and not DEBUG:
    raise ImproperlyConfigured(
        "PROXY_SHARED_SECRET (or PROXY_SHARED_SECRET_FILE) is empty: set it to the key the proxy "
        "sends (make up writes one into .env), or set DJANGO_DEBUG=true for local development"
    )
PROXY_MAX_BODY_SIZE = env.str("PROXY_MAX_BODY_SIZE", default="100m")

# Space secrets are stored encrypted with Fernet (spaces/lifecycle/crypto.py). A comma-separated list
# of keys: the first encrypts, every one decrypts, so a key is rotated by putting a new one
# first and running `manage.py secrets_reencrypt` (README "Secrets at rest"). Required unless
# DEBUG (then derived from SECRET_KEY); `make up` generates one into .env.
SECRETS_ENCRYPTION_KEYS = [k.strip() for k in env_secret("SECRETS_ENCRYPTION_KEY", "").split(",") if k.strip()]
if not SECRETS_ENCRYPTION_KEYS and not DEBUG:
    raise ImproperlyConfigured(
        "SECRETS_ENCRYPTION_KEY (or SECRETS_ENCRYPTION_KEY_FILE) is empty: set it to a Fernet key "
        "(make up writes one into .env; python3 -c 'from cryptography.fernet import Fernet; "
        "print(Fernet.generate_key().decode())'), or set DJANGO_DEBUG=true for local development")

# --- Runner (runner/) ----------------------------------------------------------------------
RUNNER_BACKEND = env.str("RUNNER_BACKEND", default="runner.backends.docker.DockerBackend")


def _subnet_setting(name: str, default: str) -> tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """A subnet from the environment, refused at start when unparsable or too small."""
    value = env.str(name, default=default)
    try:
        net = ipaddress.ip_network(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={value!r}: {exc}") from exc
    if net.num_addresses < 16:
        raise ImproperlyConfigured(f"{name} must hold at least 16 addresses")
    return value, net


SPACES_SUBNET, _subnet = _subnet_setting("SPACES_SUBNET", "10.213.0.0/16")
SPACES_NETWORK = env.str("SPACES_NETWORK", default=f"demohub-{DEMOHUB_INSTANCE}-spaces")
# Builds run on a network of their own (README "Network isolation"): a build step never gets an
# address a space's slot may hold, so it cannot receive a stopped space's traffic.
BUILDS_SUBNET, _builds_subnet = _subnet_setting("BUILDS_SUBNET", "10.212.0.0/16")
if _builds_subnet.overlaps(_subnet):
    raise ImproperlyConfigured(f"BUILDS_SUBNET={BUILDS_SUBNET} overlaps SPACES_SUBNET={SPACES_SUBNET}; "
                               "builds must never take an address a space may hold")
BUILDS_NETWORK = env.str("BUILDS_NETWORK", default=f"demohub-{DEMOHUB_INSTANCE}-builds")
# Egress (runner/egress.py, scripts/isolate.sh): private, loopback and link-local destinations
# are refused to spaces and builds unless listed here. The rules are installed by
# scripts/isolate.sh (root); the hub validates the list and reads what the script installed.
EGRESS_ALLOW = env.str("EGRESS_ALLOW", default="")
try:
    EGRESS_ALLOW_ENTRIES = egress.parse_allow(EGRESS_ALLOW)
except egress.EgressConfigError as exc:
    raise ImproperlyConfigured(str(exc)) from exc
ISOLATION_STATE_FILE = env.str("ISOLATION_STATE_FILE", default=str(DATA_DIR / "isolation.json"))
# Without the firewall (no iptables, not root), spaces and builds are refused unless this is set.
ALLOW_UNISOLATED = env.bool("ALLOW_UNISOLATED", default=False)
BASE_IMAGE = env.str("BASE_IMAGE", default="demohub/base:bookworm")
BUILD_CA_BUNDLE = env.str("BUILD_CA_BUNDLE", default="")
RUNNER_PULL_MISSING_BASE = env.bool("RUNNER_PULL_MISSING_BASE", default=False)
# Images a `sdk: docker` Dockerfile may start FROM besides BASE_IMAGE and the SDK images
# (runner/dockerfile_policy.py): `sha256:<id>` or `name@sha256:<digest>`, or names whose image
# carries the label demohub.role=base. Comma-separated.
BUILD_ALLOWED_IMAGES = [e.strip() for e in env.list("BUILD_ALLOWED_IMAGES", default=[]) if e.strip()]
DEFAULT_GRADIO_VERSION = env.str("DEFAULT_GRADIO_VERSION", default="6.31.0")
DEFAULT_STREAMLIT_VERSION = env.str("DEFAULT_STREAMLIT_VERSION", default="1.67.0")
BUILD_TIMEOUT = env.int("BUILD_TIMEOUT", default=1200)  # seconds
BUILD_MEMORY_LIMIT = env.str("BUILD_MEMORY_LIMIT", default="4g")
# CPU of one build step: a hard cap in CPUs (CFS quota) and a weight against spaces (1024 is a
# space's weight; it counts only under contention).
BUILD_CPUS = env.float("BUILD_CPUS", default=1.0)
BUILD_CPU_SHARES = env.int("BUILD_CPU_SHARES", default=512)
if BUILD_CPUS < 0.01 or BUILD_CPU_SHARES < 2:
    raise ImproperlyConfigured("BUILD_CPUS must be at least 0.01 and BUILD_CPU_SHARES at least 2")
# The cgroup every build step runs under, whose pids.max caps the processes of all builds
# together (the legacy builder has no pids limit per step). scripts/build-cgroup.sh (root)
# makes it, and `make up` sets this to the name it prints; empty: no cgroup parent.
BUILD_CGROUP_PARENT = env.str("BUILD_CGROUP_PARENT", default="")
BUILD_LOG_MAX_BYTES = env.int("BUILD_LOG_MAX_BYTES", default=2 * 2**20)
BUILD_CONCURRENCY = env.int("BUILD_CONCURRENCY", default=1)
SPACE_MEMORY_LIMIT = env.str("SPACE_MEMORY_LIMIT", default="2g")
SPACE_CPUS = env.float("SPACE_CPUS", default=1.0)
SPACE_PIDS_LIMIT = env.int("SPACE_PIDS_LIMIT", default=512)
SPACE_TMPFS_SIZE = env.str("SPACE_TMPFS_SIZE", default="512m")
SPACE_STARTUP_TIMEOUT = env.int("SPACE_STARTUP_TIMEOUT", default=600)  # seconds, README may lower/raise
# The longest start a README may ask for (`startup_duration_timeout`; README "Security: one user
# cannot stall the lifecycle"): a start holds a worker of the starts queue until then. Higher is
# refused as a CONFIG_ERROR naming the key and this cap.
SPACE_STARTUP_TIMEOUT_MAX = env.int("SPACE_STARTUP_TIMEOUT_MAX", default=3600)
if not 10 <= SPACE_STARTUP_TIMEOUT <= SPACE_STARTUP_TIMEOUT_MAX <= 24 * 3600:
    raise ImproperlyConfigured(
        f"SPACE_STARTUP_TIMEOUT={SPACE_STARTUP_TIMEOUT} and SPACE_STARTUP_TIMEOUT_MAX={SPACE_STARTUP_TIMEOUT_MAX}: "
        "need 10 <= SPACE_STARTUP_TIMEOUT <= SPACE_STARTUP_TIMEOUT_MAX <= 86400 (seconds)")
# Redeploys and housekeeping (spaces/drain.py, spaces/lifecycle/housekeeping.py; README "Redeploys and
# housekeeping"): the longest the old container of a switch serves its open requests before it
# stops; how often old images and stopped containers are pruned; how long a stopped container
# is kept for a look at why it stopped.
REDEPLOY_DRAIN_TIMEOUT = env.float("REDEPLOY_DRAIN_TIMEOUT", default=30.0)  # seconds
HOUSEKEEPING_INTERVAL = env.float("HOUSEKEEPING_INTERVAL", default=600.0)  # seconds
HOUSEKEEPING_CONTAINER_GRACE = env.int("HOUSEKEEPING_CONTAINER_GRACE", default=600)  # seconds

# Sleep and wake (spaces/lifecycle/sleep.py). A space idle for SPACE_FREEZE_AFTER seconds is frozen
# (processes suspended, memory kept; wakes in ~0.05 s); idle for its own sleep_after it is
# stopped (memory freed; wakes by starting). New spaces get SPACE_SLEEP_AFTER_DEFAULT
# (-1: never); owners may choose -1 or anything from SPACE_SLEEP_AFTER_MIN up.
SPACE_FREEZE_AFTER = env.int("SPACE_FREEZE_AFTER", default=300)
SPACE_SLEEP_AFTER_DEFAULT = env.int("SPACE_SLEEP_AFTER_DEFAULT", default=3600)
SPACE_SLEEP_AFTER_MIN = env.int("SPACE_SLEEP_AFTER_MIN", default=60)
# Frozen spaces together may hold this much memory; past it the longest idle are stopped.
SPACE_FROZEN_MEMORY_LIMIT = env.str("SPACE_FROZEN_MEMORY_LIMIT", default="8g")
# At most this many spaces run at once (0: no cap). At the cap, the longest-idle running space
# (idle for more than SPACE_ACTIVE_WINDOW seconds) is stopped to make room; when every running
# space is active, a visitor waking another one gets 429 with Retry-After.
SPACE_MAX_RUNNING = env.int("SPACE_MAX_RUNNING", default=0)
SPACE_ACTIVE_WINDOW = env.int("SPACE_ACTIVE_WINDOW", default=60)
# An open connection (event stream, websocket) counts as activity for at most this long after
# it opened: a forgotten tab whose connection only carries heartbeats stops counting.
SPACE_OPEN_CONNECTION_CREDIT = env.int("SPACE_OPEN_CONNECTION_CREDIT", default=1800)
# How long the proxy holds an API request to a sleeping space while it wakes (then 503), and a
# browser's (then the "waking up" page, which turns into the app by itself).
SPACE_WAKE_HOLD = env.float("SPACE_WAKE_HOLD", default=30.0)
SPACE_WAKE_BROWSER_HOLD = env.float("SPACE_WAKE_BROWSER_HOLD", default=2.0)
# Requests that wait hold no database connection (spaces/lifecycle/waits.py), and are capped: requests
# held while one space wakes, and per client (a user, or an address when anonymous); past a cap
# the visitor gets the waking answer (503, Retry-After) at once. 0: no cap.
SPACE_WAKE_HOLDS_PER_SPACE = env.int("SPACE_WAKE_HOLDS_PER_SPACE", default=50)
SPACE_WAKE_HOLDS_PER_CLIENT = env.int("SPACE_WAKE_HOLDS_PER_CLIENT", default=10)
SLEEP_CHECK_INTERVAL = env.float("SLEEP_CHECK_INTERVAL", default=5.0)
RUN_LOG_MAX_BYTES = env.int("RUN_LOG_MAX_BYTES", default=2**20)
# Owner analytics (README "Owner analytics"): rollup interval in s (at most 300: client addresses
# stay in clear until the next rollup), days of minute rollups, days of hourly ones and visitor hashes.
ANALYTICS_INTERVAL = env.float("ANALYTICS_INTERVAL", default=60.0)
ANALYTICS_MINUTE_DAYS = env.int("ANALYTICS_MINUTE_DAYS", default=2)
ANALYTICS_HOUR_DAYS = env.int("ANALYTICS_HOUR_DAYS", default=32)
if not (1 <= ANALYTICS_INTERVAL <= 300 and ANALYTICS_MINUTE_DAYS >= 1 and ANALYTICS_HOUR_DAYS >= 31):
    raise ImproperlyConfigured("ANALYTICS_INTERVAL must be 1 to 300 s, ANALYTICS_MINUTE_DAYS at least 1 and "
                               "ANALYTICS_HOUR_DAYS at least 31 (the 30-day view reads them)")
# Live log streams open at once, per user and per space (then 429 with Retry-After). 0: no cap.
LOG_STREAMS_PER_USER = env.int("LOG_STREAMS_PER_USER", default=10)
LOG_STREAMS_PER_SPACE = env.int("LOG_STREAMS_PER_SPACE", default=50)
DOCKER_TIMEOUT = env.int("DOCKER_TIMEOUT", default=60)

# --- Crashes and stuck builds (README: "Crashes and stuck builds"; spaces/lifecycle/health.py, build_leases.py)
# How often the beat compares this installation's containers with the database (seconds).
CRASH_CHECK_INTERVAL = env.float("CRASH_CHECK_INTERVAL", default=3.0)
# CRASH_LIMIT crashes of one revision within CRASH_WINDOW seconds: RUNTIME_ERROR, no more restarts.
CRASH_LIMIT = env.int("CRASH_LIMIT", default=3)
CRASH_WINDOW = env.int("CRASH_WINDOW", default=300)
# Restart back-off after the n-th crash: BASE * 2**(n-1) seconds, at most MAX.
CRASH_BACKOFF_BASE = env.float("CRASH_BACKOFF_BASE", default=1.0)
CRASH_BACKOFF_MAX = env.float("CRASH_BACKOFF_MAX", default=60.0)
# Run-log lines quoted in the error of a space that crashed.
CRASH_LOG_LINES = env.int("CRASH_LOG_LINES", default=20)
# A build holds a lease: its worker renews heartbeat_at every BUILD_HEARTBEAT_INTERVAL seconds;
# a lease not renewed for BUILD_LEASE_SECONDS is expired, checked every BUILD_LEASE_CHECK_INTERVAL.
BUILD_HEARTBEAT_INTERVAL = env.float("BUILD_HEARTBEAT_INTERVAL", default=10.0)
BUILD_LEASE_SECONDS = env.int("BUILD_LEASE_SECONDS", default=45)
BUILD_LEASE_CHECK_INTERVAL = env.float("BUILD_LEASE_CHECK_INTERVAL", default=10.0)
# How often a revision whose worker died is built again before it fails.
BUILD_LEASE_RETRIES = env.int("BUILD_LEASE_RETRIES", default=1)
# A revision queued this long (seconds) has its build task sent again, at most once per period:
# the broker may have lost it (a claim is conditional, so a duplicate does nothing).
BUILD_REQUEUE_AFTER = env.int("BUILD_REQUEUE_AFTER", default=120)
# --- Restarts and reconciliation (README: "Restarts and reconciliation"; spaces/lifecycle/reconcile.py)
# A start holds a claim in Redis that its worker renews; a starting space whose start holds no
# claim for START_LEASE_SECONDS has its start sent again (checked every START_CHECK_INTERVAL),
# at most START_RESEND_LIMIT times within 15 minutes, then it fails with a message saying so.
START_LEASE_SECONDS = env.int("START_LEASE_SECONDS", default=20)
START_CHECK_INTERVAL = env.float("START_CHECK_INTERVAL", default=5.0)
START_RESEND_LIMIT = env.int("START_RESEND_LIMIT", default=2)
# A space DELETING for this long (seconds) has its purge task sent again, once per period.
PURGE_RESEND_AFTER = env.int("PURGE_RESEND_AFTER", default=60)
if START_LEASE_SECONDS < 4:
    raise ImproperlyConfigured("START_LEASE_SECONDS must be at least 4 (the claim is renewed every quarter of it)")
if BUILD_LEASE_SECONDS < 2 * BUILD_HEARTBEAT_INTERVAL:
    raise ImproperlyConfigured("BUILD_LEASE_SECONDS must be at least twice BUILD_HEARTBEAT_INTERVAL, "
                               "or one late heartbeat would expire a live build")
if CRASH_LIMIT < 1 or CRASH_WINDOW < 1:
    raise ImproperlyConfigured("CRASH_LIMIT and CRASH_WINDOW must be at least 1")

# --- Uploads (design.md §6) ----------------------------------------------------------------
UPLOAD_MAX_BYTES = env.int("UPLOAD_MAX_BYTES", default=100 * 2**20)
ARCHIVE_MAX_FILES = env.int("ARCHIVE_MAX_FILES", default=5000)
ARCHIVE_MAX_TOTAL_BYTES = env.int("ARCHIVE_MAX_TOTAL_BYTES", default=500 * 2**20)
ARCHIVE_MAX_FILE_BYTES = env.int("ARCHIVE_MAX_FILE_BYTES", default=200 * 2**20)
ARCHIVE_MAX_RATIO = env.float("ARCHIVE_MAX_RATIO", default=200.0)
# README.md is parsed in the upload request (front matter: at most its first 64 KiB), so it
# has a cap of its own; a larger one is refused with 413 readme_too_large.
README_MAX_BYTES = env.int("README_MAX_BYTES", default=2**20)
# A body larger than this is read only after the caller is known and, on an upload, allowed
# to upload to that space (spaces/access/body_gate.py); a larger Content-Length than the upload cap
# is refused (413) before any of it is read.
BODY_GATE_BYTES = env.int("BODY_GATE_BYTES", default=64 * 2**10)
# Django refuses bodies above this before our view runs; keep it just above the archive cap
# so the archive check, not Django, names the problem.
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 2**20
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 2**20

# --- Accounts ------------------------------------------------------------------------------
SIGNUP_OPEN = env.bool("SIGNUP_OPEN", default=True)
BROWSE_PAGE_SIZE = env.int("BROWSE_PAGE_SIZE", default=24)  # cards per page of browse and profiles (API: ?page_size)
if not 1 <= BROWSE_PAGE_SIZE <= 500:
    raise ImproperlyConfigured(f"BROWSE_PAGE_SIZE={BROWSE_PAGE_SIZE} is not between 1 and 500")
# How long the cookie that lets a hub user or a share-link holder into a private space's host
# lasts (seconds). Access is re-checked against the database far more often than this (see
# runner/proxy.py AUTH_CACHE_SECONDS); this only bounds how often the hub login is re-carried.
SPACE_COOKIE_MAX_AGE = env.int("SPACE_COOKIE_MAX_AGE", default=12 * 3600)


def env_rate(name: str, default: str) -> str:
    """A django-ratelimit rate, "<count>/<period>" with period s, m, h or d, e.g. 5/10m."""
    value = env.str(name, default=default).strip()
    if not re.fullmatch(r"[0-9]+/[0-9]*[smhd]", value):
        raise ImproperlyConfigured(f"{name}={value!r}: use <count>/<period>, e.g. 10/m or 5/10m")
    return value


# Rate limits of the account endpoints (spaces/accounts/ratelimits.py); a page and its API call share
# one counter. Login counts every attempt, failed ones included. The client address is
# REMOTE_ADDR: the hub never reads X-Forwarded-For itself (see README, "Accounts and API tokens").
LOGIN_RATE_PER_IP = env_rate("LOGIN_RATE_PER_IP", "30/m")
LOGIN_RATE_PER_USERNAME = env_rate("LOGIN_RATE_PER_USERNAME", "10/m")   # not from the owner's known addresses
LOGIN_RATE_PER_USERNAME_AND_IP = env_rate("LOGIN_RATE_PER_USERNAME_AND_IP", "5/m")
SIGNUP_RATE_PER_IP = env_rate("SIGNUP_RATE_PER_IP", "5/10m")
TOKEN_CREATE_RATE_PER_USER = env_rate("TOKEN_CREATE_RATE_PER_USER", "20/h")
# Creating spaces, per user (spaces/accounts/ratelimits.py): every create reloads the proxy.
SPACE_CREATE_RATE_PER_USER = env_rate("SPACE_CREATE_RATE_PER_USER", "30/h")


def env_bytes(name: str, default: str) -> int:
    """A size such as 10g, 512m or 1048576 (bytes); 0 means no limit where a quota reads it."""
    value = env.str(name, default=default).strip().lower()
    match = re.fullmatch(r"([0-9]+)([kmgt]?)b?", value)
    if not match:
        raise ImproperlyConfigured(f"{name}={value!r}: use a number of bytes or a size like 512m or 10g")
    return int(match[1]) * 1024 ** " kmgt".index(match[2] or " ")


# Per-user quotas (spaces/lifecycle/quotas.py, README "Quotas"), counted over the spaces a user owns;
# 0 turns one off. Past one: 403 with a code naming it.
QUOTA_SPACES_PER_USER = env.int("QUOTA_SPACES_PER_USER", default=50)
QUOTA_RUNNING_SPACES_PER_USER = env.int("QUOTA_RUNNING_SPACES_PER_USER", default=10)
QUOTA_QUEUED_BUILDS_PER_USER = env.int("QUOTA_QUEUED_BUILDS_PER_USER", default=5)
QUOTA_STORAGE_PER_USER = env_bytes("QUOTA_STORAGE_PER_USER", "10g")
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

# --- Django --------------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "spaces",
]

MIDDLEWARE = ["spaces.operations.middleware.RequestMiddleware",  # request ids, HTTP metrics (spaces/operations)
    "hub.dependencies.DependencyMiddleware",  # then: 503/202 when Postgres or Redis blinks
    "django.middleware.security.SecurityMiddleware",
    "hub.middleware.StaticFilesMiddleware",  # WhiteNoise, async-capable (hub/middleware.py)
    "django.contrib.sessions.middleware.SessionMiddleware",
    "hub.middleware.PageLocaleMiddleware",  # the page language, English for the API (hub/languages.py)
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
# Benchmarks only, never in production: the hub's time and SQL query count on every response.
if env.bool("BENCH_HEADERS", default=False):
    MIDDLEWARE.insert(0, "hub.bench_headers.BenchHeadersMiddleware")

ROOT_URLCONF = "hub.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "spaces.web.context.hub_context",
            ],
        },
    },
]
WSGI_APPLICATION = "hub.wsgi.application"
ASGI_APPLICATION = "hub.asgi.application"

DATABASES = {"default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/demohub")}
DATABASES["default"].setdefault("CONN_MAX_AGE", 0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")


def _celery_redis_url(url: str) -> str:
    # kombu spells a unix-socket Redis "redis+socket://"; redis-py spells it "unix://".
    if url.startswith("unix://"):
        return "redis+socket://" + url[len("unix://"):]
    return url


CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                      "KEY_PREFIX": f"demohub:{DEMOHUB_INSTANCE}"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

from hub.languages import *  # noqa: E402,F401,F403  LANGUAGE_CODE, LANGUAGES, TIME_ZONE, ... (README "Languages")
from hub.node_host import *  # noqa: E402,F401,F403  RUNNER_REGISTRY, ... (docs/scale.md)

STATIC_URL = "/static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
# Serve from the app's static dirs when collectstatic has not run (hub processes on the host,
# tests); the compose image runs collectstatic, so STATIC_ROOT is used there.
WHITENOISE_USE_FINDERS = True

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "spaces.accounts.auth.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_PAGINATION_CLASS": "spaces.web.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "EXCEPTION_HANDLER": "spaces.web.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {"TITLE": "Demohub API", "VERSION": "1.0.0"}

# --- Celery (design.md §1) -----------------------------------------------------------------
CELERY_BROKER_URL = _celery_redis_url(env.str("CELERY_BROKER_URL", default=REDIS_URL))
CELERY_RESULT_BACKEND = _celery_redis_url(env.str("CELERY_RESULT_BACKEND", default=REDIS_URL))
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's consumer, minus a crash of 5.7.0 when Redis restarts under a busy worker.
CELERY_WORKER_CONSUMER = "hub.celery_consumer:Consumer"
CELERY_TASK_DEFAULT_QUEUE = "lifecycle"
CELERY_TASK_ROUTES = {"spaces.tasks.build_revision_task": {"queue": "builds"}}
# Redis redelivers an unacked task after the visibility timeout: keep it above the longest build.
# Starts run up to SPACE_STARTUP_TIMEOUT_MAX (plus the route switch and drain): above that too.
_LONGEST_TASK = max(BUILD_TIMEOUT, SPACE_STARTUP_TIMEOUT_MAX + int(REDEPLOY_DRAIN_TIMEOUT) + 300)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": _LONGEST_TASK + 600,
                                   "global_keyprefix": f"demohub:{DEMOHUB_INSTANCE}:"}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"global_keyprefix": f"demohub:{DEMOHUB_INSTANCE}:"}
CELERY_RESULT_EXPIRES = timedelta(hours=1)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BEAT_SCHEDULE = {
    "reconcile": {"task": "spaces.tasks.reconcile_task", "schedule": env.float("RECONCILE_INTERVAL", default=30.0)},
    "copy-run-logs": {"task": "spaces.tasks.copy_run_logs_task", "schedule": env.float("RUN_LOG_INTERVAL", default=2.0)},
    "share-links-expired": {"task": "spaces.tasks.share_links_expired_task", "schedule": 20.0},
    "sleep-check": {"task": "spaces.tasks.sleep_check_task", "schedule": SLEEP_CHECK_INTERVAL},
    "crash-check": {"task": "spaces.tasks.crash_check_task", "schedule": CRASH_CHECK_INTERVAL},
    "build-leases": {"task": "spaces.tasks.build_leases_sweep_task", "schedule": BUILD_LEASE_CHECK_INTERVAL},
    "lost-starts": {"task": "spaces.tasks.lost_work_sweep_task", "schedule": START_CHECK_INTERVAL},
    "refresh-trending": {"task": "spaces.tasks.refresh_trending_task",
                         "schedule": env.float("TRENDING_INTERVAL", default=300.0)},
    "housekeeping": {"task": "spaces.tasks.housekeeping_task", "schedule": HOUSEKEEPING_INTERVAL},
    "webhook-sweep": {"task": "spaces.tasks.webhook_sweep", "schedule": 60.0},  # lost webhook attempts
    "analytics-rollup": {"task": "spaces.tasks.analytics_rollup_task", "schedule": ANALYTICS_INTERVAL},
}

# --- Operations (README "Operations"): LOG_FORMAT json or console, LOG_LEVEL (operations/logconfig.py)
LOG_FORMAT, LOG_LEVEL, LOGGING = operations_logconfig.from_env(env)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # workers log through LOGGING (JSON lines) too
METRICS_TOKEN = env_secret("METRICS_TOKEN", "").strip()  # bearer token of GET /metrics; empty: 404
# Every hub process counts into this shared folder; a scrape of the web process merges them.
METRICS_MULTIPROC_DIR = env.str("METRICS_MULTIPROC_DIR", default=str(DATA_DIR / "metrics"))
