"""The Files and History faces (pages and API) over a real bare repository: listing, viewing,
downloading, bad revisions and paths as 404, and who may read and edit (design.md §6)."""
from __future__ import annotations

import pytest
from django.test import Client

from spaces.access.models import Collaborator

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hub")]


@pytest.fixture
def owner_browser(repo_space):
    client = Client()
    client.force_login(repo_space.owner)
    return client


def test_tree_page_lists_the_files_and_links_them(repo_space, owner_browser):
    page = owner_browser.get("/spaces/olive/demo/tree/main")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'href="/spaces/olive/demo/blob/main/index.html"' in html
    assert 'href="/spaces/olive/demo/tree/main/src"' in html
    assert 'id="files-tab" aria-current="page"' in html
    sub = owner_browser.get("/spaces/olive/demo/tree/main/src").content.decode()
    assert "/blob/main/src/app.py" in sub and "/tree/main/src/lib" not in sub


def test_revisions_with_slashes_split_on_the_raw_path(repo_space, owner_browser):
    first = repo_space.commits[0]
    for url in ("/spaces/olive/demo/tree/refs%2Fpr%2F1/src", "/spaces/olive/demo/tree/refs/pr/1/src",
                f"/spaces/olive/demo/tree/{first}/src"):
        page = owner_browser.get(url)
        assert page.status_code == 200, url
        assert "src/lib" in page.content.decode(), url
    blob = owner_browser.get("/spaces/olive/demo/blob/refs%2Fpr%2F1/index.html")
    assert blob.status_code == 200 and "one" in blob.content.decode()


def test_blob_page_highlights_text_and_describes_binary(repo_space, owner_browser):
    page = owner_browser.get("/spaces/olive/demo/blob/main/src/app.py").content.decode()
    assert 'class="hl"' in page and "Python" in page and 'id="edit-file"' in page
    assert '<span class="nb">print</span>' in page
    binary = owner_browser.get("/spaces/olive/demo/blob/main/logo.png").content.decode()
    assert 'id="file-binary"' in binary and "16 bytes" in binary and 'id="edit-file"' not in binary
    # Content is escaped, never markup of the hub's page.
    html = owner_browser.get("/spaces/olive/demo/blob/main/index.html").content.decode()
    assert "<h1>two</h1>" not in html and "&lt;" in html


def test_raw_download_is_an_attachment_never_a_page(repo_space, owner_browser):
    resp = owner_browser.get("/spaces/olive/demo/resolve/main/index.html")
    assert resp.status_code == 200 and resp.content == b"<h1>two</h1>\n"
    assert resp["Content-Type"] == "application/octet-stream"
    assert resp["Content-Disposition"] == 'attachment; filename="index.html"'
    assert resp["X-Content-Type-Options"] == "nosniff" and "sandbox" in resp["Content-Security-Policy"]
    png = owner_browser.get("/spaces/olive/demo/resolve/main/logo.png")
    assert png["Content-Type"] == "image/png" and png["Content-Disposition"].startswith("attachment")


@pytest.mark.parametrize("url", [
    "/spaces/olive/demo/tree/nope", "/spaces/olive/demo/tree/main/nope", "/spaces/olive/demo/blob/main/src",
    "/spaces/olive/demo/blob/main/../../etc/passwd", "/spaces/olive/demo/blob/main/%2e%2e/x",
    "/spaces/olive/demo/resolve/main/nope.txt", "/spaces/olive/demo/resolve/--output=x/index.html",
    "/spaces/olive/demo/commits/nope", "/spaces/olive/demo/commit/main", "/spaces/olive/demo/commit/0000000",
    "/spaces/olive/demo/blob/main~1/index.html", "/spaces/olive/demo/edit/main/logo-nope.png",
])
def test_missing_or_malformed_answers_404(repo_space, owner_browser, url):
    assert owner_browser.get(url).status_code == 404


def test_a_file_under_tree_redirects_to_its_page(repo_space, owner_browser):
    resp = owner_browser.get("/spaces/olive/demo/tree/main/index.html")
    assert resp.status_code == 302 and resp["Location"] == "/spaces/olive/demo/blob/main/index.html"


def test_commit_page_shows_the_highlighted_diff(repo_space, owner_browser):
    second = repo_space.commits[1]
    page = owner_browser.get(f"/spaces/olive/demo/commit/{second}").content.decode()
    assert '<span class="gi">+&lt;h1&gt;two&lt;/h1&gt;' in page and second in page


def test_api_tree_file_raw_and_commits(repo_space, api):
    client = api(repo_space.owner)
    tree = client.get("/api/spaces/olive/demo/tree").json()
    assert tree["commit"] == repo_space.commits[1]
    assert [e["path"] for e in tree["entries"]] == ["src", "index.html", "logo.png", "README.md"]
    deep = client.get("/api/spaces/olive/demo/tree/src", {"rev": "refs/pr/1", "recursive": "1"}).json()
    assert [e["path"] for e in deep["entries"]] == ["src/app.py", "src/lib", "src/lib/util.py"]
    text = client.get("/api/spaces/olive/demo/files/index.html", {"rev": repo_space.commits[0]}).json()
    assert (text["content"], text["binary"], text["size"]) == ("<h1>one</h1>\n", False, 13)
    binary = client.get("/api/spaces/olive/demo/files/logo.png").json()
    assert binary["binary"] and binary["content"] is None
    raw = client.get(binary["raw_url"])
    assert raw.status_code == 200 and raw["Content-Disposition"].startswith("attachment")
    assert client.get("/api/spaces/olive/demo/files/nope").json()["code"] == "not_found"
    assert client.get("/api/spaces/olive/demo/tree", {"rev": "--help"}).status_code == 404


def test_share_link_holders_and_strangers_cannot_read_private_files(repo_space, make_user, api):
    from spaces.access import services as access

    repo_space.visibility = "private"
    repo_space.save(update_fields=["visibility"])
    viewer = make_user("vera")
    Collaborator.objects.create(space=repo_space, user=viewer, role=Collaborator.Role.VIEWER)
    assert api(viewer).get("/api/spaces/olive/demo/tree").status_code == 200
    assert api(make_user("stan")).get("/api/spaces/olive/demo/tree").status_code == 404
    assert api().get("/api/spaces/olive/demo/raw/index.html").status_code == 404
    _, token = access.share_link_create(space=repo_space, by=repo_space.owner, note="x")
    holder = Client()
    assert holder.get(f"/s/{token.rsplit('/', 1)[-1]}").status_code == 302
    assert holder.get("/spaces/olive/demo").status_code == 200
    assert holder.get("/spaces/olive/demo/tree/main").status_code == 403
    viewer_browser = Client()
    viewer_browser.force_login(viewer)
    assert viewer_browser.get("/spaces/olive/demo/blob/main/index.html").status_code == 200
    assert viewer_browser.get("/spaces/olive/demo/edit/main/index.html").status_code == 403


def test_a_space_without_files_yet_has_empty_tabs(make_user, make_space):
    owner = make_user("nina")
    make_space(owner, "fresh")
    browser = Client()
    browser.force_login(owner)
    files = browser.get("/spaces/nina/fresh/tree/main")
    assert files.status_code == 200 and "This directory is empty." in files.content.decode()
    history = browser.get("/spaces/nina/fresh/commits/main")
    assert history.status_code == 200 and "No commits yet." in history.content.decode()
    assert browser.get("/spaces/nina/fresh/tree/other").status_code == 404
