"""The vocabulary of a check run: statuses, severities, findings and results."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    PASS = "pass"  # noqa: S105 - a status, not a password
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"
    ERROR = "error"


class Severity(StrEnum):
    BLOCKER = "blocker"   # DCP will fail
    HIGH = "high"         # likely failure or runaway cost
    MEDIUM = "medium"
    LOW = "low"


@dataclass(frozen=True)
class Finding:
    """What one check concluded. ``fix`` says exactly what to do when status is not pass."""

    status: Status
    message: str = ""
    fix: str = ""
    cost_per_day: float | None = None   # what the finding costs while it lasts (USD a day), when it costs


def ok(message: str = "") -> Finding:
    return Finding(Status.PASS, message)


def warn(message: str, fix: str = "", *, cost_per_day: float | None = None) -> Finding:
    return Finding(Status.WARN, message, fix, cost_per_day)


def fail(message: str, fix: str = "", *, cost_per_day: float | None = None) -> Finding:
    return Finding(Status.FAIL, message, fix, cost_per_day)


class Skip(Exception):
    """Raised by a check that does not apply (feature off, input not given)."""


@dataclass(frozen=True)
class Result:
    id: str
    code: str
    title: str
    group: str
    severity: Severity
    status: Status
    message: str
    fix: str
    duration_ms: int
    cost_per_day: float | None = None

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "code": self.code, "title": self.title, "group": self.group,
                "status": str(self.status), "severity": str(self.severity), "message": self.message,
                "fix": self.fix, "duration_ms": self.duration_ms, "cost_per_day": self.cost_per_day}


@dataclass
class RunOutcome:
    results: list[Result]
    duration_ms: int

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def ok(self) -> bool:
        return not any(r.status in (Status.FAIL, Status.ERROR) for r in self.results)
