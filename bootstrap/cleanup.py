"""`invoke cleanup-build`: what this project's interrupted builds left behind, and its AMIs beyond the newest
few; listed, and deleted only when asked.

Only what this project's builds tagged is ever touched (``dcp:project = dcp-control-node``, see
``bootstrap.ami.run_tags``), and only builds started at least ``older_than`` minutes ago (a build in progress
is younger: builds take 10–15 minutes):

- build instances: tagged by Packer's ``run_tags`` on every Packer version;
- temporary security groups and key pairs: tagged on current Packer (the amazon plugin applies ``run_tags``
  to them). Packer 1.6.6 does not tag them; they are found through the tagged build instance instead (its
  ``packer_*`` group and key). A 1.6.6 leftover whose instance EC2 no longer lists (about an hour after it
  was terminated) cannot be told from anyone else's ``packer_*`` resources and is left alone;
- AMIs named ``<prefix>-*`` carrying the project's tags (``dcp:project``, or ``dcp:project-version`` on
  AMIs from before the build tags existed), beyond the newest ``keep`` available ones.

Deleting: instances are terminated and waited for (a security group still attached to an instance cannot
be deleted) before key pairs and groups go; AMIs are deregistered with ``DeleteAssociatedSnapshots``. Each
resource's failure is one line and does not stop the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from bootstrap import awsclient
from bootstrap.ami import (
    BUILD_ID_TAG,
    PROJECT,
    PROJECT_TAG,
    STARTED_TAG,
    BuildConfig,
    BuildError,
    ec2_client,
)

KEEP = 3                                    # AMIs kept by default (newest first)
OLDER_THAN = 120.0                          # minutes: younger builds may still be running
TERMINATE_TIMEOUT = 600.0                   # seconds to wait for instances to reach "terminated"
POLL = 5.0                                  # seconds between checks while waiting


@dataclass
class Leftovers:
    instances: list[str] = field(default_factory=list)                  # to terminate
    security_groups: list[str] = field(default_factory=list)
    key_pairs: list[str] = field(default_factory=list)
    images: list[tuple[str, list[str]]] = field(default_factory=list)  # (ami, its snapshots)
    # the instances a group is attached to: it is deleted only once they are terminated
    needs: dict[str, list[str]] = field(default_factory=dict)
    young: dict[str, int] = field(default_factory=dict)                # build id -> minutes since it started
    foreign: dict[str, int] = field(default_factory=dict)              # untagged packer_* resources, by kind

    def empty(self) -> bool:
        return not (self.key_pairs or self.security_groups or self.instances or self.images)


def _tags(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or []}


def _started(tags: dict[str, str], fallback: datetime | None = None) -> datetime | None:
    """When the build started: its STARTED_TAG, else (no tag) the resource's own creation time."""
    try:
        return datetime.fromisoformat(tags[STARTED_TAG]).astimezone(UTC)
    except (KeyError, ValueError):
        return fallback.astimezone(UTC) if fallback else None


def _minutes(since: datetime | None, now: datetime) -> float | None:
    return None if since is None else (now - since).total_seconds() / 60


def find_leftovers(ec2: Any, prefix: str, keep: int, older_than: float = OLDER_THAN,
                   now: datetime | None = None) -> Leftovers:
    """What this project's builds started at least ``older_than`` minutes ago left, and its AMIs named
    <prefix>-* beyond the newest ``keep``. Nothing without the project's tags is selected."""
    now = now or datetime.now(UTC)
    found = Leftovers()
    ours = [{"Name": f"tag:{PROJECT_TAG}", "Values": [PROJECT]}]

    def old_enough(tags: dict[str, str], created: datetime | None = None) -> bool:
        age = _minutes(_started(tags, created), now)
        if age is not None and age >= older_than:
            return True
        build = tags.get(BUILD_ID_TAG, "(no build id)")       # unknown age counts as young: left alone
        whole = int(age or 0)
        found.young[build] = min(found.young.get(build, whole), whole)
        return False

    claimed: set[str] = set()             # packer_* groups and keys of our builds, old or young
    instances = [i for r in awsclient.every(ec2, "describe_instances", "Reservations", Filters=ours) for i in r["Instances"]]
    for inst in sorted(instances, key=lambda i: i["InstanceId"]):
        claimed |= {g["GroupId"] for g in inst.get("SecurityGroups") or []} | {inst.get("KeyName") or ""}
        if not old_enough(_tags(inst), inst.get("LaunchTime")):
            continue
        if inst["State"]["Name"] != "terminated":
            found.instances.append(inst["InstanceId"])
        # Packer 1.6.6 tags neither its temporary group nor its key pair: they are this instance's packer_* ones
        # (EC2 still lists a terminated instance, with its group and key, for about an hour).
        for group in inst.get("SecurityGroups") or []:
            if group["GroupName"].startswith("packer_") and group["GroupId"] not in found.security_groups:
                found.security_groups.append(group["GroupId"])
        key = inst.get("KeyName") or ""
        if key.startswith("packer_") and key not in found.key_pairs:
            found.key_pairs.append(key)

    for group in awsclient.every(ec2, "describe_security_groups", "SecurityGroups", Filters=ours):
        if old_enough(_tags(group)) and group["GroupId"] not in found.security_groups:
            found.security_groups.append(group["GroupId"])
    for pair in ec2.describe_key_pairs(Filters=ours)["KeyPairs"]:
        if old_enough(_tags(pair), pair.get("CreateTime")) and pair["KeyName"] not in found.key_pairs:
            found.key_pairs.append(pair["KeyName"])
    # A terminated instance still names its group and key after they are gone: keep only what exists.
    all_groups = awsclient.every(ec2, "describe_security_groups", "SecurityGroups")
    all_keys = ec2.describe_key_pairs()["KeyPairs"]
    found.security_groups = [g for g in found.security_groups if g in {x["GroupId"] for x in all_groups}]
    found.key_pairs = [k for k in found.key_pairs if k in {x["KeyName"] for x in all_keys}]
    found.needs = _users(ec2, found.security_groups)

    # Shown, never touched: packer_* resources no build of ours tagged or used (another team's, or a 1.6.6
    # build of ours whose instance EC2 no longer lists).
    others = {"security groups": [g for g in all_groups
                                  if g["GroupName"].startswith("packer_") and g["GroupId"] not in claimed
                                  and _tags(g).get(PROJECT_TAG) != PROJECT],
              "key pairs": [k for k in all_keys
                            if k["KeyName"].startswith("packer_") and k["KeyName"] not in claimed
                            and _tags(k).get(PROJECT_TAG) != PROJECT]}
    found.foreign = {kind: len(items) for kind, items in others.items() if items}

    images = [i for i in awsclient.every(ec2, "describe_images", "Images", Owners=["self"], Filters=[
        {"Name": "name", "Values": [f"{prefix}-*"]}, {"Name": "state", "Values": ["available"]}])
        if _tags(i).get(PROJECT_TAG) == PROJECT or "dcp:project-version" in _tags(i)]
    images.sort(key=lambda i: i.get("CreationDate", ""), reverse=True)
    from bootstrap.node import image_project

    per_project: dict[str, list[dict[str, Any]]] = {}   # --keep N counts each Distributed-* project's own
    for img in images:
        per_project.setdefault(image_project(img), []).append(img)
    for img in (i for group in per_project.values() for i in group[keep:]):
        snaps = [m["Ebs"]["SnapshotId"] for m in img.get("BlockDeviceMappings", []) if m.get("Ebs", {}).get("SnapshotId")]
        found.images.append((img["ImageId"], snaps))
    return found


def _users(ec2: Any, groups: list[str]) -> dict[str, list[str]]:
    """The instances (not terminated) each of these groups is attached to: a group goes only after they do."""
    if not groups:
        return {}
    res = awsclient.every(ec2, "describe_instances", "Reservations", Filters=[
        {"Name": "instance.group-id", "Values": groups},
        {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped", "shutting-down"]}])
    users: dict[str, list[str]] = {}
    for inst in (i for r in res for i in r["Instances"]):
        for g in inst.get("SecurityGroups") or []:
            if g["GroupId"] in groups:
                users.setdefault(g["GroupId"], []).append(inst["InstanceId"])
    return users


def _error(e: Exception) -> str:
    from botocore.exceptions import ClientError

    if isinstance(e, ClientError):
        return f"{e.response['Error'].get('Code', '?')}: {e.response['Error'].get('Message', '')}".strip()
    return f"{type(e).__name__}: {e}"


def _gone(e: Exception) -> bool:
    """Already deleted by someone else: nothing left to do."""
    from botocore.exceptions import ClientError

    return isinstance(e, ClientError) and e.response["Error"].get("Code", "").endswith(".NotFound")


def wait_terminated(ec2: Any, ids: list[str], timeout: float = TERMINATE_TIMEOUT, poll: float = POLL) -> set[str]:
    """Poll until every instance is "terminated"; returns those that are by the deadline."""
    deadline = time.monotonic() + timeout
    done: set[str] = set()
    with awsclient.waiting(f"{', '.join(ids)} to be terminated (gives up after {timeout:g} s)"):
        while True:
            res = ec2.describe_instances(InstanceIds=ids)
            done = {i["InstanceId"] for r in res["Reservations"] for i in r["Instances"]
                    if i["State"]["Name"] == "terminated"}
            left = deadline - time.monotonic()
            if done >= set(ids) or left <= 0:
                return done
            time.sleep(min(poll, left))


def delete_leftovers(ec2: Any, found: Leftovers, say: Callable[[str], None] = print, *,
                     timeout: float = TERMINATE_TIMEOUT, poll: float = POLL) -> int:
    """Delete what :func:`find_leftovers` found, each resource on its own; returns how many failed."""
    failed = 0

    def attempt(what: str, call: Callable[[], Any]) -> bool:
        nonlocal failed
        try:
            call()
        except Exception as e:               # one resource's failure must not stop the others
            if _gone(e):
                say(f"cleanup-build: {what}: already gone")
                return True
            # ... unless AWS cannot be reached: the others would wait as long, for the same answer
            awsclient.raise_unanswered(e, f"{what}: not done")
            failed += 1
            say(f"cleanup-build: could not {what}: {_error(e)}")
            return False
        awsclient.did(what)
        say(f"cleanup-build: {what}: done")
        return True

    asked = [i for i in found.instances
             if attempt(f"terminate instance {i}", partial(ec2.terminate_instances, InstanceIds=[i]))]
    terminated: set[str] = set()
    if asked:
        try:
            terminated = wait_terminated(ec2, asked, timeout, poll)
        except Exception as e:
            awsclient.raise_unanswered(e, f"asked EC2 to terminate {', '.join(asked)}; the key pairs, groups "
                                             "and AMIs are not deleted yet")
            say(f"cleanup-build: could not confirm termination: {_error(e)}")
        for iid in sorted(set(asked) - terminated):
            failed += 1
            say(f"cleanup-build: instance {iid} did not reach 'terminated' in {timeout:.0f} s")
    for name in found.key_pairs:
        attempt(f"delete key pair {name}", partial(ec2.delete_key_pair, KeyName=name))
    for gid in found.security_groups:
        blocking = sorted(set(found.needs.get(gid, [])) - terminated)
        if blocking:
            failed += 1
            say(f"cleanup-build: kept security group {gid}: instance {', '.join(blocking)} still uses it")
            continue
        attempt(f"delete security group {gid}", partial(ec2.delete_security_group, GroupId=gid))
    for ami, snaps in found.images:
        _delete_image(ec2, ami, snaps, attempt)
    return failed


def _delete_image(ec2: Any, ami: str, snaps: list[str], attempt: Callable[[str, Callable[[], Any]], bool]) -> None:
    """DeregisterImage with DeleteAssociatedSnapshots (one call, no window in which a snapshot's deletion can
    fail on its own). An endpoint that ignores the parameter (moto does) answers without
    DeleteSnapshotResults: the snapshots are then deleted one by one."""
    answer: dict[str, Any] = {}

    def deregister() -> None:
        answer.update(ec2.deregister_image(ImageId=ami, DeleteAssociatedSnapshots=True))

    if not attempt(f"deregister AMI {ami} with its snapshots", deregister):
        return
    results = answer.get("DeleteSnapshotResults")
    if results is not None:
        for r in results:
            if r.get("ReturnCode") != "success":
                attempt(f"delete snapshot {r.get('SnapshotId')} ({r.get('ReturnCode')})",
                        partial(_raise, f"DeregisterImage answered {r.get('ReturnCode')}"))
        return
    for snap in snaps:
        attempt(f"delete snapshot {snap}", partial(ec2.delete_snapshot, SnapshotId=snap))


def _raise(message: str) -> None:
    raise RuntimeError(message)


def cleanup(region: str = "", endpoint: str = "", *, prefix: str = "", keep: int = KEEP, delete: bool = False,
            older_than: float = OLDER_THAN) -> int:
    """The whole of `invoke cleanup-build`: list (and with ``delete`` remove) what :func:`find_leftovers`
    finds. No region means the AWS configuration's; no prefix means the build's AMI name prefix. Prints
    what it finds and does; returns how many deletions failed; raises a UserError (BuildError) for bad
    input."""
    region = awsclient.region(region)        # bad input: agent.boundary.UserError (BuildError is one), exit 2
    endpoint = awsclient.endpoint(endpoint)
    if keep < 0 or older_than < 0:
        raise BuildError("--keep and --older-than must be 0 or more")
    ec2 = ec2_client(region, endpoint)
    found = find_leftovers(ec2, prefix or BuildConfig.defaults()["ami_name_prefix"], keep, older_than)
    for build, age in sorted(found.young.items()):
        print(f"cleanup-build: left alone: build {build} started {age} min ago (--older-than {older_than:g}); "
              "it may still be running")
    if found.foreign:
        what = " and ".join(f"{n} {kind}" for kind, n in found.foreign.items())
        print(f"cleanup-build: left alone: {what} named packer_* that no build of this project tagged or used "
              "(another team's, or from a Packer 1.6.6 build whose instance EC2 no longer lists)")
    if found.empty():
        print("cleanup-build: nothing to clean up")
        return 0
    for label, items in (("build instances", found.instances), ("key pairs", found.key_pairs),
                         ("security groups", found.security_groups), ("old AMIs", [a for a, _ in found.images])):
        if items:
            print(f"cleanup-build: {label}: {', '.join(items)}")
    if not delete:
        print("cleanup-build: nothing deleted; run again with --delete")
        return 0
    failed = delete_leftovers(ec2, found)
    print(f"cleanup-build: {'deleted' if not failed else f'done, {failed} failed'}")
    return failed
