"""One home for the AWS clients of the Invoke tasks (build-ami, cleanup-build, launch-node, list-nodes,
stop-node, terminate-node) and for how they wait.

- Every client has the agent's timeouts and retries (``agent.context.BOTO_CONFIG``: connect 3 s, read 5 s,
  botocore's standard retry mode, which backs off on throttling, 3 attempts), so one call gives up after at
  most :data:`CALL_BOUND` seconds instead of botocore's default minutes.
- A failure that says nothing about the account (no connection, no answer in time, HTTP 5xx or throttling
  after the retries) is named as such (:func:`unreachable`), never as "your credentials do not work".
- On a terminal, a call or a wait that takes more than :data:`SAY_AFTER` seconds says in one line what it
  waits for (:func:`waiting`); nothing is printed when stdout is not a terminal.
- What a task has changed so far is kept (:func:`did`), so that Ctrl-C can say it (:func:`done_so_far`).
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import Any

from agent import inputs
from agent.boundary import EXIT_UNCHECKED, UserError
from agent.context import BOTO_CONFIG
from agent.netcause import cause_of

CONNECT_TIMEOUT = float(BOTO_CONFIG["connect_timeout"])
READ_TIMEOUT = float(BOTO_CONFIG["read_timeout"])
_RETRIES: dict[str, Any] = dict(BOTO_CONFIG["retries"])
# Tries of one call: "total_max_attempts" counts them all; botocore reads "max_attempts" as retries after the
# first; with neither, standard mode makes 3.
ATTEMPTS = int(_RETRIES.get("total_max_attempts") or
               (int(_RETRIES["max_attempts"]) + 1 if "max_attempts" in _RETRIES else 3))
# botocore's standard mode waits rand(0, 1) * min(2 ** i, 20) s before retry i+1 (1 s scale on throttling,
# 0.05 s otherwise); a call gives up after at most this many seconds.
BACKOFF_BOUND = sum(min(2.0 ** i, 20.0) for i in range(ATTEMPTS - 1))
CALL_BOUND = ATTEMPTS * (CONNECT_TIMEOUT + READ_TIMEOUT) + BACKOFF_BOUND
SAY_AFTER = 2.0                                             # seconds before a wait says what it waits for

_prog = "dcp"
_done: list[str] = []
_state = threading.local()


# -- clients ------------------------------------------------------------------------------------------------

def config(**extra: Any) -> Any:
    """botocore's Config for every task's client (the agent's numbers, plus ``extra``)."""
    from botocore.config import Config

    return Config(**{**BOTO_CONFIG, **extra})


def session() -> Any:
    """A boto3 session of the normal AWS configuration (env, ~/.aws, the profile) as it is now: a task makes
    two or three clients, and a caller that changes the environment (a test) gets what it set."""
    import boto3

    return boto3.Session()


def client(service: str, region: str, endpoint: str = "") -> Any:
    """A boto3 client with the bounded timeouts and retries; on a terminal its slow calls say so."""
    c = session().client(service, region_name=region, endpoint_url=endpoint or None, config=config())
    where = str(c.meta.endpoint_url or "")

    def started(model: Any = None, context: Any = None, **_: Any) -> None:
        _call_started(where, model, context)

    c.meta.events.register("before-call", started)
    c.meta.events.register("after-call", _call_ended)
    c.meta.events.register("after-call-error", _call_ended)
    return c


def every(client: Any, operation: str, key: str, **params: Any) -> list[Any]:
    """Every item of a list or Describe call, over all its pages (botocore's paginator): AWS pages where moto
    need not."""
    return [item for page in client.get_paginator(operation).paginate(**params) for item in page[key]]


def default_region() -> str:
    """The region of the normal AWS configuration (AWS_REGION, AWS_DEFAULT_REGION, the profile), or ""."""
    return str(session().region_name or "")


def waiter_config(timeout: float, poll: float) -> dict[str, int]:
    """A boto3 waiter's WaiterConfig that gives up after about ``timeout`` seconds."""
    delay = max(int(poll), 1)
    return {"Delay": delay, "MaxAttempts": max(int(timeout // delay), 1)}


# -- inputs -------------------------------------------------------------------------------------------------

def region(given: str, error: type[UserError] = UserError) -> str:
    """``--region`` (or the AWS configuration's region) as a valid region name; one line (``error``) if not."""
    value = given or default_region()
    where = "--region" if given else "the AWS configuration's region"
    try:
        return inputs.region(value, where=where) if value else inputs.region(value)   # none: NO_REGION's words
    except ValueError as e:
        raise error(str(e)) from None


def endpoint(text: str, flag: str = "--endpoint", error: type[UserError] = UserError) -> str:
    """``--endpoint`` by agent.inputs' rule: empty (AWS itself), or http(s)://host[:port]; one line if not."""
    try:
        return inputs.endpoint_url(text, name=flag)
    except ValueError as e:
        raise error(str(e)) from None


# -- failures -----------------------------------------------------------------------------------------------

def unreachable(exc: BaseException) -> str | None:
    """One line when ``exc`` means AWS could not be reached or kept failing (not an answer about the account)."""
    return cause_of(exc, read_timeout=READ_TIMEOUT)


def raise_unanswered(exc: BaseException, after: str = "", *, credentials: bool = True) -> None:
    """Raise one line for ``exc`` if it is no answer about the account: AWS could not be reached or kept
    failing (exit 3), or (``credentials``) there are no usable credentials (exit 2, agent.boundary's words).
    ``after`` is added to it (e.g. what exists already)."""
    from agent.boundary import explain
    from agent.facts.core import translate

    more = f" ({after})" if after else ""
    cause = unreachable(exc)
    if cause is not None:
        raise UserError(f"could not reach AWS: {cause}{more}", code=EXIT_UNCHECKED) from None
    err = translate(exc)
    if credentials and err is not None and err.no_credentials:
        known = explain(exc)
        if known is not None:
            raise UserError(f"{known[0]}{more}", code=known[1]) from None


# -- what a task did (for Ctrl-C) ---------------------------------------------------------------------------

def begin(prog: str) -> None:
    """A task starts: its name for the waiting lines, nothing done yet."""
    global _prog
    _prog = prog
    _done.clear()


def did(what: str) -> None:
    """Something the task changed (or started that goes on without it), in a few words."""
    _done.append(what)


def done_so_far() -> str:
    return "; ".join(_done) if _done else "nothing was changed"


# -- saying what a wait waits for ---------------------------------------------------------------------------

def _tty() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError, OSError):
        return False


class Wait:
    """After SAY_AFTER seconds (on a terminal only), one line: ``<task>: waiting for <what>``. A wait inside
    another wait (a call inside a wait loop) says nothing of its own."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._timer: threading.Timer | None = None
        self._outer = False

    def start(self) -> Wait:
        depth = getattr(_state, "depth", 0)
        _state.depth = depth + 1
        if depth == 0 and _tty():
            self._outer = True
            self._timer = threading.Timer(SAY_AFTER, self._say)
            self._timer.daemon = True
            self._timer.start()
        return self

    def stop(self) -> None:
        _state.depth = max(getattr(_state, "depth", 1) - 1, 0)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _say(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            print(f"{_prog}: waiting for {self.what}…", flush=True)


@contextlib.contextmanager
def waiting(what: str) -> Iterator[None]:
    w = Wait(what).start()
    try:
        yield
    finally:
        w.stop()


def end() -> None:
    """A task ends (however): no wait says anything any more."""
    _state.depth = 0


def _call_started(where: str, model: Any, context: Any) -> None:
    if not isinstance(context, dict) or model is None:
        return
    service = model.service_model.service_id
    wait = Wait(f"{service} {model.name}{' at ' + where if where else ''} (gives up after {CALL_BOUND:.0f} s)")
    context["dcp_wait"] = wait.start()


def _call_ended(context: Any = None, **_: Any) -> None:
    wait = context.pop("dcp_wait", None) if isinstance(context, dict) else None
    if isinstance(wait, Wait):
        wait.stop()
