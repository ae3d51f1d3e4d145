"""One error boundary for every entry point: ``dcp-agent``, each Invoke task and ``python -m bootstrap``.

Whatever escapes a command becomes one line on stderr that says what went wrong and what to do:

- :class:`UserError` (bad input, a refused plan): its message, exit 2 (or its own code);
- an AWS endpoint that could not be reached or kept failing: what happened, named once (exit 3);
- Ctrl-C: "interrupted" and what the command had done (exit 130);
- a closed stdout (``| head``) that reached the boundary: nothing more, exit 0 (a command with a verdict,
  as ``dcp-agent check``, catches it itself and keeps the verdict's status);
- anything else: "internal error", with the traceback kept in a log file the line names (and printed
  with ``-v`` / ``DCP_DEBUG=1``), exit 70.

Each one is one mechanism here; the commands only raise.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

EXIT_USAGE = 2
EXIT_UNCHECKED = 3      # could not reach AWS (dcp-agent check: "could not check")
EXIT_INTERNAL = 70      # sysexits' EX_SOFTWARE: a bug of ours, traceback in the log
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """Bad input or a state the user must change: the message is the whole answer, one line."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def one_line(text: str, limit: int = 400) -> str:
    """``text`` on one line, at most ``limit`` characters (a 5,000-character name is not echoed whole)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def tolerant_streams() -> None:
    """Never fail on a stdout whose encoding cannot show ✓ or a name in Unicode (LANG=C on old systems,
    PYTHONIOENCODING=latin-1): unencodable characters are replaced, not raised."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError, OSError):
            stream.reconfigure(errors="replace")  # type: ignore[union-attr]


def quiet_stdout() -> None:
    """After a closed pipe: point stdout at /dev/null so the interpreter's final flush cannot raise again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def log_dir() -> Path:
    """Where tracebacks go: the agent's cache directory, else a private directory under /tmp."""
    base = os.environ.get("XDG_CACHE_HOME") or (str(Path.home() / ".cache") if os.environ.get("HOME") else "")
    candidates = [Path(base) / "dcp-agent" / "errors"] if base else []
    candidates.append(Path(tempfile.gettempdir()) / f"dcp-agent-errors-{os.getuid()}")
    for d in candidates:
        with contextlib.suppress(OSError):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
            if d.is_dir() and not d.is_symlink() and os.access(d, os.W_OK | os.X_OK):
                return d
    raise OSError("no writable directory for the error log")


def keep_traceback(prog: str, exc: BaseException) -> Path | None:
    """Write the traceback (credentials scrubbed) to a new file of mode 0600; its path, or None."""
    from agent.redact import scrub

    text = "".join(traceback.format_exception(exc))
    try:
        d = log_dir()
        name = f"{prog.replace(' ', '-')}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        path = d / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as f:
            f.write(f"{' '.join(sys.argv)}\n{scrub(text)}")
        return path
    except OSError:
        return None


def explain(exc: BaseException) -> tuple[str, int] | None:
    """A known failure as (one line, exit status); None when it is a bug."""
    from agent.facts.core import translate
    from agent.netcause import cause_of

    if isinstance(exc, UserError):
        return one_line(str(exc)), exc.code
    from agent.context import BOTO_CONFIG

    cause = cause_of(exc, read_timeout=BOTO_CONFIG["read_timeout"])
    if cause is not None:
        return f"could not reach AWS: {cause}", EXIT_UNCHECKED
    err = translate(exc)
    if err is not None and err.no_credentials:
        return one_line(f"no usable AWS credentials or region ({err.code}: {err.message}); run 'aws configure' "
                        "or set AWS_PROFILE"), EXIT_USAGE
    if err is not None and err.status is not None:   # an answer from AWS that no step expected (AccessDenied …)
        return one_line(f"AWS answered {err.code} to {err.operation or 'a request'}: {err.message}"), EXIT_USAGE
    if isinstance(exc, PermissionError | FileNotFoundError | IsADirectoryError | NotADirectoryError):
        what = exc.filename if getattr(exc, "filename", None) else ""
        reason = (exc.strerror or type(exc).__name__).lower()
        return one_line(f"cannot use {what}: {reason}" if what else reason), EXIT_USAGE
    return None


def describe(prog: str, exc: Exception, *, verbose: bool = False) -> tuple[str, int]:
    """The one line (credentials scrubbed, without the ``prog:`` prefix) and the exit status for ``exc``; a
    bug's traceback is kept in a log file the line names (and printed when ``verbose``)."""
    from agent.redact import scrub

    known = explain(exc)
    if known is not None:
        if verbose and not isinstance(exc, UserError):   # bad input has no traceback worth showing
            traceback.print_exception(exc, file=sys.stderr)
        return scrub(known[0]), known[1]
    path = keep_traceback(prog, exc)
    where = f"the traceback is in {path}" if path else "no log could be written"
    first = one_line(str(exc), 200)
    if verbose:
        traceback.print_exception(exc, file=sys.stderr)
    return scrub(f"internal error: {type(exc).__name__}{': ' + first if first else ''} ({where}; "
                 "please report it)"), EXIT_INTERNAL


def quiet_threads(prog: str, verbose: bool = False) -> None:
    """A worker thread's uncaught exception goes to the error log, not onto the terminal (its caller sees
    its effect: a read that never answered, a step that failed); with ``verbose`` it is printed as well."""
    import threading

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None or isinstance(args.exc_value, SystemExit):
            return
        keep_traceback(f"{prog}-thread", args.exc_value)
        if verbose:
            traceback.print_exception(args.exc_value, file=sys.stderr)

    threading.excepthook = hook


def guard(prog: str, fn: Callable[[], int], *, verbose: bool = False,
          interrupted: Callable[[], str] | None = None) -> int:
    """Run ``fn`` and turn anything it raises into one line on stderr and an exit status.

    ``interrupted`` says, on Ctrl-C, what had been done by then (fix lists its changes)."""
    tolerant_streams()
    verbose = verbose or os.environ.get("DCP_DEBUG") == "1"
    quiet_threads(prog, verbose)
    try:
        return fn()
    except KeyboardInterrupt:
        said = ""
        with contextlib.suppress(Exception):
            said = interrupted() if interrupted else ""
        _say(prog, f"interrupted{'; ' + said if said else ''}")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        quiet_stdout()
        return 0
    except SystemExit:
        raise
    except Exception as e:
        line, code = describe(prog, e, verbose=verbose)
        _say(prog, line)
        return code


def _say(prog: str, line: str) -> None:
    """One line on stderr, with anything shaped like a credential scrubbed (an exception's text may hold one)."""
    from agent.redact import scrub

    with contextlib.suppress(OSError, ValueError):
        print(f"{prog}: {scrub(line)}", file=sys.stderr, flush=True)
