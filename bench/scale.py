"""Benchmark: what one `dcp-agent check` costs in a busy shared account (not a timed test).

A healthy seeded account plus k × (20 roles, 10 buckets, 50 alarms, 10 log groups, 5 finished fleets, 10 security
groups, 5 queues, 3 ECS clusters, 10 instances, 5 key pairs) of other labs (rig/clutter.py), for k = 0, 1, 10,
100. Every AWS request goes through rig/pager.py in its "aws" mode (moto's lists paged at AWS's documented page
sizes, the instance-lifecycle filter answered), keeping each list it gathered from moto (``keep_lists``) so that a
page costs the stand-in what it costs AWS, not what moto takes to list a busy account again for every page. For each k it prints: requests, bytes received, wall at zero
latency, wall with 50 ms added to every request (rig/proxy.LatencyProxy in front of the pager), round trips
N = (wall − startup) / 50 ms (startup: `--only K01`, no AWS call), the check's peak RSS, and whether every
verdict equals the healthy account's (k = 0). Then the ratios against the targets of issue 19:
N(100)/N(1) ≤ 1.5, requests(100)/requests(1) ≤ 1.2, RSS(100)/RSS(1) ≤ 1.3.

Everything runs on 127.0.0.1. Usage: .venv/bin/python -m bench.scale [--runs 3] [--ks 0,1,10,100]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._common import machine
from rig.clutter import add_clutter
from rig.moto_server import MotoServer
from rig.pager import PagingProxy
from rig.proxy import LatencyProxy
from rig.quota_stub import QuotaStub
from rig.seed import seed_healthy_account

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
RTT = 0.05


@dataclass
class Run:
    wall: float
    rss_mb: float
    verdicts: dict[str, str]


# A child's peak RSS as wait4 reports it starts at its parent's RSS when it was forked (Linux carries the
# pre-exec high-water mark over), and this process holds the pager's kept lists, which grow with the clutter
# (before 2026-12-03 the table's RSS column measured this process as much as the agent). So the agent is
# started by a small interpreter of its own, which writes the agent's own peak (KiB) to the file argv[1].
_PEAK = ("import os, sys\n"
         "pid = os.fork()\n"
         "if pid == 0:\n"
         "    os.execv(sys.argv[2], sys.argv[2:])\n"
         "_, status, usage = os.wait4(pid, 0)\n"
         "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
         "sys.exit(os.waitstatus_to_exitcode(status))\n")


def run(cmd: list[str], env: dict[str, str]) -> Run:
    """One process: wall time, peak RSS (the agent's own, see _PEAK) and its verdicts."""
    with tempfile.TemporaryFile() as out, tempfile.NamedTemporaryFile("r") as peak:
        start = time.perf_counter()
        p = subprocess.run([sys.executable, "-c", _PEAK, peak.name, *cmd], env=env, stdout=out,
                           stderr=subprocess.DEVNULL, check=False)
        wall = time.perf_counter() - start
        out.seek(0)
        text = out.read().decode()
        rss_kib = int(peak.read() or 0)
    if p.returncode not in (0, 1, 3):   # 3: could not check (shown as a verdict difference)
        raise SystemExit(f"{cmd} exited {p.returncode}: {text[-400:]}")
    doc = json.loads(text) if text.strip() else {"checks": []}
    return Run(wall, rss_kib / 1024, {c["code"]: c["status"] for c in doc["checks"]})


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--ks", default="0,1,10,100")
    args = ap.parse_args()
    ks = [int(k) for k in args.ks.split(",")]
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "agent")], check=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, MotoServer() as moto, QuotaStub() as quotas, \
            PagingProxy(moto.endpoint, mode="aws", keep_lists=True) as pager, LatencyProxy(pager.endpoint, latency_s=RTT) as far:
        acct = seed_healthy_account(moto.endpoint, Path(tmp) / "home", account_id="123456789012")
        acct.extra_env["AWS_ENDPOINT_URL_SERVICE_QUOTAS"] = quotas.endpoint
        env = acct.env()
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        near_env = dict(env, AWS_ENDPOINT_URL=pager.endpoint)
        far_env = dict(env, AWS_ENDPOINT_URL=far.endpoint)
        check = [str(BIN / "dcp-agent"), "check", "--json"]
        startup = [*check, "--only", "K01"]
        run(check, near_env)   # warm moto's lazy backends and the page cache
        seeded = 0
        healthy: dict[str, str] | None = None
        for k in ks:
            seed_s = 0.0
            if k > seeded:
                seed_s = add_clutter(acct, k - seeded).seconds
                seeded = k
                pager.forget()   # the clutter went to moto directly, behind the pager's kept lists
            run(check, near_env)
            pager.requests.clear()
            pager.bytes_out = 0
            first = run(check, near_env)
            requests, received = len(pager.requests), pager.bytes_out
            near = [first] + [run(check, near_env) for _ in range(args.runs - 1)]
            far_runs = [run(check, far_env) for _ in range(args.runs)]
            start_s = statistics.median(run(startup, near_env).wall for _ in range(args.runs))
            far_wall = statistics.median(r.wall for r in far_runs)
            verdicts = first.verdicts
            healthy = healthy if healthy is not None else verdicts
            same = all(r.verdicts == healthy for r in [*near, *far_runs])
            rows.append({"k": k, "seed_s": seed_s, "requests": requests, "bytes": received,
                         "wall0": statistics.median(r.wall for r in near), "wall50": far_wall,
                         "n": (far_wall - start_s) / RTT, "rss": max(r.rss_mb for r in [*near, *far_runs]),
                         "same": same, "startup": start_s,
                         "diff": {c: (healthy.get(c), s) for r in [*near, *far_runs] for c, s in r.verdicts.items()
                                  if healthy.get(c) != s}})
    print(machine())
    print("dcp-agent check --json, every request paged as AWS pages (rig/pager.py aws mode)")
    print(f"{'k':>4} {'seed s':>7} {'requests':>8} {'bytes recv':>10} {'wall 0 ms':>9} {'wall 50 ms':>10} "
          f"{'N':>5} {'peak RSS':>8} verdicts")
    for r in rows:
        print(f"{r['k']:>4} {r['seed_s']:>7.1f} {r['requests']:>8} {r['bytes']:>10,} {r['wall0'] * 1000:>7.0f}ms "
              f"{r['wall50'] * 1000:>8.0f}ms {r['n']:>5.1f} {r['rss']:>6.1f}MB "
              f"{'= healthy' if r['same'] else 'DIFFER ' + str(r['diff'])}")
    by_k = {r["k"]: r for r in rows}
    if 1 in by_k and 100 in by_k:
        one, hundred = by_k[1], by_k[100]
        print(f"N(100)/N(1)               = {hundred['n'] / one['n']:.2f}   (target ≤ 1.5)")
        print(f"requests(100)/requests(1) = {hundred['requests'] / one['requests']:.2f}   (target ≤ 1.2)")
        print(f"RSS(100)/RSS(1)           = {hundred['rss'] / one['rss']:.2f}   (target ≤ 1.3)")
    print(f"startup (--only K01): {statistics.median(r['startup'] for r in rows) * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
