"""The machinery behind facts: a named read, cached per run by (fact, arguments), safe under concurrent
checks, and one translation of botocore's errors into :class:`AwsError`.

This is pyinfra's facts/operations split and prowler's gather-once services applied to a preflight run:
a check never reads anything itself; it asks a fact, and every check that asks the same fact with the
same arguments during one run shares one read. Tests replace a fact by reference
(``ctx.facts.override(facts.ec2.images, fn)``), never by a string key.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar

if TYPE_CHECKING:
    from agent.context import Context

P = ParamSpec("P")
R = TypeVar("R")

DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError",
                    "Forbidden", "UnauthorizedAccess", "AccessDeniedForDependency"})
UNREACHABLE = frozenset({"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError",
                         "ConnectionClosedError", "ProxyConnectionError", "SSLError"})
NO_CREDENTIALS = frozenset({"NoCredentialsError", "PartialCredentialsError", "ProfileNotFound", "NoRegionError",
                            "ConfigParseError", "InvalidConfigError", "CredentialRetrievalError",
                            "SSOTokenLoadError", "UnauthorizedSSOTokenError", "TokenRetrievalError"})


class AwsError(Exception):
    """Any failed AWS read, in one shape: the error code (AWS's, or botocore's exception name when the
    request never got an answer), the HTTP status when there was one, and the operation."""

    def __init__(self, code: str, message: str = "", *, status: int | None = None, operation: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.status = status
        self.operation = operation

    @property
    def denied(self) -> bool:
        return self.code in DENIED or (self.code == "403" and self.status == 403)

    @property
    def unreachable(self) -> bool:
        return self.code in UNREACHABLE

    @property
    def no_credentials(self) -> bool:
        return self.code in NO_CREDENTIALS


def translate(exc: BaseException) -> AwsError | None:
    """botocore's exceptions as AwsError; None for anything that is not botocore's."""
    if isinstance(exc, AwsError):
        return exc
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        err = response.get("Error") or {}
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        return AwsError(str(err.get("Code", "") or status or "Unknown"), str(err.get("Message", "") or ""),
                        status=int(status) if isinstance(status, int) else None,
                        operation=str(getattr(exc, "operation_name", "") or ""))
    module = type(exc).__module__ or ""
    if module.startswith(("botocore", "boto3")):
        first = str(exc).splitlines()[0] if str(exc) else ""
        return AwsError(type(exc).__name__, first)
    return None


def code_of(exc: BaseException) -> str:
    """The AWS error code of any exception ("" when it is not an AWS error)."""
    err = translate(exc)
    return err.code if err is not None else ""


class Fact(Generic[P, R]):
    """A named read. Call it as ``fact(ctx, *args)``: the first call in a run reads, later ones share it."""

    def __init__(self, fn: Callable[Concatenate[Context, P], R], actions: tuple[str, ...]) -> None:
        self.fn = fn
        self.actions = actions
        self.name = f"{fn.__module__.rsplit('.', 1)[-1]}.{fn.__name__}"
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__

    def __call__(self, ctx: Context, *args: P.args, **kwargs: P.kwargs) -> R:
        return ctx.facts.get(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<fact {self.name}>"


FACTS: list[Fact[Any, Any]] = []


def fact(*actions: str) -> Callable[[Callable[Concatenate[Context, P], R]], Fact[P, R]]:
    """Declare a fact and the IAM actions its read needs (the shipped policy must grant them)."""

    def wrap(fn: Callable[Concatenate[Context, P], R]) -> Fact[P, R]:
        f = Fact(fn, tuple(actions))
        FACTS.append(f)
        return f

    return wrap


class FactCache:
    """One run's answers. Concurrent askers of the same (fact, arguments) wait for the first one's read;
    a read that raised raises the same error for every asker."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._lock = threading.Lock()
        self._answers: dict[tuple[Any, ...], Future[Any]] = {}
        self._overrides: dict[Fact[Any, Any], Callable[..., Any]] = {}
        self.missing_apis: set[str] = set()   # APIs the endpoint turned out not to offer (or to refuse us)

    def override(self, f: Fact[P, R], fn: Callable[Concatenate[Context, P], R]) -> None:
        """Answer ``f`` with ``fn`` for this run (tests: states the emulator cannot produce)."""
        self._overrides[f] = fn

    def prefetch(self, f: Fact[P, R], *args: Any) -> None:
        """Start reading ``f(*args)`` now, in the background; a later call shares the answer (or error).

        A thread of its own per read: a bounded pool could deadlock when a prefetched read waits on another."""
        with self._lock:
            if (f, args, ()) in self._answers:
                return
        threading.Thread(target=self._quietly, args=(f, args), daemon=True, name=f"prefetch-{f.name}").start()

    def _quietly(self, f: Fact[Any, Any], args: tuple[Any, ...]) -> None:
        with contextlib.suppress(Exception):   # the asker gets the error, not this thread
            self.get(f, args, {})

    def get(self, f: Fact[Any, R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        key = (f, args, tuple(sorted(kwargs.items())))
        with self._lock:
            fut = self._answers.get(key)
            owner = fut is None
            if fut is None:
                fut = self._answers[key] = Future()
        if owner:
            fn = self._overrides.get(f, f.fn)
            try:
                fut.set_result(fn(self._ctx, *args, **kwargs))
            except Exception as e:
                aws = translate(e)
                fut.set_exception(aws if aws is not None else e)
                if aws is not None and aws is not e:
                    aws.__cause__ = e
        return fut.result()


def gather(calls: Iterable[Callable[[], R]]) -> list[R]:
    """Run independent reads side by side and return their answers in order (the first error raises).

    A small pool of its own per call: a shared pool could deadlock when a gathered read gathers again."""
    todo = list(calls)
    if len(todo) <= 1:
        return [c() for c in todo]
    with ThreadPoolExecutor(max_workers=min(16, len(todo)), thread_name_prefix="fact") as pool:
        futures = [pool.submit(c) for c in todo]
        return [f.result() for f in futures]
