"""``dcp-agent fleet``: write a DCP spot-fleet file for this account and config.py.

Its siblings' run.py (agent.flavours) consume the file as DCP's does, but for ASSIGN_IP: Distributed-Something's
turns public addresses off unless it is 'False' (DCP's inverse), Distributed-Fiji's and -OMEZarrCreator's have
none, so the file's own addresses always stand; the placement below follows the project's reading.

How DCP's run.py (startCluster, at 17388b3) consumes the file decides its shape:

- it sets ``LaunchSpecifications[i].InstanceType = MACHINE_TYPE[i]`` for every spec, so there is exactly one
  launch specification per MACHINE_TYPE (more specs than types is an IndexError; fewer leaves types unused);
- it overwrites ``UserData`` and ``BlockDeviceMappings[1].Ebs.VolumeSize`` (= EBS_VOL_SIZE) in every spec, and
  ``TargetCapacity``, ``SpotPrice``, ``ValidFrom`` and ``ValidUntil`` at the top: none of them is written here;
- with ASSIGN_IP 'False' it sets ``AssociatePublicIpAddress = False`` on the first network interface of the
  *first* spec only (and only prints a line when that spec has no network interface).

A spec reaches several zones only through its top-level ``SubnetId``, which RequestSpotFleet accepts as a
comma-separated list; a network interface names one subnet, and a spec may not have both. A network interface
is needed only to set ``AssociatePublicIpAddress``; without one, a subnet's own MapPublicIpOnLaunch decides. So
each spec lists, per zone that offers its type, one subnet whose MapPublicIpOnLaunch already gives the address
the workers need; where no such subnet exists, the spec falls back to one network interface (one subnet) that
says it explicitly.

Nothing is written to AWS; only the file, atomically.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import os
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent import inputs
from agent.facts import aws, ec2, iam, ssm
from agent.facts.core import AwsError
from agent.fix.tags import TAG_KEY, TAG_VALUE, WORKER_SG_NAME, is_ours
from agent.netcause import cause_of

if TYPE_CHECKING:
    from agent.context import Context
    from agent.settings import Settings

INSTANCE_PROFILE = "ecsInstanceRole"
FLEET_ROLE = "aws-ec2-spot-fleet-tagging-role"
SECOND_DEVICE = "/dev/xvdcz"      # DCP's example: the device whose size run.py sets from EBS_VOL_SIZE
MIN_ROOT_GB = 30                  # when EBS_VOL_SIZE is not a number


@dataclass
class Placement:
    """The subnets one launch specification uses, and how its workers reach the internet."""

    instance_type: str
    subnets: list[dict[str, Any]]
    public: bool
    nic: bool            # True: one network interface (one subnet) that sets AssociatePublicIpAddress


def _default_route(ctx: Context, subnet: dict[str, Any]) -> str:
    """How a subnet reaches 0.0.0.0/0: 'igw', 'nat' (a NAT gateway, or a transit gateway, instance or
    interface that N05 accepts too) or '' (no way out). Its own route table, else its VPC's main one."""
    tables = ec2.route_tables(ctx, subnet["VpcId"])
    table = next((t for t in tables if any(a.get("SubnetId") == subnet["SubnetId"] for a in t.get("Associations", []))),
                 None) or next((t for t in tables if any(a.get("Main") for a in t.get("Associations", []))), None)
    routes = [r for r in (table or {}).get("Routes", [])
              if r.get("DestinationCidrBlock") == "0.0.0.0/0" and r.get("State", "active") == "active"]
    if any(str(r.get("GatewayId", "")).startswith("igw-") for r in routes):
        return "igw"
    nat_ids = tuple(r["NatGatewayId"] for r in routes if r.get("NatGatewayId"))
    if nat_ids and any(n.get("State") == "available" for n in ec2.nat_gateways(ctx, nat_ids)):
        return "nat"
    if any(r.get("TransitGatewayId") or r.get("InstanceId") or r.get("NetworkInterfaceId") for r in routes):
        return "nat"
    return ""


def _vpc(ctx: Context, wanted: str | None) -> str:
    if wanted:
        if wanted not in ec2.vpcs(ctx, (wanted,)):
            raise ValueError(f"VPC {wanted} does not exist in {ctx.region} (aws ec2 describe-vpcs --region "
                             f"{ctx.region} lists yours)")
        return wanted
    default = ec2.default_vpc(ctx)
    if default is None:
        raise ValueError(f"{ctx.region} has no default VPC: pass --vpc vpc-… (the VPC whose subnets the workers use)")
    return default


def _security_group(ctx: Context, vpc: str, wanted: str | None) -> tuple[str, str]:
    """The workers' group id and a note on where it came from."""
    if wanted:
        group = ec2.security_groups(ctx, (wanted,)).get(wanted)
        if group is None:
            raise ValueError(f"security group {wanted} does not exist in {ctx.region}")
        if group.get("VpcId") != vpc:
            raise ValueError(f"security group {wanted} is in {group.get('VpcId')}, not in {vpc}: pass one of "
                             f"{vpc}'s groups, or --vpc {group.get('VpcId')}")
        return wanted, f"{wanted} ({group.get('GroupName')}), as given"
    group = ec2.group_named(ctx, vpc, WORKER_SG_NAME)
    if group is None:
        raise ValueError(f"{vpc} has no workers' security group ({WORKER_SG_NAME}): run 'dcp-agent fix --apply' "
                         "to create it, or pass --security-group sg-…")
    # Names are unique within a VPC, so a group of this name is DCP's workers' group even when a person made it
    # (as DCP's Step 0 has people do) rather than fix; the note says which it is.
    made_by = "made by dcp-agent fix" if is_ours(group.get("Tags")) else \
        f"not tagged {TAG_KEY}={TAG_VALUE}, so not made by dcp-agent fix"
    return str(group["GroupId"]), f"{group['GroupId']} ({WORKER_SG_NAME} in {vpc}, {made_by})"


def _placements(ctx: Context, vpc: str, types: list[str], assign_ip: bool,
                value: Any = "False") -> tuple[list[Placement], list[str]]:
    """Per MACHINE_TYPE: one subnet per zone that offers it, among the subnets whose route suits ASSIGN_IP."""
    notes: list[str] = []
    subnets = [s for s in ec2.vpc_subnets(ctx, vpc).values() if s.get("State", "available") == "available"]
    if not subnets:
        raise ValueError(f"{vpc} has no subnets in {ctx.region}")
    routes = {s["SubnetId"]: _default_route(ctx, s) for s in subnets}
    via_igw = [s for s in subnets if routes[s["SubnetId"]] == "igw"]
    via_nat = [s for s in subnets if routes[s["SubnetId"]] == "nat"]
    if assign_ip:
        usable, public = (via_igw, True) if via_igw else (via_nat, False)
        if not usable:
            raise ValueError(f"no subnet of {vpc} has a 0.0.0.0/0 route to an internet gateway or a NAT: workers "
                             "could never reach ECS; add the route, or pass --vpc with one that has it")
        if not via_igw:
            notes.append(f"no subnet of {vpc} routes to an internet gateway: the workers use the NAT route, "
                         "without public addresses")
    else:
        usable, public = via_nat, False
        f = ctx.flavour
        if not usable and f.is_dcp:
            raise ValueError(f"ASSIGN_IP is 'False' but no subnet of {vpc} has a NAT route: workers without public "
                             "addresses could never reach ECS; set ASSIGN_IP = 'True', or route a subnet through "
                             "a NAT gateway")
        if not usable:
            raise ValueError(f"ASSIGN_IP is {value!r}, which {f.name}'s run.py reads as 'no public address' (the "
                             f"inverse of DCP's), but no subnet of {vpc} has a NAT route: workers without public "
                             f"addresses could never reach ECS; set ASSIGN_IP = '{f.assign_ip_for(True)}', or route "
                             "a subnet through a NAT gateway")

    unknown = [t for t in types if t not in ec2.instance_types(ctx, tuple(types))]
    if unknown:
        raise ValueError(f"MACHINE_TYPE {', '.join(unknown)} is not an EC2 instance type in {ctx.region}")
    zones = tuple(sorted({s["AvailabilityZone"] for s in usable}))
    offered = ec2.type_offerings(ctx, zones, tuple(types))

    def rank(s: dict[str, Any]) -> tuple[bool, bool, int, str]:
        return (bool(s.get("MapPublicIpOnLaunch")) != public, not s.get("DefaultForAz"),
                -int(s.get("AvailableIpAddressCount", 0)), str(s["SubnetId"]))

    out = []
    for t in types:
        per_zone: dict[str, dict[str, Any]] = {}
        for s in sorted(usable, key=rank):
            if (t, s["AvailabilityZone"]) in offered:
                per_zone.setdefault(s["AvailabilityZone"], s)
        if not per_zone:
            raise ValueError(f"{t} is not offered in any zone of {vpc}'s usable subnets ({', '.join(zones)}): "
                             "choose another MACHINE_TYPE, or a VPC with subnets where it is offered")
        chosen = [per_zone[z] for z in sorted(per_zone)]
        matching = [s for s in chosen if bool(s.get("MapPublicIpOnLaunch")) == public]
        if matching:
            out.append(Placement(t, matching, public, nic=False))
        else:
            out.append(Placement(t, chosen[:1], public, nic=True))
            notes.append(f"{t}: no subnet of {vpc} {'gives' if public else 'withholds'} public addresses by itself, "
                         f"so its spec uses one network interface (one subnet, {chosen[0]['SubnetId']}) that "
                         f"sets AssociatePublicIpAddress: {str(public).lower()}")
    return out, notes


def _spec(p: Placement, *, image: dict[str, Any], root_snapshot: str, root_gb: int, key: str | None,
          profile_arn: str, group: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"ImageId": image["ImageId"]}
    if key:
        spec["KeyName"] = key
    spec["IamInstanceProfile"] = {"Arn": profile_arn}
    spec["BlockDeviceMappings"] = [
        {"DeviceName": image["RootDeviceName"],
         "Ebs": {"DeleteOnTermination": True, "VolumeType": "gp3", "VolumeSize": root_gb, "SnapshotId": root_snapshot}},
        {"DeviceName": SECOND_DEVICE, "Ebs": {"DeleteOnTermination": True, "VolumeType": "gp3"}},
    ]
    if p.nic:
        spec["NetworkInterfaces"] = [{"DeviceIndex": 0, "SubnetId": p.subnets[0]["SubnetId"],
                                      "DeleteOnTermination": True, "AssociatePublicIpAddress": p.public,
                                      "Groups": [group]}]
    else:
        spec["SubnetId"] = ", ".join(s["SubnetId"] for s in p.subnets)
        spec["SecurityGroups"] = [{"GroupId": group}]
    return spec


def _out_path(args: argparse.Namespace, settings: Settings, ctx: Context) -> Path:
    """Where the file goes. Only a regular file is ever replaced (never a device, a FIFO or through a
    symbolic link), and a path built from APP_NAME stays in the clone's files/."""
    region = inputs.region(ctx.config.get("AWS_REGION"), where="config.py's AWS_REGION")
    if args.out is not None:
        out = Path(args.out)
    else:
        app = ctx.config.get("APP_NAME")
        if not isinstance(app, str) or not app:
            raise ValueError("config.py sets no APP_NAME to name the fleet file: set it, or pass --out FILE")
        out = settings.dcp_clone / "files" / f"{inputs.app_name(app)}Fleet_{region}.json"
    try:
        st = out.lstat()
    except (FileNotFoundError, NotADirectoryError):   # the parent's own checks below say which
        st = None
    except OSError as e:
        raise ValueError(f"cannot use {out} ({(e.strerror or type(e).__name__).lower()})") from None
    if st is not None and stat.S_ISLNK(st.st_mode):
        raise ValueError(f"{out} is a symbolic link: give the file itself (or another path) as --out")
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise ValueError(f"{out} is a directory: pass --out with a file name")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{out} is not a regular file (a device or a pipe): it is never replaced; pass --out "
                         "with a file name")
    if not out.parent.is_dir():
        raise ValueError(f"cannot write {out}: {out.parent} is not a directory")
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write {out}: {out.parent} is not writable")
    return out


def _write_atomically(out: Path, text: str) -> None:
    """A temporary file beside ``out``, flushed, then renamed over it: readers see the old file or the new."""
    mode = out.stat().st_mode & 0o777 if out.exists() else 0o644
    try:
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    except OSError as e:
        raise ValueError(f"cannot write {out}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, out)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise ValueError(f"cannot write {out}: {e.strerror}") from None


def build(args: argparse.Namespace, ctx: Context) -> tuple[dict[str, Any], list[str]]:
    """The fleet document and the lines that say what it holds (every read, no write)."""
    types = ctx.machine_types()
    if not types:
        raise ValueError("config.py's MACHINE_TYPE is not a list of instance types (e.g. ['m5.xlarge'])")
    if len(set(types)) != len(types):
        raise ValueError(f"MACHINE_TYPE names a type twice ({', '.join(types)}): run.py pairs launch "
                         "specifications with its entries, one each")
    f = ctx.flavour
    if f.is_dcp:
        assign_ip = str(ctx.config.get("ASSIGN_IP", "True")).lower() != "false"   # run.py's own test
    else:   # the project's own reading of ASSIGN_IP (Distributed-Something's is DCP's inverse; some have none)
        assign_ip = not f.turns_public_ip_off(ctx.config.get("ASSIGN_IP"))
    region = ctx.region
    # Independent first reads, side by side.
    ctx.facts.prefetch(aws.identity)
    ctx.facts.prefetch(ssm.ecs_ami, args.ami_family)
    if not args.vpc:
        ctx.facts.prefetch(ec2.default_vpc)

    me = aws.identity(ctx)
    partition = aws.partition(ctx, region)
    if me.partition != partition:
        raise ValueError(f"your credentials are in partition {me.partition}, but AWS_REGION {region} is in "
                         f"{partition}")
    profile_arn = aws.arn(ctx, "iam", f"instance-profile/{INSTANCE_PROFILE}", account=me.account)
    fleet_role_arn = aws.arn(ctx, "iam", f"role/{FLEET_ROLE}", account=me.account)

    try:
        ami = ssm.ecs_ami(ctx, args.ami_family)
    except AwsError as e:
        if e.code == "ParameterNotFound":
            raise ValueError(f"{region} publishes no ECS-optimized {args.ami_family} AMI in SSM "
                             f"({ssm.ECS_AMI_PARAMETER.format(family=ssm.ECS_AMI_FAMILIES[args.ami_family])})") from None
        raise
    image = ec2.images(ctx, (ami.image_id,)).get(ami.image_id)
    if image is None:
        raise ValueError(f"SSM names {ami.image_id} as the ECS-optimized {args.ami_family} AMI, but DescribeImages "
                         f"does not know it in {region}")
    if image.get("State") != "available" or image.get("Architecture") != "x86_64":
        raise ValueError(f"{ami.image_id} is {image.get('State')} and {image.get('Architecture')}: "
                         f"{'DCP' if ctx.flavour.is_dcp else ctx.flavour.name} needs an available x86_64 AMI")
    root: dict[str, Any] = next((m for m in image.get("BlockDeviceMappings", []) if m.get("DeviceName") == image.get("RootDeviceName")),
                {})
    snapshot, ami_gb = (root.get("Ebs") or {}).get("SnapshotId"), (root.get("Ebs") or {}).get("VolumeSize")
    if not snapshot or not isinstance(ami_gb, int):
        raise ValueError(f"{ami.image_id} has no EBS root snapshot ({image.get('RootDeviceName')}): not an "
                         "ECS-optimized AMI")
    ebs_gb = ctx.config.get("EBS_VOL_SIZE")
    # On the AL2 and AL2023 ECS AMIs Docker keeps its storage on the root volume (see F07), so the root volume
    # is sized for the data too: EBS_VOL_SIZE, never less than the AMI's snapshot.
    root_gb = max(ami_gb, ebs_gb if isinstance(ebs_gb, int) and not isinstance(ebs_gb, bool) else MIN_ROOT_GB)

    vpc = _vpc(ctx, args.vpc)
    group, group_note = _security_group(ctx, vpc, args.security_group)
    placements, notes = _placements(ctx, vpc, types, assign_ip, ctx.config.get("ASSIGN_IP"))

    ssh_key = ctx.config.get("SSH_KEY_NAME")
    key = args.key_name or (ssh_key.removesuffix(".pem") if isinstance(ssh_key, str) and ssh_key else None)
    if key is None:
        notes.append("no KeyName (config.py sets no SSH_KEY_NAME and no --key-name): you cannot SSH into workers")
    elif not ec2.key_pair_exists(ctx, key):
        notes.append(f"key pair {key!r} does not exist in {region} yet: 'dcp-agent fix --apply' imports it, or pass "
                     "--key-name")
    if iam.instance_profile(ctx, INSTANCE_PROFILE) is None:
        notes.append(f"instance profile {INSTANCE_PROFILE} does not exist yet: 'dcp-agent fix --apply' creates it")
    if iam.role(ctx, FLEET_ROLE) is None:
        notes.append(f"role {FLEET_ROLE} does not exist yet: 'dcp-agent fix --apply' creates it")

    doc = {
        "IamFleetRole": fleet_role_arn,
        "AllocationStrategy": "priceCapacityOptimized",
        "TerminateInstancesWithExpiration": True,
        "LaunchSpecifications": [_spec(p, image=image, root_snapshot=snapshot, root_gb=root_gb, key=key,
                                       profile_arn=profile_arn, group=group) for p in placements],
        "Type": "maintain",
    }
    lines = [f"AMI {ami.image_id} ({image.get('Name') or ami.image_name}) from {ami.parameter}; root "
             f"{image['RootDeviceName']} {root_gb} GB from {snapshot}; {SECOND_DEVICE} sized by run.py (EBS_VOL_SIZE)",
             f"security group {group_note}; key pair {key or '(none)'}"]
    for p in placements:
        how = ("public addresses, internet gateway" if p.public else "no public addresses, NAT route") + \
            (", one network interface" if p.nic else "")
        where = ", ".join(f"{s['SubnetId']} ({s['AvailabilityZone']})" for s in p.subnets)
        lines.append(f"{p.instance_type}: {where}; {how}")
    return doc, lines + [f"note: {n}" for n in notes]


def run_fleet(args: argparse.Namespace, settings: Settings, ctx: Context,
              echo: Callable[[str], None] = print) -> int:
    """Write the fleet file (or refuse, with the diff); ValueError with one line for bad input."""
    if ctx.config.error:
        raise ValueError(f"cannot use config.py: {ctx.config.error}")
    out = _out_path(args, settings, ctx)
    try:
        doc, lines = build(args, ctx)
    except AwsError as e:
        from agent.redact import scrub

        if cause_of(e) is not None:
            raise   # AWS did not answer: the error boundary says so (exit 3), it is not bad input
        what = "no AWS credentials" if e.no_credentials else "AWS is unreachable" if e.unreachable else \
            f"not allowed: {e.operation or e.code}" if e.denied else f"{e.operation or 'AWS'} failed"
        raise ValueError(scrub(f"{what}: {e}".splitlines()[0], ctx.secrets)) from None
    text = json.dumps(doc, indent=2) + "\n"
    old = None
    if out.is_file():
        try:
            old = out.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"cannot read the existing {out}: {e.__class__.__name__}") from None
    if old == text:
        echo(f"{out} is already up to date")
        return 0
    if old is not None:
        # Lines compared without their endings: a file without a final newline would glue "-}" and "+}".
        diff = difflib.unified_diff([f"{ln}\n" for ln in old.splitlines()], [f"{ln}\n" for ln in text.splitlines()],
                                    fromfile=str(out), tofile=f"{out} (new)")
        echo("".join(diff).rstrip("\n"))
        if not args.force:
            raise ValueError(f"{out} exists: pass --force to overwrite it with what the diff above shows")
    _write_atomically(out, text)
    echo(f"wrote {out}:")
    for line in lines:
        echo(f"  {line}")
    if settings.fleet is None or Path(settings.fleet) != out:
        echo(f"check it: dcp-agent check --fleet {out}   (or set fleet = \"{out}\" in the agent's settings)")
    else:
        echo("check it: dcp-agent check")
    return 0
