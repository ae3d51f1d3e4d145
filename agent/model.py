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
    UNKNOWN = "unknown"   # could not check: AWS did not answer (unreachable, timed out, 5xx, throttled, budget)


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


class Verdict(StrEnum):
    """What a run says of the account, from what it saw. Exit statuses: see ``EXIT``."""

    READY = "ready"                      # every check that ran passed (or only warned)
    NOT_READY = "not ready"              # a check failed: a problem was seen
    COULD_NOT_CHECK = "could not check"  # no problem seen, but some checks never got an answer from AWS


EXIT = {Verdict.READY: 0, Verdict.NOT_READY: 1, Verdict.COULD_NOT_CHECK: 3}
UNCHECKED_PREFIX = "not checked: "      # a dependent's skip because its prerequisite could not be checked


@dataclass
class RunOutcome:
    results: list[Result]
    duration_ms: int
    # Which Distributed-* project's rules judged the run (agent.flavours.Recognised), when the caller says.
    project: dict[str, str] | None = None

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def ok(self) -> bool:
        return not any(r.status in (Status.FAIL, Status.ERROR) for r in self.results)

    @property
    def unchecked(self) -> list[Result]:
        """Checks that could not give a verdict because AWS did not answer, and those that needed them."""
        return [r for r in self.results if r.status == Status.UNKNOWN
                or (r.status == Status.SKIP and r.message.startswith(UNCHECKED_PREFIX))]

    @property
    def verdict(self) -> Verdict:
        if not self.ok:
            return Verdict.NOT_READY
        if self.count(Status.UNKNOWN):
            return Verdict.COULD_NOT_CHECK
        return Verdict.READY

    @property
    def cause(self) -> str:
        """Why checks could not be checked, once: the most frequent cause among them."""
        causes = [r.message for r in self.results if r.status == Status.UNKNOWN]
        return max(sorted(set(causes)), key=causes.count) if causes else ""

    @property
    def exit_status(self) -> int:
        return EXIT[self.verdict]
