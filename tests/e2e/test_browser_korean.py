"""The Korean interface in Chromium: a browser that asks for Korean (Accept-Language from its
locale) signs up, makes a token and a space, comments and shares, all in Korean; an English
browser switches with the footer's language selector and stays Korean from page to page.
No build: a space without an app is enough for these pages. Screenshots (Korean text and emoji,
with the Noto CJK and emoji fonts scripts/host-tools.sh installs) go to artifacts/screenshots/.
"""
from __future__ import annotations

import re
import uuid

import pytest

from tests.i18n_names import NAMES

from .browser import PASSWORD, shot

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

# Names, formats and this test's own data: the same on a Korean page.


def english_left(page, data: set[str]) -> list[str]:
    """ASCII words in the visible text of the page (code and log blocks aside) that are neither
    names nor the test's data."""
    text = page.evaluate("""() => {
        const skip = new Set(["SCRIPT", "STYLE", "CODE", "PRE", "TEXTAREA"]);
        const out = [];
        const walk = (n) => {
            if (n.nodeType === Node.TEXT_NODE) { out.push(n.textContent); return; }
            if (n.nodeType !== Node.ELEMENT_NODE || skip.has(n.tagName)) return;
            if (n.getClientRects().length === 0 && n.tagName !== "OPTION") return;   // not shown
            for (const a of ["placeholder", "aria-label", "title"]) if (n.getAttribute(a)) out.push(n.getAttribute(a));
            n.childNodes.forEach(walk);
        };
        walk(document.body);
        return out.join("\\n");
    }""")
    names = {name.lower() for name in NAMES}
    words = [w for w in re.findall(r"[A-Za-z0-9_']+", text) if re.search("[A-Za-z]{2}", w)]
    return [w for w in words if w.lower() not in names and w.lower() not in data]


def korean_context(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ko-KR")
    ctx.set_default_timeout(30_000)
    return ctx, ctx.new_page()


def test_korean_pages_and_the_language_selector(stack, browser):
    from playwright.sync_api import expect

    hub = stack.hub_url
    user = f"k{uuid.uuid4().hex[:7]}"
    data = {user, "gallery", "laptop", "dh"}
    ctx, page = korean_context(browser)
    try:
        page.goto(f"{hub}/accounts/signup/")
        expect(page.locator("html")).to_have_attribute("lang", "ko")
        expect(page.locator("h1")).to_have_text("계정 만들기")
        assert not english_left(page, data), english_left(page, data)
        shot(page, "60-ko-signup.png")
        page.get_by_label("사용자 이름").fill(user)
        page.get_by_label("비밀번호").fill(PASSWORD)
        page.get_by_role("button", name="회원가입").click()
        page.wait_for_url(f"{hub}/")

        # A token, on the Korean tokens page.
        page.goto(f"{hub}/settings/tokens")
        page.get_by_label("이름").fill("laptop")
        page.get_by_label("쓰기").check()
        page.get_by_role("button", name="토큰 만들기").click()
        expect(page.locator("#new-token h2")).to_contain_text("새 토큰")
        assert not english_left(page, data), english_left(page, data)
        shot(page, "61-ko-tokens.png")

        # A space from the Korean form, with an emoji in its README-less card and a comment.
        page.goto(f"{hub}/new")
        page.get_by_label("이름").fill("gallery")
        page.get_by_label("제목").fill("고양이 갤러리 🐱")
        page.get_by_role("button", name="스페이스 만들기").click()
        page.wait_for_url(f"{hub}/spaces/{user}/gallery")
        expect(page.locator("#space-status")).to_have_text("앱 없음")
        expect(page.locator("#status-line")).to_contain_text("아직 앱이 없습니다")
        page.locator("#new-comment-body").fill("안녕하세요 👋 **반가워요**")
        page.get_by_role("button", name="댓글 달기").click()
        expect(page.locator(".comment-body").first).to_contain_text("반가워요")
        expect(page.locator(".comment-head time").first).to_contain_text(re.compile("지금|전"))
        assert not english_left(page, data), english_left(page, data)
        shot(page, "62-ko-space-comments.png", full_page=True)

        page.goto(f"{hub}/spaces/{user}/gallery/settings")
        expect(page.locator("h2").first).to_have_text("새 리비전 업로드")
        assert not english_left(page, data), english_left(page, data)
        shot(page, "63-ko-settings.png", full_page=True)

        page.goto(f"{hub}/spaces/{user}/gallery/access")
        page.get_by_role("button", name="공유 링크 만들기").click()
        expect(page.locator("#new-share-link")).to_contain_text("한 번만")
        assert not english_left(page, data), english_left(page, data)
        shot(page, "64-ko-sharing.png", full_page=True)

        # This user's spaces only: other tests on the session stack leave public spaces whose
        # titles (user data, not the page's words) are English.
        page.goto(f"{hub}/?search={user}")
        expect(page.locator(".space-card .emoji").first).to_be_visible()
        assert not english_left(page, data), english_left(page, data)
        shot(page, "65-ko-browse.png")
    finally:
        ctx.close()

    # An English browser switches with the selector; the cookie holds across pages.
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    ctx.set_default_timeout(30_000)
    page = ctx.new_page()
    try:
        page.goto(f"{hub}/accounts/login/")
        expect(page.locator("h1")).to_have_text("Log in")
        with page.expect_navigation():
            page.locator("#language-select").select_option("ko")
        expect(page.locator("html")).to_have_attribute("lang", "ko")
        expect(page.locator("h1")).to_have_text("로그인")
        page.get_by_label("사용자 이름").fill(user)
        page.get_by_label("비밀번호").fill(PASSWORD)
        page.get_by_role("button", name="로그인").click()
        page.goto(f"{hub}/spaces/{user}/gallery")
        expect(page.locator("#comments h2")).to_contain_text("댓글")
        assert not english_left(page, data), english_left(page, data)
        shot(page, "66-ko-after-switch.png")
        with page.expect_navigation():
            page.locator("#language-select").select_option("en")
        expect(page.locator("#comments h2")).to_contain_text("Comments")
    finally:
        ctx.close()
