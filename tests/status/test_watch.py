"""``dcp-agent status --watch`` as a user sees it: a live view in a real terminal (tmux: start it, read the screen,
Ctrl-C), and one plain line per refresh into a pipe. Both leave on Ctrl-C within 2 s, exit 0, no traceback."""

from __future__ import annotations

import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rig.dcprun import seed_run
from rig.seed import APP_NAME, DcpAccount

AGENT = Path(sys.executable).parent / "dcp-agent"
EVERY = "2"     # --watch's shortest period: two refreshes are seen in a few seconds


def _until(what: str, probe: Callable[[], str], pred: Callable[[str], bool], timeout: float = 30.0) -> str:
    end = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < end:
        seen = probe()
        if pred(seen):
            return seen
        time.sleep(0.1)
    raise AssertionError(f"{what} not seen in {timeout:.0f} s; last screen:\n{seen}")


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """A tmux server of its own (socket in tmp_path), 110 × 30; yields tmux(*args) -> stdout."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    sock = str(tmp_path / "tmux.sock")

    def run(*args: str) -> str:
        return subprocess.run(["tmux", "-S", sock, *args], capture_output=True, text=True, check=False,
                              timeout=10).stdout

    yield run
    run("kill-server")


def test_watch_in_a_terminal_shows_the_run_and_leaves_on_ctrl_c(run_account: DcpAccount,
                                                                  tmux: Callable[..., str]) -> None:
    acct = run_account
    run = seed_run(acct, 12)
    env = {**acct.env(), "TERM": "xterm-256color", "LANG": "C.UTF-8"}
    for name in ("NO_COLOR", "COLUMNS", "LINES"):   # the terminal's own size, not the test runner's
        env.pop(name, None)
    argv = [str(AGENT), "status", "--watch", EVERY, "--settings", str(acct.settings), "--job", str(run["job_file"])]
    # `env -i` so the pane's process sees exactly the account's environment, not the tmux server's.
    shell = (f"env -i {' '.join(shlex.quote(f'{k}={v}') for k, v in env.items())} {shlex.join(argv)}; "
             f"echo EXITED $?; sleep 60")
    tmux("new-session", "-d", "-s", "w", "-x", "110", "-y", "30", shell)

    def screen() -> str:
        return tmux("capture-pane", "-p", "-t", "w")

    first = _until("the live view", screen, lambda s: "Ctrl-C leaves" in s and "refreshed" in s)
    assert f"{APP_NAME}: 0 / 12 jobs" in first, first                       # the one-line summary first
    assert re.search(r"jobs\s.*0 done, 0 in progress, 12 waiting, 0 failed", first), first   # the bar's row
    assert re.search(r"workers\s.*2 of 2 running, 0 in ECS, tasks 2/2", first), first
    assert re.search(r"spend\s.*\$\d+\.\d\d/h, \$\d+\.\d\d so far", first), first
    assert "phase fleet starting" in first and "Traceback" not in first
    stamp = re.search(r"refreshed (\d\d:\d\d:\d\d)", first)
    assert stamp is not None
    # It refreshes in place: a later stamp, the summary still once on the screen (no scrolling copies).
    later = _until("a second refresh", screen,
                   lambda s: (m := re.search(r"refreshed (\d\d:\d\d:\d\d)", s)) is not None and m[1] != stamp[1])
    assert later.count(f"{APP_NAME}: 0 / 12 jobs") == 1, later

    tmux("send-keys", "-t", "w", "C-c")
    start = time.monotonic()
    left = _until("the exit after Ctrl-C", screen, lambda s: "EXITED" in s, timeout=5)
    took = time.monotonic() - start
    assert "EXITED 0" in left and "Traceback" not in left, left
    assert took <= 2.0, f"Ctrl-C took {took:.1f} s to leave"


def test_watch_into_a_pipe_prints_one_plain_line_per_refresh(run_account: DcpAccount) -> None:
    acct = run_account
    run = seed_run(acct, 12)
    env = dict(acct.env())
    proc = subprocess.Popen([str(AGENT), "status", "--watch", EVERY, "--settings", str(acct.settings),
                             "--job", str(run["job_file"])], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        proc.send_signal(signal.SIGINT)
        start = time.monotonic()
        code = proc.wait(timeout=5)
        took = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read() if proc.stderr else ""
    for line in lines:
        assert re.fullmatch(rf"\d\d:\d\d:\d\d {re.escape(APP_NAME)}: 0 / 12 jobs .*; phase fleet starting; 0 problem\(s\)\n",
                            line), lines
        assert "\x1b[" not in line                                   # no terminal codes into a pipe
    assert code == 0 and took <= 2.0, (code, took)
    assert "Traceback" not in err, err
