"""`invoke launch-node`, `list-nodes`, `stop-node`, `terminate-node` against moto server, with the node's SSH
pinned to a real sshd sandbox on 127.0.0.1 (moto's instance addresses are made up and never dialled).

The AMIs here are made in moto with build-ami's tags (a real build-ami run is tests/ami's and the demo's).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from bootstrap.ami import PROJECT
from bootstrap.node import NODE_TAG, SG_NAME
from rig.moto_server import MotoServer
from rig.nodes import emulator_env, launch_node_options, operator_home, run_invoke
from rig.proxy import LatencyProxy
from rig.sandbox import Sandbox

UBUNTU = "ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-*"


def ec2(endpoint: str) -> Any:
    return boto3.client("ec2", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def make_ami(client: Any, name: str, tags: dict[str, str]) -> str:
    """An AMI as build-ami leaves it (name <prefix>-<timestamp>, the project's tags), made from an instance."""
    base = client.describe_images(Filters=[{"Name": "name", "Values": [UBUNTU]}])["Images"][0]["ImageId"]
    inst = client.run_instances(ImageId=base, MinCount=1, MaxCount=1, InstanceType="t3.small")["Instances"][0]
    ami = client.create_image(InstanceId=inst["InstanceId"], Name=name, TagSpecifications=[
        {"ResourceType": "image", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}])["ImageId"]
    client.terminate_instances(InstanceIds=[inst["InstanceId"]])
    return str(ami)


@pytest.fixture
def amis(moto: MotoServer) -> dict[str, str]:
    """A clean emulator with two of this project's AMIs and a newer foreign one (which must not be picked)."""
    moto.reset()
    client = ec2(moto.endpoint)
    # CreationDate has one-second resolution: within one second the name (<prefix>-<UTC timestamp>) decides.
    old = make_ami(client, "dcp-control-node-20260101-000000", {"dcp:project": PROJECT})
    new = make_ami(client, "dcp-control-node-20261120-000000", {"dcp:project": PROJECT})
    foreign = make_ami(client, "dcp-control-node-someone-else", {"team": "other"})
    return {"old": old, "new": new, "foreign": foreign}


def env(home: Path) -> dict[str, str]:
    return {**emulator_env(), "HOME": str(home)}


def created(endpoint: str) -> dict[str, list[str]]:
    """What launch-node could have created: live instances, key pairs, its security groups."""
    client = ec2(endpoint)
    live = [i["InstanceId"] for r in client.describe_instances(Filters=[
        {"Name": "instance-state-name", "Values": ["pending", "running", "stopped"]}])["Reservations"]
            for i in r["Instances"]]
    return {"instances": live, "keys": [k["KeyName"] for k in client.describe_key_pairs()["KeyPairs"]],
            "groups": [g["GroupId"] for g in client.describe_security_groups(
                Filters=[{"Name": "group-name", "Values": [SG_NAME]}])["SecurityGroups"]]}


@pytest.mark.sandbox
def test_launch_node_end_to_end(moto: MotoServer, amis: dict[str, str], sandbox: Sandbox, sandbox_key: Path,
                                tmp_path: Path) -> None:
    home = operator_home(tmp_path / "home", sandbox_key)
    with LatencyProxy(moto.endpoint) as proxy:
        opts = launch_node_options(proxy.endpoint, sandbox.port)
        start = time.monotonic()
        p = run_invoke("launch-node", opts, env(home))
        took = time.monotonic() - start
    assert p.returncode == 0, p.stdout + p.stderr
    print(f"launch-node wall time {took:.2f} s")
    command = p.stdout.strip().splitlines()[-1]
    assert command == f"ssh -i ~/.ssh/dcp-node -p {sandbox.port} root@127.0.0.1"
    command = command.replace("~", str(home))             # what the operator's shell does
    # The printed command logs in (host key options only because the sandbox's key is new to this machine).
    login = subprocess.run([*command.split()[:1], "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                            "-o", "BatchMode=yes", *command.split()[1:], "hostname"],
                           capture_output=True, text=True, timeout=30, check=False)
    assert login.returncode == 0 and login.stdout.strip() == "testhost", login.stderr

    client = ec2(moto.endpoint)
    nodes = [i for r in client.describe_instances(Filters=[{"Name": "tag-key", "Values": [NODE_TAG]}])[
        "Reservations"] for i in r["Instances"]]
    assert len(nodes) == 1
    node = nodes[0]
    assert node["ImageId"] == amis["new"]                     # the newest of this project's, not the foreign one
    assert node["InstanceType"] == "t3.small" and node["KeyName"] == "dcp-node"
    assert node["MetadataOptions"]["HttpTokens"] == "required"
    tags = {t["Key"]: t["Value"] for t in node["Tags"]}
    assert tags["dcp:project"] == PROJECT and tags[NODE_TAG] == "dcp-control-node" and tags["Name"] == "dcp-control-node"
    volume = client.describe_volumes(VolumeIds=[node["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]])["Volumes"][0]
    assert volume["Encrypted"] and volume["VolumeType"] == "gp3"
    assert {t["Key"]: t["Value"] for t in volume["Tags"]}[NODE_TAG] == "dcp-control-node"
    # The key pair is the operator's public key; the group lets SSH in from the given address only.
    pair = client.describe_key_pairs(KeyNames=["dcp-node"], IncludePublicKey=True)["KeyPairs"][0]
    assert pair["PublicKey"].split()[1] == Path(f"{sandbox_key}.pub").read_text().split()[1]
    group = client.describe_security_groups(GroupIds=[g["GroupId"] for g in node["SecurityGroups"]])[
        "SecurityGroups"][0]
    assert group["GroupName"] == SG_NAME
    assert [(r["IpProtocol"], r["FromPort"], r["ToPort"], [x["CidrIp"] for x in r["IpRanges"]])
            for r in group["IpPermissions"]] == [("tcp", 22, 22, ["127.0.0.1/32"])]
    run = next(r.params() for r in proxy.records if r.action == "RunInstances")
    assert run["BlockDeviceMapping.1.Ebs.Encrypted"] == "true" and run["MetadataOptions.HttpTokens"] == "required"

    # A second node reuses the group and the key pair; list-nodes shows both.
    second = run_invoke("launch-node", {**launch_node_options(moto.endpoint, sandbox.port), "--name": "second",
                                        "--ami": amis["old"]}, env(home))
    assert second.returncode == 0, second.stdout + second.stderr
    assert "reused" in second.stdout
    assert len(created(moto.endpoint)["groups"]) == 1 and created(moto.endpoint)["keys"] == ["dcp-node"]
    again = run_invoke("launch-node", launch_node_options(moto.endpoint, sandbox.port), env(home))
    assert again.returncode == 2 and "a node named dcp-control-node exists" in again.stderr
    where = {"--region": "us-east-1", "--endpoint": moto.endpoint}
    listed = run_invoke("list-nodes", where, env(home))
    assert listed.returncode == 0
    assert [ln.split()[0] for ln in listed.stdout.splitlines()] == ["dcp-control-node", "second"], listed.stdout

    # stop and terminate go by tag: an instance this project did not launch is not touched.
    stranger = client.run_instances(ImageId=amis["foreign"], MinCount=1, MaxCount=1, TagSpecifications=[
        {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "second"}]}])["Instances"][0]["InstanceId"]
    refused = run_invoke("terminate-node", where, env(home), stranger)
    assert refused.returncode == 2 and "no node" in refused.stderr
    stopped = run_invoke("stop-node", where, env(home), "second")
    assert stopped.returncode == 0, stopped.stderr
    gone = run_invoke("terminate-node", where, env(home), "dcp-control-node")
    assert gone.returncode == 0, gone.stderr
    states = {i["InstanceId"]: i["State"]["Name"] for r in client.describe_instances()["Reservations"]
              for i in r["Instances"]}
    assert states[node["InstanceId"]] == "terminated" and states[stranger] == "running"
    listed = run_invoke("list-nodes", where, env(home))
    assert [ln.split()[:3:2] for ln in listed.stdout.splitlines()] == [["second", "stopped"]], listed.stdout


def test_dry_run_asks_ec2_and_creates_nothing(moto: MotoServer, amis: dict[str, str], tmp_path: Path,
                                              sandbox_key: Path) -> None:
    home = operator_home(tmp_path / "home", sandbox_key)
    with LatencyProxy(moto.endpoint) as proxy:
        p = run_invoke("launch-node", launch_node_options(proxy.endpoint, NO_SSH), env(home), "--dry-run")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "dry run: would import key pair dcp-node" in p.stdout
    assert "dry run: would create security group dcp-control-node-ssh" in p.stdout
    assert "dry run: would launch t3.small dcp-control-node from " + amis["new"] in p.stdout
    asked = {r.action: r.params().get("DryRun") for r in proxy.records
             if r.action in {"ImportKeyPair", "CreateSecurityGroup", "RunInstances"}}
    assert asked == {"ImportKeyPair": "true", "CreateSecurityGroup": "true", "RunInstances": "true"}
    assert created(moto.endpoint) == {"instances": [], "keys": [], "groups": []}


NO_SSH = 9          # the discard port on 127.0.0.1: these launches never get as far as SSH


@pytest.mark.parametrize(("extra", "expected"), [
    ({"--ami": "ami-0123456789abcdef0"}, "AMI ami-0123456789abcdef0 does not exist in us-east-1"),
    ({"--ami": "my-image"}, "is not an AMI id"),
    ({"--region": "us-east-9"}, "region 'us-east-9' does not exist"),
    ({"--region": "us-east-1a"}, "is an availability zone"),
    ({"--key-name": "nobody"}, "no key pair 'nobody' in us-east-1 and no"),
    ({"--instance-type": "t9.small"}, "instance type t9.small does not exist in us-east-1"),
    ({"--instance-type": "t4g.small"}, "runs arm64, AMI"),
    ({"--instance-profile": "no-such-profile"}, "instance profile no-such-profile does not exist"),
    ({"--subnet-id": "subnet-0123456789abcdef0"}, "subnet subnet-0123456789abcdef0 does not exist"),
    ({"--ssh-cidr": "0.0.0.0/0"}, "(the whole internet) is wider than /16"),
    ({"--ssh-host": ""}, "give --ssh-host 127.0.0.1"),
])
def test_bad_input_is_one_line_and_creates_nothing(  # noqa: PLR0917 - fixtures and parameters
        moto: MotoServer, amis: dict[str, str], tmp_path: Path, sandbox_key: Path, extra: dict[str, str],
        expected: str) -> None:
    home = operator_home(tmp_path / "home", sandbox_key)
    p = run_invoke("launch-node", {**launch_node_options(moto.endpoint, NO_SSH), **extra}, env(home))
    assert p.returncode == 2, p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("launch-node: ") and expected in lines[0], p.stderr
    assert "Traceback" not in p.stdout + p.stderr
    assert created(moto.endpoint) == {"instances": [], "keys": [], "groups": []}


def test_no_project_ami_says_run_build_ami(moto: MotoServer, tmp_path: Path, sandbox_key: Path) -> None:
    moto.reset()
    home = operator_home(tmp_path / "home", sandbox_key)
    p = run_invoke("launch-node", launch_node_options(moto.endpoint, NO_SSH), env(home))
    assert p.returncode == 2
    assert "no AMI named dcp-control-node-* built by this project" in p.stderr and "invoke build-ami" in p.stderr


def test_without_ssh_pinned_the_subnet_must_give_a_reachable_public_address(
        moto: MotoServer, amis: dict[str, str], tmp_path: Path, sandbox_key: Path) -> None:
    """The checks a real account gets (no --ssh-host), run as launch-node runs them before creating anything."""
    from bootstrap.node import NodeConfig, NodeError, plan
    from rig.seed import default_vpc_with_internet

    home = operator_home(tmp_path / "home", sandbox_key)
    client = ec2(moto.endpoint)
    cfg = NodeConfig(region="us-east-1", key_name="dcp-node", endpoint=moto.endpoint, ssh_cidr="203.0.113.7/32",
                     ssh_dir=home / ".ssh")
    with pytest.raises(NodeError, match=r"no route from 0\.0\.0\.0/0 to an internet gateway, so SSH from here"):
        plan(client, cfg)                                   # moto's default VPC has no internet gateway
    default_vpc_with_internet(client)                       # as every real default VPC has
    assert plan(client, cfg).cidrs == ("203.0.113.7/32",)
    vpc = client.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    private = client.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    with pytest.raises(NodeError, match=f"subnet {private} gives the node no public address"):
        plan(client, NodeConfig(**{**cfg.__dict__, "subnet_id": private}))
    assert created(moto.endpoint) == {"instances": [], "keys": [], "groups": []}


def test_a_reused_group_names_the_addresses_it_still_lets_in(moto: MotoServer, amis: dict[str, str], tmp_path: Path,
                                                             sandbox_key: Path) -> None:
    home = operator_home(tmp_path / "home", sandbox_key)
    client = ec2(moto.endpoint)
    vpc = client.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    group = client.create_security_group(GroupName=SG_NAME, Description="t", VpcId=vpc, TagSpecifications=[
        {"ResourceType": "security-group", "Tags": [{"Key": "dcp:project", "Value": PROJECT}]}])["GroupId"]
    client.authorize_security_group_ingress(GroupId=group, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "198.51.100.9/32"}]}])
    p = run_invoke("launch-node", {**launch_node_options(moto.endpoint, NO_SSH), "--wait-timeout": "1"}, env(home))
    assert f"also lets in 198.51.100.9/32 (earlier addresses); remove one with: aws ec2 revoke-security-group-ingress " \
           f"--group-id {group}" in p.stdout, p.stdout + p.stderr
    assert f"security group {group}: SSH (tcp/22) from 127.0.0.1/32 added" in p.stdout       # reused, rule added
    assert "SSH on 127.0.0.1:9 did not answer within 1 s" in p.stderr                          # nothing listens there
    assert "invoke terminate-node dcp-control-node" in p.stderr
