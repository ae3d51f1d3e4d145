"""Runs checks concurrently on one Context: per-check timeout, a budget for the run, dependencies.

A check's exception becomes ``error`` for that check alone; AccessDenied becomes ``warn`` "cannot
verify: needs <action>"; a check whose prerequisite failed, errored or was skipped is skipped with the
reason; a check still running at its timeout becomes ``warn`` "could not verify in N s".
"""

from __future__ import annotations

import re
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from agent.context import Context
from agent.model import Finding, Result, Skip, Status
from agent.redact import Redactor
from agent.registry import Check

_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError",
           "Forbidden", "UnauthorizedAccess", "AccessDeniedForDependency"}
_ACTION_RE = re.compile(r"perform:?\s+([a-z0-9-]+:[A-Za-z0-9*]+)")
_NO_CREDS = ("NoCredentialsError", "PartialCredentialsError", "ProfileNotFound", "NoRegionError", "ConfigParseError")


@dataclass
class RunOutcome:
    results: list[Result]
    duration_ms: int

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def ok(self) -> bool:
        return not any(r.status in (Status.FAIL, Status.ERROR) for r in self.results)


def _denied_action(exc: BaseException, check: Check) -> str | None:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    err = response.get("Error", {})
    code = str(err.get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code not in _DENIED and not (code == "403" and status == 403):
        return None
    m = _ACTION_RE.search(str(err.get("Message", "")))
    if m:
        return m.group(1)
    op = getattr(exc, "operation_name", "")
    for action in check.actions:
        if action.split(":", 1)[1].lower() == str(op).lower():
            return action
    return f"the permission for {op}" if op else ", ".join(check.actions)


def _invoke(check: Check, ctx: Context) -> Finding:
    try:
        return check.func(ctx)
    except Skip as s:
        return Finding(Status.SKIP, str(s))
    except Exception as e:
        action = _denied_action(e, check)
        if action:
            return Finding(Status.WARN, f"cannot verify: needs {action}",
                           f"grant {action} to this identity (see 'dcp-agent policy')")
        name = type(e).__name__
        if getattr(e, "response", {}).get("Error", {}).get("Code") == "OptInRequired":
            return Finding(Status.FAIL, "the region is not enabled for this account",
                           "enable it in the AWS console (Account → AWS Regions), or use another region")
        if name in _NO_CREDS:
            return Finding(Status.SKIP, f"needs valid AWS credentials and region ({name})")
        if name in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError",
                    "ConnectionClosedError"):
            return Finding(Status.WARN, f"could not reach AWS: {e}", "check the network and retry")
        first = str(e).splitlines()[0] if str(e) else ""
        return Finding(Status.ERROR, f"{name}: {first}"[:300], "report this with 'dcp-agent check -v'")


def run(checks: list[Check], ctx: Context, *, timeout: float | None = None, budget: float | None = None,
        workers: int = 16) -> RunOutcome:
    timeout = timeout or ctx.settings.check_timeout
    budget = budget or ctx.settings.budget
    redact = Redactor(ctx)
    start = time.monotonic()
    selected = {c.id: c for c in checks}
    done: dict[str, Result] = {}
    pending = list(checks)
    running: dict[Future[Finding], tuple[Check, float]] = {}

    def finish(check: Check, finding: Finding, began: float) -> None:
        suppressed = ctx.settings.suppress.get(check.id)
        if suppressed and finding.status != Status.PASS:
            finding = Finding(Status.SKIP, f"suppressed: {suppressed}")
        done[check.id] = Result(
            id=check.id, code=check.code, title=check.title, group=check.group, severity=check.severity,
            status=finding.status, message=redact(finding.message), fix=redact(finding.fix),
            duration_ms=int((time.monotonic() - began) * 1000))

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="check")
    try:
        while pending or running:
            progressed = False
            for check in list(pending):
                deps = [d for d in check.needs if d in selected]
                if any(d not in done for d in deps):
                    continue
                pending.remove(check)
                progressed = True
                blocked = [done[d] for d in deps if done[d].status in (Status.FAIL, Status.ERROR, Status.SKIP)]
                if blocked:
                    b = blocked[0]
                    finish(check, Finding(Status.SKIP, f"needs {b.id} ({b.code}), which is {b.status}"),
                           time.monotonic())
                    continue
                if time.monotonic() - start > budget:
                    finish(check, Finding(Status.WARN, f"not run: the {budget:.0f} s budget was used up",
                                          "raise 'budget' in the settings or run with --only"),
                           time.monotonic())
                    continue
                running[pool.submit(_invoke, check, ctx)] = (check, time.monotonic())
            if progressed and not running:
                continue
            if not running:
                break
            now = time.monotonic()
            nearest = min(began + timeout for _, began in running.values())
            finished, _ = wait(list(running), timeout=max(0.0, min(nearest, start + budget + timeout) - now),
                               return_when=FIRST_COMPLETED)
            for fut in finished:
                check, began = running.pop(fut)
                finish(check, fut.result(), began)
            now = time.monotonic()
            for fut, (check, began) in list(running.items()):
                if now - began >= timeout:
                    running.pop(fut)
                    finish(check, Finding(Status.WARN, f"could not verify in {timeout:.0f} s",
                                          "check the network to AWS, or raise 'check_timeout'"), began)
        # Checks whose prerequisites were not selected still run; nothing is left pending.
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    order = {c.id: i for i, c in enumerate(checks)}
    results = sorted(done.values(), key=lambda r: order[r.id])
    return RunOutcome(results, int((time.monotonic() - start) * 1000))
