"""Benchmark: `invoke build-ami` (Packer against moto, provisioning a sandbox) vs `invoke bootstrap` of a
fresh sandbox, same run, as a ratio (target ≤ 1.3: Packer and the AMI steps add little). Needs root."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3

from tests.rig.dcprepo import GitDaemon, make_dcp_repo
from tests.rig.moto_server import MotoServer
from tests.rig.nodes import ROOT, run_bootstrap
from tests.rig.sandbox import Sandbox, can_sandbox, ensure_base, keypair

INVOKE = str(Path(sys.executable).parent / "invoke")


def main() -> int:
    reason = can_sandbox()
    if reason:
        print(f"skipped: {reason}")
        return 0
    ensure_base()
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
            boto3.client("ec2", endpoint_url=moto.endpoint, region_name="us-east-1", aws_access_key_id="testing",
                         aws_secret_access_key="testing").import_key_pair(
                KeyName="dcp-build", PublicKeyMaterial=Path(f"{key}.pub").read_bytes())
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
                       AWS_EC2_METADATA_DISABLED="true", CHECKPOINT_DISABLE="1")
            with Sandbox(work / "builder", key) as box:
                start = time.perf_counter()
                p = subprocess.run([INVOKE, "build-ami", "--region", "us-east-1", "--endpoint", moto.endpoint,
                                    "--ssh-host", "127.0.0.1", "--ssh-port", str(box.port), "--ssh-username", "root",
                                    "--ssh-keypair-name", "dcp-build", "--ssh-private-key-file", str(key),
                                    "--source-ami-name", "ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-*",
                                    "--repo-url", git.url()], env=env, cwd=ROOT, capture_output=True, text=True,
                                   check=False)
                build_s = time.perf_counter() - start
                if p.returncode != 0:
                    raise SystemExit(p.stdout[-2000:] + p.stderr[-1000:])
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    print(f"invoke bootstrap, fresh sandbox          {bootstrap_s:6.1f} s")
    print(f"invoke build-ami, moto + fresh sandbox   {build_s:6.1f} s   ratio {build_s / bootstrap_s:4.2f}   (target ≤ 1.3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
