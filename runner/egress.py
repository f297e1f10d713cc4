"""Egress policy of spaces and builds (README "Network isolation"), shared by the hub and
scripts/isolate.sh.

Standard library only, so the host script can run it with the system python3 before the hub
exists:

    python3 runner/egress.py allow "$EGRESS_ALLOW"   # one "CIDR PORT|-" line per entry, or exit 2
    python3 runner/egress.py deny                     # the ranges refused by default

The firewall itself is installed by scripts/isolate.sh (root). It records what it installed in
a small JSON file (ISOLATION_STATE_FILE); `isolation_state` reads that file, and the runner
refuses builds and starts while it does not cover this installation's subnets, unless the
operator set ALLOW_UNISOLATED (the hub cannot look at iptables itself: it does not run as root).
"""
from __future__ import annotations

import ipaddress
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

# Destinations a space or a build may not open connections to unless EGRESS_ALLOW lists them:
# this host and its neighbours (private and CGNAT ranges, where Postgres, Redis, other nodes'
# engines and published ports live), loopback, and link-local (cloud metadata, 169.254.169.254).
DENY_V4 = ("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
           "172.16.0.0/12", "192.168.0.0/16")
# IPv6: the project's networks have none, so scripts/isolate.sh refuses every IPv6 packet from
# their bridges (ULA, link-local and loopback included) instead of listing ranges.

_BRACKETED = re.compile(r"^\[(?P<net>[^\]]+)\](?::(?P<port>[^:]*))?$")


class EgressConfigError(ValueError):
    """An EGRESS_ALLOW entry is malformed; the message names the entry and what is wrong."""


@dataclass(frozen=True)
class AllowEntry:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    port: int | None = None  # None: every port (TCP and UDP)

    def __str__(self) -> str:
        net = str(self.network)
        if self.port is None:
            return net
        return f"[{net}]:{self.port}" if self.network.version == 6 else f"{net}:{self.port}"


def _entry(text: str) -> AllowEntry:
    where = f"EGRESS_ALLOW entry {text!r}"
    bracketed = _BRACKETED.match(text)
    if bracketed:  # [v6 address or CIDR] or [..]:port
        net_text, port_text = bracketed["net"], bracketed["port"]
    elif text.count(":") == 1:  # v4 with a port
        net_text, port_text = text.split(":")
    elif ":" in text:  # a bare v6 address or CIDR (its colons are not a port)
        net_text, port_text = text, None
    else:
        net_text, port_text = text, None
    try:
        network = ipaddress.ip_network(net_text, strict=True)
    except ValueError as exc:
        if "host bits set" in str(exc):
            hint = ipaddress.ip_network(net_text, strict=False)
            raise EgressConfigError(f"{where}: {net_text} has host bits set; did you mean {hint}?") from None
        raise EgressConfigError(f"{where}: {net_text!r} is not an IP address or CIDR range "
                                "(write CIDR[:port], e.g. 10.1.2.3:8000, 10.1.0.0/16 or [fd00::/8]:443)") from None
    port = None
    if port_text is not None:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise EgressConfigError(f"{where}: the port {port_text!r} is not a number from 1 to 65535")
        port = int(port_text)
    return AllowEntry(network, port)


def parse_allow(value: str) -> list[AllowEntry]:
    """EGRESS_ALLOW: entries `CIDR[:port]` separated by commas or spaces ("" allows nothing
    extra). A v6 entry with a port is bracketed: `[fd00::/8]:443`. Raises EgressConfigError."""
    entries: list[AllowEntry] = []
    for text in re.split(r"[,\s]+", value.strip()):
        if text and (entry := _entry(text)) not in entries:
            entries.append(entry)
    return entries


# ----------------------------------------------------------------------------- isolation state
@dataclass(frozen=True)
class Isolation:
    isolated: bool
    reason: str = ""  # why not, for the operator's log and the space's error (no addresses)


def isolation_state(state_file: str | Path, subnets: list[str]) -> Isolation:
    """Whether scripts/isolate.sh installed the firewall for every subnet in `subnets`, as the
    file it writes says. A missing or unreadable file means "not installed"."""
    path = Path(state_file)
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return Isolation(False, "scripts/isolate.sh has not run for this installation")
    except (OSError, ValueError):
        return Isolation(False, "the firewall state file is unreadable")
    if not isinstance(state, dict) or not state.get("isolated"):
        reason = state.get("reason") if isinstance(state, dict) else ""
        return Isolation(False, str(reason or "scripts/isolate.sh could not install the firewall"))
    try:
        covered = [ipaddress.ip_network(s) for s in state.get("subnets", [])]
    except (TypeError, ValueError):
        return Isolation(False, "the firewall state file is unreadable")
    for subnet in subnets:
        net = ipaddress.ip_network(subnet)
        if not any(net.version == c.version and net.subnet_of(c) for c in covered):
            return Isolation(False, "the firewall does not cover this installation's networks "
                                    "(run scripts/isolate.sh with SPACES_SUBNET and BUILDS_SUBNET)")
    return Isolation(True)


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "allow":
        try:
            for entry in parse_allow(argv[1]):
                print(entry.network, entry.port or "-")
        except EgressConfigError as exc:
            print(exc, file=sys.stderr)
            return 2
        return 0
    if argv == ["deny"]:
        print("\n".join(DENY_V4))
        return 0
    print("usage: egress.py allow VALUE | deny", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
