"""Unit-test settings: the real Postgres and Redis, eager Celery and the fake runner backend.

End-to-end tests do not use these: they start real hub processes with hub.settings.
"""
import os
import tempfile

os.environ.setdefault("DEMOHUB_INSTANCE", "unit")
# Log lines for people reading test output (production: JSON, spaces/operations/logconfig.py).
os.environ.setdefault("LOG_FORMAT", "console")
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="demohub-unit-"))
# pytest-xdist workers (gw0, gw1, ...; scripts/test.sh runs several) inherit the controller's
# environment: each gets a data dir of its own below it (metrics files, snapshots, routes), and
# a Redis db of its own below (run logs and claims are keyed by row id, which every worker's
# test database hands out alike).
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if WORKER:
    os.environ["DATA_DIR"] = os.path.join(os.environ["DATA_DIR"], WORKER)
    os.makedirs(os.environ["DATA_DIR"], exist_ok=True)
# hub.settings refuses to start without the proxy's key.
os.environ.setdefault("PROXY_SHARED_SECRET", "unit-proxy-key")
# ... nor without a real Django key and a key for secrets at rest (spaces/lifecycle/crypto.py).
os.environ.setdefault("DJANGO_SECRET_KEY", "unit-secret-key-" + "0123456789abcdef" * 3)
os.environ.setdefault("SECRETS_ENCRYPTION_KEY", "n0sLcF4r-wBXtVbhtuKJrbTR-Rg_WMDaWvg3ECvWSHk=")

from hub.settings import *  # noqa: E402,F401,F403

RUNNER_BACKEND = "runner.backends.fake.FakeBackend"
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
PROXY_SHARED_SECRET = "unit-proxy-key"
REDIS_URL = os.environ.get("UNIT_REDIS_URL", "redis://127.0.0.1:6379/8")
if WORKER:
    _base, _, _db = REDIS_URL.rpartition("/")
    REDIS_URL = f"{_base}/{(int(_db or 0) + int(WORKER.removeprefix('gw'))) % 16}"
# One key space per pytest-xdist worker (gw0, gw1, ...; scripts/test.sh runs several): cache keys
# named by row id (an ended grant, a share sweep) would otherwise meet another worker's rows,
# whose test database hands out the same ids.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                      "KEY_PREFIX": f"demohub:unit:{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"}}
# Many tests sign the same few names in (olive, eddie, ...) within a minute of each other, and
# the per-name login count lives in the cache across tests: at the default 10 a minute a test
# could meet another's count. The tests of that limit set their own rate (a key of its own).
LOGIN_RATE_PER_USERNAME = "1000/m"
