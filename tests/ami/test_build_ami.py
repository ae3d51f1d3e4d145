"""`invoke build-ami` with the real Packer (Debian's 1.6.6) against moto server, provisioning a sandbox.

Loopback only (test-rig.md §0): every build here pins ssh_host to 127.0.0.1 and custom_endpoint_ec2 to the
recording proxy in front of moto; `build()` refuses anything else before Packer starts.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from bootstrap.ami import BUILD_TAG, PROJECT, is_loopback_url
from rig.dcprepo import GitDaemon
from rig.moto_server import MotoServer
from rig.nodes import build_ami_options, emulator_env, import_build_key, run_build_ami
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


def tag_specifications(params: dict[str, str]) -> dict[str, dict[str, str]]:
    """A recorded request's TagSpecification.N.* parameters as {resource type: tags}."""
    out: dict[str, dict[str, str]] = {}
    for n in sorted({k.split(".")[1] for k in params if k.startswith("TagSpecification.")}):
        pre = f"TagSpecification.{n}."
        out[params[pre + "ResourceType"]] = {params[k]: params[k[:-3] + "Value"] for k in params
                                             if k.startswith(pre + "Tag.") and k.endswith(".Key")}
    return out


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
    # The phases, each once, in order, with the time since build-ami started.
    phases = [ln.split("] ", 1)[1] for ln in p.stdout.splitlines() if ln.startswith("build-ami [")]
    expected = ["preflight:", "packer validate", "packer build", "base AMI and network", "launch:", "waiting for SSH",
                "first boot:", "recipe", "recipe: packages", "recipe: dcp-venv", "cleanup and in-image validation",
                "stopping the build instance", "snapshot:", "removing the build instance", "tagging:", "done: ami-"]
    seen = iter(phases)
    assert all(any(ph.startswith(e) for ph in seen) for e in expected), phases
    assert len(phases) == len(set(phases)), phases
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
    # Encrypted at launch (launch_block_device_mappings), so no CopyImage: the build instance's root volume
    # is asked for encrypted at the base AMI's root device. moto's CreateImage snapshots a fresh unencrypted
    # volume whatever the instance had, so the AMI's snapshot cannot show it here; on AWS the snapshot of an
    # encrypted volume is encrypted.
    assert "CopyImage" not in rig.proxy.actions()
    run = next(r.params() for r in rig.proxy.records if r.action == "RunInstances")
    mapping = {k.split(".", 2)[2]: v for k, v in run.items() if k.startswith("BlockDeviceMapping.1.")}
    assert mapping["DeviceName"] == "/dev/sda1" and mapping["Ebs.Encrypted"] == "true", mapping
    assert mapping["Ebs.VolumeType"] == "gp3" and mapping["Ebs.DeleteOnTermination"] == "true", mapping
    # SSH to the temporary security group from loopback only (--ssh-cidr's default for a local build), never
    # from 0.0.0.0/0: Packer 1.6.6 honours temporary_security_group_source_cidrs.
    ingress = [r.params() for r in rig.proxy.records if r.action == "AuthorizeSecurityGroupIngress"]
    cidrs = [v for i in ingress for k, v in i.items() if k.endswith("CidrIp")]
    assert cidrs == ["127.0.0.1/32"], ingress
    # The build instance and its volume carry the run tags cleanup-build goes by, with this build's id.
    ec2 = rig.ec2()
    built = [i for r in ec2.describe_instances(Filters=[{"Name": "tag:dcp:project", "Values": [PROJECT]}])[
        "Reservations"] for i in r["Instances"]]
    assert len(built) == 1, built
    run_tags = {t["Key"]: t["Value"] for t in built[0]["Tags"]}
    assert run_tags["Name"] == BUILD_TAG and run_tags["dcp:build-id"] == tags["dcp:build-id"]
    assert tag_specifications(run)["volume"] == run_tags
    # Packer 1.6.6 does not tag its temporary security group (current Packer's amazon plugin does, with run_tags):
    # why cleanup-build finds 1.6.6's group through the tagged instance.
    create_sg = next(r.params() for r in rig.proxy.records if r.action == "CreateSecurityGroup")
    assert not any(k.startswith("TagSpecification") for k in create_sg), create_sg
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
    (["--region", "us-east-1a"], "'us-east-1a' is an availability zone; use its region 'us-east-1'"),
    (["--instance-type", "large"], "instance type 'large' is not like t3.small"),
    (["--ssh-private-key-file", "/nonexistent/key"], "ssh private key /nonexistent/key does not exist"),
    (["--source-ami-name", "no-such-image-*"], "no AMI named 'no-such-image-*'"),
    (["--ssh-cidr", "0.0.0.0/0"], "--ssh-cidr 0.0.0.0/0 (the whole internet) is wider than /16"),
    (["--ssh-cidr", "10.1.2.3/8"], "--ssh-cidr '10.1.2.3/8': host bits are set"),
    (["--ssh-cidr", "2001:db8::/64"], "--ssh-cidr '2001:db8::/64': IPv4 networks only here"),
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
