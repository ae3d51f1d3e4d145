"""build-ami's network preflight against moto (nothing is built; Packer never starts): a default VPC or a
subnet, an address SSH can reach, and a given security group that lets tcp/22 in from the operator."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from bootstrap import ami
from bootstrap.ami import BuildConfig, BuildError
from rig.moto_server import MotoServer
from rig.nodes import SOURCE_AMI
from rig.seed import default_vpc_with_internet

HERE = ipaddress.IPv4Address("127.0.0.1")


@pytest.fixture
def ec2(moto: MotoServer) -> Iterator[Any]:
    moto.reset()
    yield boto3.client("ec2", endpoint_url=moto.endpoint, region_name="us-east-1", aws_access_key_id="testing",
                       aws_secret_access_key="testing")


def cfg(moto: MotoServer, **values: Any) -> BuildConfig:
    # No --ssh-host: the path a real account takes (SSH to the instance's own address); preflight only.
    return BuildConfig(region="us-east-1", endpoint=moto.endpoint, source_ami_name=SOURCE_AMI, **values)


def private_subnet(ec2: Any) -> str:
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    return str(ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"])


def test_default_vpc_with_an_internet_route_passes(moto: MotoServer, ec2: Any) -> None:
    default_vpc_with_internet(ec2)
    assert ami.preflight(cfg(moto), ec2).image_id.startswith("ami-")


def test_default_vpc_without_an_internet_route_is_refused(moto: MotoServer, ec2: Any) -> None:
    with pytest.raises(BuildError, match=r"no route from 0\.0\.0\.0/0 to an internet gateway"):
        ami.preflight(cfg(moto), ec2)


def test_no_default_vpc_needs_a_subnet(moto: MotoServer, ec2: Any) -> None:
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    for sub in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]:
        ec2.delete_subnet(SubnetId=sub["SubnetId"])
    ec2.delete_vpc(VpcId=vpc)
    with pytest.raises(BuildError, match="has no default VPC: pass --subnet-id"):
        ami.preflight(cfg(moto), ec2)


def test_private_subnet_needs_a_public_address_or_session_manager(moto: MotoServer, ec2: Any) -> None:
    subnet = private_subnet(ec2)
    with pytest.raises(BuildError, match=f"subnet {subnet} gives the build instance no public address"):
        ami.preflight(cfg(moto, subnet_id=subnet), ec2)
    with pytest.raises(BuildError, match=r"no route from 0\.0\.0\.0/0"):   # a public address alone is not enough
        ami.preflight(cfg(moto, subnet_id=subnet, associate_public_ip=True), ec2)
    ami.preflight(cfg(moto, subnet_id=subnet, ssh_interface="session_manager", iam_instance_profile="ssm"), ec2)
    with pytest.raises(BuildError, match="does not exist"):
        ami.preflight(cfg(moto, subnet_id="subnet-0123456789abcdef0"), ec2)


def test_session_manager_needs_an_instance_profile() -> None:
    with pytest.raises(BuildError, match="needs --iam-instance-profile"):
        ami.check_inputs(BuildConfig(region="us-east-1", ssh_interface="session_manager"))
    with pytest.raises(BuildError, match="--ssh-interface 'ssm'"):
        ami.check_inputs(BuildConfig(region="us-east-1", ssh_interface="ssm"))


@pytest.mark.parametrize(("rule", "verdict"), [
    ({"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "127.0.0.0/8"}]}, "ok"),
    ({"IpProtocol": "-1", "IpRanges": [{"CidrIp": "127.0.0.1/32"}]}, "ok"),
    ({"IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535, "IpRanges": [{"CidrIp": "127.0.0.1/32"}]}, "ok"),
    ({"IpProtocol": "udp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "127.0.0.1/32"}]}, "allows no SSH"),
    ({"IpProtocol": "tcp", "FromPort": 80, "ToPort": 443, "IpRanges": [{"CidrIp": "127.0.0.1/32"}]}, "allows no SSH"),
    ({"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "203.0.113.0/24"}]},
     r"only from 203\.0\.113\.0/24, not from this machine"),
])
def test_given_security_group_must_let_ssh_in_from_the_operator(moto: MotoServer, ec2: Any, rule: dict[str, Any],
                                                                verdict: str) -> None:
    default_vpc_with_internet(ec2)
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    group = ec2.create_security_group(GroupName="mine", Description="t", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[rule])
    # The emulator's SSH comes from loopback: that is the operator's address the rules are checked against.
    config = cfg(moto, security_group_id=group, ssh_host="127.0.0.1")
    assert ami.operator_address(config) == HERE
    if verdict == "ok":
        ami.preflight(config, ec2)
    else:
        with pytest.raises(BuildError, match=verdict):
            ami.preflight(config, ec2)
