"""Invoke tasks: ``invoke --list`` shows them. See the README for what each does."""

from __future__ import annotations

import shlex
import sys

from invoke import Context, task


@task
def demo(c: Context) -> None:
    """The whole flow against a local AWS emulator and a sandbox host (what `make demo` runs)."""
    c.run(f"{sys.executable} -m tests.rig.demo", pty=sys.stdout.isatty())


@task(help={
    "hosts": "one or more hosts, comma- or space-separated: user@host:port, host, or ~/.ssh/config aliases",
    "identity": "SSH private key (-i)", "dry_run": "connect, read state and list what would change",
    "repo_url": "Distributed-CellProfiler repository to clone", "ref": "branch, tag or commit",
    "no_s3fs": "do not install s3fs", "log_dir": "one log file per host (default bootstrap-logs/)",
    "connect_timeout": "seconds to wait for SSH (default 10)",
})
def bootstrap(c: Context, hosts: str, identity: str = "", dry_run: bool = False, repo_url: str = "",  # noqa: PLR0917
              ref: str = "", no_s3fs: bool = False, log_dir: str = "", connect_timeout: float = 0) -> None:
    """Turn running hosts into DCP control nodes over SSH (the same recipe as build-ami)."""
    args = hosts.replace(",", " ").split()
    for flag, value in (("-i", identity), ("--repo-url", repo_url), ("--ref", ref), ("--log-dir", log_dir)):
        if value:
            args += [flag, value]
    if connect_timeout:
        args += ["--connect-timeout", str(connect_timeout)]
    if dry_run:
        args.append("--dry-run")
    if no_s3fs:
        args.append("--no-s3fs")
    c.run(f"{sys.executable} -m bootstrap {' '.join(shlex.quote(a) for a in args)}", pty=sys.stdout.isatty())
