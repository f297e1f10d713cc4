"""Files and diffs as HTML for the Files and History pages, highlighted by Pygments.

Everything shown is untrusted repository content: Pygments escapes it, and nothing of it is
ever served as HTML on its own (raw downloads are attachments, pages_files.py). Large files
and diffs are shown plain (escaped) beyond HIGHLIGHT_MAX_BYTES, and not at all beyond
SHOW_MAX_BYTES (the page links the download instead).
"""
from __future__ import annotations

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import DiffLexer, TextLexer, get_lexer_for_filename
from pygments.util import ClassNotFound

HIGHLIGHT_MAX_BYTES = 256 * 1024  # highlighting is CPU in the web process: bounded
SHOW_MAX_BYTES = 1024 * 1024  # a bigger text file is offered as a download only


def _lexer(name: str):
    try:
        return get_lexer_for_filename(name, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return TextLexer(stripnl=False, ensurenl=False)


def file_html(name: str, text: str) -> SafeString:
    """A text file as a table of numbered lines (anchors #L<n>), highlighted if small enough."""
    if len(text.encode()) > HIGHLIGHT_MAX_BYTES:
        lexer = TextLexer(stripnl=False, ensurenl=False)
    else:
        lexer = _lexer(name)
    formatter = HtmlFormatter(cssclass="hl", linenos="table", lineanchors="L", anchorlinenos=True, wrapcode=True)
    return mark_safe(highlight(text, lexer, formatter))  # Pygments escapes every token


def diff_html(text: str) -> SafeString:
    """A unified diff, highlighted (added, removed, hunk headers) if small enough."""
    if len(text.encode()) > HIGHLIGHT_MAX_BYTES:
        return mark_safe(f'<div class="hl diff"><pre>{escape(text)}</pre></div>')  # escaped above
    formatter = HtmlFormatter(cssclass="hl diff", wrapcode=True)
    return mark_safe(highlight(text, DiffLexer(stripnl=False, ensurenl=False), formatter))


def language(name: str) -> str:
    """The language Pygments sees in a file name ("" for plain text)."""
    lexer = _lexer(name)
    return "" if isinstance(lexer, TextLexer) else lexer.name
