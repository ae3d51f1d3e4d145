"""Compute a plan from the current state, and apply it.

The checks run first, on the same fact cache: their results say what is wrong (and become the
needs-a-human steps where no planner can cure it), and their reads are shared with the planners. A step
fails on its own: the steps after it that need the same resource are skipped, the others still run.
"""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agent import inputs
from agent.facts import aws, quotas
from agent.facts.core import AwsError, translate
from agent.fix import awsconfig, iam, network, storage
from agent.fix.plan import Kind, Plan, Step
from agent.model import Result, RunOutcome, Severity, Status
from agent.registry import select
from agent.runner import run

if TYPE_CHECKING:
    from agent.context import Context
    from agent.settings import Settings

# A check that still fails or warns at or above this severity, with no planned step for it, is listed for a person.
HUMAN_SEVERITIES = (Severity.BLOCKER, Severity.HIGH)
_QUOTA_CMD = re.compile(r"--quota-code (L-[0-9A-F]+) --desired-value (\d+)")


@dataclass
class Options:
    ssh_cidr: str | None = None
    request_quota: bool = False


@dataclass
class Applied:
    done: list[Step] = field(default_factory=list)
    failed: list[tuple[Step, str]] = field(default_factory=list)
    skipped: list[Step] = field(default_factory=list)
    running: list[Step] = field(default_factory=list)   # sent, not yet answered (while apply runs)


def _usable(outcome: RunOutcome, ctx: Context) -> list[str]:
    """Problems that make any change unsafe to plan: no identity, or no region to make it in."""
    problems = []
    i01 = next((r for r in outcome.results if r.code == "I01"), None)
    if i01 is not None and i01.status in (Status.FAIL, Status.ERROR, Status.SKIP):
        problems.append(f"{i01.message} ({i01.fix})" if i01.fix else f"no usable AWS credentials: {i01.message}")
    region = ctx.config.get("AWS_REGION")
    try:
        inputs.region(region, where="config.py's AWS_REGION")
    except ValueError as e:
        problems.append(f"{e} (in {ctx.config_path})")
        return problems
    if region not in aws.known_regions(ctx):
        problems.append(f"config.py's AWS_REGION {region!r} is not a region AWS has: fix it in {ctx.config_path}")
    return problems


def _quota_steps(results: list[Result], options: Options, ctx: Context) -> list[Step]:
    z01 = next((r for r in results if r.code == "Z01" and r.status in (Status.FAIL, Status.WARN)), None)
    if z01 is None or not options.request_quota:
        return []
    steps = []
    # Z01's fix is the AWS CLI command for the increase; its two arguments are what the API call takes.
    for code, value in _QUOTA_CMD.findall(z01.fix):
        if any(v >= float(value) for v in quotas.open_requests(ctx, code)):
            continue   # an open request for at least this much exists: filing again would only duplicate it

        def request(ctx: Context, code: str = code, value: str = value) -> None:
            ctx.client("service-quotas").request_service_quota_increase(
                ServiceCode="ec2", QuotaCode=code, DesiredValue=float(value))

        steps.append(Step(("Z01",), f"service-quota ec2/{code}", Kind.CREATE,
                          f"request an increase to {value} vCPUs (AWS decides; it may take days)",
                          ("servicequotas:RequestServiceQuotaIncrease",), request))
    return steps


def _human(results: list[Result], covered: set[str]) -> list[Step]:
    steps = []
    for r in results:
        if r.code in covered or r.status in (Status.PASS, Status.SKIP):
            continue
        if r.status == Status.WARN and r.severity not in HUMAN_SEVERITIES:
            continue
        what = f"{r.message} → {r.fix}" if r.fix else r.message
        steps.append(Step((r.code,), r.title, Kind.HUMAN, what))
    return steps


def make_plan(settings: Settings, ctx: Context, options: Options) -> tuple[Plan, RunOutcome]:
    outcome = run(select(settings), ctx)
    results = outcome.results
    plan = Plan(problems=_usable(outcome, ctx))   # bad input first: a region AWS lacks also answers nothing
    if plan.problems or outcome.unchecked:
        return plan, outcome   # no plan on what was not seen: the caller says why
    failing = {r.code for r in results if r.status in (Status.FAIL, Status.WARN, Status.ERROR)}
    cidr = network.operator_cidr(options.ssh_cidr, settings.ssh_cidr)
    steps: list[Step] = []
    steps += awsconfig.plan(ctx, plan.problems)
    steps += iam.plan(ctx)
    steps += storage.plan_bucket(ctx, failing)
    steps += storage.plan_queue(ctx, failing)
    steps += network.plan_ssh(ctx, cidr, failing)
    steps += network.plan_key(ctx, plan.problems)
    steps += _quota_steps(results, options, ctx)
    if ctx.fleet is None or (ctx.fleet.error and not (ctx.fleet.path and ctx.fleet.path.exists())):
        where = ctx.fleet.path if ctx.fleet and ctx.fleet.path else "a fleet file"
        steps.append(Step(("F01",), f"file {where}", Kind.HUMAN,
                          "there is no fleet file: write one for this account with 'dcp-agent fleet' once this "
                          "plan is applied (it uses the roles, group and key pair above)"))
    covered = {c for s in steps for c in s.codes}
    plan.steps = steps + _human(results, covered)
    return plan, outcome


def apply(plan: Plan, ctx: Context, *, workers: int = 8, state: Applied | None = None,
          stop: threading.Event | None = None) -> Applied:
    """Run the plan's changes: the steps of one lane in order, lanes side by side (a role and its instance
    profile are one lane; so are a bucket and its policy, a group and its rule). A failed step skips the later
    steps of its lane and those on the same resource.

    ``state`` is filled in as steps finish, so that whoever catches a Ctrl-C can say what was done; once
    ``stop`` is set no further step starts (a step already sent to AWS is let finish: it may have happened)."""
    lanes: dict[str, list[Step]] = {}
    for step in plan.changes:
        lanes.setdefault(step.queue, []).append(step)
    aws.identity(ctx)   # the same identity the plan was made with (cached)
    total = state if state is not None else Applied()
    halt = stop or threading.Event()
    lock = threading.Lock()

    def run_lane(steps: list[Step]) -> None:
        broken: set[str] = set()
        for step in steps:
            if halt.is_set():
                return
            if step.resource in broken or (step.after and step.after in broken) or (broken and step.lane):
                with lock:
                    total.skipped.append(step)
                continue
            assert step.run is not None
            with lock:
                total.running.append(step)
            try:
                step.run(ctx)
            except Exception as e:
                err = translate(e)
                why = f"{err.code}: {err.message}" if isinstance(err, AwsError) and err.message else (
                    err.code if isinstance(err, AwsError) else f"{type(e).__name__}: {e}")
                with lock:
                    total.running.remove(step)
                    total.failed.append((step, why))
                broken.add(step.resource)
                continue
            with lock:
                total.running.remove(step)
                total.done.append(step)

    # Not a with-block: its exit would wait for every lane even after Ctrl-C.
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fix")
    try:
        for fut in [pool.submit(run_lane, lane) for lane in lanes.values()]:
            fut.result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    order = {id(s): i for i, s in enumerate(plan.changes)}
    total.done.sort(key=lambda s: order[id(s)])
    total.failed.sort(key=lambda f: order[id(f[0])])
    total.skipped.sort(key=lambda s: order[id(s)])
    return total


def settle(state: Applied, timeout: float) -> None:
    """Wait up to ``timeout`` seconds for the steps in flight to finish (after a stop)."""
    deadline = time.monotonic() + timeout
    while state.running and time.monotonic() < deadline:
        time.sleep(0.05)
