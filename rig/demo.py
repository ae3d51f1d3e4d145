"""``make demo``: the whole flow against the embedded AWS emulator and a local sandbox host.

Everything it starts listens on 127.0.0.1 and is stopped on the way out, also on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import boto3

from rig.dcprepo import GitDaemon, make_dcp_repo
from rig.moto_server import MotoServer
from rig.nodes import (
    build_ami_options,
    emulator_env,
    first_boot,
    import_build_key,
    launch_node_options,
    operator_home,
    run_build_ami,
    run_invoke,
)
from rig.quota_stub import QuotaStub
from rig.sandbox import Sandbox, can_sandbox, ensure_base, keypair
from rig.seed import (
    DLQ,
    FLEET_ROLE,
    KEY_NAME,
    OPERATOR_IP,
    DcpAccount,
    seed_auto_monitor,
    seed_empty_account,
    trust_policy,
)

ROOT = Path(__file__).resolve().parents[1]
CIDR = f"{OPERATOR_IP}/32"   # the operator's address for the SSH rule (a documentation address, never dialled)


def step(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m" if sys.stdout.isatty() else f"\n==> {text}", flush=True)


def break_like_users_do(acct: DcpAccount, quotas: QuotaStub) -> list[str]:
    """Four mistakes DCP users have reported (catalogue section B)."""
    acct.client("iam").update_assume_role_policy(RoleName=FLEET_ROLE, PolicyDocument=trust_policy("ec2.amazonaws.com"))
    doc = acct.fleet_doc()
    for spec in doc["LaunchSpecifications"]:
        # DCP's example fleet file's network interface, with its AssociatePublicIpAddress: false.
        subnet = str(spec.pop("SubnetId", "")).split(",")[0].strip()
        groups = [g["GroupId"] for g in spec.pop("SecurityGroups", [])]
        nic = (spec.get("NetworkInterfaces") or [{"DeviceIndex": 0, "DeleteOnTermination": True, "SubnetId": subnet,
                                                  "Groups": groups}])[0]
        spec["NetworkInterfaces"] = [dict(nic, AssociatePublicIpAddress=False)]
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


def agent_output(acct: DcpAccount, *args: str) -> str:
    exe = Path(sys.executable).parent / "dcp-agent"
    return subprocess.run([str(exe), *args], env=acct.env(), capture_output=True, text=True, check=False).stdout


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
        # A throwaway host's key is new: accepted into the demo's own known_hosts (never ~/.ssh/known_hosts).
        known_hosts = ["--accept-new-host-keys", "--known-hosts", str(work / "known_hosts")]
        step(f"invoke bootstrap {node.target()}: the recipe over SSH (Fabric)")
        subprocess.run([invoke, "bootstrap", node.target(), "-i", str(key), "--repo-url", git.url(),
                        "--log-dir", str(work / "logs"), *known_hosts], check=False, cwd=ROOT)
        step("The same command again: nothing left to change")
        subprocess.run([invoke, "bootstrap", node.target(), "-i", str(key), "--repo-url", git.url(),
                        "--log-dir", str(work / "logs"), *known_hosts], check=False, cwd=ROOT)
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
                launch_part(work, moto, builder, key)


def launch_part(work: Path, moto: MotoServer, node: Sandbox, key: Path) -> None:
    """The step after build-ami: `invoke launch-node` from the newest AMI the project built, then an SSH login
    to the node that shows the agent's banner. The emulator's instance is the sandbox the AMI was baked in
    (its SSH pinned to 127.0.0.1), booted the way cloud-init boots an instance of the image."""
    import re
    import time

    first_boot(node, key)
    home = operator_home(work / "operator", key)
    env = {**emulator_env(), "HOME": str(home)}
    step("invoke launch-node: a control node from the newest AMI this project built (IMDSv2, encrypted root, "
         "SSH from 127.0.0.1 only)")
    p = run_invoke("launch-node", launch_node_options(moto.endpoint, node.port), env)
    print("    " + "\n    ".join((p.stdout + p.stderr).strip().splitlines()))
    if p.returncode != 0:
        return
    command = p.stdout.strip().splitlines()[-1]
    ssh = [*command.replace("~", str(home)).split()[:-1], "-tt", "-o", "StrictHostKeyChecking=accept-new",
           "-o", f"UserKnownHostsFile={home / '.ssh/known_hosts'}", "-o", "LogLevel=ERROR", command.split()[-1]]

    def login() -> str:
        out = subprocess.run(ssh, input="exit\n", capture_output=True, text=True, errors="replace", timeout=60,
                             check=False).stdout
        out = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.replace("\r", ""))
        return "\n    ".join(ln.rstrip() for ln in out.splitlines() if ln.strip() and ln.strip() not in {"exit", "logout"}
                              and not ln.rstrip().endswith(("# exit", "$ exit")))

    # The operator's AWS configuration and DCP files on the node: the seeded account's keys and clone files,
    # the emulator's endpoints (a Service Quotas stand-in of the node's own: moto has no EC2 quotas).
    with QuotaStub() as quotas:
        aws = node.root / "root/.aws"
        aws.mkdir(exist_ok=True)
        (aws / "credentials").write_text((work / "home/.aws/credentials").read_text())
        (aws / "credentials").chmod(0o600)
        (aws / "config").write_text(f"[default]\nregion = us-east-1\noutput = json\nendpoint_url = {moto.endpoint}\n"
                                    f"services = emulator\n\n[services emulator]\nservice_quotas =\n"
                                    f"  endpoint_url = {quotas.endpoint}\n")
        for name in ("config.py", "lambda_function.py"):
            shutil.copy(work / "home/Distributed-CellProfiler" / name, node.root / "root/Distributed-CellProfiler")
        step(f"{command}: the first login starts the agent's check in the background")
        print("    " + login())
        cache = node.root / "root/.cache/dcp-agent/login.txt"
        deadline = time.monotonic() + 90
        while not cache.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        step(f"{command} again: the agent's login banner")
        print("    " + login())

def main() -> int:
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    with tempfile.TemporaryDirectory(prefix="dcp-demo-") as tmp:
        work = Path(tmp)
        step("Starting the embedded AWS emulator (moto server) on 127.0.0.1")
        with emulator(work) as (moto, quotas):
            print(f"    AWS endpoint {moto.endpoint}, Service Quotas stand-in {quotas.endpoint}")
            step("An account as AWS hands it over (a default VPC) and the operator's IAM user; config.py filled in")
            acct = seed_empty_account(moto.endpoint, work / "home", account_id="123456789012")
            acct.extra_env["AWS_ENDPOINT_URL_SERVICE_QUOTAS"] = quotas.endpoint
            print(f"    account {acct.account_id}; config.py names bucket {acct.bucket}, queue {DLQ}, key {KEY_NAME}")
            step("dcp-agent check on it: what Step 0 has not done yet (summary)")
            print("    " + agent_output(acct, "check").strip().splitlines()[-1])
            step(f"dcp-agent fix --ssh-cidr {CIDR}: the plan (nothing changes yet)")
            agent(acct, "fix", "--ssh-cidr", CIDR)
            step("dcp-agent fix --apply --yes: make it, then check what changed")
            agent(acct, "fix", "--apply", "--yes", "--ssh-cidr", CIDR)
            step("dcp-agent fix --apply --yes again: converged")
            agent(acct, "fix", "--apply", "--yes", "--ssh-cidr", CIDR)
            step("dcp-agent fleet: a fleet file for this account (SSM's ECS AMI, the roles, group, key and subnets)")
            agent(acct, "fleet")
            step("The step the plan left for a person: python setup_AWS.py deploys the Monitor Lambda "
                 "(here: its emulated equivalent)")
            seed_auto_monitor(acct.client("lambda"), acct.client("sns"), (acct.clone / "lambda_function.py").read_bytes(),
                              f"arn:aws:iam::{acct.account_id}:role/LambdaFullAccess")
            step("dcp-agent check")
            rc = agent(acct, "check")
            print(f"    exit status {rc}")
            step("Now the mistakes users report, recreated in the emulator:")
            for line in break_like_users_do(acct, quotas):
                print(f"    {line}")
            step("dcp-agent check finds each one, with the fix")
            rc = agent(acct, "check")
            print(f"    exit status {rc} (1: problems found)")
            step("dcp-agent fix --request-quota: what it can cure, and what is for a person")
            agent(acct, "fix", "--ssh-cidr", CIDR, "--request-quota")
            step("dcp-agent fix --apply --yes --request-quota")
            agent(acct, "fix", "--apply", "--yes", "--ssh-cidr", CIDR, "--request-quota")
            step("dcp-agent fleet --force: the fleet file written again (the diff shows what was wrong in it)")
            agent(acct, "fleet", "--force")
            for r in quotas.requests:   # the stand-in grants what was asked at once; AWS takes hours to days
                quotas.quotas[r["QuotaCode"]] = float(r["DesiredValue"])
            step("AWS grants the quota request (the stand-in at once); dcp-agent check --json (what tooling reads), "
                 "summary only")
            out = agent_output(acct, "check", "--json")
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
