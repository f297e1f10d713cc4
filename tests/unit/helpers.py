"""Assertions shared by the API tests."""
from __future__ import annotations


def assert_error(resp, status: int, code: str | None = None) -> dict:
    """The response is `status` with the API's error body {"detail": sentence, "code": word}."""
    assert resp.status_code == status, (resp.status_code, resp.content)
    body = resp.json()
    assert isinstance(body.get("detail"), str) and body["detail"], body
    assert isinstance(body.get("code"), str) and body["code"] and " " not in body["code"], body
    if code is not None:
        assert body["code"] == code, body
    return body
