"""What the login hook shows, and the background refresh behind it.

The hook (``agent/data/dcp-agent.sh``, installed as /etc/profile.d/dcp-agent.sh) only ``cat``s the
cached summary and, when it is older than the TTL, starts ``dcp-agent login --refresh`` detached under a
hard timeout. Everything slow happens here, off the login path: one refresh per user at a time (an
flock), the cache written atomically with mode 0600 in the user's own cache directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import threading
import time
from pathlib import Path

from agent.boundary import UserError
from agent.cachefiles import write_private
from agent.model import Result, RunOutcome, Severity, Status
from agent.settings import Settings, SettingsError, cache_dir, load

SUMMARY = "login.txt"
GOOD = "good.txt"     # the summary of the last run that saw everything it checked
FULL = "last.json"
TTL_FILE = "ttl"
LOCK = "refresh.lock"
MAX_LINES = 3


def _short(text: str, width: int = 110) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def summarize(results: list[Result], who: str = "DCP") -> str:
    """A few lines: the verdict (for ``who``: DCP, or the sibling the checks judged by); first whatever costs
    money right now (its cost a day and the command that stops it, never cut short); then the most important
    problems with their fixes; where to look next."""
    costly = sorted((r for r in results if r.cost_per_day is not None and r.status in (Status.WARN, Status.FAIL)),
                    key=lambda r: -(r.cost_per_day or 0.0))
    fails = [r for r in results if r.status in (Status.FAIL, Status.ERROR) and r not in costly]
    warns = [r for r in results if r.status == Status.WARN and r.severity != Severity.LOW and r not in costly]
    problems = len(fails) + sum(1 for r in costly if r.status == Status.FAIL)
    cautions = len(warns) + sum(1 for r in costly if r.status == Status.WARN)
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime())
    if not problems and not cautions:
        passed = sum(1 for r in results if r.status == Status.PASS)
        return f"✓ ready for {who} ({passed} checks passed, {when})\n"
    head = (f"✗ {who} is not ready: {problems} problem{'s' * (problems != 1)}" if problems
            else f"! ready for {who}, with")
    if cautions:
        head += f"{',' if problems else ''} {cautions} warning{'s' * (cautions != 1)}"
    if costly:
        head += f"; costing ${sum(r.cost_per_day or 0.0 for r in costly):.2f}/day now"
    lines = [f"{head} ({when})"]
    for r in costly:
        lines.append(f"  $ {r.code} {r.message} — stop: {r.fix}")
    for r in (fails + warns)[:MAX_LINES]:
        mark = "✗" if r in fails else "!"
        lines.append(_short(f"  {mark} {r.code} {r.message}"))
        if r.fix:
            lines.append(_short(f"      fix: {r.fix}"))
    more = len(fails) + len(warns) - MAX_LINES
    lines.append(f"  {'and ' + str(more) + ' more; ' if more > 0 else ''}details: dcp-agent check")
    return "\n".join(lines) + "\n"


def unchecked_summary(outcome: RunOutcome, good: Path) -> str:
    """A run that could not reach AWS says so first, then the last result that saw everything, with its time."""
    try:
        last = good.read_bytes().decode("utf-8", errors="replace").splitlines()
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(good.stat().st_mtime))
    except OSError:
        last, when = [], ""
    head = f"? could not reach AWS: {outcome.cause}"
    if not last:
        return _short(f"{head}; no earlier result", 220) + "\n  details: dcp-agent check\n"
    return "\n".join([_short(f"{head} — last good result from {when}:", 220), *(f"  {line}" for line in last)]) + "\n"


SHELL_TIMEOUT = 5.0
_MARK = b"\0dcp-agent-env\0"
ADOPTED = ("AWS_", "PATH")   # what the checks read from the environment: AWS's variables and the tool path


def shell_env(timeout: float = SHELL_TIMEOUT) -> dict[str, str] | None:
    """The environment the user's login shell ends up with, after /etc/profile, ~/.profile, ~/.bashrc …

    The hook starts the refresh from /etc/profile.d, before the user's own files run, so a profile exported
    in ~/.bashrc (C02's own advice) is not in the refresh's environment. This asks a login shell (interactive,
    as at an SSH login; without a terminal, so the hook itself stays silent, and with DCP_AGENT_LOGIN=off)
    for its environment after everything ran. Whatever the files print comes before the marker. None when
    the shell fails, hangs or replaces itself (exec): then the environment stays as it is."""
    import pwd
    import subprocess

    try:
        shell = pwd.getpwuid(os.getuid()).pw_shell or os.environ.get("SHELL") or "/bin/sh"
    except KeyError:
        shell = os.environ.get("SHELL") or "/bin/sh"
    if not os.path.isabs(shell) or not os.access(shell, os.X_OK) or shell.endswith(("nologin", "/false")):
        return None
    try:
        p = subprocess.Popen([shell, "-l", "-i", "-c", "printf '\\0dcp-agent-env\\0'; env -0"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             env={**os.environ, "DCP_AGENT_LOGIN": "off"}, start_new_session=True)
    except OSError:
        return None
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        import signal

        with contextlib.suppress(OSError):
            os.killpg(p.pid, signal.SIGKILL)   # the shell's own session: whatever its files started, too
        p.communicate()
        return None
    at = out.rfind(_MARK)
    if p.returncode != 0 or at < 0:
        return None
    env: dict[str, str] = {}
    for entry in out[at + len(_MARK):].split(b"\0"):
        name, eq, value = entry.partition(b"=")
        if eq and name:
            env[name.decode(errors="replace")] = value.decode(errors="replace")
    return env


def adopt_shell_env(env: dict[str, str] | None) -> None:
    """Take over the AWS variables and PATH of the user's final shell environment (set, changed or unset)."""
    if env is None:
        return
    for name in [n for n in os.environ if n.startswith(ADOPTED)]:
        if name not in env:
            del os.environ[name]
    for name, value in env.items():
        if name.startswith(ADOPTED):
            os.environ[name] = value


def refresh() -> int:
    """Run the checks and rewrite the cache; returns at once if another refresh holds the lock. The checks
    see the environment the user's shell ends up with (see shell_env)."""
    from agent.context import Context
    from agent.registry import select
    from agent.report import as_json, project_name
    from agent.runner import run

    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not directory.is_dir() or not os.access(directory, os.W_OK | os.X_OK):
            raise PermissionError
        lock = open(directory / LOCK, "a")  # noqa: SIM115 - held for the whole refresh
    except OSError as e:
        reason = (e.strerror or "permission denied").lower()
        raise UserError(f"cannot write the login cache {directory} ({reason}): fix its ownership or set "
                        "XDG_CACHE_HOME to a directory of yours") from None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0  # another refresh is running for this user
        adopt_shell_env(shell_env())
        try:
            s = load()
            selection = select(s)   # the same selection as 'dcp-agent check': enables and suppressions alike
        except (SettingsError, ValueError) as e:
            write_private(directory / SUMMARY, f"! dcp-agent: {e}\n")
            return 1
        # A run in progress comes first: read beside the checks, in a thread of its own; never fails the refresh.
        found: list[str] = []
        beside = threading.Thread(target=lambda: found.append(_run_status(s)), daemon=True, name="run-status")
        beside.start()
        budget = max(5.0, s.login_timeout - 10)
        started = time.monotonic()
        outcome = run(selection, Context(s), budget=budget)
        beside.join(max(0.0, budget - (time.monotonic() - started)))
        status = found[0] if found else ""
        write_private(directory / FULL, as_json(outcome) + "\n")
        if outcome.unchecked:   # AWS was not seen: say so first, with the last result that saw everything
            write_private(directory / SUMMARY, status + unchecked_summary(outcome, directory / GOOD))
        else:
            text = summarize(outcome.results, project_name(outcome))
            write_private(directory / SUMMARY, status + text)
            write_private(directory / GOOD, text)
        write_private(directory / TTL_FILE, f"{s.login_ttl}\n")
    return outcome.exit_status


def _run_status(s: Settings) -> str:
    """The lines of the current DCP run, when one is in progress (``dcp-agent status``, its sample added to the
    user's cache): its progress line, then its problems. Empty when there is none, or when it could not be read
    (the checks below say why): a login summary never fails because of it."""
    from agent.context import Context
    from agent.status import samples
    from agent.status.cli import login_lines
    from agent.status.compute import compute, names

    try:
        ctx = Context(s)
        app = names(ctx).app
        history = samples.load(app)
        st = compute(ctx, history)
        history.last = st.as_json()
        samples.save(app, history)
        return "".join(_short(line, 160) + "\n" for line in login_lines(st))
    except Exception:   # whatever it is, the readiness lines still come
        return ""


def show() -> int:
    """Print the cached summary (what the hook prints), with its age when stale."""
    path = cache_dir() / SUMMARY
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")   # a damaged cache is shown, never raised
        age = time.time() - path.stat().st_mtime
    except OSError:
        print("dcp-agent: no result yet; run 'dcp-agent login --refresh' or 'dcp-agent check'")
        return 0
    sys.stdout.write(text)
    try:
        ttl = int((cache_dir() / TTL_FILE).read_text().strip())
    except (OSError, ValueError):
        ttl = 600
    if age > ttl:
        print(f"  (this result is {int(age // 60)} min old)")
    return 0
