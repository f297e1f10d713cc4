"""Issue 9, item 4: schemathesis fuzzes every operation of the OpenAPI schema (/api/schema) on
the real stack, as the owner of a space with data in every corner (a running app, variables,
secrets, a comment, a collaborator, a share link), so the operations under
/api/spaces/{owner}/{name}/... are reached with a real space rather than answered 404. The
one check: no server error (5xx other than a 503 with Retry-After). Bounded by --max-time.

Not fuzzed: deleting the space and deleting tokens (either would end the run's data or its
credential early; both are tested directly in tests/unit).
"""
from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from .churn import tiny_repo
from .stack import ARTIFACTS

pytestmark = pytest.mark.e2e

MAX_SECONDS = 75


def test_fuzzing_the_schema_finds_no_server_error(stack, tmp_path):
    owner, token = stack.new_user()
    friend, _ = stack.new_user()
    stack.deploy(token, owner, "fz", "docker", tiny_repo())
    api = stack.api(token)
    base = f"{stack.hub_url}/api/spaces/{owner}/fz"
    comment_id = None
    for method, url, body in (
        ("put", f"{base}/variables/MODEL", {"value": "tiny"}),
        ("put", f"{base}/secrets/API_KEY", {"value": "s3cret"}),
        ("post", f"{base}/comments", {"body": "first!"}),
        ("post", f"{base}/collaborators", {"username": friend, "role": "viewer"}),
        ("post", f"{base}/share-links", {"note": "for the fuzzer"}),
        ("post", f"{base}/like", None),
    ):
        r = getattr(api, method)(url, json=body)
        assert r.status_code in (200, 201, 204), (url, r.status_code, r.text)
        if url.endswith("/comments"):
            comment_id = r.json()["id"]
    config = tmp_path / "schemathesis.toml"
    config.write_text(f'[parameters]\n"path.owner" = "{owner}"\n"path.name" = "fz"\n'
                      f'"path.username" = "{friend}"\n"path.key" = "MODEL"\n"path.comment_id" = {comment_id}\n')
    report = ARTIFACTS / "schemathesis" / f"junit-{stack.instance}.xml"
    report.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
           f"{stack.hub_url}/api/schema",
           "--checks", "not_a_server_error", "--max-examples", "5", "--max-time", str(MAX_SECONDS),
           "--seed", "9", "--no-shrink", "--request-timeout", "20", "--workers", "2",
           "--header", f"Authorization: Bearer {token}",
           "--exclude-operation-id", "spaces_destroy", "--exclude-operation-id", "tokens_destroy",
           "--report", "junit", "--report-junit-path", str(report)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=MAX_SECONDS + 120)
    out = proc.stdout + proc.stderr
    print(out[-4000:])
    cases = ET.parse(report).getroot().iter("testcase")
    names = [c.get("name") for c in cases]
    # The space's own operations were reached, with the seeded space.
    assert sum("/api/spaces/{owner}/{name}" in (n or "") for n in names) >= 20, names
    assert any("logs/{kind}" in (n or "") for n in names), names
    assert proc.returncode == 0, out[-6000:]
