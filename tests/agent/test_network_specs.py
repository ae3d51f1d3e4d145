"""N08 and N10 judge each launch specification as run.py sends it.

run.py (startCluster) sets launch specification i's InstanceType to MACHINE_TYPE[i], so a type is launched only in
the zones of its own specification's subnets (a top-level SubnetId may list several, comma-separated, or the
first network interface names one). N10's DryRun launch is launch specification 0 as sent: its own SubnetId and
SecurityGroups, and ASSIGN_IP 'False' applied to its interface 0.

moto server answers DescribeInstanceTypeOfferings from AWS's offerings per zone (m5.xlarge is not offered in
us-east-1e, c4.xlarge is). moto answers a DryRun RunInstances before looking at its parameters, so what N10 sends
is read from a recording loopback proxy in front of moto (rig.proxy.LatencyProxy, no latency).
"""

from __future__ import annotations

from typing import Any

import pytest

from agent.model import Status
from rig.proxy import LatencyProxy
from rig.seed import DcpAccount
from tests.agent.harness import run_agent


def subnet_in(a: DcpAccount, zone: str) -> str:
    subnets = a.client("ec2").describe_subnets(Filters=[{"Name": "vpc-id", "Values": [a.vpc_id]},
                                                        {"Name": "availability-zone", "Values": [zone]}])["Subnets"]
    return str(subnets[0]["SubnetId"])


def specs_in(a: DcpAccount, subnets: list[str], *, top_level: bool) -> None:
    """The fleet's two launch specifications, spec i in ``subnets[i]`` (a comma-separated list when top level):
    as its first network interface's subnet, or as the specification's own SubnetId and SecurityGroups."""
    doc = a.fleet_doc()
    for spec, subnet in zip(doc["LaunchSpecifications"], subnets, strict=True):
        if top_level:
            spec.pop("NetworkInterfaces")
            spec.update(SubnetId=subnet, SecurityGroups=[{"GroupId": a.security_group}])
        else:
            spec["NetworkInterfaces"][0]["SubnetId"] = subnet
    a.write_fleet(doc)


@pytest.mark.parametrize("top_level", [False, True])
def test_each_type_is_judged_in_its_own_specifications_zones(account: DcpAccount, top_level: bool) -> None:
    """m5.xlarge (spec 0) in us-east-1a (and 1b), c4.xlarge (spec 1) in us-east-1e: each offered where it is sent,
    though m5.xlarge is not offered in us-east-1e."""
    a, b, e = (subnet_in(account, f"us-east-1{z}") for z in "abe")
    specs_in(account, [f"{a}, {b}" if top_level else a, e], top_level=top_level)
    account.edit_config(MACHINE_TYPE=["m5.xlarge", "c4.xlarge"])
    r = run_agent(account, ["N08"])["N08"]
    assert r.status is Status.PASS, r.message
    zones_0 = "us-east-1a, us-east-1b" if top_level else "us-east-1a"
    assert r.message == f"m5.xlarge in {zones_0}; c4.xlarge in us-east-1e"


def test_a_type_missing_from_one_of_its_subnets_zones_warns_naming_the_specification(account: DcpAccount) -> None:
    """Spec 0 lists a subnet in us-east-1a and one in us-east-1e (top level, comma-separated): its m5.xlarge is not
    offered in us-east-1e. Spec 1's c4.xlarge in us-east-1e is fine. The fleet sets the (m5.xlarge, us-east-1e)
    pool aside and launches in us-east-1a, so this is a warning, not a BLOCKER."""
    a, e = (subnet_in(account, f"us-east-1{z}") for z in "ae")
    specs_in(account, [f"{a},{e}", e], top_level=True)
    account.edit_config(MACHINE_TYPE=["m5.xlarge", "c4.xlarge"])
    r = run_agent(account, ["N08"])["N08"]
    assert r.status is Status.WARN
    assert r.message.startswith("not offered: m5.xlarge in us-east-1e (launch specification 0);")


def test_a_type_offered_in_none_of_its_subnets_zones_fails(account: DcpAccount) -> None:
    """Spec 0's only subnet is in us-east-1e, where its m5.xlarge is not offered: that specification launches
    nothing, though the other specification's c4.xlarge could run there."""
    e = subnet_in(account, "us-east-1e")
    specs_in(account, [e, e], top_level=True)
    account.edit_config(MACHINE_TYPE=["m5.xlarge", "c4.xlarge"])
    r = run_agent(account, ["N08"])["N08"]
    assert r.status is Status.FAIL
    assert r.message == "not offered in any zone of its subnets: m5.xlarge (launch specification 0)"


def dry_run_request(account: DcpAccount, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Run N10 with EC2 behind the recording proxy; the RunInstances request's parameters."""
    with LatencyProxy(account.endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_EC2", proxy.endpoint)
        r = run_agent(account, ["N10"])["N10"]
    assert r.status is Status.PASS, r.message
    runs = [rec.params() for rec in proxy.records if rec.action == "RunInstances"]
    assert len(runs) == 1
    assert runs[0]["DryRun"] == "true"
    return runs[0]


def test_dry_run_sends_the_specifications_subnet_and_groups(account: DcpAccount,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = account.subnets
    specs_in(account, [f"{a},{b}", b], top_level=True)
    sent = dry_run_request(account, monkeypatch)
    assert sent["SubnetId"] == a                     # RunInstances takes one subnet: the first of the list
    assert sent["SecurityGroupId.1"] == account.security_group
    assert not any(k.startswith("NetworkInterface.") for k in sent)
    assert sent["InstanceType"] == "m5.xlarge"


def test_dry_run_applies_assign_ip_false_to_interface_0(account: DcpAccount, monkeypatch: pytest.MonkeyPatch) -> None:
    """The healthy fleet's interfaces ask for public addresses; run.py's ASSIGN_IP 'False' turns spec 0's off."""
    account.edit_config(ASSIGN_IP="False")
    sent = dry_run_request(account, monkeypatch)
    assert sent["NetworkInterface.1.AssociatePublicIpAddress"] == "false"
    assert sent["NetworkInterface.1.SubnetId"] == account.subnets[0]
    assert "SubnetId" not in sent and not any(k.startswith("SecurityGroupId") for k in sent)


def test_internet_path_is_judged_in_every_subnet_a_specification_lists(account: DcpAccount) -> None:
    """N05: a top-level SubnetId 'a, x' puts workers in either; x (public IPs, but its route table has no route
    to the internet gateway) strands the ones that land there, though a is fine."""
    ec2 = account.client("ec2")
    x = ec2.create_subnet(VpcId=account.vpc_id, CidrBlock="172.31.200.0/24",
                          AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    ec2.modify_subnet_attribute(SubnetId=x, MapPublicIpOnLaunch={"Value": True})
    table = ec2.create_route_table(VpcId=account.vpc_id)["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=table, SubnetId=x)
    a = subnet_in(account, "us-east-1a")
    specs_in(account, [f"{a}, {x}", a], top_level=True)
    r = run_agent(account, ["N05"])["N05"]
    assert r.status is Status.FAIL, r.message
    assert r.message.startswith(f"{x} has no 0.0.0.0/0 route to an internet gateway")


@pytest.mark.parametrize("subnet, groups", [(["subnet-in-a-list"], True), (None, "sg-as-a-string")])
def test_dry_run_with_odd_types_in_the_fleet_file_does_not_crash(account: DcpAccount, monkeypatch: pytest.MonkeyPatch,
                                                                 subnet: Any, groups: Any) -> None:
    """A SubnetId that is not a string, or SecurityGroups that is not a list, is not sent (F01 judges the file)."""
    doc = account.fleet_doc()
    doc["LaunchSpecifications"][0].update(SubnetId=subnet, SecurityGroups=groups)
    account.write_fleet(doc)
    sent = dry_run_request(account, monkeypatch)
    assert "SubnetId" not in sent and not any(k.startswith(("SecurityGroupId", "SecurityGroup.")) for k in sent)
