"""`invoke cleanup-build`: what interrupted builds leave behind (packer_* key pairs and security groups,
build instances) and the project's AMIs beyond the newest few; listed, and deleted only when asked."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bootstrap.ami import BUILD_TAG, REGION_RE, BuildConfig, BuildError, aws_region, ec2_client

KEEP = 3                                    # AMIs kept by default (newest first)


@dataclass
class Leftovers:
    key_pairs: list[str] = field(default_factory=list)
    security_groups: list[str] = field(default_factory=list)
    instances: list[str] = field(default_factory=list)
    images: list[tuple[str, list[str]]] = field(default_factory=list)    # (ami, its snapshots)

    def empty(self) -> bool:
        return not (self.key_pairs or self.security_groups or self.instances or self.images)


def find_leftovers(ec2: Any, prefix: str, keep: int) -> Leftovers:
    """What interrupted builds leave (packer_* key pairs and groups, stopped build instances) and AMIs
    named <prefix>-* beyond the newest ``keep``."""
    found = Leftovers()
    found.key_pairs = sorted(k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]
                             if k["KeyName"].startswith("packer_"))
    found.security_groups = sorted(g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]
                                   if g["GroupName"].startswith("packer_"))
    res = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": [BUILD_TAG]},
                                          {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}])
    found.instances = sorted(i["InstanceId"] for r in res["Reservations"] for i in r["Instances"])
    images = sorted(ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": [f"{prefix}-*"]}])["Images"],
                    key=lambda i: i.get("CreationDate", ""), reverse=True)
    for img in images[keep:]:
        snaps = [m["Ebs"]["SnapshotId"] for m in img.get("BlockDeviceMappings", []) if m.get("Ebs", {}).get("SnapshotId")]
        found.images.append((img["ImageId"], snaps))
    return found


def delete_leftovers(ec2: Any, found: Leftovers) -> None:
    if found.instances:
        ec2.terminate_instances(InstanceIds=found.instances)
    for name in found.key_pairs:
        ec2.delete_key_pair(KeyName=name)
    for gid in found.security_groups:
        ec2.delete_security_group(GroupId=gid)
    for ami, snaps in found.images:
        ec2.deregister_image(ImageId=ami)
        for snap in snaps:
            ec2.delete_snapshot(SnapshotId=snap)


def cleanup(region: str = "", endpoint: str = "", *, prefix: str = "", keep: int = KEEP, delete: bool = False) -> None:
    """The whole of `invoke cleanup-build`: list (and with ``delete`` remove) what :func:`find_leftovers`
    finds. No region means the AWS configuration's; no prefix means the build's AMI name prefix. Prints
    what it finds; raises BuildError for a region that is not one."""
    region = region or aws_region()
    if not REGION_RE.match(region):
        raise BuildError(f"{region or 'no region'} is not an AWS region (e.g. us-east-1)")
    ec2 = ec2_client(region, endpoint)
    found = find_leftovers(ec2, prefix or BuildConfig.defaults()["ami_name_prefix"], keep)
    if found.empty():
        print("cleanup-build: nothing to clean up")
        return
    for label, items in (("key pairs", found.key_pairs), ("security groups", found.security_groups),
                         ("build instances", found.instances), ("old AMIs", [a for a, _ in found.images])):
        if items:
            print(f"cleanup-build: {label}: {', '.join(items)}")
    if delete:
        delete_leftovers(ec2, found)
        print("cleanup-build: deleted")
    else:
        print("cleanup-build: nothing deleted; run again with --delete")
