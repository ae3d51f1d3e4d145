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

from tests.rig.moto_server import MotoServer
from tests.rig.quota_stub import QuotaStub
from tests.rig.seed import FLEET_ROLE, DcpAccount, seed_healthy_account, trust_policy

ROOT = Path(__file__).resolve().parents[2]


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
        step("Stopped the emulator; nothing left running")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted: everything the demo started has been stopped", file=sys.stderr)
        sys.exit(130)
