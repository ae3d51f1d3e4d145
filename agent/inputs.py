"""Rules for what users type that becomes a path, an AWS name or a network: one home each, so check, fix,
fleet and the Invoke tasks accept and refuse the same things with the same words.

Each rule returns the clean value or raises ``ValueError`` with one line: what is wrong and what to do.
"""

from __future__ import annotations

import ipaddress
import re

REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$")
# DCP builds AWS names from APP_NAME (APP_NAME + 'Queue' for SQS, 80 characters of [A-Za-z0-9_-]; the
# ECS service and task definition, the log group, alarms) and the fleet file's path (files/<APP_NAME>Fleet…).
APP_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
APP_NAME_MAX = 80 - len("Queue")
# The widest network that can still mean "my address": a campus or a company's /16 (65,536 addresses) for
# IPv4, a site's /48 for IPv6. Anything wider lets a large part of the internet at SSH.
WIDEST_IPV4 = 16
WIDEST_IPV6 = 48
NO_REGION = "no region configured: pass --region or set one in ~/.aws/config (aws configure set region us-east-1)"


def region(value: object, *, where: str = "the region") -> str:
    """An AWS region name such as us-east-1; an availability zone or an empty value is refused by name."""
    if value is None or value == "":
        if where != "the region":
            raise ValueError(f"{where} is not set: set it to your region (e.g. 'us-east-1')")
        raise ValueError(NO_REGION)
    if not isinstance(value, str):
        raise ValueError(f"{where} must be a region name such as 'us-east-1', not a {type(value).__name__}")
    if REGION_RE.match(value):
        return value
    if REGION_RE.match(value[:-1]) and value[-1].isalpha():
        raise ValueError(f"{where} {value!r} is an availability zone; use its region {value[:-1]!r}")
    shown = value if len(value) <= 40 else value[:39] + "…"
    raise ValueError(f"{where} {shown!r} is not an AWS region (e.g. 'us-east-1')")


def app_name(value: object) -> str:
    """config.py's APP_NAME: letters, digits, _ and -, short enough that APP_NAME + 'Queue' is an SQS name.
    It never holds '/' or '..', so a path built from it stays where it is built."""
    if not isinstance(value, str) or not value:
        raise ValueError("config.py sets no APP_NAME (a name of letters, digits, _ and -): set one")
    if not APP_NAME_RE.match(value):
        shown = value if len(value) <= 40 else value[:39] + "…"
        raise ValueError(f"APP_NAME {shown!r} may hold only letters, digits, _ and - (it names files and AWS "
                         "resources): rename it in config.py")
    if len(value) > APP_NAME_MAX:
        raise ValueError(f"APP_NAME is {len(value)} characters; APP_NAME + 'Queue' must fit SQS's 80: shorten it")
    return value


def operator_network(value: str, *, flag: str = "--ssh-cidr",
                     ipv4_only: bool = False) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """An address or network that stands for the operator: an address alone means /32 (/128); host bits must
    be clear; nothing wider than /16 (IPv4) or /48 (IPv6)."""
    text = value.strip()
    example = f"e.g. {flag} 203.0.113.7/32" if flag.startswith("-") else f"e.g. {flag}=203.0.113.7/32"   # a variable
    if not text:
        raise ValueError(f"{flag} is empty: give your own address ({example})")
    try:
        net = ipaddress.ip_network(text if "/" in text else f"{text}/{128 if ':' in text else 32}", strict=True)
    except ValueError as e:
        shown = text if len(text) <= 60 else text[:59] + "…"
        reason = "host bits are set" if "host bits" in str(e) else "not an IP address or network"
        raise ValueError(f"{flag} {shown!r}: {reason} ({example})") from None
    if ipv4_only and not isinstance(net, ipaddress.IPv4Network):
        raise ValueError(f"{flag} {text!r}: IPv4 networks only here ({example})")
    widest = WIDEST_IPV4 if isinstance(net, ipaddress.IPv4Network) else WIDEST_IPV6
    if net.prefixlen < widest:
        whole = " (the whole internet)" if net.prefixlen == 0 else ""
        raise ValueError(f"{flag} {text}{whole} is wider than /{widest} and cannot mean your address: give your "
                         f"own address or your site's network ({example})")
    return net


def endpoint_url(value: str, *, name: str = "--endpoint") -> str:
    """An endpoint override (an emulator, a VPC endpoint): "" (AWS itself), or http(s)://host[:port] with nothing
    after it; returned as scheme://host[:port]."""
    import urllib.parse

    text = value.strip()
    if not text:
        return ""
    shown = text if len(text) <= 60 else text[:59] + "…"
    example = f"e.g. {name} http://127.0.0.1:5000"
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError(f"{name} {shown!r} is not a URL with a valid port ({example})") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{name} {shown!r} is not an http:// or https:// URL ({example})")
    if not parts.hostname:
        raise ValueError(f"{name} {shown!r} names no host ({example})")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{name} {shown!r}: give only scheme://host[:port], no path, query or user ({example})")
    if port == 0:
        raise ValueError(f"{name} {shown!r}: port 0 is not a port ({example})")
    return f"{parts.scheme}://{parts.netloc}"


def endpoint_environment(environ: dict[str, str] | None = None) -> None:
    """Every AWS_ENDPOINT_URL* variable botocore would use must be a URL (else each client fails alike)."""
    import os

    env = os.environ if environ is None else environ
    for key in sorted(k for k in env if k.startswith("AWS_ENDPOINT_URL")):
        if env[key]:
            endpoint_url(env[key], name=key)
