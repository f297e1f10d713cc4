"""Markdown to safe HTML, for comments and README bodies (anything users write).

Two layers, so one mistake does not become an XSS:

1. markdown-it-py renders CommonMark (plus tables and strikethrough) with raw HTML turned
   off: `<script>` in the text comes out as the text "&lt;script&gt;". Its link validator
   already refuses javascript:, vbscript:, file: and most data: URLs.
2. nh3 (the Rust `ammonia` sanitizer) then keeps only the tags and attributes Markdown
   produces, only http, https and mailto URLs, and sets `rel` on every link.

Decisions:

* Links: http, https, mailto, and relative URLs (`#section`, `/spaces/...`), which cannot
  carry a script. Every link gets rel="nofollow noopener noreferrer ugc": the text is
  user-generated, so it earns no ranking and learns nothing about the page it is on.
* Images: only absolute http(s) images are kept, with referrerpolicy="no-referrer" and lazy
  loading. Relative paths would point at the hub itself (README paths mean repo files,
  which the hub does not serve), and data: URLs are a way around scheme checks; any other
  image is replaced by its alt text before rendering (and the sanitizer drops a `src` that
  is not http(s) as well).
* No `style` attributes at all: table column alignment, which markdown-it writes as
  style="text-align:...", becomes the `align` attribute instead.
* `class` survives only as "language-<word>" on <code> (fenced code blocks), for styling.
"""
from __future__ import annotations

import re

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

# What the "commonmark" preset with tables and strikethrough emits, nothing more.
ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "em", "strong", "s", "code", "pre", "blockquote",
    "ul", "ol", "li", "a", "img", "table", "thead", "tbody", "tr", "th", "td",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "ol": {"start"},
    "code": {"class"},
    "th": {"align"},
    "td": {"align"},
}
URL_SCHEMES = {"http", "https", "mailto"}
LINK_REL = "nofollow noopener noreferrer ugc"

_LANGUAGE_CLASS = re.compile(r"language-[A-Za-z0-9_+#.-]{1,40}")
_ALIGN = re.compile(r"text-align:(left|right|center)")
_HTTP_URL = re.compile(r"https?://", re.IGNORECASE)

_md = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


def _keep_attribute(tag: str, attribute: str, value: str) -> str | None:
    """nh3 attribute filter: the per-tag rules nh3's allow-lists cannot express."""
    if tag == "img" and attribute == "src":
        return value if _HTTP_URL.match(value) else None
    if tag == "code" and attribute == "class":
        return value if _LANGUAGE_CLASS.fullmatch(value) else None
    return value


def _sanitize(html: str) -> str:
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        attribute_filter=_keep_attribute,
        url_schemes=URL_SCHEMES,
        link_rel=LINK_REL,
        set_tag_attribute_values={"img": {"referrerpolicy": "no-referrer", "loading": "lazy"}},
        strip_comments=True,
    )


def render_markdown(text: str) -> str:
    """Safe HTML for `text` (Markdown written by a user); "" for empty text."""
    if not text or not text.strip():
        return ""
    tokens = _md.parse(text)
    for token in tokens:
        # Table alignment without style attributes (which the sanitizer removes).
        if token.type in ("th_open", "td_open") and token.attrs.get("style"):
            match = _ALIGN.fullmatch(str(token.attrs.pop("style")))
            if match:
                token.attrs["align"] = match.group(1)
        if token.type == "inline" and token.children:
            token.children = [_image_or_alt_text(child) for child in token.children]
    return _sanitize(_md.renderer.render(tokens, _md.options, {}))


def _image_or_alt_text(token: Token) -> Token:
    """An image that is not absolute http(s) becomes its alt text (rendered escaped)."""
    if token.type != "image" or _HTTP_URL.match(str(token.attrs.get("src", ""))):
        return token
    return Token("text", "", 0, content=token.content)
