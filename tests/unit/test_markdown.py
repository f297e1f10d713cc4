"""spaces.records.markdown.render_markdown: user Markdown (comments, READMEs) as safe HTML.

Every XSS payload is checked on the parsed output: which elements exist, which attributes
they carry and where their URLs lead; text that merely *reads* like a payload (escaped) is
harmless and allowed.
"""
from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from spaces.records.markdown import render_markdown

# What Markdown may produce; anything else in the output is a sanitizer failure.
MARKDOWN_TAGS = {"p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "em", "strong", "s", "code", "pre",
                 "blockquote", "ul", "ol", "li", "a", "img", "table", "thead", "tbody", "tr", "th", "td"}
REL = "nofollow noopener noreferrer ugc"


class _Elements(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, {name: value or "" for name, value in attrs}))

    handle_startendtag = handle_starttag


def elements(html: str) -> list[tuple[str, dict[str, str]]]:
    parser = _Elements()
    parser.feed(html)
    parser.close()
    return parser.found


def scheme(url: str) -> str:
    # What a browser would see: it strips leading/trailing spaces and ASCII tabs/newlines.
    return urlsplit("".join(url.split()).strip()).scheme.lower()


def assert_safe(html: str) -> list[tuple[str, dict[str, str]]]:
    found = elements(html)
    for tag, attrs in found:
        assert tag in MARKDOWN_TAGS, (tag, html)
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name, html)
            assert name not in ("style", "srcdoc", "formaction", "background"), (tag, name, html)
            assert scheme(value) not in ("javascript", "vbscript", "data", "file"), (tag, name, html)
        if "href" in attrs:
            assert scheme(attrs["href"]) in ("", "http", "https", "mailto"), html
        if tag == "img":
            assert scheme(attrs.get("src", "")) in ("http", "https"), html
            assert attrs.get("referrerpolicy") == "no-referrer", html
        if tag == "a":
            assert attrs.get("rel") == REL, html
    return found


def tags(html: str) -> list[str]:
    return [tag for tag, _ in elements(html)]


# ------------------------------------------------------------------------------ payloads
@pytest.mark.parametrize("payload", [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=https://evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    '<img src="https://ok.example/a.png" onerror="alert(1)">',
    "<iframe src=https://evil.example></iframe>",
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    "<style>body{display:none}</style>",
    '<p style="position:fixed;top:0">cover</p>',
    '<a href="https://ok.example" style="color:red" onclick="alert(1)">x</a>',
    "<a href=javascript:alert(1)>x</a>",
    "<div onclick=alert(1)>\n\n**inside a raw HTML block**\n\n</div>",
    "<details open ontoggle=alert(1)>",
    "<object data=javascript:alert(1)></object><embed src=javascript:alert(1)>",
    "<form action=https://evil.example><input name=x><button>go</button></form>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<!-- <img src=x onerror=alert(1)> -->",
    "<base href=https://evil.example/>",
    "<meta http-equiv=refresh content='0;url=https://evil.example'>",
])
def test_raw_html_is_never_markup(payload):
    html = render_markdown(payload)
    found = assert_safe(html)
    # Raw HTML is off: nothing of it becomes an element; it is shown as escaped text.
    assert all(tag in ("p", "strong") for tag, _ in found), html
    assert "<script" not in html.lower() and "<iframe" not in html.lower() and "<svg" not in html.lower()
    assert "&lt;" in html


@pytest.mark.parametrize("payload", [
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](  javascript:alert(1))",
    "[x](<javascript:alert(1)>)",
    "[x](java\tscript:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](&#x6A;&#x61;&#x76;&#x61;script:alert(1))",
    "[x](&#0000106avascript:alert(1))",
    "[x](javascript&colon;alert(1))",
    "[x](javascript&#58;alert(1))",
    "[x](%6Aavascript:alert(1))",
    "[x](\\javascript:alert(1))",
    "[x](vbscript:msgbox(1))",
    "[x](VBScript:msgbox(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](DATA:text/html,<script>alert(1)</script>)",
    "[x](file:///etc/passwd)",
    "[x][ref]\n\n[ref]: javascript:alert(1)",
    "[x][ref]\n\n[ref]: <javascript:alert(1)> 'title'",
    "<javascript:alert(1)>",
    "<JAVASCRIPT:alert(1)>",
    "<vbscript:msgbox(1)>",
    "<data:text/html,<script>alert(1)</script>>",
    "[![img](https://ok.example/a.png)](javascript:alert(1))",
])
def test_dangerous_link_schemes_never_reach_an_href(payload):
    html = render_markdown(payload)
    found = assert_safe(html)
    for tag, attrs in found:
        if "href" in attrs:
            # What is left is at most a relative link whose path holds the (encoded) text,
            # e.g. "%6Aavascript:alert(1)": no scheme, so the browser resolves it on the hub.
            assert scheme(attrs["href"]) in ("", "http", "https", "mailto"), html
            assert not attrs["href"].lower().startswith(("javascript", "vbscript", "data")), html


@pytest.mark.parametrize("payload", [
    "![x](javascript:alert(1))",
    "![x](data:image/png;base64,iVBORw0KGgo=)",
    "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "![x](/api/spaces/olive/demo/pause)",
    "![x](relative.png)",
    "![x](//evil.example/track.gif)",
    "![x](vbscript:x)",
])
def test_images_other_than_absolute_http_are_dropped_for_their_alt_text(payload):
    html = render_markdown(payload)
    assert_safe(html)
    assert "img" not in tags(html), html
    assert "x" in html  # the alt text (or the whole text, when it is no image at all) stays


@pytest.mark.parametrize("payload", [
    '[a](https://ok.example "t" onmouseover="alert(1)")',
    '[a](https://ok.example "t\\" onmouseover=\\"alert(1)")',
    "[a](https://ok.example 'x\" onmouseover=alert(1) y')",
    '[a](https://ok.example (t" onfocus="alert(1)" autofocus="))',
    '![a" onerror="alert(1)](https://ok.example/i.png "t\\" onerror=\\"alert(1)")',
    '[a][r]\n\n[r]: https://ok.example "x\\" onclick=\\"alert(1)"',
])
def test_title_and_alt_cannot_break_out_into_attributes(payload):
    html = render_markdown(payload)
    found = assert_safe(html)
    for _, attrs in found:
        assert set(attrs) <= {"href", "title", "rel", "src", "alt", "loading", "referrerpolicy"}, html


def test_every_link_gets_rel_nofollow_and_only_that():
    html = render_markdown('[a](https://ok.example/x) <https://ok.example/auto> <me@ok.example> [b](#top) '
                           '[c](/spaces/olive/demo)')
    links = [attrs for tag, attrs in assert_safe(html) if tag == "a"]
    assert [a["href"] for a in links] == ["https://ok.example/x", "https://ok.example/auto",
                                          "mailto:me@ok.example", "#top", "/spaces/olive/demo"]
    assert all(a["rel"] == REL for a in links)
    assert all("target" not in a for a in links)


def test_unknown_scheme_link_keeps_its_text_but_loses_the_href():
    html = render_markdown("[ftp](ftp://ok.example/file)")
    assert_safe(html)
    assert elements(html) == [("p", {}), ("a", {"rel": REL})]
    assert ">ftp</a>" in html


def test_code_block_info_string_cannot_inject_a_class_or_attribute():
    html = render_markdown('```"><script>alert(1)</script>\nx\n```\n\n```flash error" onclick="x\ny\n```')
    found = assert_safe(html)
    for tag, attrs in found:
        if tag == "code" and "class" in attrs:
            assert attrs["class"].startswith("language-") and " " not in attrs["class"], html


def test_empty_input_renders_nothing():
    assert render_markdown("") == ""
    assert render_markdown("   \n\t ") == ""


# ------------------------------------------------------------------------------ ordinary Markdown
def test_ordinary_markdown_still_renders():
    text = "\n".join([
        "# Title", "", "Some *emphasis*, **strong**, ~~struck~~ and `inline code`.", "",
        "- one", "- two", "", "3. three", "4. four", "",
        "> quoted", "", "```python", "print('<b>hi</b>')", "```", "",
        "[a link](https://example.com/page?q=1&x=2)", "", "---", "",
        "![logo](https://example.com/logo.png \"Logo\")",
    ])
    html = render_markdown(text)
    assert_safe(html)
    assert "<h1>Title</h1>" in html
    assert "<em>emphasis</em>" in html and "<strong>strong</strong>" in html and "<s>struck</s>" in html
    assert "<code>inline code</code>" in html
    assert "<ul>\n<li>one</li>\n<li>two</li>\n</ul>" in html
    assert '<ol start="3">' in html
    assert "<blockquote>" in html
    # Code is shown, escaped, with its language class.
    assert '<pre><code class="language-python">print(\'&lt;b&gt;hi&lt;/b&gt;\')\n</code></pre>' in html
    assert f'<a href="https://example.com/page?q=1&amp;x=2" rel="{REL}">a link</a>' in html
    assert "<hr>" in html
    img = [attrs for tag, attrs in elements(html) if tag == "img"]
    assert img == [{"src": "https://example.com/logo.png", "alt": "logo", "title": "Logo", "loading": "lazy",
                    "referrerpolicy": "no-referrer"}]


def test_tables_keep_alignment_without_style():
    html = render_markdown("| left | mid | right |\n|:--|:-:|--:|\n| a | b | c |")
    found = assert_safe(html)
    assert [tag for tag, _ in found][:3] == ["table", "thead", "tr"]
    assert [attrs.get("align") for tag, attrs in found if tag == "td"] == ["left", "center", "right"]
    assert "style" not in html
