"""Benchmark: what one `dcp-agent status` refresh costs (not a timed test).

A healthy seeded account with a run in progress (rig/dcprun.seed_run: 200 jobs, a fleet of 2, and the rig worker
having done part of them: successes, failures of three causes in the dead-letter queue, SlowDown and s3fs lines),
every AWS request through rig/proxy.LatencyProxy (which records them) in front of the fleet-history stand-in in
front of moto. For each run: the requests one refresh sends (by action), its wall with 0 ms and with 50 ms added to
every request, and N = (wall at 50 ms − wall at 0 ms) / 50 ms: the round trips the latency adds (requests sent
side by side count once). Targets (issue 22): ≤ 25 requests, ≤ 6 round trips.

Everything runs on 127.0.0.1. Usage: .venv/bin/python -m bench.status_refresh [--runs 5]
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._common import machine
from rig.dcprun import seed_run
from rig.dcpworker import DcpWorker
from rig.fleethistory import FleetHistoryStandIn, Record
from rig.moto_server import MotoServer
from rig.proxy import LatencyProxy
from rig.seed import APP_NAME, seed_healthy_account

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
RTT = 0.05


def once(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if p.returncode not in (0, 1):
        raise SystemExit(f"{cmd} exited {p.returncode}: {p.stderr[-600:]}")
    return wall


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "agent")], check=True)
    with tempfile.TemporaryDirectory() as tmp, MotoServer() as moto, FleetHistoryStandIn(moto.endpoint) as standin, \
            LatencyProxy(standin.endpoint) as proxy:
        acct = seed_healthy_account(moto.endpoint, Path(tmp) / "home", account_id="123456789012")
        run = seed_run(acct, 200, retries=2)
        g = run["groups"]
        worker = DcpWorker(acct.client, APP_NAME, run["queue_url"], APP_NAME, acct.bucket, {
            g[0]: "empty-image-set", g[1]: "metadata-mismatch", g[2]: "job-groups-syntax", g[3]: "slowdown",
            g[4]: "s3fs"})
        worker.register("dcp-cluster", run["instances"])
        worker.take(60)
        standin.record(run["fleet_id"], Record("error", "allLaunchSpecsTemporarilyBlacklisted", "no capacity"))
        env = {**acct.env(), "AWS_ENDPOINT_URL": proxy.endpoint}
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        cmd = [str(BIN / "dcp-agent"), "status", "--json", "--job", str(run["job_file"])]
        once(cmd, env)                                  # warm moto's lazy backends
        proxy.records.clear()
        once(cmd, env)
        actions = collections.Counter(proxy.actions())
        requests = sum(actions.values())
        walls: dict[float, list[float]] = {0.0: [], RTT: []}
        for _ in range(args.runs):                      # interleaved, so drift hits both alike
            for latency, times in walls.items():
                proxy.latency_s = latency
                times.append(once(cmd, env))
    w0, w50 = statistics.median(walls[0.0]), statistics.median(walls[RTT])
    print(machine())
    print("dcp-agent status --json, one refresh, every request recorded by rig/proxy.LatencyProxy")
    print(f"requests per refresh: {requests}   (target ≤ 25)   {'met' if requests <= 25 else 'MISSED'}")
    for action, count in sorted(actions.items()):
        print(f"  {count:>3} {action}")
    n = (w50 - w0) / RTT
    print(f"wall at 0 ms: {w0 * 1000:.0f} ms; at 50 ms a request: {w50 * 1000:.0f} ms (medians of {args.runs})")
    print(f"round trips N = (wall 50 − wall 0) / 50 ms = {n:.1f}   (target ≤ 6)   {'met' if n <= 6 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
