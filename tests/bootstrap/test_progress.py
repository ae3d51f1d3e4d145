"""What a person sees from `invoke bootstrap`: on a terminal, one live row per host redrawn in place (rich),
then a result table that never wraps; elsewhere plain lines. Runs the real command (a --dry-run) in a pty."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest

from rig.nodes import run_bootstrap
from rig.ports import free_port
from rig.sandbox import Sandbox
from tests.conftest import ROOT

pytestmark = pytest.mark.sandbox


def in_pty(args: list[str], columns: int = 80) -> str:
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": str(columns), "LINES": "24", "TERM": "xterm"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, cwd=ROOT, env=env)
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            proc.kill()
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=30)
    os.close(master)
    return out.decode(errors="replace")


def test_terminal_gets_live_rows_and_a_table_that_does_not_wrap(sandbox: Sandbox, sandbox_key: Path,
                                                               tmp_path: Path) -> None:
    dead = f"root@127.0.0.1:{free_port()}"
    out = in_pty([sys.executable, "-m", "bootstrap", sandbox.target(), dead, "-i", str(sandbox_key), "--dry-run",
                  "--known-hosts", str(tmp_path / "kh"), "--accept-new-host-keys", "--log-dir", str(tmp_path / "logs")])
    assert "Traceback" not in out
    assert "\x1b[" in out                                   # redrawn in place (cursor movement), not appended
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)
    assert "connecting" in text and re.search(r"\d+\.\d s", text)        # a row's step and its elapsed time
    assert f"  {sandbox.target()}: " not in text            # no plain progress lines on a terminal
    # The result table: one line per host however long the list of changes (…), none wider than the terminal.
    rows = [ln for ln in text.splitlines() if ln.lstrip().startswith((sandbox.target(), dead))
            and ("would change" in ln or "failed" in ln)]
    assert any("would change 7" in ln and "…" in ln for ln in rows), text[-3000:]
    assert all(len(ln) <= 80 for ln in text.splitlines()[-8:])


def test_not_a_terminal_gets_plain_lines(sandbox: Sandbox, sandbox_key: Path, tmp_path: Path) -> None:
    p = run_bootstrap(sandbox.target(), "-i", str(sandbox_key), "--dry-run", "--log-dir", str(tmp_path / "logs"))
    assert p.returncode == 0, p.stdout
    assert "\x1b[" not in p.stdout
    assert f"  {sandbox.target()}: connecting" in p.stdout
    assert f"bootstrap: {sandbox.target()}: would change 7: packages, dcp-clone" in p.stdout
