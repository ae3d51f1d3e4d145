"""How a run is shown: grouped ✓ / ! / ✗ lines for people, one JSON document for programs."""

from __future__ import annotations

import json
import os
import sys
from typing import IO

from agent.model import Result, RunOutcome, Status
from agent.registry import GROUPS

MARK = {Status.PASS: "✓", Status.WARN: "!", Status.FAIL: "✗", Status.ERROR: "✗", Status.SKIP: "-"}
STYLE = {Status.PASS: "green", Status.WARN: "yellow", Status.FAIL: "red", Status.ERROR: "red", Status.SKIP: "dim"}


def as_json(outcome: RunOutcome) -> str:
    summary = {s.value: outcome.count(s) for s in Status}
    summary["duration_ms"] = outcome.duration_ms
    return json.dumps({"version": 1, "checks": [r.as_json() for r in outcome.results], "summary": summary},
                      indent=2, ensure_ascii=False)


def summary_line(outcome: RunOutcome) -> str:
    fails = outcome.count(Status.FAIL) + outcome.count(Status.ERROR)
    warns = outcome.count(Status.WARN)
    secs = outcome.duration_ms / 1000
    if fails == 0 and warns == 0:
        return f"ready for DCP: {outcome.count(Status.PASS)} checks passed in {secs:.1f} s"
    parts = []
    if fails:
        parts.append(f"{fails} problem{'s' if fails != 1 else ''}")
    if warns:
        parts.append(f"{warns} warning{'s' if warns != 1 else ''}")
    verdict = "not ready for DCP" if fails else "ready for DCP, with"
    return f"{verdict}: {', '.join(parts)} ({outcome.count(Status.PASS)} passed) in {secs:.1f} s"


def render(outcome: RunOutcome, *, verbose: bool = False, stream: IO[str] | None = None) -> None:
    """Human output; colour only on a terminal (and never with NO_COLOR)."""
    from rich.console import Console
    from rich.markup import escape

    out = stream or sys.stdout
    console = Console(file=out, highlight=False, soft_wrap=True,
                      no_color=bool(os.environ.get("NO_COLOR")), force_terminal=None)
    by_group: dict[str, list[Result]] = {}
    for r in outcome.results:
        by_group.setdefault(r.group, []).append(r)
    for group in GROUPS.values():
        results = by_group.get(group)
        if not results:
            continue
        shown = [r for r in results if verbose or r.status != Status.SKIP or r.message.startswith("suppressed")]
        counts = {s: sum(1 for r in results if r.status == s) for s in Status}
        head = f"{group} ({counts[Status.PASS]}/{len(results)} passed)"
        console.print(f"[bold]{escape(head)}[/bold]")
        for r in shown:
            line = f"  [{STYLE[r.status]}]{MARK[r.status]}[/] {r.code} {escape(r.title)}"
            if r.status != Status.PASS or verbose:
                line += f": {escape(r.message)}" if r.message else ""
            if verbose:
                line += f" [dim]({r.id}, {r.duration_ms} ms)[/dim]"
            console.print(line)
            if r.fix and r.status in (Status.WARN, Status.FAIL, Status.ERROR):
                console.print(f"      [dim]fix:[/dim] {escape(r.fix)}")
    fails = outcome.count(Status.FAIL) + outcome.count(Status.ERROR)
    style = "red" if fails else "yellow" if outcome.count(Status.WARN) else "green"
    console.print(f"\n[bold {style}]{escape(summary_line(outcome))}[/]")
