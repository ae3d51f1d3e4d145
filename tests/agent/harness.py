"""Run the agent in-process against a seeded account, and build local stand-ins for tools on PATH."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import Any

from agent import settings as settings_mod
from agent.context import Context
from agent.facts import Fact
from agent.model import Result
from agent.registry import select
from agent.runner import run
from rig.seed import DcpAccount

BASE_TOOLS = ("sh", "bash", "env", "cat", "du", "python3", "uname", "head")


Overrides = dict[Fact[Any, Any], Any]   # fact -> a function answering it for this run


def run_agent(account: DcpAccount, only: list[str] | None = None, *, job: Path | None = None,
              inject: Overrides | None = None) -> dict[str, Result]:
    """Run ``only`` (with what they need) or the default selection, exactly as ``dcp-agent check`` selects;
    results keyed by catalogue code. ``inject`` answers facts moto cannot (see the cases that use it)."""
    s = settings_mod.load(account.settings)
    ctx = Context(s, job=job)
    for f, fn in (inject or {}).items():
        ctx.facts.override(f, fn)
    outcome = run(select(s, only=only or None), ctx, timeout=20, budget=60)
    return {r.code: r for r in outcome.results}


def tool_path(tmp: Path, fakes: dict[str, str] | None = None, *, keep: tuple[str, ...] = ()) -> str:
    """A PATH holding only the base tools, ``keep`` (real ones) and ``fakes`` (name -> sh script body)."""
    bindir = tmp / "bin"
    bindir.mkdir(exist_ok=True)
    for name in (*BASE_TOOLS, *keep):
        real = shutil.which(name)
        if real and not (bindir / name).exists():
            (bindir / name).symlink_to(real)
    for name, body in (fakes or {}).items():
        script = bindir / name
        if script.exists() or script.is_symlink():
            script.unlink()
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(bindir)



def set_path(monkeypatch: Any, path: str) -> None:
    monkeypatch.setenv("PATH", path)
    os.environ["PATH"] = path
