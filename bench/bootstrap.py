"""Benchmark: `invoke bootstrap` against sshd sandboxes, as ratios (needs root; not a timed test).

- first run on a fresh host, then the no-op second run: ratio (target ≤ 10 %);
- 4 fresh hosts in parallel vs 1 fresh host: ratio (target ≤ 1.5).
"""

from __future__ import annotations

import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from bench._common import machine, sandbox_ready
from rig.dcprepo import GitDaemon, make_dcp_repo
from rig.nodes import run_bootstrap
from rig.sandbox import Sandbox, keypair


def timed_bootstrap(targets: list[str], key: Path, url: str, logs: Path) -> float:
    start = time.perf_counter()
    p = run_bootstrap(*targets, "-i", str(key), "--repo-url", url, "--log-dir", str(logs))
    took = time.perf_counter() - start
    if p.returncode != 0:
        raise SystemExit(f"bootstrap failed:\n{p.stdout[-2000:]}")
    return took


def main() -> int:
    if not sandbox_ready():
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        key = keypair(work)
        make_dcp_repo(work / "git")
        with GitDaemon(work / "git") as git, ExitStack() as stack:
            one = stack.enter_context(Sandbox(work / "one", key))
            first = timed_bootstrap([one.target()], key, git.url(), work / "logs")
            noop = timed_bootstrap([one.target()], key, git.url(), work / "logs")
            boxes = [stack.enter_context(Sandbox(work / f"p{i}", key)) for i in range(4)]
            four = timed_bootstrap([b.target() for b in boxes], key, git.url(), work / "logs")
    print(machine())
    print(f"first run, 1 fresh host        {first:6.1f} s")
    print(f"second run (no-op)             {noop:6.1f} s   ratio {noop / first:5.1%}   (target ≤ 10%)")
    print(f"4 fresh hosts in parallel      {four:6.1f} s   ratio {four / first:5.2f}×  (target ≤ 1.5×)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
