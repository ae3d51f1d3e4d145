"""``python -m bootstrap HOST…`` (what ``invoke bootstrap`` runs): make hosts DCP control nodes."""

from __future__ import annotations

import argparse
import math
import os
import re
import stat
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, NoReturn

from agent import flavours
from agent.boundary import UserError, guard
from bootstrap import runner
from bootstrap.hosts import Target, parse_host, show
from bootstrap.recipe import AWS_CLI_VERSION, DEFAULT_REPO, Options
from bootstrap.runner import Batch, HostResult, bootstrap_many

PROG = "bootstrap"
MAX_TIMEOUT = 3600.0
MAX_PARALLEL = 256


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see --help)")


def _seconds(text: str) -> float:
    """--connect-timeout: what a user types (2, 2.5, 1e1), more than 0 and at most an hour."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT):
        raise argparse.ArgumentTypeError(f"{show(text, 20)} is not a number of seconds more than 0 and at "
                                         f"most {MAX_TIMEOUT:g}")
    return value


def _count(text: str) -> int:
    """--parallel: a whole number of hosts at once."""
    if not re.fullmatch(r"\s*\+?[0-9]{1,6}\s*", text) or not 1 <= int(text) <= MAX_PARALLEL:
        raise argparse.ArgumentTypeError(f"{show(text, 20)} is not a whole number from 1 to {MAX_PARALLEL}")
    return int(text)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="invoke bootstrap", description="Turn running hosts into DCP control nodes over SSH.",
                epilog="Docs: docs/bootstrap.md (make docs builds the site)")
    p.add_argument("hosts", nargs="+", metavar="HOST", help="user@host:port, host, or an ~/.ssh/config alias")
    p.add_argument("-i", "--identity", metavar="KEY", help="SSH private key")
    p.add_argument("--dry-run", action="store_true", help="connect and list what would change; change nothing")
    p.add_argument("--project", default="cellprofiler", help="the Distributed-* project the nodes are for: "
                   + ", ".join(flavours.FLAVOURS) + " (its clone and requirements; default cellprofiler)")
    p.add_argument("--repo-url", default=None, help="the project's repository to clone (default: its GitHub URL)")
    p.add_argument("--ref", default=None, help="branch, tag or commit to check out (default: the project's "
                   "default branch: master for cellprofiler and fiji, main for something and omezarr)")
    p.add_argument("--no-s3fs", action="store_true", help="do not install s3fs")
    p.add_argument("--aws-cli-version", default=AWS_CLI_VERSION, metavar="V",
                   help=f"AWS CLI v2 bundle to install where the OS has no v2 package (default {AWS_CLI_VERSION})")
    p.add_argument("--log-dir", default="bootstrap-logs", help="one log file per host (default bootstrap-logs)")
    p.add_argument("--parallel", type=_count, default=10, help=f"hosts at once (1 to {MAX_PARALLEL}, default 10)")
    p.add_argument("--connect-timeout", type=_seconds, default=10.0, metavar="S",
                   help="seconds to wait for SSH (default 10; fractions allowed)")
    p.add_argument("--accept-new-host-keys", action="store_true",
                   help="trust hosts not yet in known_hosts and add them (like StrictHostKeyChecking=accept-new); "
                        "a changed key is always refused")
    p.add_argument("--known-hosts", default="~/.ssh/known_hosts", metavar="FILE",
                   help="known_hosts file to check host keys against (default ~/.ssh/known_hosts)")
    p.add_argument("-v", "--verbose", action="store_true", help="show the traceback of an internal error")
    return p


_FINAL = ("ok", "changed ", "would change ", "failed: ")


class PlainLines:
    """Not a terminal (CI, logs): one line per change of a host's step, as it happens."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, str] = {}

    def report(self, host: str, what: str) -> None:
        with self._lock:
            if self._last.get(host) != what:
                self._last[host] = what
                print(f"  {host}: {what}", flush=True)

    def __enter__(self) -> PlainLines:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class LiveRows:
    """A terminal: one live row per host (its current step and elapsed time, then its result), redrawn in
    place by rich."""

    def __init__(self, hosts: list[str]) -> None:
        from rich.console import Console
        from rich.live import Live

        self._lock = threading.Lock()
        self._rows: dict[str, list[Any]] = {h: ["waiting", None, None] for h in hosts}   # what, started, ended
        self._live = Live(self, console=Console(), refresh_per_second=4, transient=False)

    def report(self, host: str, what: str) -> None:
        with self._lock:
            row = self._rows.setdefault(host, ["", None, None])
            row[0] = what
            row[1] = row[1] or time.monotonic()
            if what.startswith(_FINAL) or what == "ok (nothing to change)":
                row[2] = time.monotonic()

    def __rich__(self) -> Any:
        from rich.table import Table

        table = Table(show_header=False, show_edge=False, box=None, pad_edge=False, expand=True)
        table.add_column("host", no_wrap=True, min_width=max(map(len, self._rows), default=4))
        table.add_column("time", justify="right", no_wrap=True, min_width=7)
        table.add_column("step", no_wrap=True, overflow="ellipsis", ratio=1)
        now = time.monotonic()
        with self._lock:
            for host, (what, started, ended) in self._rows.items():
                secs = "" if started is None else f"{(ended or now) - started:5.1f} s"
                style = "red" if what.startswith("failed") else ("green" if ended else "")
                table.add_row(host, secs, f"[{style}]{escape(what)}[/]" if style else escape(what))
        return table

    def __enter__(self) -> LiveRows:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.stop()


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


class _Run:
    """What an interrupted run had done, for the one line Ctrl-C prints."""

    def __init__(self) -> None:
        self.batch: Batch | None = None

    def summary(self) -> str:
        return self.batch.summary() if self.batch else "no host had been contacted"


def main(argv: list[str] | None = None) -> int:
    """``python -m bootstrap`` / ``invoke bootstrap``: the exit status (0 all hosts fine, 1 a host failed,
    2 bad input, 130 Ctrl-C, 70 a bug of ours); whatever goes wrong is one line on stderr (the boundary)."""
    args = sys.argv[1:] if argv is None else list(argv)
    options = args[: args.index("--")] if "--" in args else args
    run = _Run()
    try:
        return guard(PROG, lambda: _main(args, run), verbose=bool({"-v", "--verbose"} & set(options)),
                     interrupted=run.summary)
    except SystemExit as e:             # --help
        return e.code if isinstance(e.code, int) else 0 if e.code is None else 1


def _main(argv: list[str], run: _Run) -> int:
    args = parser().parse_args(argv)
    _check_hosts(args.hosts)
    key = _key(args.identity)
    known_hosts = _known_hosts(args.known_hosts, args.accept_new_host_keys)
    if not re.fullmatch(r"2\.[0-9]+\.[0-9]+", args.aws_cli_version):
        raise UserError(f"--aws-cli-version {show(args.aws_cli_version, 40)} is not an AWS CLI v2 version (e.g. "
                        f"{AWS_CLI_VERSION})")
    try:
        flavour = flavours.by_key(args.project)
    except KeyError:
        raise UserError(f"--project {show(args.project, 40)} is not one of {', '.join(flavours.FLAVOURS)}") from None
    if args.repo_url is None:   # not given (an empty one given is an error below)
        args.repo_url = DEFAULT_REPO if flavour.is_dcp else flavour.repo_url
    _plain("--repo-url", args.repo_url)
    if args.ref is None:
        args.ref = flavour.default_branch
    _plain("--ref", args.ref)
    log_dir = _log_dir(args.log_dir)          # last: it creates the directory
    runner.CONNECT_TIMEOUT = args.connect_timeout
    base = Options(repo_url=args.repo_url, ref=args.ref, s3fs=not args.no_s3fs, aws_cli_version=args.aws_cli_version,
                   project=flavour.key)
    print(f"bootstrap: {len(args.hosts)} host(s){' (dry run)' if args.dry_run else ''}; logs in {args.log_dir}/")
    tty = sys.stdout.isatty()
    progress = LiveRows(args.hosts) if tty else PlainLines()
    run.batch = Batch(args.hosts)
    with tempfile.TemporaryDirectory(prefix="dcp-stage-") as stage, progress:
        results = bootstrap_many(args.hosts, base, Path(stage), key=key, dry_run=args.dry_run,
                                 log_dir=log_dir, progress=progress.report, parallel=args.parallel,
                                 host_keys=runner.HostKeys(known_hosts, args.accept_new_host_keys),
                                 batch=run.batch)
    summarize(results, tty)
    return 0 if all(r.ok for r in results) else 1


def _check_hosts(hosts: list[str]) -> list[Target]:
    """Every host parsed (bootstrap.hosts) before anything connects; the same host twice is refused, and so are
    two hosts whose log files would be the same."""
    targets = []
    for h in hosts:
        try:
            targets.append(parse_host(h))
        except ValueError as e:
            raise UserError(f"host {show(h, 40)}: {e}") from None
    if len(set(hosts)) != len(hosts):
        raise UserError("a host is named twice")
    seen: dict[Target, str] = {}
    logs: dict[str, str] = {}
    for h, t in zip(hosts, targets, strict=True):
        if t in seen:
            raise UserError(f"{seen[t]} and {h} are the same host")
        log = runner.log_name(h)
        if log in logs:
            raise UserError(f"{logs[log]} and {h} would share the log file {log}; name them differently")
        seen[t], logs[log] = h, h
    return targets


def _key(identity: str | None) -> str | None:
    """-i: an existing, readable private key file (not a directory, not the .pub half)."""
    if identity is None:
        return None
    path = Path(identity).expanduser()
    try:
        st = path.stat() if identity else None
    except (FileNotFoundError, NotADirectoryError):
        st = None
    except OSError as e:
        raise UserError(f"key {_name(identity)}: {_reason(e)}") from None
    if st is None:
        raise UserError(f"key {_name(identity)} does not exist")
    if stat.S_ISDIR(st.st_mode):
        raise UserError(f"key {_name(identity)} is a directory, not a private key file")
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"key {_name(identity)} is not a regular file")
    try:
        with path.open("rb") as f:
            head = f.read(1 << 16)
    except OSError as e:
        raise UserError(f"key {_name(identity)} cannot be read: {_reason(e)}") from None
    if head.lstrip().startswith((b"ssh-", b"ecdsa-", b"sk-")) or b"BEGIN SSH2 PUBLIC KEY" in head:
        raise UserError(f"key {_name(identity)} is a public key: give the private key (-i without .pub)")
    if b"PRIVATE KEY-----" not in head and not head.startswith(b"PuTTY-User-Key-File"):
        raise UserError(f"key {_name(identity)} is not an SSH private key (no BEGIN … PRIVATE KEY line)")
    return str(path)


def _reason(e: OSError) -> str:
    return (e.strerror or type(e).__name__).lower()


def _known_hosts(given: str, accept_new: bool) -> Path:
    """--known-hosts: a readable file (or /dev/null, as with OpenSSH's UserKnownHostsFile), or a file that does
    not exist yet (then, with --accept-new-host-keys, one that can be created)."""
    if not str(given):
        raise UserError("--known-hosts is empty")
    path = Path(given).expanduser()
    try:
        st = path.stat()
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise UserError(f"--known-hosts {_name(given)}: {_reason(e)}") from None
    if st is None:
        if accept_new:
            above = _existing_ancestor(path.parent)
            if not above.is_dir():
                raise UserError(f"--known-hosts {_name(given)} is under {above}, which is not a directory")
        return path
    if stat.S_ISDIR(st.st_mode):
        raise UserError(f"--known-hosts {_name(given)} is a directory, not a known_hosts file")
    if not stat.S_ISREG(st.st_mode) and not _is_devnull(path):
        raise UserError(f"--known-hosts {_name(given)} is not a regular file (nor /dev/null)")
    try:
        runner.load_known_hosts(path)
    except OSError as e:
        raise UserError(f"--known-hosts {_name(given)} cannot be read: {_reason(e)}") from None
    if accept_new and not os.access(path, os.W_OK):
        raise UserError(f"--known-hosts {_name(given)} is not writable (--accept-new-host-keys adds keys to it)")
    return path


def _name(text: str) -> str:
    """A path as given, for a message (quoted and cut short only if it is long or unprintable)."""
    return text if text.isprintable() and 0 < len(text) <= 200 and " " not in text else show(text, 120)


def _is_devnull(path: Path) -> bool:
    try:
        return path.samefile(os.devnull)
    except OSError:
        return False


def _existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _log_dir(given: str) -> Path:
    """--log-dir: a directory this process can write in (made if missing), checked before any host is
    contacted."""
    if not given:
        raise UserError("--log-dir is empty (give a directory, e.g. --log-dir .)")
    path = Path(given).expanduser()
    try:
        if path.exists() and not path.is_dir():
            raise UserError(f"--log-dir {_name(given)} is a file, not a directory")
        above = _existing_ancestor(path)
        if not above.is_dir():
            raise UserError(f"--log-dir {_name(given)} is under {above}, which is not a directory")
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise UserError(f"--log-dir {_name(given)} is not a writable directory: {_reason(e)}") from None
    return path


def _plain(flag: str, value: str) -> None:
    """--repo-url and --ref reach git on the host: non-empty, no whitespace or control characters, no quotes,
    and not starting with '-' (git would read it as an option)."""
    if not value:
        raise UserError(f"{flag} is empty")
    if value.startswith("-"):
        raise UserError(f"{flag} {show(value, 60)} starts with '-' (git would read it as an option)")
    if any(ch.isspace() or not ch.isprintable() or ch in "\"\\" for ch in value):
        raise UserError(f"{flag} {show(value, 60)} contains whitespace, a quote or a control character")


def summarize(results: list[HostResult], tty: bool = False) -> None:
    """The result per host: a table that never wraps on a terminal (the full list is in the log), plain lines
    otherwise."""
    if not tty:
        for r in results:
            print(f"bootstrap: {r.host}: {r.line()} ({r.seconds:.1f} s; log {r.log})")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="bootstrap", show_edge=False, expand=True)
    table.add_column("host", no_wrap=True, min_width=max((len(r.host) for r in results), default=4))
    table.add_column("result", no_wrap=True, overflow="ellipsis", ratio=1)
    table.add_column("time", no_wrap=True, justify="right", min_width=7)
    table.add_column("log", no_wrap=True, overflow="ellipsis", max_width=24)
    for r in results:
        style = "red" if r.status == "failed" else "yellow" if r.changed else "green"
        table.add_row(r.host, f"[{style}]{escape(r.line())}[/]", f"{r.seconds:.1f} s", str(r.log or ""))
    Console().print(table)
