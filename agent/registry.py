"""The one check registry: the CLI, the login hook and the tests all read it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.model import Finding, Severity

if TYPE_CHECKING:
    from agent.context import Context

CheckFunc = Callable[["Context"], Finding]

GROUPS = {
    "L": "Local tools", "C": "AWS config and profile", "I": "Credentials and identity", "R": "IAM",
    "S": "S3", "Q": "SQS", "N": "Networking and key pair", "Z": "Quotas and capacity",
    "K": "config.py", "F": "Fleet file", "M": "Monitor and state",
}


@dataclass(frozen=True)
class Check:
    id: str                      # stable, readable slug, e.g. "iam.spot-fleet-role"
    code: str                    # catalogue code, e.g. "R04"
    title: str
    severity: Severity
    needs: tuple[str, ...]       # ids of checks that must not fail first
    actions: tuple[str, ...]     # IAM actions it calls (the shipped policy covers them)
    func: CheckFunc
    opt_in: bool = False         # runs only when named with --only or enabled in settings
    aws: bool = False            # talks to AWS

    @property
    def group(self) -> str:
        return GROUPS[self.code[0]]


REGISTRY: dict[str, Check] = {}


def check(code: str, id: str, title: str, severity: Severity, *, needs: tuple[str, ...] = (),
          actions: tuple[str, ...] = (), opt_in: bool = False) -> Callable[[CheckFunc], CheckFunc]:
    """Register a check function under its catalogue code and stable id."""

    def register(func: CheckFunc) -> CheckFunc:
        if id in REGISTRY or any(c.code == code for c in REGISTRY.values()):
            raise ValueError(f"duplicate check {code} {id}")
        REGISTRY[id] = Check(id=id, code=code, title=title, severity=severity, needs=needs,
                             actions=actions, func=func, opt_in=opt_in, aws=bool(actions))
        return func

    return register


def all_checks() -> list[Check]:
    import agent.checks  # noqa: F401 - registers every check module

    return sorted(REGISTRY.values(), key=lambda c: (list(GROUPS).index(c.code[0]), c.code))


def resolve(names: list[str]) -> list[Check]:
    """Checks named by id, code (``R04``), or group letter/id prefix (``R``, ``iam``); ValueError if unknown."""
    checks = all_checks()
    chosen: list[Check] = []
    for name in names:
        hits = [c for c in checks if name in (c.id, c.code) or (name.upper() == c.code[0] and len(name) == 1)
                or c.id.startswith(name + ".")]
        if not hits:
            raise ValueError(f"unknown check {name!r} (see 'dcp-agent list')")
        chosen += [c for c in hits if c not in chosen]
    return chosen


def with_needs(checks: list[Check]) -> list[Check]:
    """The checks plus everything they need, transitively, in registry order."""
    wanted = {c.id for c in checks}
    stack = list(wanted)
    while stack:
        for dep in REGISTRY[stack.pop()].needs:
            if dep not in wanted:
                wanted.add(dep)
                stack.append(dep)
    return [c for c in all_checks() if c.id in wanted]
