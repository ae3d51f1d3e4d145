"""Invoke tasks: ``invoke --list`` shows them. See the README for what each does."""

from __future__ import annotations

import sys

from invoke import Context, task


@task
def demo(c: Context) -> None:
    """The whole flow against a local AWS emulator and a sandbox host (what `make demo` runs)."""
    c.run(f"{sys.executable} -m tests.rig.demo", pty=sys.stdout.isatty())
