"""The EC2 part of a fix: the workers' security group with one SSH rule for the operator, and the key pair.

The group is the fleet file's first one when there is a fleet file; otherwise fix creates (once, tagged)
``dcp-workers`` in the default VPC, which ``dcp-agent fleet`` then writes into the fleet file. The key pair
is imported from ``~/.ssh/<name>.pub`` when that exists; otherwise AWS makes one and fix saves the private
key as ``~/.ssh/<name>.pem`` (mode 0600), never over an existing file.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent import inputs
from agent.checks.network import _allows
from agent.facts import ec2
from agent.fix.plan import Kind, Step
from agent.fix.tags import WORKER_SG_NAME
from agent.fix.writes import ec2_tags, exists_ok

if TYPE_CHECKING:
    from agent.context import Context

SSH_RULE_NOTE = "SSH from the DCP operator (dcp-agent fix)"


def operator_cidr(explicit: str | None, configured: str) -> str | None:
    """The operator's address as a CIDR: --ssh-cidr, else the settings' ssh_cidr, else the client end of
    $SSH_CONNECTION (the address this shell's SSH session came from). Never looked up on the network."""
    conn = os.environ.get("SSH_CONNECTION", "").split()
    value = explicit or configured or (conn[0] if conn else "")
    if not value:
        return None
    net = inputs.operator_network(value, flag="--ssh-cidr" if explicit else (
        "the settings' ssh_cidr" if configured else "$SSH_CONNECTION's address"))
    return str(net)


def _group_steps(ctx: Context, vpc: str) -> tuple[list[Step], str, dict[str, Any] | None]:
    """The workers' group when no fleet file names one: ``dcp-workers`` in ``vpc``, created when missing."""
    group = ec2.group_named(ctx, vpc, WORKER_SG_NAME)
    res = f"ec2 security-group {WORKER_SG_NAME} ({vpc})"
    if group is not None:
        return [], res, group

    def create(ctx: Context) -> None:
        with exists_ok():
            ctx.client("ec2").create_security_group(
                GroupName=WORKER_SG_NAME, VpcId=vpc, Description="DCP workers (created by dcp-agent fix)",
                TagSpecifications=ec2_tags("security-group"))

    return [Step(("N02",), res, Kind.CREATE, "all outbound allowed, no inbound yet",
                 ("ec2:CreateSecurityGroup", "ec2:CreateTags"), create)], res, None


def plan_ssh(ctx: Context, cidr: str | None, failing: set[str]) -> list[Step]:
    steps: list[Step] = []
    fleet_groups = ctx.fleet.security_groups() if ctx.fleet and not ctx.fleet.error else []
    if fleet_groups:
        if "N04" not in failing:
            return []   # N04 passed, or could not judge the fleet's group (N02 says why): nothing of ours to add
        found = ec2.security_groups(ctx, (fleet_groups[0],))
        group = found.get(fleet_groups[0])
        if group is None:
            return []   # N02 says the fleet names a group that does not exist: for a person to fix
        res, vpc = f"ec2 security-group {fleet_groups[0]}", str(group.get("VpcId", ""))
    else:
        vpc_id = ec2.default_vpc(ctx)
        if vpc_id is None:
            return [Step(("N01",), "ec2 vpc", Kind.HUMAN, "this region has no default VPC: create one "
                         f"(aws ec2 create-default-vpc --region {ctx.region}) or name subnets and a group in a fleet "
                         "file (dcp-agent fleet --vpc … --security-group …)")]
        steps, res, group = _group_steps(ctx, vpc_id)
        vpc = vpc_id
    if cidr is None:
        return [*steps, Step(("N04",), res, Kind.HUMAN, "SSH from your address: run again with --ssh-cidr "
                             "<your public IP>/32 (or set ssh_cidr in the settings)")]
    net = ipaddress.ip_network(cidr)
    if group is not None and _allows(group.get("IpPermissions", []), 22,
                                     lambda c: c is not None and _covers(c, net)):
        return steps
    family = "Ipv6Ranges" if net.version == 6 else "IpRanges"
    key = "CidrIpv6" if net.version == 6 else "CidrIp"
    rule = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, family: [{key: cidr, "Description": SSH_RULE_NOTE}]}
    name = fleet_groups[0] if fleet_groups else None

    def authorize(ctx: Context) -> None:
        group_id = name or _group_id(ctx, vpc)
        with exists_ok():
            ctx.client("ec2").authorize_security_group_ingress(
                GroupId=group_id, IpPermissions=[rule], TagSpecifications=ec2_tags("security-group-rule"))

    return [*steps, Step(("N04",), res, Kind.MODIFY, f"add one inbound rule: tcp/22 from {cidr}",
                         ("ec2:AuthorizeSecurityGroupIngress", "ec2:CreateTags"), authorize, after=res)]


def _covers(cidr: str, net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        rule = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False
    return rule.version == net.version and net.subnet_of(rule)   # type: ignore[arg-type]


def _group_id(ctx: Context, vpc: str) -> str:
    """The id of the group created earlier in this apply (read afresh: the plan's cached read saw none)."""
    group = ec2.group_named.fn(ctx, vpc, WORKER_SG_NAME)
    assert group is not None, f"{WORKER_SG_NAME} was just created in {vpc}"
    return str(group["GroupId"])


def key_names(ctx: Context) -> tuple[str | None, str | None]:
    """The key pair the fleet file names, and the one config.py's SSH_KEY_NAME names (without .pem)."""
    fleet = None
    if ctx.fleet and not ctx.fleet.error:
        fleet = next((s["KeyName"] for s in ctx.fleet.specs if isinstance(s.get("KeyName"), str)), None)
    value = ctx.config.get("SSH_KEY_NAME")
    return fleet, value.removesuffix(".pem") if isinstance(value, str) and value else None


def plan_key(ctx: Context, problems: list[str]) -> list[Step]:
    fleet, configured = key_names(ctx)
    if fleet and configured and fleet != configured:
        if ec2.key_pair_exists(ctx, fleet):
            return []   # N09 warns about the mismatch; which name is right is the user's call
        return [Step(("N09",), f"ec2 key-pair {fleet}", Kind.HUMAN,
                     f"the fleet file's KeyName {fleet!r} does not exist and differs from SSH_KEY_NAME "
                     f"{configured!r}: make them the same (dcp-agent fleet --force writes SSH_KEY_NAME's), then run "
                     "fix again")]
    name = fleet or configured
    if not name or ec2.key_pair_exists(ctx, name):
        return []
    ssh = Path.home() / ".ssh"
    public, private = ssh / f"{name}.pub", ssh / f"{name}.pem"
    res = f"ec2 key-pair {name}"
    if public.is_file():
        material = public.read_bytes()

        def imp(ctx: Context) -> None:
            with exists_ok():
                ctx.client("ec2").import_key_pair(KeyName=name, PublicKeyMaterial=material,
                                                   TagSpecifications=ec2_tags("key-pair"))

        return [Step(("N09",), res, Kind.CREATE, f"import {public}", ("ec2:ImportKeyPair", "ec2:CreateTags"), imp)]
    if private.exists() or private.is_symlink():
        empty = private.is_file() and not private.is_symlink() and private.stat().st_size == 0
        problems.append(f"{private} is empty (a fix killed before 2026-12-04 could leave it so): delete it and run "
                        "fix again" if empty else
                        f"{private} exists but key pair {name!r} is not in {ctx.region}: import its public key "
                        f"(ssh-keygen -y -f {private} > {public}) and run fix again")
        return []
    if not _writable_dir(ssh):
        problems.append(f"cannot write the new private key into {ssh}: make it a directory you can write "
                        "(mkdir -m 700 ~/.ssh)")
        return []

    def create(ctx: Context) -> None:
        ssh.mkdir(mode=0o700, exist_ok=True)
        client = ctx.client("ec2")
        key = client.create_key_pair(KeyName=name, KeyType="ed25519", TagSpecifications=ec2_tags("key-pair"))
        try:
            _save_new_private_key(private, str(key["KeyMaterial"]))
        except BaseException:
            # AWS hands the private key out once: a key pair whose key could not be kept is of no use, and this
            # step made it a moment ago
            with contextlib.suppress(Exception):
                client.delete_key_pair(KeyName=name)
            raise

    return [Step(("N09",), res, Kind.CREATE, f"new ed25519 key pair; the private key saved as {private} (mode 0600)",
                 ("ec2:CreateKeyPair", "ec2:CreateTags", "ec2:DeleteKeyPair"), create)]


def _save_new_private_key(private: Path, material: str) -> None:
    """Write the key to a new file of its own in the same directory (0600, never through an existing path), then
    give it its name with a hard link, which fails rather than replace anything: the key file is whole or
    absent, whenever the process dies (a kill -9 between open and write used to leave an empty one)."""
    tmp = private.with_name(f".{private.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(material)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, private)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _writable_dir(path: Path) -> bool:
    if path.exists():
        return path.is_dir() and os.access(path, os.W_OK | os.X_OK)
    return os.access(path.parent, os.W_OK | os.X_OK)
