"""The social and sharing pages in Chromium: comments (Markdown, a reply, the author's edit, the
owner's hide), likes, search and a profile, the owner's Sharing tab (collaborator, share link
shown once, revoke) and the API tokens page. A static space keeps it quick; screenshots go to
artifacts/screenshots/."""
from __future__ import annotations

import re
import uuid

import pytest

from .browser import PASSWORD, new_page, shot
from .stack import make_archive

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def sign_up(page, hub: str, username: str) -> None:
    page.goto(f"{hub}/accounts/signup/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(f"{hub}/")


def test_comments_likes_sharing_and_tokens(stack, browser):
    from playwright.sync_api import expect

    hub = stack.hub_url
    owner, visitor = f"o{uuid.uuid4().hex[:7]}", f"v{uuid.uuid4().hex[:7]}"
    octx, opage = new_page(browser)
    vctx, vpage = new_page(browser)
    try:
        sign_up(opage, hub, owner)
        sign_up(vpage, hub, visitor)
        # The owner's space, made through the API with a token from the tokens page.
        opage.goto(f"{hub}/settings/tokens")
        opage.get_by_label("Name").fill("laptop")
        opage.get_by_label("write").check()
        opage.get_by_role("button", name="Create token").click()
        token = opage.locator("#new-token input.token-value").input_value()
        assert token.startswith("dh_"), token
        shot(opage, "40-token-shown-once.png")
        opage.reload()
        expect(opage.locator("body")).not_to_contain_text(token)            # shown once
        r = stack.api(token).post(f"{hub}/api/spaces", json={"name": "gallery", "sdk": "static"})
        assert r.status_code == 201, r.text
        stack.upload(token, owner, "gallery", make_archive({
            "README.md": "---\ntitle: Cat gallery\nsdk: static\ntags: [cats, images]\n"
                         "short_description: Pictures of cats\n---\n# Cats\nA **static** gallery.\n",
            "index.html": "<h1>Cats</h1>"}))
        stack.wait_status(token, owner, "gallery", "RUNNING", timeout=60)

        # The visitor finds it by search, opens it, likes it and comments in Markdown.
        vpage.goto(f"{hub}/?search=cats")
        expect(vpage.get_by_text("Cat gallery")).to_be_visible()
        vpage.get_by_text("Cat gallery").first.click()
        vpage.wait_for_url(f"{hub}/spaces/{owner}/gallery")
        vpage.locator(".like-button").click()
        expect(vpage.locator(".like-button .like-count")).to_have_text("1")
        vpage.locator("#new-comment-body").fill("Love it! **Bold** and a [link](https://example.org) "
                                                "<script>alert(1)</script>")
        vpage.get_by_role("button", name="Comment", exact=True).click()
        comment = vpage.locator("#comments article.comment").first
        expect(comment.locator("strong")).to_have_text("Bold")
        expect(comment.locator("a[href='https://example.org']")).to_have_attribute("rel", re.compile("nofollow"))
        assert vpage.locator("#comments script").count() == 0
        expect(vpage.locator("#comment-count")).to_have_text("1")
        shot(vpage, "41-comment-and-like.png", full_page=True)

        # The owner replies, then hides the visitor's comment.
        opage.goto(f"{hub}/spaces/{owner}/gallery")
        opage.locator("#comments details.reply-form summary").first.click()
        opage.locator("#comments details.reply-form textarea").first.fill("Thanks!")
        opage.locator("#comments details.reply-form").first.get_by_role("button", name="Reply").click()
        expect(opage.locator("#comments .replies")).to_contain_text("Thanks!")
        shot(opage, "42-reply.png", full_page=True)

        # Sharing: make it private, add the visitor as a viewer, create and revoke a link.
        opage.goto(f"{hub}/spaces/{owner}/gallery/access")
        opage.locator("#toggle-visibility").click()
        opage.goto(f"{hub}/spaces/{owner}/gallery/access")
        expect(opage.locator("#visibility")).to_have_text("private")
        opage.locator("#add-collaborator").get_by_label("Username").fill(visitor)
        opage.locator("#add-collaborator").get_by_role("button").click()
        expect(opage.locator("#collaborators")).to_contain_text(visitor)
        opage.locator("#create-share-link").get_by_label(re.compile("Note")).fill("for the reviewer")
        opage.locator("#create-share-link").get_by_role("button").click()
        link = opage.locator("#new-share-link input").input_value()
        assert "/s/dhs_" in link
        shot(opage, "43-sharing-tab.png", full_page=True)
        opage.locator("#share-links").get_by_role("button", name="Revoke").click()
        expect(opage.locator("#share-links")).to_contain_text("revoked")

        # The viewer still sees the private space; an anonymous visitor with the revoked link does not.
        vpage.goto(f"{hub}/spaces/{owner}/gallery")
        expect(vpage.locator(".badge.private")).to_be_visible()
        actx, apage = new_page(browser)
        try:
            apage.goto(link)
            expect(apage.locator("#share-invalid")).to_be_visible()
            apage.goto(f"{hub}/spaces/{owner}/gallery")
            expect(apage.locator("#not-found")).to_be_visible()
            shot(apage, "44-private-for-anonymous.png")
        finally:
            actx.close()

        # The owner's profile lists the space for the viewer.
        vpage.goto(f"{hub}/users/{owner}")
        expect(vpage.get_by_text("Cat gallery")).to_be_visible()
        shot(vpage, "45-profile.png")
    finally:
        octx.close()
        vctx.close()
