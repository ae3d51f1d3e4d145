"""Host strings as a user types them for ``invoke bootstrap``, parsed once, as OpenSSH reads them.

``[user@]host[:port]``, where ``host`` is a name (an ``~/.ssh/config`` alias is kept as it is: Fabric's
SSHConfig resolves it when connecting), an IPv4 address, an IPv6 literal in brackets (``[::1]:22``,
``[fe80::1%eth0]:2222``, ``[::1]``) or a bare IPv6 literal, which never carries a port (``::1``), as in
OpenSSH's ``ssh ::1``. The user is what comes before the last ``@``, as ``ssh`` splits it. Names that
OpenSSH refuses (a leading ``-``, shell metacharacters, whitespace or control characters) are refused
here too, before anything connects, with one line that says what is wrong.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

MAX_HOST = 255       # a DNS name is at most 253 characters; an alias longer than this is a mistake
MAX_TEXT = 512
# What OpenSSH's valid_hostname() and valid_ruser() refuse (ssh.c), besides whitespace and control characters.
_HOST_BAD = set("'`\"$\\;&<>|(){},")
_USER_BAD = set("'`\";&<>|(){}")
_PORT = re.compile(r"[0-9]{1,5}")


@dataclass(frozen=True)
class Target:
    """One host to connect to: ``port`` None means the ssh config's port, else 22; ``user`` None means the
    ssh config's user, else the local one."""
    user: str | None
    host: str
    port: int | None

    @property
    def address(self) -> str:
        """``host:port`` as people write it (an IPv6 literal in brackets), for messages."""
        return f"[{self.host}]" if ":" in self.host else self.host

    def __str__(self) -> str:
        text = f"{self.user}@{self.address}" if self.user else self.address
        return f"{text}:{self.port}" if self.port is not None else text


def show(text: str, limit: int = 60) -> str:
    """``text`` quoted for a message: control characters escaped, at most ``limit`` characters shown."""
    cut = text if len(text) <= limit else text[:limit]
    shown = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in cut)
    return f"'{shown}'" + (f"… ({len(text)} characters)" if len(text) > limit else "")


def _port(text: str) -> int:
    if not text:
        raise ValueError("no port after ':'")
    if _PORT.fullmatch(text) and 1 <= int(text) <= 65535:
        return int(text)
    raise ValueError(f"port {show(text, 20)} is not a number 1–65535")


def _ipv6(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv6Address)
    except ValueError:
        return False


def _check_host(host: str) -> str:
    if not host:
        raise ValueError("no host name")
    if len(host) > MAX_HOST:
        raise ValueError(f"host name is too long ({len(host)} characters; at most {MAX_HOST})")
    if host.startswith("-"):
        raise ValueError("host name starts with '-' (it would read as an option)")
    bad = sorted({ch for ch in host if ch in _HOST_BAD or ch in "[]@"})
    if bad:
        raise ValueError(f"host name contains {' '.join(repr(ch) for ch in bad)}")
    return host


def parse_host(text: str) -> Target:
    """``[user@]host[:port]`` as a :class:`Target`; ValueError with one line (it names the problem) if it is
    not one."""
    if not text:
        raise ValueError("empty host")
    if len(text) > MAX_TEXT:
        raise ValueError(f"too long (at most {MAX_TEXT} characters)")
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        raise ValueError("contains whitespace or a control character")
    user: str | None = None
    rest = text
    if "@" in text:
        user, rest = text.rsplit("@", 1)
        if not user:
            raise ValueError("no user before '@' (write host, or user@host)")
        if not rest:
            raise ValueError("no host after '@'")
        if user.startswith("-") or any(ch in _USER_BAD for ch in user):
            raise ValueError(f"user name {show(user)} is not one ssh accepts")
    port: int | None = None
    if rest.startswith("["):
        close = rest.find("]")
        if close < 0:
            raise ValueError("unbalanced '[' (write [addr]:port)")
        host, after = rest[1:close], rest[close + 1:]
        if after:
            if not after.startswith(":"):
                raise ValueError(f"{show(after)} after ']' (write [addr]:port)")
            port = _port(after[1:])
        if ":" in host and not _ipv6(host):
            raise ValueError(f"{show(host)} in brackets is not an IPv6 address")
        return Target(user, _check_host(host), port)
    if "]" in rest:
        raise ValueError("unbalanced ']'")
    colons = rest.count(":")
    if colons > 1:
        if not _ipv6(rest):
            raise ValueError(f"{show(rest)} has more than one ':' but is not an IPv6 address (write host:port, "
                             "or [addr]:port for IPv6)")
        return Target(user, _check_host(rest), None)    # a bare IPv6 literal: no port, as ssh reads it
    host, _, port_text = rest.partition(":")
    if colons:
        port = _port(port_text)
    return Target(user, _check_host(host), port)
