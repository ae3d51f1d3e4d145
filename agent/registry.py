"""The one check registry, and the one selection: the CLI, the login hook and the tests all use both.

A check names what it needs by reference: a check object from its own module, or a :class:`Gate` from
``agent.gates`` for a prerequisite another module provides (so no check module imports another). A typo is
a NameError at import, and a gate nobody provides fails ``all_checks()`` at once.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agent.model import Finding, Severity

if TYPE_CHECKING:
    from agent.context import Context
    from agent.settings import Settings

CheckFunc = Callable[["Context"], Finding]

GROUPS = {
    "L": "Local tools", "C": "AWS config and profile", "I": "Credentials and identity", "R": "IAM",
    "S": "S3", "Q": "SQS", "N": "Networking and key pair", "Z": "Quotas and capacity",
    "K": "config.py", "F": "Fleet file", "M": "Monitor and state",
}


@dataclass(frozen=True, eq=False)
class Gate:
    """A prerequisite named across modules: exactly one check provides it."""

    name: str


@dataclass(frozen=True, eq=False)
class Check:
    id: str                      # stable, readable slug, e.g. "iam.spot-fleet-role"
    code: str                    # catalogue code, e.g. "R04"
    title: str
    severity: Severity
    requires: tuple[Check | Gate, ...]   # checks that must not fail first
    actions: tuple[str, ...]     # IAM actions its reads need (the shipped policy is generated from them)
    func: CheckFunc
    opt_in: bool = False         # runs only when named with --only or enabled in settings
    provides: Gate | None = None
    cure: str = ""               # what `dcp-agent fix` does for it ("": fix lists it for a person)
    blind: tuple[str, ...] = ()  # what it cannot see, or only approximates (a text several checks share is one object)

    @property
    def aws(self) -> bool:
        """Talks to AWS (its verdict depends on the network; local checks are answered in milliseconds)."""
        return bool(self.actions)

    @property
    def group(self) -> str:
        return GROUPS[self.code[0]]

    @property
    def judges(self) -> str:
        """What it judges, beyond its title: the check function's docstring."""
        return inspect.getdoc(self.func) or ""

    @property
    def needs(self) -> tuple[str, ...]:
        """The ids of the checks it needs."""
        return tuple(_resolve_need(n).id for n in self.requires)


REGISTRY: dict[str, Check] = {}
_PROVIDERS: dict[Gate, Check] = {}


def _resolve_need(need: Check | Gate) -> Check:
    if isinstance(need, Check):
        return need
    all_checks()
    return _PROVIDERS[need]


def check(code: str, id: str, title: str, severity: Severity, *, needs: tuple[Check | Gate, ...] = (),
          actions: tuple[str, ...] = (), opt_in: bool = False, provides: Gate | None = None,
          cure: str = "", blind: tuple[str, ...] = ()) -> Callable[[CheckFunc], Check]:
    """Register a check function under its catalogue code and stable id; the name it is bound to becomes the
    Check, so checks in the same module can name it in ``needs``. ``cure`` and ``blind`` (and the function's
    docstring) are what docs/checks.md says of it (agent.catalogue)."""

    def register(func: CheckFunc) -> Check:
        if id in REGISTRY or any(c.code == code for c in REGISTRY.values()):
            raise ValueError(f"duplicate check {code} {id}")
        c = Check(id=id, code=code, title=title, severity=severity, requires=needs, actions=actions, func=func,
                  opt_in=opt_in, provides=provides, cure=cure, blind=blind)
        REGISTRY[id] = c
        if provides is not None:
            if provides in _PROVIDERS:
                raise ValueError(f"gate {provides.name!r} provided twice ({_PROVIDERS[provides].id}, {id})")
            _PROVIDERS[provides] = c
        return c

    return register


_ORDERED: list[Check] = []


def all_checks() -> list[Check]:
    if not _ORDERED:
        import agent.checks  # noqa: F401 - registers every check module

        for c in REGISTRY.values():
            for need in c.requires:
                if isinstance(need, Gate) and need not in _PROVIDERS:
                    raise ValueError(f"{c.id} needs gate {need.name!r}, which no check provides")
        _ORDERED.extend(sorted(REGISTRY.values(), key=lambda c: (list(GROUPS).index(c.code[0]), c.code)))
    return list(_ORDERED)


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
    stack = list(checks)
    while stack:
        for dep in stack.pop().requires:
            d = _resolve_need(dep)
            if d.id not in wanted:
                wanted.add(d.id)
                stack.append(d)
    return [c for c in all_checks() if c.id in wanted]


@dataclass
class Selection:
    """What one run runs, and the findings it accepts (check id -> reason)."""

    checks: list[Check]
    suppress: dict[str, str] = field(default_factory=dict)


def select(settings: Settings, only: list[str] | None = None, skip: list[str] | None = None) -> Selection:
    """The one selection: ``only`` (ids, codes or groups, with what they need) or every default check plus
    the settings' opt-ins (``enable``), less ``skip``; suppressions by id, code or group mapped to check ids.
    Raises ValueError (one line) for a name that matches no check."""
    enabled = {c.id for c in resolve(settings.enable)} if settings.enable else set()
    skipped = {c.id for c in resolve(skip)} if skip else set()
    suppress: dict[str, str] = {}
    for key, reason in settings.suppress.items():   # a broader key first, so a specific id wins
        for c in resolve([key]):
            if key in (c.id, c.code) or c.id not in suppress:
                suppress[c.id] = reason
    checks = with_needs(resolve(only)) if only else [c for c in all_checks() if not c.opt_in or c.id in enabled]
    chosen = [c for c in checks if c.id not in skipped]
    if not chosen:
        raise ValueError("this selection runs no check (--skip leaves out everything --only chose): "
                         "change --only or --skip")
    return Selection(chosen, suppress)
