"""Fixtures for end-to-end tests: one real stack per test process (see stack.py)."""
from __future__ import annotations

import os
from pathlib import Path

import docker
import pytest

from .browser import CHROMIUM, CHROMIUM_ARGS, SHOTS
from .stack import new_stack


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own, which reads the mark
def pytest_collection_modifyitems(config, items):
    """Each e2e file's tests in one process when scripts/test.sh runs them in several
    (pytest-xdist, --dist loadgroup): they share the file's module-scoped stacks, spaces and
    compose project. (This hook sees every collected item, unit tests too: only ours are marked.)"""
    here = Path(__file__).parent
    for item in items:
        if item.path.parent == here:
            item.add_marker(pytest.mark.xdist_group(item.path.stem))


@pytest.fixture(scope="session")
def stack():
    # No skipping: without an engine the run fails loudly (scripts/test.sh installs and starts it).
    try:
        docker.from_env().ping()
    except Exception as exc:  # pragma: no cover - the message is the point
        pytest.fail(f"the Docker engine does not answer ({exc}); run `make test`, which starts it")
    s = new_stack()
    try:
        s.up()
        yield s
    finally:
        if os.environ.get("DEMOHUB_KEEP_STACK") != "1":
            s.down()


@pytest.fixture(scope="session")
def alice(stack):
    return stack.new_user()


# Per module, not per session: Playwright's sync API keeps an event loop running in this
# thread while the browser is open, and other tests use asyncio.run (websockets, streams).
@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()
