"""``python -m bootstrap HOST…`` (what ``invoke bootstrap`` runs): make hosts DCP control nodes."""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, NoReturn

from bootstrap import runner
from bootstrap.recipe import AWS_CLI_VERSION, DEFAULT_REPO, Options
from bootstrap.runner import HostResult, bootstrap_many


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"bootstrap: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="invoke bootstrap", description="Turn running hosts into DCP control nodes over SSH.")
    p.add_argument("hosts", nargs="+", metavar="HOST", help="user@host:port, host, or an ~/.ssh/config alias")
    p.add_argument("-i", "--identity", metavar="KEY", help="SSH private key")
    p.add_argument("--dry-run", action="store_true", help="connect and list what would change; change nothing")
    p.add_argument("--repo-url", default=DEFAULT_REPO, help="Distributed-CellProfiler repository to clone")
    p.add_argument("--ref", default="master", help="branch, tag or commit to check out")
    p.add_argument("--no-s3fs", action="store_true", help="do not install s3fs")
    p.add_argument("--aws-cli-version", default=AWS_CLI_VERSION, metavar="V",
                   help=f"AWS CLI v2 bundle to install where the OS has no v2 package (default {AWS_CLI_VERSION})")
    p.add_argument("--log-dir", type=Path, default=Path("bootstrap-logs"), help="one log file per host")
    p.add_argument("--parallel", type=int, default=10, help="hosts at once")
    p.add_argument("--connect-timeout", type=float, default=10, help="seconds to wait for SSH (default 10)")
    p.add_argument("--accept-new-host-keys", action="store_true",
                   help="trust hosts not yet in known_hosts and add them (like StrictHostKeyChecking=accept-new); "
                        "a changed key is always refused")
    p.add_argument("--known-hosts", type=Path, default=Path("~/.ssh/known_hosts"), metavar="FILE",
                   help="known_hosts file to check host keys against (default ~/.ssh/known_hosts)")
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


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.identity and not Path(args.identity).expanduser().is_file():
        print(f"bootstrap: key {args.identity} does not exist", file=sys.stderr)
        return 2
    if len(set(args.hosts)) != len(args.hosts):
        print("bootstrap: a host is named twice", file=sys.stderr)
        return 2
    if args.connect_timeout <= 0 or args.parallel < 1:
        print("bootstrap: --connect-timeout and --parallel must be positive", file=sys.stderr)
        return 2
    runner.CONNECT_TIMEOUT = args.connect_timeout
    if not re.fullmatch(r"2\.\d+\.\d+", args.aws_cli_version):
        print(f"bootstrap: --aws-cli-version {args.aws_cli_version!r} is not an AWS CLI v2 version (e.g. "
              f"{AWS_CLI_VERSION})", file=sys.stderr)
        return 2
    base = Options(repo_url=args.repo_url, ref=args.ref, s3fs=not args.no_s3fs, aws_cli_version=args.aws_cli_version)
    key = str(Path(args.identity).expanduser()) if args.identity else None
    print(f"bootstrap: {len(args.hosts)} host(s){' (dry run)' if args.dry_run else ''}; logs in {args.log_dir}/")
    tty = sys.stdout.isatty()
    progress = LiveRows(args.hosts) if tty else PlainLines()
    with tempfile.TemporaryDirectory(prefix="dcp-stage-") as stage, progress:
        results = bootstrap_many(args.hosts, base, Path(stage), key=key, dry_run=args.dry_run,
                                 log_dir=args.log_dir, progress=progress.report,
                                 parallel=args.parallel,
                                 host_keys=runner.HostKeys(args.known_hosts.expanduser(), args.accept_new_host_keys))
    summarize(results, tty)
    return 0 if all(r.ok for r in results) else 1


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
