"""What the embed dialog and the badge show: reads only."""
from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import Http404

from spaces.access.selectors import space_get_for_viewer
from spaces.records.models import Space


def embeddable_space(*, owner: str, name: str) -> Space:
    """The space as the world sees it: a private space answers exactly as a missing one (404),
    whoever asks, because a badge or an embed is for everybody."""
    space, _ = space_get_for_viewer(owner=owner, name=name, user=AnonymousUser())
    if space.is_private:  # a share link of the session is not asked for: belt and braces
        raise Http404
    return space


def embedding_allowed(space: Space) -> bool:
    """Whether other sites may frame the app: README `disable_embedding` of the revision that
    serves (or the latest, before one serves), as runner/proxy.py is told."""
    rev = space.running_revision or space.latest_revision
    return not (rev.metadata.get("disable_embedding", False) if rev is not None else False)


@dataclass(frozen=True)
class EmbedSnippets:
    allowed: bool
    iframe: str
    badge_url: str
    badge_markdown: str
    badge_html: str


def embed_snippets(space: Space) -> EmbedSnippets:
    page = f"{settings.HUB_URL}/spaces/{space.owner.username}/{space.name}"
    badge = f"{page}/badge.svg"
    title = space.title or space.name
    return EmbedSnippets(
        allowed=embedding_allowed(space),
        iframe=(f'<iframe src="{space.url}" title="{_attr(title)}" frameborder="0" width="850" height="450" '
                f'allow="clipboard-write"></iframe>'),
        badge_url=badge,
        badge_markdown=f"[![{space.full_name}]({badge})]({page})",
        badge_html=f'<a href="{page}"><img src="{badge}" alt="{_attr(space.full_name)}"></a>',
    )


def _attr(text: str) -> str:
    return (text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;"))
