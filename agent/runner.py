"""Runs a selection of checks concurrently on one Context, in dependency order (``graphlib``).

- A check that talks to AWS starts as soon as its *local* prerequisites passed, without waiting for its AWS
  prerequisites: its reads are facts, shared with the prerequisite's, so the whole run's reads go out at
  once, level by level. Its verdict is kept only if every prerequisite passes; otherwise it is ``skip``ped
  with the reason, at the moment the prerequisite fails.
- A check's exception becomes ``error`` for that check alone; AccessDenied becomes ``warn`` "cannot
  verify: needs <action>" (an answer: this identity may not look).
- AWS not answering is no answer about the account: unreachable, refused, timed out, a 5xx or throttling
  after botocore's retries, a check still running at its timeout, or not started when the budget ran out,
  each becomes ``unknown`` with the cause as its message, and what needed it is skipped as "not checked".
  The run's verdict is then "could not check" (``RunOutcome.verdict``), never "ready".
"""

from __future__ import annotations

import re
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from graphlib import TopologicalSorter

from agent.context import BOTO_CONFIG, Context, import_aws_libraries
from agent.facts import aws
from agent.facts.core import AwsError, translate
from agent.model import UNCHECKED_PREFIX, Finding, Result, RunOutcome, Skip, Status
from agent.netcause import cause_of
from agent.redact import Redactor
from agent.registry import Check, Selection

_ACTION_RE = re.compile(r"perform:?\s+([a-z0-9-]+:[A-Za-z0-9*]+)")
BLOCKING = (Status.FAIL, Status.ERROR, Status.SKIP, Status.UNKNOWN)
# IAM action prefix -> boto3 service, in the order a run's read chains need them: the longest first (IAM),
# then the cheap SQS client (URL, then attributes), then EC2 and S3.
SERVICES = {"sts": "sts", "iam": "iam", "sqs": "sqs", "ec2": "ec2", "s3": "s3", "servicequotas": "service-quotas",
            "ecs": "ecs", "cloudwatch": "cloudwatch", "logs": "logs", "lambda": "lambda", "sns": "sns"}


def _denied_action(err: AwsError, check: Check) -> str:
    m = _ACTION_RE.search(err.message)
    if m:
        return m.group(1)
    for action in check.actions:
        if action.split(":", 1)[1].lower() == err.operation.lower():
            return action
    return f"the permission for {err.operation}" if err.operation else ", ".join(check.actions)


def judge_error(e: Exception, check: Check) -> Finding:
    """What an exception out of a check means for its verdict."""
    if isinstance(e, Skip):
        return Finding(Status.SKIP, str(e))
    cause = cause_of(e, read_timeout=BOTO_CONFIG["read_timeout"])
    if cause is not None:
        return Finding(Status.UNKNOWN, cause, "check the network to AWS and run again")
    err = translate(e)
    if err is not None:
        if err.denied:
            action = _denied_action(err, check)
            return Finding(Status.WARN, f"cannot verify: needs {action}",
                           f"grant {action} to this identity (see 'dcp-agent policy')")
        if err.code == "OptInRequired":
            return Finding(Status.FAIL, "the region is not enabled for this account",
                           "enable it in the AWS console (Account → AWS Regions), or use another region")
        if err.no_credentials:
            return Finding(Status.SKIP, f"needs valid AWS credentials and region ({err.code})")
        if err.unreachable:
            return Finding(Status.UNKNOWN, f"could not reach AWS ({err.code})", "check the network and run again")
        return Finding(Status.ERROR, f"{err.code}: {err.message}"[:300], "report this with 'dcp-agent check -v'")
    first = str(e).splitlines()[0] if str(e) else ""
    return Finding(Status.ERROR, f"{type(e).__name__}: {first}"[:300], "report this with 'dcp-agent check -v'")


def _invoke(check: Check, ctx: Context) -> Finding:
    try:
        return check.func(ctx)
    except Exception as e:
        return judge_error(e, check)


def run(selection: Selection | list[Check], ctx: Context, *, timeout: float | None = None,
        budget: float | None = None, workers: int = 48) -> RunOutcome:
    sel = selection if isinstance(selection, Selection) else Selection(list(selection))
    checks = sel.checks
    timeout = timeout or ctx.settings.check_timeout
    budget = budget or ctx.settings.budget
    redact = Redactor(ctx)
    start = time.monotonic()
    by_id = {c.id: c for c in checks}
    needs = {c.id: [d for d in c.needs if d in by_id] for c in checks}
    order = list(TopologicalSorter(needs).static_order())   # CycleError here is a registry bug
    # A check starts once its local prerequisites (transitively) passed; AWS ones may still be running.
    local_gates: dict[str, set[str]] = {}
    for cid in order:
        local_gates[cid] = set()
        for d in needs[cid]:
            local_gates[cid] |= local_gates[d] | ({d} if not by_id[d].aws else set())
    done: dict[str, Result] = {}
    held: dict[str, tuple[Finding, float]] = {}        # verdicts waiting for their prerequisites
    running: dict[Future[Finding], tuple[Check, float]] = {}
    started: set[str] = set()

    def finish(check: Check, finding: Finding, began: float) -> None:
        reason = sel.suppress.get(check.id)
        if reason and finding.status != Status.PASS:
            finding = Finding(Status.SKIP, f"suppressed: {reason}")
        done[check.id] = Result(
            id=check.id, code=check.code, title=check.title, group=check.group, severity=check.severity,
            status=finding.status, message=redact(finding.message), fix=redact(finding.fix),
            duration_ms=int((time.monotonic() - began) * 1000),
            cost_per_day=finding.cost_per_day if finding.status in (Status.WARN, Status.FAIL) else None)

    def blocker(among: list[str]) -> Result | None:
        return next((done[d] for d in among if d in done and done[d].status in BLOCKING), None)

    cause_of_skip: dict[str, Result] = {}   # a skipped check -> the check whose verdict caused it

    def skipped_for(check: Check, b: Result) -> Finding:
        """A skip that names its root cause (C04 needs C03, skipped because C01 failed: it says C01)."""
        root = cause_of_skip.get(b.id, b)
        cause_of_skip[check.id] = root
        via = f" (via {b.code})" if root is not b else ""
        if root.status == Status.UNKNOWN or b.message.startswith(UNCHECKED_PREFIX):
            return Finding(Status.SKIP, f"{UNCHECKED_PREFIX}needs {root.id} ({root.code}), which could not be "
                                        f"checked{via}")
        return Finding(Status.SKIP, f"needs {root.id} ({root.code}), which is {root.status}{via}")

    def settle(check: Check, finding: Finding, began: float) -> None:
        """Keep a verdict once every prerequisite passed; skip it as soon as one did not."""
        b = blocker(needs[check.id])
        if b is not None:
            finish(check, skipped_for(check, b), time.monotonic())
        elif all(d in done for d in needs[check.id]):
            finish(check, finding, began)
        else:
            held[check.id] = (finding, began)

    services = {a.split(":", 1)[0] for c in checks for a in c.actions}
    if services:
        import_aws_libraries()             # before the threads below: see its docstring
        ctx.facts.prefetch(aws.identity)   # the first read: most AWS reads and verdicts depend on it
        ctx.warm_clients([SERVICES[p] for p in SERVICES if p in services])
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="check")
    try:
        while len(done) < len(checks):
            progressed = True
            while progressed:   # skips cascade in dependency order; held verdicts land when they can
                progressed = False
                for cid in order:
                    if cid in done:
                        continue
                    b = blocker(needs[cid])
                    if b is not None:
                        held.pop(cid, None)
                        started.add(cid)   # a running speculative read is abandoned, its verdict ignored
                        finish(by_id[cid], skipped_for(by_id[cid], b), time.monotonic())
                        progressed = True
                    elif cid in held and all(d in done for d in needs[cid]):
                        finish(by_id[cid], *held.pop(cid))
                        progressed = True
            for cid in order:   # start what may: its local prerequisites passed
                if cid in started or cid in done or not all(g in done for g in local_gates[cid]):
                    continue
                started.add(cid)
                if time.monotonic() - start > budget:
                    settle(by_id[cid], Finding(Status.UNKNOWN, f"not run: the {budget:g} s budget was used up",
                                               "raise 'budget' in the settings or run with --only"),
                           time.monotonic())
                else:
                    running[pool.submit(_invoke, by_id[cid], ctx)] = (by_id[cid], time.monotonic())
            live = {f: v for f, v in running.items() if v[0].id not in done}
            running.clear()
            running.update(live)
            if len(done) == len(checks):
                break
            if not running:
                if any(cid not in started for cid in order) or any(
                        blocker(needs[cid]) or all(d in done for d in needs[cid]) for cid in held):
                    continue
                raise RuntimeError(f"checks left waiting: {sorted(set(order) - set(done))}")  # a registry bug
            now = time.monotonic()
            nearest = min(began + timeout for _, began in running.values())
            finished, _ = wait(list(running), timeout=max(0.0, nearest - now), return_when=FIRST_COMPLETED)
            for fut in finished:
                check, began = running.pop(fut)
                if check.id not in done:
                    settle(check, fut.result(), began)
            now = time.monotonic()
            for fut, (check, began) in list(running.items()):
                if now - began >= timeout:
                    running.pop(fut)
                    if check.id not in done:
                        settle(check, Finding(Status.UNKNOWN, f"no answer from {ctx.endpoint_for(check)} in {timeout:g} s",
                                              "check the network to AWS, or raise 'check_timeout'"), began)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    position = {c.id: i for i, c in enumerate(checks)}
    results = sorted(done.values(), key=lambda r: position[r.id])
    outcome = RunOutcome(results, int((time.monotonic() - start) * 1000))
    outcome.project = ctx.recognised.as_dict()   # whose rules judged the run: the report, --json and login say it
    return outcome
