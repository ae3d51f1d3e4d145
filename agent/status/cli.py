"""The ``status`` and ``requeue`` subcommands: their arguments, and what they print.

``dcp-agent status [--json] [--watch [SECONDS]] [--job PATH]`` and ``dcp-agent requeue [--apply] [--json]``;
agent/cli.py adds the parsers (``add_parsers``) and hands the parsed arguments here (``run_command``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from agent.boundary import EXIT_UNCHECKED, UserError, quiet_stdout

WATCH_DEFAULT_S = 30.0
WATCH_MIN_S = 2.0


def add_parsers(sub: Any) -> None:
    st = sub.add_parser("status", help="what the current DCP run is doing: jobs, workers, spend, problems")
    st.add_argument("--config", type=Path, help="DCP's config.py (default: <dcp_clone>/config.py)")
    st.add_argument("--settings", type=Path, help="the agent's settings file")
    st.add_argument("--job", type=Path, help="the job file the run was submitted with (its number of groups)")
    st.add_argument("--json", action="store_true", help="print one JSON document (see docs/status.md)")
    st.add_argument("--watch", nargs="?", const=WATCH_DEFAULT_S, default=None, metavar="SECONDS", type=_seconds,
                    help=f"refresh every SECONDS (default {WATCH_DEFAULT_S:.0f}); Ctrl-C leaves")
    rq = sub.add_parser("requeue", help="plan (and with --apply, make) the move of failed jobs back to the queue")
    rq.add_argument("--config", type=Path, help="DCP's config.py (default: <dcp_clone>/config.py)")
    rq.add_argument("--settings", type=Path, help="the agent's settings file")
    rq.add_argument("--apply", action="store_true", help="move them")
    rq.add_argument("--json", action="store_true", help="print the plan (and what moved) as JSON")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    import math

    if math.isnan(value) or value < WATCH_MIN_S or value > 86400:   # NaN, too often, more than a day
        raise argparse.ArgumentTypeError(f"--watch takes {WATCH_MIN_S:.0f} to 86400 seconds, not {text}")
    return value


def _context(args: argparse.Namespace) -> Any:
    from agent import settings as settings_mod
    from agent.cli import UsageError, _environment, _readable
    from agent.context import Context

    for path, what in ((args.config, "config file"), (getattr(args, "job", None), "job file"),
                       (args.settings, "settings file")):
        _readable(path, what)
    _environment()
    try:
        s = settings_mod.load(args.settings)
        ctx = Context(s, config=args.config, job=getattr(args, "job", None))
    except (settings_mod.SettingsError, ValueError) as e:
        raise UsageError(str(e)) from None
    if ctx.job_error:
        raise UsageError(ctx.job_error)
    return ctx


def run_command(args: argparse.Namespace) -> int:
    if args.command == "requeue":
        return cmd_requeue(args)
    if args.watch is not None:
        return watch(args, args.watch)
    return cmd_status(args)


def refresh(args: argparse.Namespace) -> Any:
    """One status (a fresh context: every read is asked again), its sample added to the user's cache."""
    from agent.status import samples
    from agent.status.compute import compute, names

    ctx = _context(args)
    app = names(ctx).app
    history = samples.load(app)
    st = compute(ctx, history)
    history.last = st.as_json()
    samples.save(app, history)
    return st


def exit_status(st: Any) -> int:
    if st.unchecked:
        return EXIT_UNCHECKED
    return 1 if st.problems else 0


def cmd_status(args: argparse.Namespace) -> int:
    st = refresh(args)
    try:
        if args.json:
            sys.stdout.write(json.dumps(st.as_json(), indent=2, ensure_ascii=False) + "\n")
        else:
            sys.stdout.write(render(st) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        quiet_stdout()
    return exit_status(st)


def render(st: Any) -> str:
    from agent.status.compute import one_line

    lines = [f"{one_line(st)}"]
    lines.append(f"  phase    {st.phase}")
    total = f"{st.total:,}" if st.total is not None else "?"
    done = f"{st.done:,}" if st.done is not None else "?"
    rate = f", {st.rate_per_hour:.0f} jobs/h" if st.rate_per_hour else ""
    lines.append(f"  jobs     {total} in all ({st.total_from}): {st.waiting:,} waiting, {st.in_progress:,} in "
                 f"progress, {done} done, {st.failed:,} failed{rate}")
    lines.append(f"  workers  fleet {', '.join(st.fleets) or '(none running)'}: target {st.target}, fulfilled "
                 f"{st.fulfilled:g}; {st.running} running, {st.registered} registered with ECS; tasks "
                 f"{st.tasks_running} / {st.tasks_desired}")
    projected = f", ${st.projected:.2f} projected" if st.projected is not None else ""
    lines.append(f"  spend    ${st.per_hour:.2f}/h now, ${st.so_far:.2f} so far{projected}")
    for p in st.problems:
        lines.append(f"  ✗ {p.code}: {p.message}")
        lines.append(f"      fix: {p.fix}")
    if st.failed_jobs:
        lines.append("  failed jobs (in the dead-letter queue; 'dcp-agent requeue' moves them back):")
        for j in st.failed_jobs:
            lines.append(f"    {j.metadata}  — {j.cause} (log stream {j.stream})")
    return "\n".join(lines)


def login_lines(st: Any, problems: int = 3) -> list[str]:
    """What the login summary starts with while a run is in progress: its line, then its problems."""
    from agent.status.compute import one_line

    if not st.in_progress_phase and not (st.phase == "finished" and (st.failed or st.fleets)):
        return []
    out = [one_line(st)]
    shown = [p for p in st.problems if p.code != "unchecked"]
    if len(shown) < len(st.problems):
        out[0] += " (some reads failed: dcp-agent status)"
    for p in shown[:problems]:
        text = f"  ✗ {p.code}: {p.message}"
        out.append(text if len(text) <= 160 else text[:159] + "…")
    if len(shown) > problems:
        out.append(f"  and {len(shown) - problems} more: dcp-agent status")
    return out


# -- --watch -----------------------------------------------------------------------------------------

def watch(args: argparse.Namespace, every: float) -> int:
    """Refresh every ``every`` seconds until Ctrl-C. The refresh runs in a thread of its own, so Ctrl-C is
    seen at once (the main thread only waits), and leaves within a fraction of a second, exit 0."""
    tty = sys.stdout.isatty() and not args.json
    box: dict[str, Any] = {}

    def one() -> None:
        try:
            box["status"] = refresh(args)
            box.pop("error", None)
        except UserError:
            raise
        except Exception as e:   # AWS did not answer this time: say so, keep watching
            from agent.boundary import describe

            box["error"] = describe("dcp-agent status", e)[0]

    live = None
    try:
        if tty:
            from rich.console import Console
            from rich.live import Live

            console = Console(no_color=bool(os.environ.get("NO_COLOR")))
            live = Live(_view(None, None, every), console=console, auto_refresh=False, transient=False)
            live.start()
        while True:
            t = threading.Thread(target=_catching(one, box), daemon=True, name="status-refresh")
            t.start()
            while t.is_alive():
                t.join(0.1)
            if "fatal" in box:
                raise box["fatal"]
            if live is not None:
                live.update(_view(box.get("status"), box.get("error"), every), refresh=True)
            else:
                st = box.get("status")
                line = box.get("error") or (f"{time.strftime('%H:%M:%S')} {_plain(st)}" if st else "")
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
            end = time.monotonic() + every
            while time.monotonic() < end:
                time.sleep(min(0.1, max(end - time.monotonic(), 0)))
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        quiet_stdout()
        return 0
    finally:
        if live is not None:
            live.stop()


def _catching(fn: Any, box: dict[str, Any]) -> Any:
    def run() -> None:
        try:
            fn()
        except BaseException as e:   # a UserError (bad config) ends the watch in the main thread
            box["fatal"] = e
    return run


def _plain(st: Any) -> str:
    from agent.status.compute import one_line

    first = f"; {st.problems[0].code}" if st.problems else ""
    more = f" (+{len(st.problems) - 1})" if len(st.problems) > 1 else ""
    return f"{one_line(st)}; phase {st.phase}; {len(st.problems)} problem(s){first}{more}"


def _view(st: Any, error: str | None, every: float) -> Any:
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    if st is None:
        return Text(error or "dcp-agent status: reading the run …")
    from agent.status.compute import one_line

    parts: list[Any] = [Text(one_line(st), style="bold")]
    total = st.total or max(st.waiting + st.in_progress + st.failed + (st.done or 0), 1)
    bar = Table.grid(padding=(0, 1))
    bar.add_column(width=10)
    bar.add_column(ratio=1)
    bar.add_column()
    bar.add_row("jobs", ProgressBar(total=total, completed=st.done or 0, width=40),
                f"{st.done or 0:,} done, {st.in_progress:,} in progress, {st.waiting:,} waiting, {st.failed:,} failed")
    bar.add_row("workers", ProgressBar(total=max(st.target, 1), completed=st.running, width=40),
                f"{st.running} of {st.target} running, {st.registered} in ECS, tasks {st.tasks_running}/{st.tasks_desired}")
    projected = f", ${st.projected:.2f} projected" if st.projected is not None else ""
    bar.add_row("spend", "", f"${st.per_hour:.2f}/h, ${st.so_far:.2f} so far{projected}")
    parts.append(bar)
    for p in st.problems[:5]:
        parts.append(Text(f"✗ {p.code}: {p.message}", style="red"))
        parts.append(Text(f"    fix: {p.fix}"))
    footer = f"phase {st.phase}; refreshed {st.at.astimezone():%H:%M:%S}, every {every:g} s; Ctrl-C leaves"
    if error:
        footer = f"{error} (showing the last answer) — {footer}"
    parts.append(Text(footer, style="dim"))
    return Group(*parts)


# -- requeue ------------------------------------------------------------------------------------------

_IN_HAND: dict[str, Any] = {}     # the requeue --apply in progress: what a Ctrl-C reports


def interrupted_note() -> str:
    """What requeue --apply had done when Ctrl-C came (agent/cli.py's guard prints it); "" otherwise."""
    if "moved" not in _IN_HAND:
        return ""
    from agent.status.requeue import render_moved

    moved = _IN_HAND["moved"]
    moved.interrupted = True
    return " ".join(render_moved(_IN_HAND["plan"], moved, _IN_HAND.get("region", "")).split("\n"))


def cmd_requeue(args: argparse.Namespace) -> int:
    from agent.status.requeue import Moved, apply, make_plan, render_moved, render_plan

    ctx = _context(args)
    plan = make_plan(ctx)
    if not args.apply or not plan.count:
        if args.json:
            print(json.dumps({"plan": plan.as_json()}, indent=2, ensure_ascii=False))
        else:
            print(render_plan(plan))
        return 0
    if not args.json:
        print(render_plan(plan).rsplit("\n", 1)[0])
        sys.stdout.flush()
    moved = Moved(plan.method)
    _IN_HAND.update(plan=plan, moved=moved, region=ctx.region)
    apply(ctx, plan, moved=moved)          # an AWS error is recorded in moved; Ctrl-C raises (interrupted_note)
    _IN_HAND.clear()
    if args.json:
        print(json.dumps({"plan": plan.as_json(), "applied": moved.as_json()}, indent=2, ensure_ascii=False))
    else:
        print(render_moved(plan, moved, ctx.region))
    return 0 if moved.complete else 1
