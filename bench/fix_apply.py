"""Benchmark: `dcp-agent fix --apply` on an account as AWS hands it over, as ratios (not a timed test).

Each run seeds a fresh empty account in a warm moto server (default VPC + the operator), then times
`dcp-agent fix --apply --yes` with 50 ms added to every AWS request by a loopback proxy (real AWS is that
far away), printed as "wall = startup + N × RTT" with N = (wall − startup) / 50 ms: how many round trips
deep the apply is. Startup is `dcp-agent check --only K01` (no AWS call). Also: the requests an apply makes
(reads and writes), the plan alone, and the second apply (nothing to change).

Everything runs on 127.0.0.1. Usage: .venv/bin/python bench/fix_apply.py [--runs N]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._common import machine
from rig.moto_server import MotoServer
from rig.proxy import LatencyProxy
from rig.quota_stub import QuotaStub
from rig.seed import OPERATOR_IP, seed_empty_account

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
WRITES = ("Create", "Put", "Attach", "Update", "Authorize", "Import", "Set", "Add", "Tag", "Request")
RTT = 0.05


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    if p.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd[:3])} failed ({p.returncode}): {p.stderr[-500:]}")
    return took


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "agent")], check=True)
    ids = (f"{300000000000 + n:012d}" for n in itertools.count(1))
    fix = [str(BIN / "dcp-agent"), "fix", "--ssh-cidr", f"{OPERATOR_IP}/32"]
    apply = [*fix, "--apply", "--yes"]
    with tempfile.TemporaryDirectory() as tmp, MotoServer() as moto, QuotaStub() as quotas, \
            LatencyProxy(moto.endpoint, latency_s=RTT) as proxy:
        def fresh() -> dict[str, str]:
            acct = seed_empty_account(moto.endpoint, Path(tmp) / next(ids), account_id=next(ids))
            acct.extra_env["AWS_ENDPOINT_URL_SERVICE_QUOTAS"] = quotas.endpoint
            env = acct.env()
            env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
            return env

        warm = fresh()
        timed(apply, warm)   # moto's lazy backends
        startup = statistics.median(timed([str(BIN / "dcp-agent"), "check", "--json", "--only", "K01"], warm)
                                    for _ in range(5))
        near, far, plans, again, reads, writes = [], [], [], [], [], []
        for _ in range(args.runs):
            near.append(timed(apply, fresh()))
            env = dict(fresh(), AWS_ENDPOINT_URL=proxy.endpoint)
            plans.append(timed(fix, env))
            proxy.records.clear()
            far.append(timed(apply, env))
            actions = proxy.actions()
            writes.append(sum(1 for a in actions if a.startswith(WRITES)))
            reads.append(len(actions) - writes[-1])
            again.append(timed(apply, env))
    wall, plan, second = statistics.median(far), statistics.median(plans), statistics.median(again)
    print(machine())
    print(f"dcp-agent fix --apply from empty, warm moto:        median {statistics.median(near) * 1000:6.0f} ms")
    print(f"with {RTT * 1000:.0f} ms per AWS request ({statistics.median(reads):.0f} reads + "
          f"{statistics.median(writes):.0f} writes an apply):")
    print(f"  startup (check --only K01, no AWS call)          {startup * 1000:6.0f} ms")
    print(f"  fix (the plan only)                              {plan * 1000:6.0f} ms = startup + "
          f"{(plan - startup) / RTT:.1f} × RTT")
    print(f"  fix --apply from empty                           {wall * 1000:6.0f} ms = startup + "
          f"{(wall - startup) / RTT:.1f} × RTT")
    print(f"  fix --apply again (nothing to change)            {second * 1000:6.0f} ms = startup + "
          f"{(second - startup) / RTT:.1f} × RTT")
    return 0


if __name__ == "__main__":
    sys.exit(main())
