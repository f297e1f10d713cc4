"""Which *site* a host name belongs to, as browsers decide it (the registrable domain).

Cookies are scoped by site, not by origin: a page on one host may set a cookie for its whole
registrable domain (``Domain=example.com``), which every other host of that domain then
receives. A space served on the same site as the hub could so plant a hub ``sessionid`` or
``csrftoken`` (session fixation); settings.py refuses that configuration at start.

The public suffix list is tldextract's bundled snapshot, read offline (no fetch at start, no
cache directory). Private-section entries count, as in browsers (``x.github.io`` and
``y.github.io`` are different sites). A name the list does not know gets the list's default
rule ``*``: its last label is the public suffix (``localhost`` is one, so ``localhost`` and
``x.spaces.localhost`` are different sites, as Chromium treats them).
"""
from __future__ import annotations

import functools
import ipaddress


@functools.lru_cache(maxsize=1)
def _extractor():
    import tldextract  # imported here: settings.py needs it once, at start

    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, include_psl_private_domains=True)


def site_of(host: str) -> str:
    """The registrable domain of `host` (lowercase), or the host itself where it has none (an
    IP address, or a name that is itself a public suffix)."""
    host = host.strip().lower().rstrip(".").strip("[]")
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    parts = _extractor()(host)
    if parts.suffix:
        return parts.top_domain_under_public_suffix or host
    labels = host.split(".")          # unknown TLD: the default rule "*"
    return ".".join(labels[-2:])


def same_site(host_a: str, host_b: str) -> bool:
    return site_of(host_a) == site_of(host_b)
