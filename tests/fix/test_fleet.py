"""`dcp-agent fleet`: the file it writes passes the F and N checks on a seeded account; bad input is one line,
exit 2, and nothing written.

moto 5.2.5 serves the ECS-optimized AMI parameters (moto/ssm/resources/ecs/optimized_amis) and loads the same
AMIs into EC2's image list (moto/ec2/resources/ecs/optimized_amis), so the AMI SSM names is one DescribeImages
knows: no image is registered here. The case where it is not comes from a fact override.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest

from agent import fleetgen
from agent import settings as settings_mod
from agent.cli import main
from agent.context import Context
from agent.facts import aws, ssm
from agent.fix.tags import TAG_KEY, TAG_VALUE, WORKER_SG_NAME
from agent.model import Status
from rig.seed import FLEET_ROLE, INSTANCE_ROLE, KEY_NAME, MACHINE_TYPES, DcpAccount
from tests.agent.harness import run_agent

AL2023 = "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended"


def fleet(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["fleet", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def ssm_param(account: DcpAccount, name: str) -> str:
    return str(account.client("ssm").get_parameter(Name=name)["Parameter"]["Value"])


def ami_root(account: DcpAccount, image_id: str) -> dict[str, Any]:
    image = account.client("ec2").describe_images(ImageIds=[image_id])["Images"][0]
    return dict(next(m for m in image["BlockDeviceMappings"] if m["DeviceName"] == image["RootDeviceName"]))


def assert_f_and_n_pass(account: DcpAccount) -> dict[str, Any]:
    results = run_agent(account, only=["F", "N"])
    bad = {c: f"{r.status}: {r.message}" for c, r in results.items() if r.status in (Status.FAIL, Status.ERROR)}
    assert bad == {}
    assert {c for c in results if c.startswith("F")} >= {f"F{i:02d}" for i in range(1, 11)}
    assert all(results[c].status != Status.SKIP for c in ("F01", "F03", "F05", "F06", "N01", "N02", "N05", "N08"))
    return results


def zones_offering(account: DcpAccount, types: list[str]) -> dict[str, set[str]]:
    offers = account.client("ec2").describe_instance_type_offerings(
        LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": types}])
    found: dict[str, set[str]] = {t: set() for t in types}
    for o in offers["InstanceTypeOfferings"]:
        found[o["InstanceType"]].add(o["Location"])
    return found


def test_fleet_for_the_seeded_account_passes_f_and_n(account: DcpAccount,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    account.fleet.unlink()      # the default out path is the seeded fleet file's: <clone>/files/<APP>Fleet_<region>.json
    code, out, err = fleet(capsys)
    assert (code, err) == (0, ""), err
    assert f"wrote {account.fleet}" in out and "check it: dcp-agent check" in out
    doc = account.fleet_doc()

    image_id = ssm_param(account, f"{AL2023}/image_id")
    root = ami_root(account, image_id)
    ec2 = account.client("ec2")
    subnets = {s["SubnetId"]: s for s in ec2.describe_subnets(
        Filters=[{"Name": "vpc-id", "Values": [account.vpc_id]}])["Subnets"]}
    offered = zones_offering(account, MACHINE_TYPES)

    assert doc["IamFleetRole"] == f"arn:aws:iam::{account.account_id}:role/{FLEET_ROLE}"
    assert doc["AllocationStrategy"] == "priceCapacityOptimized" and doc["Type"] == "maintain"
    specs = doc["LaunchSpecifications"]
    assert len(specs) == len(MACHINE_TYPES)                       # run.py: spec i runs MACHINE_TYPE[i]
    for spec, machine in zip(specs, MACHINE_TYPES, strict=True):
        assert spec["ImageId"] == image_id and spec["KeyName"] == KEY_NAME
        assert spec["IamInstanceProfile"] == {
            "Arn": f"arn:aws:iam::{account.account_id}:instance-profile/{INSTANCE_ROLE}"}
        first, second = spec["BlockDeviceMappings"]
        assert first["DeviceName"] == root["DeviceName"] and first["Ebs"]["SnapshotId"] == root["Ebs"]["SnapshotId"]
        assert first["Ebs"]["VolumeSize"] >= root["Ebs"]["VolumeSize"]
        assert second == {"DeviceName": "/dev/xvdcz", "Ebs": {"DeleteOnTermination": True, "VolumeType": "gp3"}}
        assert not {"InstanceType", "UserData", "SpotPrice", "WeightedCapacity", "NetworkInterfaces"} & set(spec)
        assert spec["SecurityGroups"] == [{"GroupId": account.security_group}]
        used = [s.strip() for s in spec["SubnetId"].split(",")]
        # One subnet in every zone of the VPC that offers the type; none elsewhere.
        assert sorted(subnets[s]["AvailabilityZone"] for s in used) == sorted(
            {s["AvailabilityZone"] for s in subnets.values()} & offered[machine])
        assert all(subnets[s]["MapPublicIpOnLaunch"] for s in used)
    assert_f_and_n_pass(account)

    # Run again: the same file, nothing rewritten.
    before = account.fleet.stat().st_mtime_ns
    code, out, err = fleet(capsys)
    assert (code, err) == (0, "") and "already up to date" in out
    assert account.fleet.stat().st_mtime_ns == before


def test_al2_family_and_an_explicit_out_and_key(account: DcpAccount, capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path) -> None:
    out_file = tmp_path / "fleet.json"
    code, out, err = fleet(capsys, "--ami-family", "al2", "--out", str(out_file), "--key-name", KEY_NAME)
    assert (code, err) == (0, ""), err
    assert "--fleet" in out                         # not the settings' fleet file: says how to check it
    doc = json.loads(out_file.read_text())
    image_id = ssm_param(account, "/aws/service/ecs/optimized-ami/amazon-linux-2/recommended/image_id")
    assert {s["ImageId"] for s in doc["LaunchSpecifications"]} == {image_id}
    assert oct(out_file.stat().st_mode & 0o777) == "0o644"
    account.fleet.write_text(out_file.read_text())
    results = assert_f_and_n_pass(account)
    assert "amzn2-ami-ecs-hvm-" in results["F05"].message


def test_an_existing_file_is_kept_without_force_and_the_diff_shown(account: DcpAccount,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    before = account.fleet.read_text()
    code, out, err = fleet(capsys)
    assert code == 2
    assert err.count("\n") == 1 and "--force" in err and str(account.fleet) in err
    assert out.startswith(f"--- {account.fleet}\n+++ {account.fleet} (new)\n")
    assert '-  "AllocationStrategy": "capacityOptimized",' in out
    assert '+  "AllocationStrategy": "priceCapacityOptimized",' in out
    assert account.fleet.read_text() == before
    assert [p.name for p in account.fleet.parent.iterdir() if p.name.endswith(".tmp")] == []

    code, out, err = fleet(capsys, "--force")
    assert (code, err) == (0, ""), err
    assert "+  \"AllocationStrategy\": \"priceCapacityOptimized\"," in out and f"wrote {account.fleet}" in out
    assert account.fleet_doc()["AllocationStrategy"] == "priceCapacityOptimized"
    assert_f_and_n_pass(account)


def test_unknown_vpc_is_one_line_and_nothing_written(account: DcpAccount,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    account.fleet.unlink()
    code, out, err = fleet(capsys, "--vpc", "vpc-0123456789abcdef0")
    assert (code, out) == (2, "")
    assert err == f"dcp-agent: VPC vpc-0123456789abcdef0 does not exist in {account.region} (aws ec2 " \
                  f"describe-vpcs --region {account.region} lists yours)\n"
    assert not account.fleet.exists()


def test_no_workers_group_says_run_fix_or_pass_one(account: DcpAccount, capsys: pytest.CaptureFixture[str]) -> None:
    account.fleet.unlink()
    account.client("ec2").delete_security_group(GroupId=account.security_group)
    code, out, err = fleet(capsys)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "dcp-agent fix --apply" in err and "--security-group" in err
    assert not account.fleet.exists()

    code, out, err = fleet(capsys, "--security-group", account.security_group)   # gone: one line too
    assert code == 2 and err == f"dcp-agent: security group {account.security_group} does not exist in " \
                                f"{account.region}\n"
    assert not account.fleet.exists()


def test_unwritable_destinations_are_one_line_and_nothing_written(account: DcpAccount, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    a_file = tmp_path / "plain-file"
    a_file.write_text("x")
    for target, why in ((a_file / "fleet.json", "is not a directory"),
                        (tmp_path / "missing" / "fleet.json", "is not a directory"),
                        (tmp_path, "is a directory")):
        code, out, err = fleet(capsys, "--out", str(target))
        assert (code, out) == (2, "") and err.count("\n") == 1 and why in err, err
    assert not (tmp_path / "missing").exists() and a_file.read_text() == "x"
    if os.geteuid() != 0:   # root writes anywhere: the mode bits do not stop it
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        code, out, err = fleet(capsys, "--out", str(locked / "fleet.json"))
        assert code == 2 and "is not writable" in err
        assert list(locked.iterdir()) == []


def test_an_ami_that_describe_images_does_not_know_is_refused(account: DcpAccount, tmp_path: Path) -> None:
    """What SSM names must be a real image in the region; moto's is (see the module's docstring), so the
    parameter's answer is replaced with an id no image has."""
    settings = settings_mod.load(account.settings)
    ctx = Context(settings)
    ctx.facts.override(ssm.ecs_ami, lambda _ctx, family: ssm.EcsAmi(AL2023, "ami-0000000000000dead", ""))
    args = main_args(out=tmp_path / "f.json")
    with pytest.raises(ValueError, match=r"^SSM names ami-0000000000000dead as the ECS-optimized al2023 AMI, "
                                         r"but DescribeImages does not know it in us-east-1$"):
        fleetgen.run_fleet(args, settings, ctx, echo=lambda _line: None)
    assert not (tmp_path / "f.json").exists()


def main_args(**overrides: Any) -> Any:
    import argparse

    values = {"config": None, "settings": None, "out": None, "force": False, "ami_family": "al2023", "vpc": None,
              "security_group": None, "key_name": None}
    return argparse.Namespace(**{**values, **overrides})


def test_assign_ip_false_needs_a_nat_route_and_uses_it(account: DcpAccount,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    account.fleet.unlink()
    account.edit_config(ASSIGN_IP="False")
    code, out, err = fleet(capsys)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "ASSIGN_IP is 'False'" in err and "NAT" in err
    assert not account.fleet.exists()

    # A private subnet whose default route is a NAT gateway in a public subnet.
    ec2 = account.client("ec2")
    public = account.subnets[0]
    zone = ec2.describe_subnets(SubnetIds=[public])["Subnets"][0]["AvailabilityZone"]
    private = ec2.create_subnet(VpcId=account.vpc_id, CidrBlock="172.31.200.0/24", AvailabilityZone=zone)[
        "Subnet"]["SubnetId"]
    eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = ec2.create_nat_gateway(SubnetId=public, AllocationId=eip)["NatGateway"]["NatGatewayId"]
    table = ec2.create_route_table(VpcId=account.vpc_id)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)
    ec2.associate_route_table(RouteTableId=table, SubnetId=private)

    code, out, err = fleet(capsys)
    assert (code, err) == (0, ""), err
    for spec in account.fleet_doc()["LaunchSpecifications"]:
        assert spec["SubnetId"] == private and "NetworkInterfaces" not in spec
    assert "no public addresses, NAT route" in out
    results = assert_f_and_n_pass(account)
    assert results["N05"].status == Status.WARN and "NAT" in results["N05"].message


def test_a_vpc_of_its_own_with_fix_s_group_and_no_auto_assigned_addresses(
        account: DcpAccount, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Subnets that do not map public addresses themselves: each spec holds one network interface that asks
    for one; the workers' group is found by fix's name and tag."""
    ec2 = account.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    zone = ec2.describe_subnets(SubnetIds=[account.subnets[0]])["Subnets"][0]["AvailabilityZone"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24", AvailabilityZone=zone)["Subnet"]["SubnetId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)

    out_file = tmp_path / "fleet.json"
    code, out, err = fleet(capsys, "--vpc", vpc, "--out", str(out_file))
    assert code == 2 and "dcp-agent fix --apply" in err and vpc in err and not out_file.exists()

    group = ec2.create_security_group(GroupName=WORKER_SG_NAME, Description="DCP workers", VpcId=vpc,
                                      TagSpecifications=[{"ResourceType": "security-group", "Tags": [
                                          {"Key": TAG_KEY, "Value": TAG_VALUE}]}])["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "203.0.113.7/32"}]}])
    code, out, err = fleet(capsys, "--vpc", vpc, "--out", str(out_file))
    assert (code, err) == (0, ""), err
    assert f"{group} ({WORKER_SG_NAME} in {vpc}, made by dcp-agent fix)" in out
    for spec in json.loads(out_file.read_text())["LaunchSpecifications"]:
        assert "SubnetId" not in spec and "SecurityGroups" not in spec
        assert spec["NetworkInterfaces"] == [{"DeviceIndex": 0, "SubnetId": subnet, "DeleteOnTermination": True,
                                              "AssociatePublicIpAddress": True, "Groups": [group]}]
    account.fleet.write_text(out_file.read_text())
    assert_f_and_n_pass(account)

    # A group from another VPC is refused, in one line.
    code, out, err = fleet(capsys, "--vpc", vpc, "--security-group", account.security_group, "--out",
                           str(tmp_path / "other.json"))
    assert code == 2 and err.count("\n") == 1 and f"not in {vpc}" in err


def test_arns_are_in_the_region_s_partition(account: DcpAccount, tmp_path: Path) -> None:
    """The ARNs take the partition of AWS_REGION (botocore's partitions file), not a hard-coded arn:aws; a
    region of another partition than the credentials' is one line. The partition is answered by override:
    the seeded account lives in us-east-1."""
    settings = settings_mod.load(account.settings)
    identity = aws.identity(Context(settings))
    ctx = Context(settings)
    ctx.facts.override(aws.partition, lambda _ctx, region: "aws-cn")
    ctx.facts.override(aws.identity, lambda _ctx, session="operator": dataclasses.replace(
        identity, arn=identity.arn.replace("arn:aws:", "arn:aws-cn:")))
    out_file = tmp_path / "f.json"
    assert fleetgen.run_fleet(main_args(out=out_file), settings, ctx, echo=lambda _line: None) == 0
    doc = json.loads(out_file.read_text())
    assert doc["IamFleetRole"] == f"arn:aws-cn:iam::{account.account_id}:role/{FLEET_ROLE}"
    assert {s["IamInstanceProfile"]["Arn"] for s in doc["LaunchSpecifications"]} == {
        f"arn:aws-cn:iam::{account.account_id}:instance-profile/{INSTANCE_ROLE}"}

    ctx = Context(settings)
    ctx.facts.override(aws.partition, lambda _ctx, region: "aws-us-gov")
    with pytest.raises(ValueError, match=r"^your credentials are in partition aws, but AWS_REGION us-east-1 is "
                                         r"in aws-us-gov$"):
        fleetgen.run_fleet(main_args(out=tmp_path / "g.json"), settings, ctx, echo=lambda _line: None)
    assert not (tmp_path / "g.json").exists()


class _Ssm:
    """A client answering GetParameter from a dict, counting calls."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.calls: list[str] = []

    def get_parameter(self, Name: str) -> dict[str, Any]:
        self.calls.append(Name)
        return {"Parameter": {"Name": Name, "Value": self.values[Name]}}


class _Ctx:
    def __init__(self, client: _Ssm) -> None:
        self._client = client

    def client(self, service: str) -> _Ssm:
        assert service == "ssm"
        return self._client


def test_the_ssm_value_is_read_as_json_as_aws_serves_it() -> None:
    """AWS's value is a JSON object: one call. moto's Python repr of it: the /image_id child, a second call."""
    value = json.dumps({"image_id": "ami-0123456789abcdef0", "image_name": "al2023-ami-ecs-hvm-2023.0.1-kernel-6.1-x86_64",
                        "schema_version": 1})
    aws = _Ssm({AL2023: value})
    assert ssm.ecs_ami.fn(_Ctx(aws), "al2023") == ssm.EcsAmi(   # type: ignore[arg-type]
        AL2023, "ami-0123456789abcdef0", "al2023-ami-ecs-hvm-2023.0.1-kernel-6.1-x86_64")
    assert aws.calls == [AL2023]
    moto_like = _Ssm({AL2023: str(json.loads(value)), f"{AL2023}/image_id": "ami-0123456789abcdef0"})
    assert ssm.ecs_ami.fn(_Ctx(moto_like), "al2023") == ssm.EcsAmi(   # type: ignore[arg-type]
        f"{AL2023}/image_id", "ami-0123456789abcdef0", "")
    assert moto_like.calls == [AL2023, f"{AL2023}/image_id"]


def test_no_credentials_is_one_line(account: DcpAccount, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    account.fleet.unlink()
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(account.home / "nonexistent"))
    code, out, err = fleet(capsys)
    assert (code, out) == (2, "")
    assert err.startswith("dcp-agent: no AWS credentials: ") and err.count("\n") == 1
    assert not account.fleet.exists()


def test_each_type_gets_the_zones_that_offer_it(account: DcpAccount, capsys: pytest.CaptureFixture[str]) -> None:
    """moto offers r5b.2xlarge in us-east-1a-d only, m5.xlarge in a-d and f: each spec lists its own zones."""
    account.fleet.unlink()
    types = ["m5.xlarge", "r5b.2xlarge"]
    account.edit_config(MACHINE_TYPE=types)
    code, out, err = fleet(capsys)
    assert (code, err) == (0, ""), err
    assert "\n  r5b.2xlarge: " in out and "(us-east-1f)" not in out.split("r5b.2xlarge: ")[1]
    subnets = {s["SubnetId"]: s["AvailabilityZone"] for s in account.client("ec2").describe_subnets(
        Filters=[{"Name": "vpc-id", "Values": [account.vpc_id]}])["Subnets"]}
    offered = zones_offering(account, types)
    assert offered["r5b.2xlarge"] < offered["m5.xlarge"]   # what makes this case
    for spec, machine in zip(account.fleet_doc()["LaunchSpecifications"], types, strict=True):
        zones = sorted(subnets[s.strip()] for s in spec["SubnetId"].split(","))
        assert zones == sorted(set(subnets.values()) & offered[machine])
    results = run_agent(account, only=["F", "N"])
    bad = {c: r.message for c, r in results.items() if r.status in (Status.FAIL, Status.ERROR)}
    # N08 judges each type in its own specification's zones, which fleet chose: nothing may fail.
    assert bad == {}
    assert results["N08"].status is Status.PASS


@pytest.mark.parametrize("machine_type,message", [
    (["m5.xlargee"], "MACHINE_TYPE m5.xlargee is not an EC2 instance type in us-east-1"),
    (["m5.xlarge", "m5.xlarge"], "MACHINE_TYPE names a type twice"),
    ("m5.xlarge", "MACHINE_TYPE is not a list of instance types"),
])
def test_bad_machine_types_are_one_line(account: DcpAccount, capsys: pytest.CaptureFixture[str],
                                        machine_type: Any, message: str) -> None:
    account.fleet.unlink()
    account.edit_config(MACHINE_TYPE=machine_type)
    code, out, err = fleet(capsys)
    assert (code, out) == (2, "") and err.count("\n") == 1 and message in err, err
    assert not account.fleet.exists()


def test_the_installed_command_writes_and_refuses(account: DcpAccount) -> None:
    """The console script, as a user runs it: the file, then a refusal (one line on stderr, the diff on
    stdout) once config.py changes, and a missing config.py is one line too."""
    import subprocess
    import sys

    agent = str(Path(sys.executable).parent / "dcp-agent")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([agent, "fleet", *args], capture_output=True, text=True, env=dict(os.environ),
                              timeout=120, check=False, stdin=subprocess.DEVNULL)

    account.fleet.unlink()
    p = run()
    assert (p.returncode, p.stderr) == (0, ""), p.stderr
    assert json.loads(account.fleet.read_text())["LaunchSpecifications"]
    account.edit_config(EBS_VOL_SIZE=60)
    before = account.fleet.read_text()
    p = run()
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "Traceback" not in p.stdout + p.stderr
    assert '-            "VolumeSize": 40,\n+            "VolumeSize": 60,' in p.stdout
    assert account.fleet.read_text() == before
    account.config_py.unlink()
    p = run()
    assert (p.returncode, p.stdout) == (2, "")
    assert p.stderr == f"dcp-agent: cannot use config.py: {account.config_py} does not exist\n"
