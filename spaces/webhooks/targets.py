"""Where a webhook may point, and the one request that delivers to it.

A webhook URL is an outgoing request the hub makes on a user's behalf, so it is checked like
one (issue 14): http or https, a host, no credentials in the URL. The host is resolved once
per attempt; every address it resolves to must be a public unicast address, unless it lies in
one of the operator's WEBHOOK_ALLOW_CIDRS (loopback, private, link-local, CGNAT, multicast,
reserved and unspecified addresses are refused otherwise). The request then connects to that
very address (no second lookup a rebinding DNS server could answer differently), with the
name in the Host header and, for https, in SNI and the certificate check. Redirects are never
followed; the whole attempt is cut off after WEBHOOK_TIMEOUT seconds.
"""
from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from spaces.webhooks import conf

MAX_URL_LENGTH = 2000
USER_AGENT = "Demohub-Webhooks/1"
# At most this much of a receiver's answer is read (and dropped): enough to end the exchange.
MAX_ANSWER_BYTES = 64 * 1024


class TargetRefused(ValueError):
    """A URL or address this hub does not send webhooks to; the message says why."""

    def __init__(self, message: str, code: str = "webhook_target_refused"):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str          # the name as written (lowercase), or the literal address
    port: int
    path: str          # path and query, as sent in the request line

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


def parse_url(url: str) -> Target:
    """The URL's parts, or TargetRefused naming what is wrong with it."""
    if not isinstance(url, str) or not url.strip():
        raise TargetRefused("The webhook URL is empty.", "invalid_url")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefused(f"The webhook URL is longer than {MAX_URL_LENGTH} characters.", "invalid_url")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise TargetRefused("The webhook URL contains whitespace or control characters.", "invalid_url")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise TargetRefused("The webhook URL must start with http:// or https://.", "invalid_url")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("The webhook URL may not contain a user name or password; use the secret "
                            "to authenticate deliveries.", "invalid_url")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise TargetRefused("The webhook URL has an invalid port.", "invalid_url") from None
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise TargetRefused("The webhook URL has no host.", "invalid_url")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, host, port, path)


def allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(cidr, strict=False) for cidr in conf.setting("WEBHOOK_ALLOW_CIDRS")]


def address_refusal(address: str) -> str | None:
    """Why the hub will not connect to `address` ("<address>, a private address: ..."), or None."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in net for net in allowed_networks() if net.version == ip.version):
        return None
    if ip.is_loopback:
        kind = "a loopback"
    elif ip.is_link_local:
        kind = "a link-local"
    elif ip.is_multicast:
        kind = "a multicast"
    elif ip.is_unspecified:
        kind = "an unspecified"
    elif ip.is_private:
        kind = "a private"
    elif not ip.is_global:
        kind = "a reserved or shared (not public)"
    else:
        return None
    return (f"{address}, {kind} address: this hub sends webhooks only to public addresses "
            f"(the operator may allow others with WEBHOOK_ALLOW_CIDRS)")


def resolve(target: Target) -> str:
    """The one address to connect to: the first the name resolves to, once every address it
    resolves to passed address_refusal (a name that also points inside is refused whole)."""
    try:
        literal = ipaddress.ip_address(target.host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise TargetRefused(f"The host {target.host} does not resolve: {exc}.", "unresolvable") from None
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
    for address in addresses:
        why = address_refusal(address)
        if why:
            where = "address is" if literal is not None else f"host {target.host} resolves to"
            raise TargetRefused(f"The webhook {where} {why}.", "webhook_address_refused")
    return addresses[0]


def check_url(url: str) -> Target:
    """Registration time: the URL's form, and its address where the host is a literal one or
    resolves now. A name that does not resolve yet is accepted; each attempt resolves again."""
    target = parse_url(url)
    try:
        resolve(target)
    except TargetRefused as exc:
        if exc.code != "unresolvable":
            raise
    return target


@dataclass(frozen=True)
class Answer:
    status: int | None
    duration_ms: int
    address: str
    error: str = ""


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, address: str, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: Target, address: str, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float | None = None,
         address: str | None = None) -> Answer:
    """POST `body` to `url`, connecting to `address` (default: resolve() now). Never raises
    for the receiver's or the network's failures: they come back in Answer.error."""
    timeout = float(conf.setting("WEBHOOK_TIMEOUT") if timeout is None else timeout)
    started = time.monotonic()
    target = parse_url(url)
    if address is None:
        address = resolve(target)      # TargetRefused propagates: the caller records it
    elif why := address_refusal(address):
        raise TargetRefused(f"The webhook address is {why}.", "webhook_address_refused")
    cls = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    conn = cls(target, address, timeout)
    # One deadline for the whole attempt: a receiver that trickles its answer byte by byte
    # would otherwise reset the socket timeout on every read.
    timer = threading.Timer(timeout, _cut, args=(conn,))
    timer.daemon = True
    timer.start()
    try:
        conn.putrequest("POST", target.path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", target.host_header)
        for name, value in {**headers, "User-Agent": USER_AGENT, "Content-Length": str(len(body))}.items():
            conn.putheader(name, value)
        conn.endheaders(body)
        response = conn.getresponse()
        response.read(MAX_ANSWER_BYTES)
        status = response.status
        error = "" if 200 <= status < 300 else _status_error(response)
        return Answer(status, _ms(started), address, error)
    except (OSError, http.client.HTTPException) as exc:
        late = time.monotonic() - started >= timeout
        error = f"no answer within {timeout:g} s" if late else f"{type(exc).__name__}: {exc}"
        return Answer(None, _ms(started), address, error[:500])
    finally:
        timer.cancel()
        conn.close()


def _status_error(response: http.client.HTTPResponse) -> str:
    if 300 <= response.status < 400:
        return f"answered {response.status} (a redirect to {response.getheader('Location', '?')[:200]}; " \
               "webhooks never follow redirects)"
    return f"answered {response.status} {response.reason}"[:500]


def _cut(conn: http.client.HTTPConnection) -> None:
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
