"""F: the spot-fleet file against config.py and the account."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from agent import gates
from agent.checks._common import is_true
from agent.context import Context
from agent.facts import aws, ec2
from agent.model import Finding, Severity, Skip, fail, ok, warn
from agent.registry import check

# How F05 and F07 tell the ECS-optimized variants apart (docs/checks.md prints it once, at F05).
VARIANTS = ("The ECS-optimized variants (``kernel-5.10``, ``gpu``, ``inf``, ``neuron``) are counted by name; they "
            "are not compared with SSM's public parameters (``dcp-agent fleet`` reads those).")

ROLE_ARN = re.compile(r"^arn:(aws[a-z-]*):iam::(\d{12}):role/.+")
PROFILE_ARN = re.compile(r"^arn:(aws[a-z-]*):iam::(\d{12}):instance-profile/.+")
PLACEHOLDERS = ("XXXXXXXX", "subnet-WWWWWWWW", "sg-ZZZZZZZZZ", "your_key_file_name")
# AWS's ECS-optimized Amazon Linux names: AL1, and AL2/AL2023 with any variant before "hvm-" (kernel-5.10, gpu,
# inf, neuron, kernel-5.10-gpu …).
MODERN_ECS = r"^(amzn2-ami-ecs-|al2023-ami-ecs-)([a-z0-9.]+-)*hvm-"
ECS_NAMES = (r"^amzn-ami-.*-amazon-ecs-optimized", MODERN_ECS)


def _images(ctx: Context) -> ec2.Resources:
    return ec2.images(ctx, tuple(ctx.fleet.image_ids()) if ctx.fleet else ())


@check("F01", "fleet.structure", "The fleet file has what run.py reads", Severity.BLOCKER, provides=gates.FLEET)
def structure(ctx: Context) -> Finding:
    if ctx.fleet is None:
        raise Skip("no fleet file given: pass --fleet PATH or set fleet = \"…\" in the settings")
    if ctx.fleet.error:
        return fail(ctx.fleet.error, "start again from DCP's files/exampleFleet_<region>.json")
    doc = ctx.fleet.doc
    if not isinstance(doc.get("IamFleetRole"), str):
        return fail("IamFleetRole is missing or not a string", f"add \"IamFleetRole\": \"arn:{aws.partition(ctx, ctx.region)}:iam::<acct>:role/"
                    "aws-ec2-spot-fleet-tagging-role\"")
    specs = doc.get("LaunchSpecifications")
    if not isinstance(specs, list) or not specs or not all(isinstance(s, dict) for s in specs):
        return fail("LaunchSpecifications must be a non-empty list of objects", "copy it from DCP's example fleet file")
    for i, s in enumerate(specs):
        where = f"LaunchSpecifications[{i}]"
        if not isinstance(s.get("ImageId"), str):
            return fail(f"{where} has no ImageId", "add the ECS-optimized AMI id for your region")
        if not isinstance((s.get("IamInstanceProfile") or {}).get("Arn") if isinstance(s.get("IamInstanceProfile"), dict)
                          else None, str):
            return fail(f"{where} has no IamInstanceProfile.Arn", "add \"IamInstanceProfile\": {\"Arn\": "
                        f"\"arn:{aws.partition(ctx, ctx.region)}:iam::<acct>:instance-profile/ecsInstanceRole\"}}")
        bdm = s.get("BlockDeviceMappings")
        if not isinstance(bdm, list) or len(bdm) < 2 or not all(isinstance(m, dict) for m in bdm):
            return fail(f"{where} needs two BlockDeviceMappings: run.py sets the second one's size (EBS_VOL_SIZE)",
                        "copy both mappings from DCP's example fleet file")
        nics = s.get("NetworkInterfaces")
        has_subnet = isinstance(s.get("SubnetId"), str) or (isinstance(nics, list) and any(
            isinstance(n, dict) and isinstance(n.get("SubnetId"), str) for n in nics))
        if not has_subnet:
            return fail(f"{where} names no subnet", "add NetworkInterfaces[0].SubnetId")
    return ok(f"{len(specs)} launch specification(s)")


@check("F02", "fleet.placeholders", "No placeholders left in the fleet file", Severity.BLOCKER, needs=(structure,))
def placeholders(ctx: Context) -> Finding:
    assert ctx.fleet is not None
    text = str(ctx.fleet.doc)
    found = [p for p in PLACEHOLDERS if p in text]
    if found:
        return fail(f"the fleet file still holds {', '.join(found)} from DCP's example",
                    "fill in your account id, subnet, security group and key name")
    return ok("none")


@check("F03", "fleet.arns", "The fleet's ARNs are well-formed and in this account", Severity.BLOCKER,
       needs=(structure, gates.CREDENTIALS), actions=("sts:GetCallerIdentity",))
def arns(ctx: Context) -> Finding:
    assert ctx.fleet is not None
    role = ctx.fleet.doc.get("IamFleetRole", "")
    m = ROLE_ARN.match(role)
    if not m:
        return fail(f"IamFleetRole {role!r} is not a role ARN", f"use arn:{aws.partition(ctx, ctx.region)}:iam::<acct>:role/aws-ec2-spot-fleet-tagging-role")
    found = [(m.group(1), m.group(2), "IamFleetRole")]
    for i, s in enumerate(ctx.fleet.specs):
        arn = (s.get("IamInstanceProfile") or {}).get("Arn", "")
        pm = PROFILE_ARN.match(arn)
        if not pm:
            kind = "a role ARN" if ":role/" in arn else "not an instance-profile ARN"
            return fail(f"LaunchSpecifications[{i}].IamInstanceProfile.Arn is {kind}: {arn}",
                        f"use arn:{aws.partition(ctx, ctx.region)}:iam::<acct>:instance-profile/ecsInstanceRole (an instance profile, not a role)")
        found.append((pm.group(1), pm.group(2), f"LaunchSpecifications[{i}] instance profile"))
    me = aws.identity(ctx)
    for partition, account, label in found:
        if account != me.account:
            return fail(f"{label} is in account {account}, but you are in {me.account}",
                        f"replace {account} with {me.account} in the fleet file")
        if partition != me.partition:
            return fail(f"{label} is in partition {partition}, not {me.partition}", "fix the ARN's partition")
    return ok(f"account {me.account}")


@check("F04", "fleet.types-vs-specs", "One MACHINE_TYPE per launch specification", Severity.BLOCKER,
       needs=(structure, gates.CONFIG))
def types_vs_specs(ctx: Context) -> Finding:
    assert ctx.fleet is not None
    types = ctx.config.get("MACHINE_TYPE")
    if not isinstance(types, list):
        raise Skip("MACHINE_TYPE is not a list (see config.types)")
    specs = len(ctx.fleet.specs)
    if len(types) < specs:
        return fail(f"{specs} launch specs but {len(types)} MACHINE_TYPE entries: run.py fails with IndexError",
                    "give MACHINE_TYPE one entry per launch specification")
    if len(types) > specs:
        return warn(f"{len(types)} MACHINE_TYPE entries for {specs} launch specs: run.py ignores "
                    f"{', '.join(types[specs:])}", "add a launch specification per extra type (DCP pairs them by index)")
    return ok(f"{specs} pair(s)")


@check("F05", "fleet.ami", "The fleet's AMI exists in AWS_REGION, is available, x86_64 and ECS-optimized",
       Severity.BLOCKER, needs=(*gates.AWS, structure), actions=("ec2:DescribeImages",),
       blind=(VARIANTS,))
def ami(ctx: Context) -> Finding:
    images = _images(ctx)
    hint = (f"aws ssm get-parameter --name /aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id "
            f"--region {ctx.region} gives the current ECS-optimized AMI")
    notes = []
    for iid in ctx.fleet.image_ids() if ctx.fleet else []:
        img = images.get(iid)
        if img is None:
            return fail(f"{iid} does not exist in {ctx.region} (AMI ids are per region)", hint)
        if img.get("State") != "available":
            return fail(f"{iid} is {img.get('State')}, not available", hint)
        if img.get("Architecture") != "x86_64":
            return fail(f"{iid} is {img.get('Architecture')}; DCP's image is linux/amd64", hint)
        dep = img.get("DeprecationTime")
        if dep and datetime.fromisoformat(dep.replace("Z", "+00:00")) < datetime.now(UTC):
            notes.append(f"{iid} was deprecated on {dep[:10]}")
        if not any(re.match(p, img.get("Name", "")) for p in ECS_NAMES):
            notes.append(f"{iid} ({img.get('Name')}) is not an ECS-optimized Amazon Linux AMI")
    if notes:
        return warn("; ".join(notes), hint)
    return ok(", ".join(f"{i} ({images[i].get('Name')})" for i in images))


@check("F06", "fleet.root-mapping", "The root volume matches the AMI's root snapshot", Severity.BLOCKER,
       needs=(ami,), actions=("ec2:DescribeImages", "ec2:DescribeSnapshots"))
def root_mapping(ctx: Context) -> Finding:
    assert ctx.fleet is not None
    images = _images(ctx)
    notes = []
    for i, spec in enumerate(ctx.fleet.specs):
        img = images.get(str(spec.get("ImageId")))
        if img is None:
            continue
        root = spec["BlockDeviceMappings"][0]
        ebs: dict[str, Any] = root.get("Ebs") or {}
        ami_root: dict[str, Any] = next((m for m in img.get("BlockDeviceMappings", []) if m.get("DeviceName") == img.get("RootDeviceName")), {})
        ami_ebs = ami_root.get("Ebs") or {}
        where = f"LaunchSpecifications[{i}]"
        if root.get("DeviceName") != img.get("RootDeviceName"):
            return fail(f"{where} maps {root.get('DeviceName')} first, but the AMI's root is {img.get('RootDeviceName')}",
                        f"set BlockDeviceMappings[0].DeviceName to {img.get('RootDeviceName')}")
        size, need = ebs.get("VolumeSize"), ami_ebs.get("VolumeSize")
        if isinstance(size, int) and isinstance(need, int) and size < need:
            return fail(f"{where} root volume is {size} GB but the AMI's snapshot needs ≥ {need} GB "
                        "(InvalidBlockDeviceMapping)", f"set BlockDeviceMappings[0].Ebs.VolumeSize to {need} or more")
        snap = ebs.get("SnapshotId")
        if snap and snap != ami_ebs.get("SnapshotId"):
            if not ec2.snapshot_exists(ctx, snap):
                return fail(f"{where} snapshot {snap} does not exist in {ctx.region}",
                            f"use the AMI's root snapshot {ami_ebs.get('SnapshotId')} (or drop SnapshotId)")
            notes.append(f"{where} snapshot {snap} is not the AMI's root snapshot {ami_ebs.get('SnapshotId')}")
    if notes:
        return warn("; ".join(notes), "use the AMI's own root snapshot, or drop SnapshotId")
    return ok("root mapping matches the AMI")


@check("F07", "fleet.ami-family", "The AMI suits DCP's user data (Docker volume, awslogs)", Severity.HIGH,
       needs=(ami,), actions=("ec2:DescribeImages",),
       blind=(VARIANTS,))
def ami_family(ctx: Context) -> Finding:
    """It passes an AL2/AL2023 AMI when each launch specification's root volume is at least ``EBS_VOL_SIZE``
    (Docker keeps its data there)."""
    images = _images(ctx)
    modern = [i for i, img in images.items() if re.match(MODERN_ECS, img.get("Name", ""))]
    size = ctx.config.get("EBS_VOL_SIZE")
    assert ctx.fleet is not None
    roots = [((s.get("BlockDeviceMappings") or [{}])[0].get("Ebs") or {}).get("VolumeSize")
             for s in ctx.fleet.specs if s.get("ImageId") in modern]
    sized = [r for r in roots if isinstance(r, int) and isinstance(size, int) and r >= size]
    if modern and roots and len(sized) == len(roots):
        return ok(f"{', '.join(modern)} is an AL2/AL2023 ECS AMI: Docker uses the root volume, sized "
                  f"{min(sized)} GB ≥ EBS_VOL_SIZE {size}")
    if modern:
        return warn(f"{', '.join(modern)} is an AL2/AL2023 ECS AMI: Docker uses the root volume (overlay2), so "
                    "EBS_VOL_SIZE does not size container storage, and run.py's dm.basesize option is for devicemapper",
                    "size the root volume (BlockDeviceMappings[0]) for your data; verify with a small test run")
    return ok("Amazon Linux 1 ECS layout" if images else "no AMI to inspect")


@check("F08", "fleet.overwritten-fields", "The fleet file sets nothing run.py overwrites", Severity.LOW,
       needs=(structure,))
def overwritten(ctx: Context) -> Finding:
    assert ctx.fleet is not None
    doc = ctx.fleet.doc
    found: list[str] = [k for k in ("ValidFrom", "ValidUntil", "TargetCapacity", "SpotPrice") if k in doc]
    for i, s in enumerate(ctx.fleet.specs):
        found += [f"LaunchSpecifications[{i}].{k}" for k in ("InstanceType", "UserData") if k in s]
        bdm = s.get("BlockDeviceMappings")
        if isinstance(bdm, list) and len(bdm) > 1 and isinstance(bdm[1], dict) and "VolumeSize" in (bdm[1].get("Ebs") or {}):
            found.append(f"LaunchSpecifications[{i}].BlockDeviceMappings[1].Ebs.VolumeSize")
    if found:
        return warn(f"run.py overwrites {', '.join(found[:4])}: edit config.py instead",
                    "remove them from the fleet file; set CLUSTER_MACHINES, MACHINE_PRICE, MACHINE_TYPE, EBS_VOL_SIZE")
    return ok("none")


@check("F09", "fleet.allocation-strategy", "The allocation strategy spreads spot risk", Severity.LOW, needs=(structure,))
def allocation(ctx: Context) -> Finding:
    assert ctx.fleet is not None
    strategy = ctx.fleet.doc.get("AllocationStrategy", "lowestPrice")
    if strategy == "lowestPrice":
        return warn("AllocationStrategy lowestPrice puts every worker in the cheapest pool, the first to be reclaimed",
                    "set \"AllocationStrategy\": \"priceCapacityOptimized\" (or capacityOptimized)")
    return ok(str(strategy))


@check("F10", "fleet.weighted-capacity", "Every launch specification counts as one machine", Severity.HIGH,
       needs=(structure,))
def weighted_capacity(ctx: Context) -> Finding:
    """run.py sets TargetCapacity = CLUSTER_MACHINES and startCluster then waits until the fleet has
    CLUSTER_MACHINES instances: a launch specification whose WeightedCapacity is not 1 breaks that count (a
    heavier one never lets it finish, a lighter one launches machines the service puts no task on)."""
    assert ctx.fleet is not None
    fix = "remove WeightedCapacity from the launch specifications (DCP counts machines: each weighs 1)"
    for i, s in enumerate(ctx.fleet.specs):
        w = s.get("WeightedCapacity", 1)
        if isinstance(w, bool) or not isinstance(w, int | float) or w <= 0:
            return fail(f"LaunchSpecifications[{i}].WeightedCapacity is {w!r}, not a positive number", fix)
        if w > 1:
            return fail(f"LaunchSpecifications[{i}].WeightedCapacity is {w:g}: the fleet meets TargetCapacity "
                        f"(CLUSTER_MACHINES) with about 1/{w:g} as many instances, and startCluster waits for "
                        "CLUSTER_MACHINES instances, so it never finishes (no dashboard, no Auto-Monitor alarms)", fix)
        if w < 1:
            return fail(f"LaunchSpecifications[{i}].WeightedCapacity is {w:g}: the fleet launches up to "
                        f"{1 / w:g} × CLUSTER_MACHINES instances, more than the ECS service places tasks on "
                        "(CLUSTER_MACHINES × TASKS_PER_MACHINE): the extra machines idle at spot price", fix)
    return ok("each launch specification weighs 1")



@check("F11", "fleet.forgotten-fleet", "A forgotten fleet does not run for a year", Severity.MEDIUM,
       needs=(structure, gates.CONFIG))
def forgotten_fleet(ctx: Context) -> Finding:
    """Warns when the fleet is ``Type: maintain`` and ``AUTO_MONITOR`` is off (M10 shows a running fleet's cost).
    run.py asks for the fleet from now until a year from now (ValidUntil = now + 365 days). A ``maintain``
    fleet (RequestSpotFleet's default Type) replaces every worker it loses until then, unless something cancels
    it: Auto-Monitor, or 'run.py monitor' left running. A ``request`` fleet does not replace them."""
    assert ctx.fleet is not None
    kind = ctx.fleet.doc.get("Type", "maintain")
    if kind != "maintain":
        return ok(f"Type {kind}: lost workers are not replaced")
    if is_true(ctx.config.get("AUTO_MONITOR")):
        return ok("Type maintain, and Auto-Monitor cancels the fleet when the queue is empty")
    return warn("Type maintain with AUTO_MONITOR off: run.py's fleet is valid for 365 days and replaces every lost "
                "worker until 'run.py monitor' cancels it; forgotten, it keeps CLUSTER_MACHINES running for a year",
                "set AUTO_MONITOR = 'True' (after python setup_AWS.py), or always leave 'python run.py monitor' "
                "running in tmux until the run ends")
