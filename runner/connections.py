"""Open TCP connections to an address, read from the kernel (/proc/net/tcp and tcp6).

Used to drain a space's old container after a blue/green switch: the proxy reaches spaces
from the network namespace the lifecycle worker shares with it (one machine: compose runs
every hub process and the proxy with the host's network, tests run them on the host), so
the connections from here to the old slot's address are the proxy's requests still in
flight there. Plain Python, no Django.
"""
from __future__ import annotations

import ipaddress
import socket
import struct
import subprocess
from pathlib import Path

# Kernel TCP states (include/net/tcp_states.h) of a connection that may still carry a
# request: established, or being opened.
_IN_USE = {"01", "02"}  # ESTABLISHED, SYN_SENT
_TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))


def _address(hex_addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address as /proc/net/tcp prints it: 32-bit words in host byte order, in hex."""
    words = [int(hex_addr[i:i + 8], 16) for i in range(0, len(hex_addr), 8)]
    packed = b"".join(struct.pack("=I", w) for w in words)
    if len(packed) == 4:
        return ipaddress.IPv4Address(socket.inet_ntop(socket.AF_INET, packed))
    address = ipaddress.IPv6Address(packed)
    return address.ipv4_mapped or address


def open_connections(*, tables=_TABLES) -> list[tuple[str, str]]:
    """Every TCP connection from this network namespace that is open or opening, as
    (peer "ip:port", an id that stays the same for the connection's life)."""
    found = []
    for table in tables:
        try:
            lines = table.read_text().splitlines()[1:]
        except FileNotFoundError:  # no IPv6 in this kernel
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] not in _IN_USE:
                continue
            remote, _, remote_port = fields[2].partition(":")
            peer = f"{_address(remote)}:{int(remote_port, 16)}"
            found.append((peer, f"{fields[1]}>{fields[2]}#{fields[9]}"))   # local>remote#inode
    return found


def connections_to(address: str, port: int, *, tables=_TABLES) -> int:
    """How many TCP connections from this network namespace to address:port are open or opening."""
    wanted = f"{ipaddress.ip_address(address)}:{port}"
    return sum(1 for peer, _ in open_connections(tables=tables) if peer == wanted)


def end_connections_to(peers: set[str]) -> bool:
    """Close every TCP connection from this network namespace to the given "ip:port" peers,
    with the kernel's socket-destroy call (`ss -K`, iproute2; needs CAP_NET_ADMIN and a kernel
    with INET_DIAG_DESTROY). Only those sockets go: nothing else the proxy holds is touched.
    Returns False where the call is not available here, so the caller can fall back."""
    for peer in sorted(peers):
        host, _, port = peer.rpartition(":")
        address, port_number = ipaddress.ip_address(host), int(port)   # validated: no shell, plain argv
        try:
            done = subprocess.run(["ss", "-K", "dst", str(address), "dport", "=", str(port_number)],
                                  capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return False
        if done.returncode != 0:
            return False
    still_open = {p for p, _ in open_connections()} & peers
    return not still_open
