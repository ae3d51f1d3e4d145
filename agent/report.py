"""How a run is shown: grouped ✓ / ! / ✗ lines for people, one JSON document for programs."""

from __future__ import annotations

import json
import os
import sys
from typing import IO, Any

from agent.model import Result, RunOutcome, Status, Verdict
from agent.registry import GROUPS

MARK = {Status.PASS: "✓", Status.WARN: "!", Status.FAIL: "✗", Status.ERROR: "✗", Status.SKIP: "-", Status.UNKNOWN: "?"}
STYLE = {Status.PASS: "green", Status.WARN: "yellow", Status.FAIL: "red", Status.ERROR: "red", Status.SKIP: "dim",
         Status.UNKNOWN: "magenta"}
JSON_VERSION = 2   # 2: status "unknown", "verdict", "cause" and "exit_status"


def as_json(outcome: RunOutcome) -> str:
    summary: dict[str, object] = {s.value: outcome.count(s) for s in Status}
    summary["duration_ms"] = outcome.duration_ms
    doc: dict[str, object] = {"version": JSON_VERSION, "verdict": str(outcome.verdict), "cause": outcome.cause,
                              "exit_status": outcome.exit_status}
    if outcome.project is not None:   # {"key", "name", "commit", "how"}: whose rules judged the run
        doc["project"] = outcome.project
    doc.update({"checks": [r.as_json() for r in outcome.results], "summary": summary})
    return json.dumps(doc, indent=2, ensure_ascii=False)


def project_name(outcome: RunOutcome) -> str:
    """What a verdict calls the project: "DCP" for Distributed-CellProfiler, else the sibling's own name."""
    p = outcome.project
    return "DCP" if not p or p["key"] == "cellprofiler" else str(p["name"])


def project_line(outcome: RunOutcome) -> str:
    """One line naming the project whose rules judged the run ("" when the caller did not say)."""
    p = outcome.project
    if not p:
        return ""
    from agent.flavours import how_words

    return f"judged as {p['name']} (rules read at {p['commit'][:7]}), {how_words(p['how'])}"


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


def unchecked_line(outcome: RunOutcome) -> str:
    """The one line that says what could not be checked and why ("" when everything got an answer)."""
    missing = len(outcome.unchecked)
    if not missing:
        return ""
    of = f" of {len(outcome.results)}" if missing != len(outcome.results) else " (all of them)"
    return f"could not check {_n(missing, 'check')}{of}: {outcome.cause}"


def summary_line(outcome: RunOutcome) -> str:
    fails = outcome.count(Status.FAIL) + outcome.count(Status.ERROR)
    warns = outcome.count(Status.WARN)
    passed = outcome.count(Status.PASS)
    secs = outcome.duration_ms / 1000
    missing = len(outcome.unchecked)
    verdict = outcome.verdict
    if verdict == Verdict.COULD_NOT_CHECK:
        seen = f"{passed} passed" + (f", {_n(warns, 'warning')}" if warns else "")
        if not passed and not warns:
            seen = "nothing was checked"
        return f"could not check: {outcome.cause} ({missing} not checked; {seen}) in {secs:.1f} s"
    who = project_name(outcome)
    if fails == 0 and warns == 0:
        return f"ready for {who}: {passed} checks passed in {secs:.1f} s"
    parts = []
    if fails:
        parts.append(_n(fails, "problem"))
    if warns:
        parts.append(_n(warns, "warning"))
    if missing:
        parts.append(f"{missing} not checked")
    head = f"not ready for {who}" if fails else f"ready for {who}, with"
    return f"{head}: {', '.join(parts)} ({passed} passed) in {secs:.1f} s"


def console_for(out: IO[str], **options: Any) -> Any:
    """A rich Console that, when the reader of a pipe goes away, goes quiet instead of raising SystemExit(1)
    (rich's default): the command still ends with its own verdict's status."""
    from rich.console import Console

    from agent.boundary import quiet_stdout

    class QuietOnClosedPipe(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            quiet_stdout()

    return QuietOnClosedPipe(file=out, **options)


def render(outcome: RunOutcome, *, verbose: bool = False, stream: IO[str] | None = None) -> None:
    """Human output; colour only on a terminal (and never with NO_COLOR)."""
    from rich.markup import escape

    out = stream or sys.stdout
    console = console_for(out, highlight=False, soft_wrap=True, no_color=bool(os.environ.get("NO_COLOR")),
                          force_terminal=None)
    by_group: dict[str, list[Result]] = {}
    for r in outcome.results:
        by_group.setdefault(r.group, []).append(r)
    unchecked_set = {id(r) for r in outcome.unchecked}
    for group in GROUPS.values():
        results = by_group.get(group)
        if not results:
            continue
        # What could not be checked is said once, below, not per check (-v lists them).
        shown = [r for r in results if verbose or (r.status not in (Status.SKIP, Status.UNKNOWN))
                 or r.message.startswith("suppressed")]
        counts = {s: sum(1 for r in results if r.status == s) for s in Status}
        unseen = sum(1 for r in results if id(r) in unchecked_set)
        head = f"{group} ({counts[Status.PASS]}/{len(results)} passed{f', {unseen} not checked' if unseen else ''})"
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
    unchecked = unchecked_line(outcome)
    if unchecked:
        console.print(f"\n[{STYLE[Status.UNKNOWN]}]?[/] {escape(unchecked)}")
        console.print("      [dim]fix:[/dim] check the network to AWS (and the endpoint, proxy and region settings), "
                      "then run again; 'dcp-agent check -v' lists each check")
    if project_line(outcome):
        console.print(f"\n[dim]{escape(project_line(outcome))}[/dim]")
    style = ("red" if fails else STYLE[Status.UNKNOWN] if outcome.verdict == Verdict.COULD_NOT_CHECK
             else "yellow" if outcome.count(Status.WARN) else "green")
    console.print(f"\n[bold {style}]{escape(summary_line(outcome))}[/]")
