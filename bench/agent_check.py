"""Benchmark: the full `dcp-agent check` against a warm moto server, as ratios (not a timed test).

1. median wall time of `dcp-agent check --json` (≥ 10 runs) ÷ median of `aws sts get-caller-identity`
   (AWS CLI from PyPI, same endpoint) in the same run. Target ≤ 1.5.
2. the same check with 50 ms added to every AWS request by a loopback proxy (real AWS is that far away),
   printed as "wall = startup + N × RTT", N = (wall − startup) / 50 ms: how many round trips deep the run
   is. Target N ≤ 8. Startup is `--only K01` (no AWS call). Both measured side by side in one run.
   Also D = (wall at 50 ms − wall at 0 ms) / 50 ms: the round trips the distance adds to the run (issue 19's
   target ≤ 6); N counts the CPU-bound part of the run as round trips too, D does not.

Everything runs on 127.0.0.1. Usage: .venv/bin/python bench/agent_check.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rig.moto_server import MotoServer
from rig.proxy import LatencyProxy
from rig.quota_stub import QuotaStub
from rig.seed import seed_healthy_account

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    if p.returncode not in (0, 1):
        raise SystemExit(f"{cmd[0]} failed: {p.stderr[-500:]}")
    return took, p.stdout


def median(cmd: list[str], env: dict[str, str], runs: int) -> float:
    return statistics.median(timed(cmd, env)[0] for _ in range(runs))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, MotoServer() as moto, QuotaStub() as quotas:
        acct = seed_healthy_account(moto.endpoint, Path(tmp) / "home", account_id="123456789012")
        acct.extra_env["AWS_ENDPOINT_URL_SERVICE_QUOTAS"] = quotas.endpoint
        # Byte-compiled, as on a node (pip compiles the wheel it installs); this checkout may run with
        # PYTHONDONTWRITEBYTECODE, which would recompile the agent at every start.
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "agent")], check=True)
        env = acct.env()
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"   # the venv's tools first, as on a node
        check = [str(BIN / "dcp-agent"), "check", "--json"]
        sts = [str(BIN / "aws"), "sts", "get-caller-identity", "--endpoint-url", moto.endpoint]
        for _ in range(2):   # warm moto's lazy backends and the page cache
            timed(check, env)
            timed(sts, env)
        # Interleaved, so that a noisy neighbour slows both sides alike.
        pairs = [(timed(check, env)[0], timed(sts, env)[0]) for _ in range(args.runs)]
        agent_s = statistics.median(a for a, _ in pairs)
        sts_s = statistics.median(b for _, b in pairs)
        startup_s = median([str(BIN / "dcp-agent"), "check", "--json", "--only", "K01"], env, args.runs)
        n_checks = len(json.loads(timed(check, env)[1])["checks"])
        only_m = [*check, "--only", "M"]
        m_s = median(only_m, env, args.runs)

        with LatencyProxy(moto.endpoint, latency_s=0.05) as proxy:
            far = dict(env, AWS_ENDPOINT_URL=proxy.endpoint)
            timed(check, far)
            proxy.records.clear()
            walls, sums, firsts, lasts, calls_per_run = [], [], [], [], []
            for _ in range(max(3, args.runs // 2)):
                proxy.records.clear()
                began = time.monotonic()
                took, out = timed(check, far)
                walls.append(took)
                sums.append(sum(c["duration_ms"] for c in json.loads(out)["checks"]) / 1000)
                arrivals = sorted(r.at - began for r in proxy.records)
                firsts.append(arrivals[0])
                lasts.append(arrivals[-1])
                calls_per_run.append(len(arrivals))
            calls = statistics.median(calls_per_run)
            far_m = statistics.median(timed(only_m, far)[0] for _ in range(max(3, args.runs // 2)))
        far_wall, far_sum = statistics.median(walls), statistics.median(sums)
        first, last = statistics.median(firsts), statistics.median(lasts)

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d')}")
    print(f"dcp-agent check ({n_checks} checks), warm moto:      median {agent_s * 1000:7.0f} ms")
    print(f"aws sts get-caller-identity (CLI v1), same moto:  median {sts_s * 1000:7.0f} ms")
    print(f"ratio check / get-caller-identity:                {agent_s / sts_s:7.2f}   (target ≤ 1.5)")
    print(f"dcp-agent check --only M (leftovers, Auto-Monitor), warm moto: median {m_s * 1000:5.0f} ms")
    rtt = 0.05
    n = (far_wall - startup_s) / rtt
    print(f"with {rtt * 1000:.0f} ms per AWS request ({calls:.0f} requests a run):")
    print(f"  wall time                                       {far_wall * 1000:7.0f} ms")
    print(f"  sequential sum of the checks' durations         {far_sum * 1000:7.0f} ms  "
          f"(wall is {far_sum / far_wall:.1f}× faster)")
    print(f"  startup (--only K01, no AWS call)               {startup_s * 1000:7.0f} ms")
    print(f"  profile: first request reaches AWS at {first * 1000:.0f} ms (Python, botocore, session, first client), "
          f"the last one at {last * 1000:.0f} ms, its answer ends the run")
    print(f"  --only M: {far_m * 1000:.0f} ms = startup + {(far_m - startup_s) / rtt:.1f} × RTT")
    print(f"  wall = startup + N × RTT:  {far_wall * 1000:.0f} ms = {startup_s * 1000:.0f} ms + {n:.1f} × "
          f"{rtt * 1000:.0f} ms   (issue 9's target N ≤ 8)")
    d = (far_wall - agent_s) / rtt
    print(f"  round trips the distance adds, D = (wall at 50 ms − wall at 0) / 50 ms = {d:.1f}   (issue 19's target ≤ 6)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
