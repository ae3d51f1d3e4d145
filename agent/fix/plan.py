"""The vocabulary of a fix: steps (create, modify, needs-a-human), problems that stop an apply, and a plan.

A plan is computed from the current state (the same facts the checks read), the way ``terraform plan``
is: a step exists only because something is missing or wrong right now, so running the planner again
after an apply (or after an interrupted one) plans only what is still missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.context import Context


class Kind(StrEnum):
    CREATE = "create"
    MODIFY = "modify"
    HUMAN = "needs-a-human"


@dataclass
class Step:
    """One change. ``change`` says exactly what will be different afterwards (in full for a modify);
    ``actions`` are the IAM actions ``run`` calls; a needs-a-human step has no ``run``."""

    codes: tuple[str, ...]
    resource: str
    kind: Kind
    change: str
    actions: tuple[str, ...] = ()
    run: Callable[[Context], None] | None = field(default=None, repr=False)
    after: str = ""   # the resource this step needs to exist first (a step of the same plan)
    lane: str = ""    # steps of one lane run in order, lanes side by side (default: one lane per resource)

    @property
    def queue(self) -> str:
        return self.lane or self.resource

    def as_json(self) -> dict[str, Any]:
        return {"codes": list(self.codes), "resource": self.resource, "kind": str(self.kind),
                "change": self.change, "actions": list(self.actions)}


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)   # bad input: nothing is applied while any remains

    @property
    def changes(self) -> list[Step]:
        return [s for s in self.steps if s.kind != Kind.HUMAN]

    @property
    def human(self) -> list[Step]:
        return [s for s in self.steps if s.kind == Kind.HUMAN]

    def codes(self) -> set[str]:
        return {c for s in self.steps for c in s.codes}

    def as_json(self) -> dict[str, Any]:
        return {"steps": [s.as_json() for s in self.steps], "problems": list(self.problems)}
