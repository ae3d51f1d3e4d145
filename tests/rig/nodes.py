"""Control nodes for tests, the demo and the benchmarks: bootstrap a sandbox with the real command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.rig.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[2]


def run_bootstrap(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """The real command (`python -m bootstrap`, what `invoke bootstrap` runs)."""
    return subprocess.run([sys.executable, "-m", "bootstrap", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, check=False, cwd=ROOT)


def bootstrap_layer(work: Path, key: Path, repo_url: str) -> Path:
    """Bootstrap a fresh sandbox as root and keep its changes as an overlay layer (``work/layer``)."""
    with Sandbox(work / "box", key) as box:
        p = run_bootstrap(box.target(), "-i", str(key), "--repo-url", repo_url, "--log-dir", str(work / "logs"))
        if p.returncode != 0:
            raise RuntimeError(f"bootstrap failed:\n{p.stdout[-3000:]}{p.stderr[-2000:]}")
        return box.snapshot(work / "layer")
