"""`invoke build-ami` with the real Packer (Debian's 1.6.6) against moto server, provisioning a sandbox.

Loopback only (test-rig.md §0): every build here pins ssh_host to 127.0.0.1 and custom_endpoint_ec2 to the
recording proxy in front of moto; `build()` refuses anything else before Packer starts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from bootstrap.ami import BUILD_TAG, is_loopback_url
from rig.dcprepo import GitDaemon
from rig.moto_server import MotoServer
from rig.nodes import SOURCE_AMI, build_ami_options, emulator_env, import_build_key, run_build_ami
from rig.proxy import LatencyProxy
from rig.sandbox import Sandbox
from tests.conftest import ROOT, host_suite

pytestmark = [pytest.mark.sandbox, pytest.mark.packer]
INVOKE = str(Path(sys.executable).parent / "invoke")


@dataclass
class Rig:
    moto: MotoServer
    proxy: LatencyProxy
    account: str

    def ec2(self) -> Any:
        return boto3.client("ec2", endpoint_url=self.moto.endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture
def rig(moto: MotoServer) -> Iterator[Rig]:
    moto.reset()
    with LatencyProxy(moto.endpoint) as proxy:
        yield Rig(moto, proxy, "123456789012")


def env() -> dict[str, str]:
    return emulator_env()


def build(rig: Rig, box: Sandbox, key: Path, *extra: str, environ: dict[str, str] | None = None,
          path_without_packer: bool = False) -> subprocess.CompletedProcess[str]:
    opts = build_ami_options(rig.proxy.endpoint, box, key)
    opts.update(dict(zip(extra[::2], extra[1::2], strict=True)))     # a test's own values win
    # Refuse to start a build that could dial anything but loopback.
    assert is_loopback_url(opts["--endpoint"]) and opts["--ssh-host"] == "127.0.0.1"
    e = environ or env()
    if path_without_packer:
        e["PATH"] = str(Path(sys.executable).parent) + ":/usr/local/bin:/bin"
    return run_build_ami(opts, e)


def import_key(rig: Rig, key: Path) -> None:
    import_build_key(rig.moto.endpoint, key)


def test_invoke_validate_on_the_real_template() -> None:
    p = subprocess.run([INVOKE, "validate"], capture_output=True, text=True, cwd=ROOT, check=False, env=env())
    assert p.returncode == 0, p.stdout + p.stderr
    assert "formatted and valid" in p.stdout


def test_build_ami_end_to_end(rig: Rig, sandbox: Sandbox, sandbox_key: Path, dcp_git: GitDaemon) -> None:
    import_key(rig, sandbox_key)
    p = build(rig, sandbox, sandbox_key, "--repo-url", dcp_git.url())
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
    ami = p.stdout.strip().splitlines()[-1]
    assert ami.startswith("ami-")
    assert "==> amazon-ebs.control-node: Waiting for SSH to become available" in p.stdout   # streamed, not silent
    image = rig.ec2().describe_images(ImageIds=[ami])["Images"][0]
    assert image["State"] == "available"
    tags = {t["Key"]: t["Value"] for t in image.get("Tags", [])}
    for key in ("dcp:project-version", "dcp:git-commit", "dcp:recipe-sha256", "dcp:python", "dcp:aws-cli",
                "dcp:dcp-commit"):
        assert tags.get(key), key
    assert tags["dcp:python"].startswith("Python 3.11")
    # moto accepts ImdsSupport but does not store it: the recording proxy proves the request for this AMI.
    imds = [r.params() for r in rig.proxy.records if r.action == "ModifyImageAttribute"]
    assert any(i.get("ImageId") == ami and i.get("ImdsSupport.Value") == "v2.0" for i in imds), imds
    assert any(r.action == "CopyImage" and "Encrypted=true" in r.body.decode() for r in rig.proxy.records)
    ec2 = rig.ec2()
    assert not [g for g in ec2.describe_security_groups()["SecurityGroups"] if g["GroupName"].startswith("packer")]
    assert [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]] == ["dcp-build"]
    # The image is clean (cleanup ran and validation passed inside the build) …
    assert not list((sandbox.root / "etc/ssh").glob("ssh_host_*"))
    assert not (sandbox.root / "root/.ssh/authorized_keys").exists()
    assert not (sandbox.root / "var/tmp/dcp-stage").exists()
    # … and, given a key and host keys the way cloud-init does at first boot, it is a control node.
    sandbox.run("ssh-keygen", "-A")
    (sandbox.root / "root/.ssh/authorized_keys").write_text(Path(f"{sandbox_key}.pub").read_text())
    suite = host_suite(sandbox, sandbox_key)
    assert suite.returncode == 0, suite.stdout[-3000:]


def test_failed_provisioning_names_the_step_and_leaves_nothing(rig: Rig, sandbox: Sandbox, sandbox_key: Path,
                                                               dcp_git: GitDaemon) -> None:
    import_key(rig, sandbox_key)
    p = build(rig, sandbox, sandbox_key, "--repo-url", dcp_git.url("no-such-repo.git"))
    assert p.returncode == 1
    assert "==> dcp-clone: FAILED" in p.stdout
    assert "build-ami: packer build failed" in p.stderr
    ec2 = rig.ec2()
    assert not [g for g in ec2.describe_security_groups()["SecurityGroups"] if g["GroupName"].startswith("packer")]
    assert ec2.describe_images(Owners=["self"])["Images"] == []
    live = [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
            if i["State"]["Name"] not in ("terminated", "shutting-down")]
    assert live == []


@pytest.mark.parametrize("extra, message", [
    (["--region", "us-east-1a"], "region 'us-east-1a' is an availability zone; use 'us-east-1'"),
    (["--instance-type", "large"], "instance type 'large' is not like t3.small"),
    (["--ssh-private-key-file", "/nonexistent/key"], "ssh private key /nonexistent/key does not exist"),
    (["--source-ami-name", "no-such-image-*"], "no AMI named 'no-such-image-*'"),
])
def test_bad_input_fails_before_anything_is_created(rig: Rig, sandbox: Sandbox, sandbox_key: Path,
                                                   extra: list[str], message: str) -> None:
    p = build(rig, sandbox, sandbox_key, *extra)
    assert p.returncode == 2
    assert message in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "Traceback" not in p.stderr
    assert not {"RunInstances", "CreateSecurityGroup", "CreateKeyPair"} & set(rig.proxy.actions())


def test_no_packer_and_no_credentials_are_one_line_errors(rig: Rig, sandbox: Sandbox, sandbox_key: Path) -> None:
    if shutil.which("packer", path="/usr/local/bin:/bin") is None:
        p = build(rig, sandbox, sandbox_key, path_without_packer=True)
        assert p.returncode == 2 and "packer is not installed" in p.stderr
    e = env()
    del e["AWS_ACCESS_KEY_ID"], e["AWS_SECRET_ACCESS_KEY"]
    p = build(rig, sandbox, sandbox_key, environ=e)
    assert p.returncode == 2 and "AWS credentials do not work" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert "RunInstances" not in rig.proxy.actions()


def test_cleanup_build_finds_leftovers_and_deletes_only_when_asked(rig: Rig) -> None:
    ec2 = rig.ec2()
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    base = ec2.describe_images(Owners=["099720109477"], Filters=[{"Name": "name", "Values": [SOURCE_AMI]}])["Images"][0]
    ec2.create_key_pair(KeyName="packer_6543a1b2")
    ec2.create_key_pair(KeyName="lab-key")                              # not ours
    packer_sg = ec2.create_security_group(GroupName="packer_6543a1b2", Description="x", VpcId=vpc)["GroupId"]
    lab_sg = ec2.create_security_group(GroupName="lab-sg", Description="x", VpcId=vpc)["GroupId"]
    run = ec2.run_instances(ImageId=base["ImageId"], MinCount=1, MaxCount=1, TagSpecifications=[
        {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": BUILD_TAG}]}])["Instances"][0]["InstanceId"]
    ec2.stop_instances(InstanceIds=[run])
    other = ec2.run_instances(ImageId=base["ImageId"], MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    amis = [ec2.create_image(InstanceId=other, Name=f"dcp-control-node-2026010{i}-000000")["ImageId"] for i in range(5)]
    lab_ami = ec2.create_image(InstanceId=other, Name="lab-image")["ImageId"]

    def cleanup(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([INVOKE, "cleanup-build", "--region", "us-east-1", "--endpoint", rig.proxy.endpoint, *extra],
                              capture_output=True, text=True, cwd=ROOT, env=env(), check=False)

    listed = cleanup()
    assert listed.returncode == 0, listed.stderr
    assert "packer_6543a1b2" in listed.stdout and packer_sg in listed.stdout and run in listed.stdout
    assert "nothing deleted" in listed.stdout
    assert len(ec2.describe_key_pairs()["KeyPairs"]) == 2                 # listing deleted nothing
    deleted = cleanup("--delete", "--keep", "3")
    assert deleted.returncode == 0 and "deleted" in deleted.stdout
    assert [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]] == ["lab-key"]
    groups = {g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]}
    assert lab_sg in groups and packer_sg not in groups
    left = {i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]}
    assert lab_ami in left and len(left & set(amis)) == 3
    state = {i["InstanceId"]: i["State"]["Name"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}
    assert state[run] in ("terminated", "shutting-down") and state[other] not in ("terminated", "shutting-down")
    assert "nothing to clean up" in cleanup().stdout or "old AMIs" not in cleanup().stdout
    assert json.dumps(state)
