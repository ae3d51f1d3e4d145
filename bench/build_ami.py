"""Benchmark: `invoke build-ami` (Packer against moto, provisioning a sandbox) vs `invoke bootstrap` of a
fresh sandbox, same run, as a ratio (target ≤ 1.3: Packer and the AMI steps add little). Needs root."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from bench._common import machine, sandbox_ready
from rig.dcprepo import GitDaemon, make_dcp_repo
from rig.moto_server import MotoServer
from rig.nodes import build_ami_options, import_build_key, run_bootstrap, run_build_ami
from rig.sandbox import Sandbox, keypair


def main() -> int:
    if not sandbox_ready():
        return 0
    with tempfile.TemporaryDirectory() as tmp, MotoServer() as moto:
        work = Path(tmp)
        key = keypair(work)
        make_dcp_repo(work / "git")
        with GitDaemon(work / "git") as git:
            with Sandbox(work / "plain", key) as box:
                start = time.perf_counter()
                p = run_bootstrap(box.target(), "-i", str(key), "--repo-url", git.url(), "--log-dir", str(work / "l"))
                bootstrap_s = time.perf_counter() - start
                if p.returncode != 0:
                    raise SystemExit(p.stdout[-2000:])
            import_build_key(moto.endpoint, key)
            with Sandbox(work / "builder", key) as box:
                start = time.perf_counter()
                p = run_build_ami({**build_ami_options(moto.endpoint, box, key), "--repo-url": git.url()})
                build_s = time.perf_counter() - start
                if p.returncode != 0:
                    raise SystemExit(p.stdout[-2000:] + p.stderr[-1000:])
    print(machine())
    print(f"invoke bootstrap, fresh sandbox          {bootstrap_s:6.1f} s")
    print(f"invoke build-ami, moto + fresh sandbox   {build_s:6.1f} s   ratio {build_s / bootstrap_s:4.2f}   (target ≤ 1.3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
