"""The hub refuses to start with an apps domain on its own site (issue 15, finding 11): a space
there could set a cookie for the registrable domain, a `sessionid` the hub would take."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hub.sites import same_site, site_of

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("host, site", [
    ("hub.example.com", "example.com"),
    ("x.spaces.example.com", "example.com"),
    ("x.spaces.example.co.uk", "example.co.uk"),
    ("x.hf.space", "x.hf.space"),               # hf.space is a public suffix (private section)
    ("alice.github.io", "alice.github.io"),
    ("localhost", "localhost"),
    ("x.spaces.localhost", "spaces.localhost"),  # unknown TLD: the default rule "*"
    ("127.0.0.1", "127.0.0.1"),
    ("[::1]", "::1"),
    ("Hub.Example.COM.", "example.com"),
])
def test_site_of(host, site):
    assert site_of(host) == site


def test_same_site():
    assert same_site("hub.example.com", "x.apps.example.com")
    assert not same_site("huggingface.co", "x.hf.space")
    assert not same_site("localhost", "x.spaces.localhost")


def _start(**env) -> subprocess.CompletedProcess:
    """Load the settings in a fresh interpreter, as the hub does at start."""
    full = {**os.environ, "DJANGO_SETTINGS_MODULE": "hub.settings", **env}
    return subprocess.run([sys.executable, "-c", "import django; django.setup(); print('started')"],
                          cwd=ROOT, env=full, capture_output=True, text=True, timeout=60)


def test_hub_refuses_an_apps_domain_on_its_own_site():
    run = _start(HUB_URL="https://hub.example.com", SPACES_DOMAIN="spaces.example.com")
    assert run.returncode != 0
    assert "ImproperlyConfigured" in run.stderr and "same site ('example.com')" in run.stderr
    assert "SPACES_SAME_SITE_AS_HUB" in run.stderr                 # the message names the way out


def test_the_operator_may_accept_the_same_site_knowingly():
    run = _start(HUB_URL="https://hub.example.com", SPACES_DOMAIN="spaces.example.com",
                 SPACES_SAME_SITE_AS_HUB="true")
    assert run.returncode == 0 and "started" in run.stdout, run.stderr


@pytest.mark.parametrize("hub, domain", [("https://huggingface.co", "hf.space"),
                                         ("http://localhost:8000", "spaces.localhost"),
                                         ("https://hub.example.com", "example-spaces.net")])
def test_separate_sites_start(hub, domain):
    run = _start(HUB_URL=hub, SPACES_DOMAIN=domain)
    assert run.returncode == 0 and "started" in run.stdout, run.stderr
