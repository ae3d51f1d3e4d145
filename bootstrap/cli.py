"""``python -m bootstrap HOST…`` (what ``invoke bootstrap`` runs): make hosts DCP control nodes."""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

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


def _reporter(stream_is_tty: bool) -> Callable[[str, str], None]:
    lock = threading.Lock()
    last: dict[str, str] = {}

    def report(host: str, what: str) -> None:
        with lock:
            if last.get(host) != what:
                last[host] = what
                print(f"  {host}: {what}", flush=True)

    return report


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
    with tempfile.TemporaryDirectory(prefix="dcp-stage-") as stage:
        results = bootstrap_many(args.hosts, base, Path(stage), key=key, dry_run=args.dry_run,
                                 log_dir=args.log_dir, progress=_reporter(sys.stdout.isatty()),
                                 parallel=args.parallel,
                                 host_keys=runner.HostKeys(args.known_hosts.expanduser(), args.accept_new_host_keys))
    summarize(results)
    return 0 if all(r.ok for r in results) else 1


def summarize(results: list[HostResult]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="bootstrap", show_edge=False)
    for col in ("host", "result", "time", "log"):
        table.add_column(col)
    for r in results:
        style = "red" if r.status == "failed" else "yellow" if r.changed else "green"
        table.add_row(r.host, f"[{style}]{r.line()}[/]", f"{r.seconds:.1f} s", str(r.log or ""))
    Console(soft_wrap=True).print(table)
