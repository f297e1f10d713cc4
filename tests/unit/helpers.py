"""Assertions and small helpers shared by the unit tests."""
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


def fresh(space):
    """The space as stored now, with its revisions."""
    from spaces.records.models import Space

    return Space.objects.select_related("running_revision", "latest_revision").get(pk=space.pk)


def gradio_files(repo, port: int, marker: str = "1") -> dict:
    """A gradio repo whose app listens on `port` (a loopback app_server stands in for it)."""
    return dict(repo.gradio, **{"README.md": repo.readme(sdk="gradio", app_port=port),
                                "app.py": f"print({marker})\n"})
