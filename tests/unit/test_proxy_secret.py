"""The proxy's callback is authenticated by PROXY_SHARED_SECRET, so it must never be empty.

With an empty secret every request to /internal/proxy/fallback was accepted: anyone who can
reach the hub could ask it about any host. Now the view refuses (403) whenever the secret is
empty or does not match, and the hub refuses to start without one unless DJANGO_DEBUG is on.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hub")]
ROOT = Path(__file__).resolve().parents[2]
URL = "/internal/proxy/fallback"


@pytest.mark.parametrize("sent", [None, "", "anything"])
def test_empty_secret_refuses_every_request(settings, olive, make_space, sent):
    settings.PROXY_SHARED_SECRET = ""
    space = make_space(olive, "demo")
    headers = {"X-Demohub-Host": f"{space.label}.{settings.SPACES_DOMAIN}", "X-Demohub-Uri": "/"}
    if sent is not None:
        headers["X-Demohub-Proxy-Key"] = sent
    resp = Client().get(URL, headers=headers)
    assert resp.status_code == 403
    assert resp.json()["code"] == "forbidden"


def test_matching_secret_is_accepted(settings, olive, make_space):
    space = make_space(olive, "demo")
    resp = Client().get(URL, headers={"X-Demohub-Proxy-Key": settings.PROXY_SHARED_SECRET,
                                      "X-Demohub-Host": f"{space.label}.{settings.SPACES_DOMAIN}",
                                      "X-Demohub-Uri": "/", "Accept": "application/json"})
    assert resp.status_code == 503  # a space with no app yet: the proxy's callback answered


# ------------------------------------------------------------------------------ settings
GOOD_DJANGO_KEY = "k" * 50
GOOD_FERNET_KEY = "n0sLcF4r-wBXtVbhtuKJrbTR-Rg_WMDaWvg3ECvWSHk="


def load_settings(**env) -> subprocess.CompletedProcess:
    """Import hub.settings in a fresh interpreter with `env` over a clean environment.

    DEMOHUB_ENV_FILE=/dev/null: what a developer's .env holds (make up writes the secrets
    there) must not decide these tests. The other two secrets are valid unless `env` says.
    """
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("PROXY_SHARED_SECRET", "DJANGO_", "SECRETS_ENCRYPTION_KEY", "DEMOHUB_ENV_FILE"))}
    clean.update({"DEMOHUB_ENV_FILE": "/dev/null", "DJANGO_SECRET_KEY": GOOD_DJANGO_KEY,
                  "SECRETS_ENCRYPTION_KEY": GOOD_FERNET_KEY, "PROXY_SHARED_SECRET": "s3cret"})
    for key in ("PROXY_SHARED_SECRET", "DJANGO_SECRET_KEY", "SECRETS_ENCRYPTION_KEY"):
        if key in env or f"{key}_FILE" in env or env.get("_drop") == key:
            clean.pop(key, None)
    env.pop("_drop", None)
    clean.update(env)
    return subprocess.run([sys.executable, "-c", "import hub.settings as s; print(len(s.PROXY_SHARED_SECRET))"],
                          cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("env", [{"_drop": "PROXY_SHARED_SECRET"}, {"PROXY_SHARED_SECRET": ""},
                                 {"PROXY_SHARED_SECRET": "   "},
                                 {"_drop": "PROXY_SHARED_SECRET", "DJANGO_DEBUG": "false"}])
def test_hub_refuses_to_start_without_a_secret(env):
    done = load_settings(**env)
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr and "PROXY_SHARED_SECRET" in done.stderr


def test_hub_refuses_an_empty_secret_file(tmp_path):
    empty = tmp_path / "secret"
    empty.write_text("\n")
    done = load_settings(PROXY_SHARED_SECRET_FILE=str(empty))
    assert done.returncode != 0 and "PROXY_SHARED_SECRET" in done.stderr


@pytest.mark.parametrize("env", [{"PROXY_SHARED_SECRET": "s3cret"},
                                 {"_drop": "PROXY_SHARED_SECRET", "DJANGO_DEBUG": "true"}])
def test_hub_starts_with_a_secret_or_in_debug(env):
    done = load_settings(**env)
    assert done.returncode == 0, done.stderr


def test_hub_reads_the_secret_from_a_file(tmp_path):
    path = tmp_path / "secret"
    path.write_text("from-a-file\n")
    done = load_settings(PROXY_SHARED_SECRET_FILE=str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(len("from-a-file"))


def test_a_developers_env_file_does_not_decide_the_check(tmp_path):
    """The env file is only read where DEMOHUB_ENV_FILE points (here: one with every secret)."""
    env_file = tmp_path / "env"
    env_file.write_text(f"PROXY_SHARED_SECRET=from-file\nDJANGO_SECRET_KEY={GOOD_DJANGO_KEY}\n")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PROXY_SHARED_SECRET", "DJANGO_"))}
    clean.update({"DEMOHUB_ENV_FILE": str(env_file), "SECRETS_ENCRYPTION_KEY": GOOD_FERNET_KEY})
    done = subprocess.run([sys.executable, "-c", "import hub.settings as s; print(s.PROXY_SHARED_SECRET)"],
                          cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "from-file"
    assert load_settings(_drop="PROXY_SHARED_SECRET").returncode != 0  # /dev/null: no secret


# ------------------------------------------------------------------- DJANGO_SECRET_KEY (finding 9)
@pytest.mark.parametrize("env", [{"_drop": "DJANGO_SECRET_KEY"}, {"DJANGO_SECRET_KEY": ""},
                                 {"DJANGO_SECRET_KEY": "dev-insecure-change-me"},
                                 {"DJANGO_SECRET_KEY": "short-key"},
                                 {"DJANGO_SECRET_KEY": "django-insecure-" + "x" * 40}])
def test_hub_refuses_to_start_without_a_real_secret_key(env):
    done = load_settings(**env)
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr and "DJANGO_SECRET_KEY" in done.stderr


def test_hub_reads_the_secret_key_from_a_file_and_allows_debug(tmp_path):
    path = tmp_path / "key"
    path.write_text(GOOD_DJANGO_KEY + "\n")
    assert load_settings(DJANGO_SECRET_KEY_FILE=str(path)).returncode == 0
    assert load_settings(_drop="DJANGO_SECRET_KEY", DJANGO_DEBUG="true").returncode == 0


# ------------------------------------------------------ SECRETS_ENCRYPTION_KEY (finding 12)
def test_hub_refuses_to_start_without_a_secrets_key():
    done = load_settings(_drop="SECRETS_ENCRYPTION_KEY")
    assert done.returncode != 0 and "SECRETS_ENCRYPTION_KEY" in done.stderr
    assert load_settings(_drop="SECRETS_ENCRYPTION_KEY", DJANGO_DEBUG="true").returncode == 0
