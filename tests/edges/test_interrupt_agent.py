"""Ctrl-C stops dcp-agent within 2 s and says what was done: during a check that waits on AWS, and during
`fix --apply`, which then lists exactly the changes made and those not started (the next plan is no surprise)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from rig.badnet import SilentListener
from rig.proxy import LatencyProxy
from rig.seed import OPERATOR_IP, DcpAccount

AGENT = str(Path(sys.executable).parent / "dcp-agent")


def _interrupt_when(p: subprocess.Popen[str], marker: str, delay: float, timeout: float = 90) -> tuple[str, float]:
    """Read stdout until ``marker`` appears, wait ``delay``, send SIGINT; (all stdout, seconds to exit)."""
    out: list[str] = []
    seen = threading.Event()

    def pump() -> None:
        assert p.stdout is not None
        for line in p.stdout:
            out.append(line)
            if marker in line:
                seen.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    assert seen.wait(timeout), "".join(out)[-2000:]
    time.sleep(delay)
    sent = time.monotonic()
    p.send_signal(signal.SIGINT)
    p.wait(timeout=30)
    took = time.monotonic() - sent
    reader.join(timeout=5)
    return "".join(out), took


def test_ctrl_c_during_apply_lists_what_was_made(empty_account: DcpAccount, tmp_path: Path) -> None:
    with LatencyProxy(empty_account.endpoint, latency_s=0.25) as proxy:
        env = {**empty_account.env(), "AWS_ENDPOINT_URL": proxy.endpoint, "PYTHONUNBUFFERED": "1"}
        cmd = [AGENT, "fix", "--ssh-cidr", f"{OPERATOR_IP}/32"]
        p = subprocess.Popen([*cmd, "--apply", "--yes"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env, stdin=subprocess.DEVNULL)
        out, took = _interrupt_when(p, "Plan: ", delay=0.6)
        err = p.stderr.read() if p.stderr else ""
        counts = re.search(r"Plan: (\d+) to create, (\d+) to modify", out)
        assert counts, out
        planned = int(counts.group(1)) + int(counts.group(2))
        assert took <= 2.0, f"{took:.2f} s after Ctrl-C"
        assert p.returncode == 130, err
        assert "Traceback" not in out + err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("dcp-agent: interrupted: "), err
        m = re.search(r"(\d+) of (\d+) changes made, (\d+) in flight, (\d+) not started", lines[0])
        assert m, lines[0]
        made, total, in_flight, not_started = map(int, m.groups())
        print(f"Ctrl-C after {took:.2f} s: {made} made, {in_flight} in flight, {not_started} not started of {total}")
        assert total == planned and 0 < made < total and made + in_flight + not_started <= total
        assert out.count("\n  done          ") == made
        assert out.count("\n  not started   ") == not_started
        again = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=120)
    left = re.search(r"Plan: (\d+) to create, (\d+) to modify", again.stdout)
    assert left, again.stdout + again.stderr
    # What the next plan holds is what the interrupted one did not finish (a step of a half-made lane may
    # reappear as its lane's remaining steps): never more than was left, never nothing when something was.
    remaining = int(left.group(1)) + int(left.group(2))
    assert 0 < remaining <= total - made


def test_ctrl_c_while_waiting_on_aws(account: DcpAccount) -> None:
    with SilentListener() as silent:
        env = {**account.env(), "AWS_ENDPOINT_URL": silent.url, "PYTHONUNBUFFERED": "1"}
        env.pop("AWS_ENDPOINT_URL_SERVICE_QUOTAS", None)
        p = subprocess.Popen([AGENT, "check"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                             stdin=subprocess.DEVNULL)
        time.sleep(2.0)   # the checks are waiting on the silent endpoint by now
        sent = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
        took = time.monotonic() - sent
    assert took <= 2.0, f"{took:.2f} s after Ctrl-C"
    assert p.returncode == 130 and "Traceback" not in out + err
    assert err.strip().splitlines() == ["dcp-agent: interrupted"], err
    assert os.environ.get("AWS_ENDPOINT_URL") != silent.url
