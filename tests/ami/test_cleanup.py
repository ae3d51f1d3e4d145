"""`invoke cleanup-build` against moto server (through the recording proxy): it touches only what this
project's builds tagged, only builds older than --older-than, and each failure on its own.

The account holds, side by side: an old interrupted build of ours as Packer 1.6.6 leaves it (a stopped
instance with run tags; its packer_* group and key untagged), an old one as current Packer leaves it (group
and key tagged with the run tags), a build of ours in progress (started now), another team's packer_* key
pair, group and build instance, and AMIs (ours beyond --keep, one with our name but not our tags, a lab's).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from bootstrap.ami import BUILD_TAG, PROJECT
from rig.moto_server import MotoServer
from rig.nodes import SOURCE_AMI, emulator_env
from rig.proxy import LatencyProxy
from tests.conftest import ROOT

INVOKE = str(Path(sys.executable).parent / "invoke")


def iso(minutes_ago: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - minutes_ago * 60))


def ours(build: str, started: str) -> list[dict[str, str]]:
    """The run tags build-ami gives everything a build starts (bootstrap.ami.run_tags)."""
    return [{"Key": "Name", "Value": BUILD_TAG}, {"Key": "dcp:project", "Value": PROJECT},
            {"Key": "dcp:build-id", "Value": build}, {"Key": "dcp:build-started", "Value": started}]


@dataclass
class Account:
    ec2: Any
    proxy: LatencyProxy
    old16: dict[str, str]          # our old 1.6.6-style build: instance, group, key
    oldmod: dict[str, str]         # our old current-Packer-style leftovers: group, key (tagged)
    young: dict[str, str]          # our build in progress
    other: dict[str, str]          # another team's packer_* resources
    amis: list[str]                # ours, 5
    foreign_amis: list[str]        # named like ours but not ours; a lab's

    def cleanup(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([INVOKE, "cleanup-build", "--region", "us-east-1", "--endpoint", self.proxy.endpoint,
                               *extra], capture_output=True, text=True, cwd=ROOT, env=emulator_env(), check=False)

    def state(self) -> dict[str, str]:
        return {i["InstanceId"]: i["State"]["Name"] for r in self.ec2.describe_instances()["Reservations"]
                for i in r["Instances"]}

    def groups(self) -> set[str]:
        return {g["GroupId"] for g in self.ec2.describe_security_groups()["SecurityGroups"]}

    def key_pairs(self) -> set[str]:
        return {k["KeyName"] for k in self.ec2.describe_key_pairs()["KeyPairs"]}

    def images(self) -> set[str]:
        return {i["ImageId"] for i in self.ec2.describe_images(Owners=["self"])["Images"]}


@pytest.fixture
def account(moto: MotoServer) -> Iterator[Account]:
    moto.reset()
    ec2 = boto3.client("ec2", endpoint_url=moto.endpoint, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    base = ec2.describe_images(Owners=["099720109477"], Filters=[{"Name": "name", "Values": [SOURCE_AMI]}])["Images"][0]

    def group(name: str, tags: list[dict[str, str]] | None = None) -> str:
        spec = [{"ResourceType": "security-group", "Tags": tags}] if tags else []
        return str(ec2.create_security_group(GroupName=name, Description="Temporary group for Packer", VpcId=vpc,
                                             TagSpecifications=spec)["GroupId"])

    def key(name: str, tags: list[dict[str, str]] | None = None) -> str:
        ec2.create_key_pair(KeyName=name, TagSpecifications=[{"ResourceType": "key-pair", "Tags": tags}] if tags else [])
        return name

    def instance(group_id: str, key_name: str, tags: list[dict[str, str]]) -> str:
        return str(ec2.run_instances(ImageId=base["ImageId"], MinCount=1, MaxCount=1, KeyName=key_name,
                                     SecurityGroupIds=[group_id], TagSpecifications=[
                                         {"ResourceType": "instance", "Tags": tags}])["Instances"][0]["InstanceId"])

    # Our old 1.6.6 build, interrupted while the image was being made: the instance is stopped.
    old16 = {"group": group("packer_65f1a0b2-old16"), "key": key("packer_65f1a0b2-old16")}
    old16["instance"] = instance(old16["group"], old16["key"], ours("20261125-050000-aaaaaa", iso(180)))
    ec2.stop_instances(InstanceIds=[old16["instance"]])
    # Our old current-Packer build, interrupted after its instance was gone: group and key carry the run tags.
    tags = ours("20261125-050100-bbbbbb", iso(180))
    oldmod = {"group": group("packer_65f1a0b3-oldmod", tags), "key": key("packer_65f1a0b3-oldmod", tags)}
    # Our build in progress, started just now.
    young = {"group": group("packer_65f1b0c4-young"), "key": key("packer_65f1b0c4-young")}
    young["instance"] = instance(young["group"], young["key"], ours("20261125-080000-cccccc", iso(0)))
    young["tagged_group"] = group("packer_65f1b0c5-young", ours("20261125-080000-cccccc", iso(0)))
    # Another team's Packer build, old and running, and their leftovers: packer_* names, not our tags.
    other = {"group": group("packer_5e0c9d1e-other"), "key": key("packer_5e0c9d1e-other"),
             "stale_group": group("packer_5e0c9d1f-other"), "stale_key": key("packer_5e0c9d1f-other")}
    other["instance"] = instance(other["group"], other["key"], [{"Key": "Name", "Value": "Packer Builder"}])

    source = ec2.run_instances(ImageId=base["ImageId"], MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]

    def image(name: str, tags: list[dict[str, str]] | None = None) -> str:
        return str(ec2.create_image(InstanceId=source, Name=name, TagSpecifications=[
            {"ResourceType": "image", "Tags": tags}] if tags else [])["ImageId"])

    amis = [image(f"dcp-control-node-2026010{i}-000000", [{"Key": "dcp:project", "Value": PROJECT}])
            for i in range(5)]
    foreign = [image("dcp-control-node-their-fork"), image("lab-image")]
    with LatencyProxy(moto.endpoint) as proxy:
        yield Account(ec2, proxy, old16, oldmod, young, other, amis, foreign)


def test_listing_names_only_our_old_leftovers_and_deletes_nothing(account: Account) -> None:
    before = (account.state(), account.groups(), account.key_pairs(), account.images())
    p = account.cleanup()
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout
    for ours_ in (account.old16["instance"], account.old16["group"], account.old16["key"],
                  account.oldmod["group"], account.oldmod["key"]):
        assert ours_ in out, ours_
    for theirs in (*account.other.values(), *account.young.values(), *account.foreign_amis):
        assert theirs not in out, theirs
    assert "left alone: build 20261125-080000-cccccc started 0 min ago (--older-than 120)" in out
    assert "left alone: 2 security groups and 2 key pairs named packer_* that no build of this project tagged" in out
    assert "nothing deleted; run again with --delete" in out
    assert (account.state(), account.groups(), account.key_pairs(), account.images()) == before
    assert not {"TerminateInstances", "DeleteSecurityGroup", "DeleteKeyPair", "DeregisterImage",
                "DeleteSnapshot"} & set(account.proxy.actions())


def test_delete_removes_ours_and_leaves_foreign_and_in_progress_builds(account: Account) -> None:
    snapshots = {i["ImageId"]: [m["Ebs"]["SnapshotId"] for m in i["BlockDeviceMappings"]]
                 for i in account.ec2.describe_images(ImageIds=account.amis)["Images"]}
    p = account.cleanup("--delete", "--keep", "3")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "cleanup-build: deleted" in p.stdout
    state = account.state()
    assert state[account.old16["instance"]] == "terminated"
    assert state[account.young["instance"]] == "pending" or state[account.young["instance"]] == "running"
    assert state[account.other["instance"]] in ("pending", "running")
    groups, keys = account.groups(), account.key_pairs()
    assert {account.old16["group"], account.oldmod["group"]}.isdisjoint(groups)
    assert {account.old16["key"], account.oldmod["key"]}.isdisjoint(keys)
    assert {account.young["group"], account.young["tagged_group"], account.other["group"],
            account.other["stale_group"]} <= groups
    assert {account.young["key"], account.other["key"], account.other["stale_key"]} <= keys
    left = account.images()
    assert set(account.foreign_amis) <= left and len(left & set(account.amis)) == 3
    gone = set(account.amis) - left
    # DeregisterImage asked to delete the snapshots too; moto ignores DeleteAssociatedSnapshots (it answers
    # without DeleteSnapshotResults), so cleanup-build deleted them one by one: none of the gone AMIs' is left.
    calls = account.proxy.records
    dereg = [r.params() for r in calls if r.action == "DeregisterImage"]
    assert {d["ImageId"] for d in dereg} == gone and all(d["DeleteAssociatedSnapshots"] == "true" for d in dereg)
    left_snaps = {s["SnapshotId"] for s in account.ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
    assert not {s for ami in gone for s in snapshots[ami]} & left_snaps
    # Terminated, then waited for (DescribeInstances of that instance), then its group deleted.
    actions = [(r.action, r.params()) for r in calls]
    term = next(n for n, (a, _) in enumerate(actions) if a == "TerminateInstances")
    wait = next(n for n, (a, q) in enumerate(actions) if a == "DescribeInstances" and n > term
                and q.get("InstanceId.1") == account.old16["instance"])
    delete = next(n for n, (a, q) in enumerate(actions) if a == "DeleteSecurityGroup"
                  and q.get("GroupId") == account.old16["group"])
    assert term < wait < delete
    # A second run finds nothing of ours left (the build in progress is still left alone).
    again = account.cleanup("--delete", "--keep", "3")
    assert again.returncode == 0 and "nothing to clean up" in again.stdout, again.stdout


def test_one_failure_is_one_line_and_the_rest_still_goes(account: Account) -> None:
    # Termination protection on our old build instance: it cannot be terminated, so its group must stay.
    account.ec2.modify_instance_attribute(InstanceId=account.old16["instance"], DisableApiTermination={"Value": True})
    p = account.cleanup("--delete")
    assert p.returncode == 1, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert [ln for ln in lines if ln.startswith("cleanup-build: could not terminate instance")] == [
        ln for ln in lines if account.old16["instance"] in ln and "could not" in ln]
    assert any("OperationNotPermitted" in ln for ln in lines)
    assert f"cleanup-build: kept security group {account.old16['group']}: instance {account.old16['instance']} still uses it" in lines
    assert "cleanup-build: 2 could not be deleted (see above)" in p.stderr
    assert account.old16["group"] in account.groups()
    assert account.oldmod["group"] not in account.groups()
    assert account.oldmod["key"] not in account.key_pairs()
    assert len(account.images() & set(account.amis)) == 3


def test_older_than_decides_what_is_old(account: Account) -> None:
    p = account.cleanup("--older-than", "240")
    assert p.returncode == 0, p.stderr
    for build in ("20261125-050000-aaaaaa", "20261125-050100-bbbbbb", "20261125-080000-cccccc"):
        assert re.search(rf"left alone: build {build} started \d+ min ago \(--older-than 240\)", p.stdout), build
    for leftover in (account.old16["instance"], account.old16["group"], account.old16["key"], account.oldmod["group"]):
        assert leftover not in p.stdout
    bad = account.cleanup("--older-than", "-1")
    assert bad.returncode == 2 and bad.stderr.strip() == "cleanup-build: --keep and --older-than must be 0 or more"
