"""Scrubs credentials from anything the agent prints: the exact secret values of the session, plus
anything shaped like an AWS secret key, session token or private key."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.context import Context

_PATTERNS = [
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.S),
     "[private key redacted]"),
    (re.compile(r"(?i)(aws_secret_access_key|aws_session_token|secret_key|session_token)(\s*[=:]\s*)\S+"),
     r"\1\2[redacted]"),
    (re.compile(r"\b(A[SK]IA)[A-Z0-9]{12}([A-Z0-9]{4})\b"), r"\1…\2"),
]


def scrub(text: str, secrets: set[str] | frozenset[str] = frozenset()) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        if secret and len(secret) >= 8:
            text = text.replace(secret, "[redacted]")
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


class Redactor:
    def __init__(self, ctx: Context | None = None) -> None:
        self.ctx = ctx

    def __call__(self, text: str) -> str:
        return scrub(text, self.ctx.secrets if self.ctx else frozenset())
