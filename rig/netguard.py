"""Loopback-only guard: records (and blocks) any socket a process opens to a non-loopback address.

It uses an audit hook (PEP 578), so it sees every connect, sendto and name lookup made through
Python's socket module, including those botocore and paramiko make. Violations are kept in
``VIOLATIONS`` and, when ``DCP_NETGUARD_LOG`` is set, appended to that file, so a test can fail
even when the code under test swallowed the resulting error. Python subprocesses get the same
guard through ``rig/sitecustomize`` on PYTHONPATH.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
import threading
from typing import Any

VIOLATIONS: list[str] = []
_lock = threading.Lock()
_installed = False
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}


def _loopback(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if host is None:
        return True  # getaddrinfo(None, port) is the wildcard/loopback address
    host = str(host)
    if host in _LOCAL_NAMES or host == socket.gethostname():
        return True
    try:
        addr = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False  # a name that needs DNS: that lookup itself leaves the machine
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback or addr.is_unspecified


def _record(what: str) -> None:
    with _lock:
        VIOLATIONS.append(what)
    log = os.environ.get("DCP_NETGUARD_LOG")
    if log:
        try:
            with open(log, "a", encoding="utf-8") as f:
                f.write(f"{os.getpid()} {what}\n")
        except OSError:
            pass
    raise PermissionError(f"netguard: blocked non-loopback network access: {what}")


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
        sock, address = args[0], args[1]
        inet = getattr(sock, "family", None) in (socket.AF_INET, socket.AF_INET6)
        if inet and isinstance(address, tuple) and not _loopback(address[0]):
            _record(f"{event} {address[0]}:{address[1]}")
    elif (event in {"socket.getaddrinfo", "socket.gethostbyname"}) and not _loopback(args[0]):
        _record(f"{event} {args[0]!r}")


def install() -> None:
    """Install the hook once per process (audit hooks cannot be removed)."""
    global _installed
    if not _installed:
        sys.addaudithook(_hook)
        _installed = True


def take() -> list[str]:
    """Return and clear the violations seen so far in this process."""
    with _lock:
        seen = list(VIOLATIONS)
        VIOLATIONS.clear()
    return seen
