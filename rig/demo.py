"""``make demo``: the whole flow against the embedded AWS emulator and a local sandbox host.

Everything it starts listens on 127.0.0.1 and is stopped on the way out, also on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import boto3

from rig.dcprepo import GitDaemon, make_dcp_repo
from rig.moto_server import MotoServer
from rig.nodes import build_ami_options, import_build_key, run_build_ami
from rig.quota_stub import QuotaStub
from rig.sandbox import Sandbox, can_sandbox, ensure_base, keypair
from rig.seed import FLEET_ROLE, DcpAccount, seed_healthy_account, trust_policy

ROOT = Path(__file__).resolve().parents[1]


def step(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m" if sys.stdout.isatty() else f"\n==> {text}", flush=True)


def break_like_users_do(acct: DcpAccount, quotas: QuotaStub) -> list[str]:
    """Four mistakes DCP users have reported (catalogue section B)."""
    acct.client("iam").update_assume_role_policy(RoleName=FLEET_ROLE, PolicyDocument=trust_policy("ec2.amazonaws.com"))
    doc = acct.fleet_doc()
    for spec in doc["LaunchSpecifications"]:
        spec["NetworkInterfaces"][0]["AssociatePublicIpAddress"] = False
        spec["IamInstanceProfile"]["Arn"] = spec["IamInstanceProfile"]["Arn"].replace(":instance-profile/", ":role/")
    acct.write_fleet(doc)
    quotas.quotas["L-34B43A08"] = 5.0
    return ["#85  the spot-fleet role trusts ec2.amazonaws.com instead of spotfleet.amazonaws.com",
            "#184 the fleet file gives workers no public IP and the subnet has no NAT",
            "#178 the fleet's IamInstanceProfile.Arn is a role ARN, not an instance profile",
            "#157 the account still has AWS's default 5-vCPU spot quota"]


def agent(acct: DcpAccount, *args: str) -> int:
    exe = Path(sys.executable).parent / "dcp-agent"
    return subprocess.run([str(exe), *args], env=acct.env(), check=False).returncode


@contextlib.contextmanager
def emulator(workdir: Path) -> Iterator[tuple[MotoServer, QuotaStub]]:
    with MotoServer(log=workdir / "moto.log") as moto, QuotaStub() as quotas:
        yield moto, quotas


def hosts_part(work: Path, moto: MotoServer) -> None:
    """Bootstrap a sandbox host with `invoke bootstrap`, then bake an AMI into the emulator with Packer."""
    invoke = str(Path(sys.executable).parent / "invoke")
    step("Preparing throwaway Debian 12 hosts (sshd sandboxes on 127.0.0.1; the first time takes ~30 s)")
    ensure_base()
    key = keypair(work)
    make_dcp_repo(work / "git")
    with GitDaemon(work / "git") as git, Sandbox(work / "node", key, hostname="dcp-node") as node:
        print(f"    host {node.target()}; Distributed-CellProfiler served from {git.url()}")
        step(f"invoke bootstrap {node.target()}: the recipe over SSH (Fabric)")
        subprocess.run([invoke, "bootstrap", node.target(), "-i", str(key), "--repo-url", git.url(),
                        "--log-dir", str(work / "logs")], check=False, cwd=ROOT)
        step("The same command again: nothing left to change")
        subprocess.run([invoke, "bootstrap", node.target(), "-i", str(key), "--repo-url", git.url(),
                        "--log-dir", str(work / "logs")], check=False, cwd=ROOT)
        step("dcp-agent on the new control node (local checks)")
        subprocess.run(["ssh", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                        "-o", "LogLevel=ERROR", "-i", str(key), "-p", str(node.port), "root@127.0.0.1",
                        "dcp-agent check --only L"], check=False)
        with Sandbox(work / "builder", key, hostname="ami-builder") as builder:
            import_build_key(moto.endpoint, key)
            step("invoke build-ami: Packer's amazon-ebs builder against the emulator; SSH pinned to 127.0.0.1")
            p = run_build_ami({**build_ami_options(moto.endpoint, builder, key), "--repo-url": git.url()})
            lines = p.stdout.strip().splitlines()
            print("    " + "\n    ".join(lines[-3:]) if lines else p.stderr)
            if p.returncode == 0:
                ami = lines[-1]
                ec2 = boto3.client("ec2", endpoint_url=moto.endpoint, region_name="us-east-1",
                                   aws_access_key_id="testing", aws_secret_access_key="testing")
                image = ec2.describe_images(ImageIds=[ami])["Images"][0]
                print(f"    {ami} is {image['State']} in the emulator, tagged:")
                for tag in sorted(image.get("Tags", []), key=lambda t: t["Key"]):
                    print(f"      {tag['Key']} = {tag['Value']}")


def main() -> int:
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    with tempfile.TemporaryDirectory(prefix="dcp-demo-") as tmp:
        work = Path(tmp)
        step("Starting the embedded AWS emulator (moto server) on 127.0.0.1")
        with emulator(work) as (moto, quotas):
            print(f"    AWS endpoint {moto.endpoint}, Service Quotas stand-in {quotas.endpoint}")
            step("Seeding a DCP account the way Step 0 describes (roles, bucket, queue, network, key pair)")
            acct = seed_healthy_account(moto.endpoint, work / "home", account_id="123456789012")
            acct.extra_env["AWS_ENDPOINT_URL_SERVICE_QUOTAS"] = quotas.endpoint
            print(f"    account {acct.account_id}, bucket {acct.bucket}, fleet file {acct.fleet.name}")
            step("dcp-agent check on the healthy account")
            rc = agent(acct, "check")
            print(f"    exit status {rc}")
            step("Now the mistakes users report, recreated in the emulator:")
            for line in break_like_users_do(acct, quotas):
                print(f"    {line}")
            step("dcp-agent check finds each one, with the fix")
            rc = agent(acct, "check")
            print(f"    exit status {rc} (1: problems found)")
            step("dcp-agent check --json (what tooling reads), summary only")
            out = subprocess.run([str(Path(sys.executable).parent / "dcp-agent"), "check", "--json"],
                                 env=acct.env(), capture_output=True, text=True, check=False).stdout
            print("    " + json.dumps(json.loads(out)["summary"]))
            reason = can_sandbox()
            if reason:
                step(f"Skipping the host part: {reason}")
            else:
                hosts_part(work, moto)
        step("Stopped the emulator and every sandbox; nothing left running")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted: everything the demo started has been stopped", file=sys.stderr)
        sys.exit(130)
