"""Every setting of the hub, read from the environment (see .env.example for the list).

Defaults let a fresh checkout run against the machine's Postgres and Redis on loopback; a
malformed value stops the hub with ImproperlyConfigured instead of being guessed at.
"""
from __future__ import annotations

import ipaddress
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def env_secret(name: str, default: str) -> str:
    """A secret from NAME, or from the file named by NAME_FILE (Docker secrets)."""
    path = env.str(f"{name}_FILE", default="")
    if path:
        return Path(path).read_text().strip()
    return env.str(name, default=default)


SECRET_KEY = env_secret("DJANGO_SECRET_KEY", "dev-insecure-change-me")
DEBUG = env.bool("DJANGO_DEBUG", default=False)

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

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[_hub_host, "localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[HUB_URL])

# --- Installation identity and files -----------------------------------------------------
DEMOHUB_INSTANCE = env.str("DEMOHUB_INSTANCE", default="main")
if not DEMOHUB_INSTANCE.replace("-", "").isalnum():
    raise ImproperlyConfigured("DEMOHUB_INSTANCE may hold only letters, digits and '-'")
DATA_DIR = Path(env.str("DATA_DIR", default=str(BASE_DIR / "var"))).resolve()
SNAPSHOTS_DIR = DATA_DIR / "snapshots"
SITES_DIR = DATA_DIR / "sites"
BUILDS_DIR = DATA_DIR / "builds"
PROXY_ROUTES_DIR = Path(env.str("PROXY_ROUTES_DIR", default=str(DATA_DIR / "proxy" / "routes")))
PROXY_SHARED_SECRET = env_secret("PROXY_SHARED_SECRET", "")
PROXY_MAX_BODY_SIZE = env.str("PROXY_MAX_BODY_SIZE", default="100m")

# --- Runner (runner/) ----------------------------------------------------------------------
RUNNER_BACKEND = env.str("RUNNER_BACKEND", default="runner.backends.docker.DockerBackend")
SPACES_SUBNET = env.str("SPACES_SUBNET", default="10.213.0.0/16")
try:
    _subnet = ipaddress.ip_network(SPACES_SUBNET)
except ValueError as exc:
    raise ImproperlyConfigured(f"SPACES_SUBNET={SPACES_SUBNET!r}: {exc}") from exc
if _subnet.num_addresses < 16:
    raise ImproperlyConfigured("SPACES_SUBNET must hold at least 16 addresses")
SPACES_NETWORK = env.str("SPACES_NETWORK", default=f"demohub-{DEMOHUB_INSTANCE}-spaces")
BASE_IMAGE = env.str("BASE_IMAGE", default="demohub/base:bookworm")
BUILD_CA_BUNDLE = env.str("BUILD_CA_BUNDLE", default="")
RUNNER_PULL_MISSING_BASE = env.bool("RUNNER_PULL_MISSING_BASE", default=False)
DEFAULT_GRADIO_VERSION = env.str("DEFAULT_GRADIO_VERSION", default="6.31.0")
DEFAULT_STREAMLIT_VERSION = env.str("DEFAULT_STREAMLIT_VERSION", default="1.67.0")
BUILD_TIMEOUT = env.int("BUILD_TIMEOUT", default=1200)  # seconds
BUILD_MEMORY_LIMIT = env.str("BUILD_MEMORY_LIMIT", default="4g")
BUILD_LOG_MAX_BYTES = env.int("BUILD_LOG_MAX_BYTES", default=2 * 2**20)
BUILD_CONCURRENCY = env.int("BUILD_CONCURRENCY", default=1)
SPACE_MEMORY_LIMIT = env.str("SPACE_MEMORY_LIMIT", default="2g")
SPACE_CPUS = env.float("SPACE_CPUS", default=1.0)
SPACE_PIDS_LIMIT = env.int("SPACE_PIDS_LIMIT", default=512)
SPACE_TMPFS_SIZE = env.str("SPACE_TMPFS_SIZE", default="512m")
SPACE_STARTUP_TIMEOUT = env.int("SPACE_STARTUP_TIMEOUT", default=600)  # seconds, README may lower/raise
RUN_LOG_MAX_BYTES = env.int("RUN_LOG_MAX_BYTES", default=2**20)
DOCKER_TIMEOUT = env.int("DOCKER_TIMEOUT", default=60)

# --- Uploads (design.md §6) ----------------------------------------------------------------
UPLOAD_MAX_BYTES = env.int("UPLOAD_MAX_BYTES", default=100 * 2**20)
ARCHIVE_MAX_FILES = env.int("ARCHIVE_MAX_FILES", default=5000)
ARCHIVE_MAX_TOTAL_BYTES = env.int("ARCHIVE_MAX_TOTAL_BYTES", default=500 * 2**20)
ARCHIVE_MAX_FILE_BYTES = env.int("ARCHIVE_MAX_FILE_BYTES", default=200 * 2**20)
ARCHIVE_MAX_RATIO = env.float("ARCHIVE_MAX_RATIO", default=200.0)
# Django refuses bodies above this before our view runs; keep it just above the archive cap
# so the archive check, not Django, names the problem.
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 2**20
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 2**20

# --- Accounts ------------------------------------------------------------------------------
SIGNUP_OPEN = env.bool("SIGNUP_OPEN", default=True)
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
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "spaces",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

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
                "spaces.context.hub_context",
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

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

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
        "spaces.auth.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_PAGINATION_CLASS": "spaces.api_pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "EXCEPTION_HANDLER": "spaces.api_errors.exception_handler",
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
CELERY_TASK_DEFAULT_QUEUE = "lifecycle"
CELERY_TASK_ROUTES = {"spaces.tasks.build_revision_task": {"queue": "builds"}}
# Redis redelivers an unacked task after the visibility timeout: keep it above the longest build.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": BUILD_TIMEOUT + 600,
                                   "global_keyprefix": f"demohub:{DEMOHUB_INSTANCE}:"}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"global_keyprefix": f"demohub:{DEMOHUB_INSTANCE}:"}
CELERY_RESULT_EXPIRES = timedelta(hours=1)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BEAT_SCHEDULE = {
    "reconcile": {"task": "spaces.tasks.reconcile_task", "schedule": env.float("RECONCILE_INTERVAL", default=30.0)},
    "copy-run-logs": {"task": "spaces.tasks.copy_run_logs_task", "schedule": env.float("RUN_LOG_INTERVAL", default=2.0)},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
