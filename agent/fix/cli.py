"""``dcp-agent fix``: show the plan; with --apply, make it (asking once on a terminal), then check again."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading

from agent.boundary import EXIT_INTERRUPTED, EXIT_UNCHECKED, UserError
from agent.context import Context
from agent.fix.plan import Kind, Plan, Step
from agent.fix.planner import Applied, Options, apply, make_plan, settle
from agent.model import RunOutcome, Status, Verdict
from agent.registry import select
from agent.runner import run
from agent.settings import Settings

MARK = {Kind.CREATE: "+", Kind.MODIFY: "~", Kind.HUMAN: "?"}


def _line(step: Step) -> str:
    actions = f"  [{', '.join(step.actions)}]" if step.actions else ""
    return f"  {MARK[step.kind]} {'/'.join(step.codes):<7} {step.resource}: {step.kind}: {step.change}{actions}"


def render_plan(plan: Plan) -> str:
    lines = [_line(s) for s in plan.changes] + [_line(s) for s in plan.human]
    creates = sum(1 for s in plan.changes if s.kind == Kind.CREATE)
    modifies = len(plan.changes) - creates
    lines.append(f"Plan: {creates} to create, {modifies} to modify, {len(plan.human)} for a person "
                 "(nothing is ever deleted).")
    return "\n".join(lines)


def _confirm(count: int) -> bool:
    sys.stdout.write(f"Apply these {count} changes? [y/N] ")
    sys.stdout.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _recheck(settings: Settings, ctx: Context, applied: Applied) -> RunOutcome | None:
    codes = sorted({c for s in applied.done for c in s.codes})
    if not codes:
        return None
    fresh = Context(settings, config=ctx.config_path, fleet=ctx.fleet.path if ctx.fleet else None)
    outcome = run(select(settings, only=codes), fresh)
    # Only the cured checks: what they needed (e.g. a fleet file not written yet) is the plan's business.
    return RunOutcome([r for r in outcome.results if r.code in codes], outcome.duration_ms)


def _interrupted(plan: Plan, state: Applied) -> UserError:
    """Ctrl-C during an apply: exactly which changes were made, which were in flight, which never started."""
    settle(state, timeout=1.5)
    started = {id(s) for s in state.done} | {id(s) for s, _ in state.failed} | {id(s) for s in state.skipped}
    in_flight = list(state.running)
    not_started = [s for s in plan.changes if id(s) not in started and s not in in_flight]
    for s in state.done:
        print(f"  done          {s.resource}: {s.change}")
    for s, why in state.failed:
        print(f"  FAILED        {s.resource}: {s.change}: {why}")
    for s in in_flight:
        print(f"  unknown       {s.resource}: {s.change} (sent to AWS, no answer yet)")
    for s in not_started:
        print(f"  not started   {s.resource}: {s.change}")
    sys.stdout.flush()
    return UserError(f"interrupted: {len(state.done)} of {len(plan.changes)} changes made, "
                     f"{len(in_flight)} in flight, {len(not_started)} not started (listed above); "
                     "'dcp-agent fix' plans what is left", code=EXIT_INTERRUPTED)


def run_fix(args: argparse.Namespace, settings: Settings, ctx: Context) -> int:
    plan, seen = make_plan(settings, ctx, Options(ssh_cidr=args.ssh_cidr, request_quota=args.request_quota))
    if seen.unchecked and not plan.problems:
        # A plan built on what could not be read would create what exists or miss what is broken.
        raise UserError(f"could not check the account ({seen.cause}), so there is no plan: nothing was changed; "
                        "run again when AWS answers", code=EXIT_UNCHECKED)
    if plan.problems:
        for p in plan.problems:
            print(f"dcp-agent: {p}", file=sys.stderr)
        print("dcp-agent: nothing was changed", file=sys.stderr)
        return 2
    if not args.apply:
        if args.json:
            print(json.dumps({"plan": plan.as_json()}, indent=2, ensure_ascii=False))
        else:
            print(render_plan(plan) if plan.steps else "Nothing to change: every check fix can cure passes.")
        return 0
    if not plan.changes:
        msg = "No changes: everything fix can do is done" + (
            f"; {len(plan.human)} steps need a person:" if plan.human else ".")
        if args.json:
            print(json.dumps({"plan": plan.as_json(), "applied": [], "failed": []}, indent=2, ensure_ascii=False))
        else:
            print("\n".join([msg, *(_line(s) for s in plan.human)]))
        return 0
    if not args.json:
        print(render_plan(plan))
    if not args.yes:
        if not (sys.stdin.isatty() and sys.stdout.isatty()) or os.environ.get("CI"):
            print("dcp-agent: not a terminal: pass --yes to apply without asking (nothing was changed)",
                  file=sys.stderr)
            return 2
        if not _confirm(len(plan.changes)):
            print("Nothing was changed.")
            return 0
    state, stop = Applied(), threading.Event()
    try:
        applied = apply(plan, ctx, state=state, stop=stop)
    except KeyboardInterrupt:
        stop.set()
        raise _interrupted(plan, state) from None
    after = _recheck(settings, ctx, applied)
    if args.json:
        print(json.dumps({"plan": plan.as_json(), "applied": [s.as_json() for s in applied.done],
                          "failed": [dict(s.as_json(), error=why) for s, why in applied.failed],
                          "skipped": [s.as_json() for s in applied.skipped],
                          "checks": [r.as_json() for r in after.results] if after else []},
                         indent=2, ensure_ascii=False))
    else:
        for s in applied.done:
            print(f"  done    {s.resource}: {s.change}")
        for s, why in applied.failed:
            print(f"  FAILED  {s.resource}: {s.change}: {why}")
        for s in applied.skipped:
            print(f"  skipped {s.resource}: {s.change} (an earlier step on it failed)")
        print(f"Applied {len(applied.done)} of {len(plan.changes)} changes"
              + (f", {len(applied.failed)} failed" if applied.failed else "") + ".")
        if after:
            from agent.report import render

            print("Checks of what changed:")
            render(after)
    cured = {c for st in applied.done for c in st.codes}
    still = [r for r in (after.results if after else []) if r.code in cured and r.status in (Status.FAIL, Status.ERROR)]
    if not applied.failed and not still and after is not None and after.verdict == Verdict.COULD_NOT_CHECK:
        print(f"dcp-agent: the changes were made, but checking them again failed: {after.cause}", file=sys.stderr)
        return EXIT_UNCHECKED
    return 0 if not applied.failed and not still else 1
