"""`invoke launch-node`, `list-nodes`, `stop-node`, `terminate-node`: control nodes from this project's AMIs.

launch-node starts one instance from the newest AMI build-ami made (or ``--ami``): IMDSv2 required, its root
volume encrypted, a key pair (an existing one, or ``~/.ssh/<name>.pub`` imported), and a security group that
lets SSH in only from the operator's address (one group per VPC, created once, tagged, reused); then waits
until the instance runs and its SSH answers, and prints the ``ssh`` command.

Every input is checked with read-only calls before anything is created (unknown region, AMI, key pair,
instance type, instance profile or subnet: one line, nothing created). A failed RunInstances removes the key
pair and group this run created. ``--dry-run`` asks EC2 (DryRun) whether each create call would succeed.

Everything launch-node creates carries ``dcp:project = dcp-control-node``; nodes also carry ``dcp:node``
(their name), which is how list-nodes, stop-node and terminate-node find them and nothing else.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.boundary import EXIT_USAGE, UserError
from bootstrap import awsclient
from bootstrap.ami import (
    PROJECT,
    PROJECT_TAG,
    ec2_client,
    is_loopback_url,
    parse_cidrs,
)

NODE_TAG = "dcp:node"                       # the node's name: what list/stop/terminate go by
LAUNCHED_TAG = "dcp:launched"               # UTC, ISO 8601
SG_NAME = "dcp-control-node-ssh"            # one per VPC, reused by every launch
SG_ROLE_TAG = "dcp:role"
SG_ROLE = "launch-node-ssh"
LIVE = ["pending", "running", "stopping", "stopped", "shutting-down"]
CHECKIP = "https://checkip.amazonaws.com"   # only asked on a real account when no --ssh-cidr is given
CHECKIP_TIMEOUT = 10.0                      # seconds for checkip to answer
MAX_WAIT = 24 * 3600.0                      # --wait-timeout above a day is a typo
SSH_TRY = 5.0                               # seconds one SSH try waits for a connection and the banner


class NodeError(UserError):
    """One line for the user: what is wrong and what to do (exit 2)."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message, code)


@dataclass
class NodeConfig:
    region: str
    key_name: str = ""
    ami: str = ""                            # default: the newest AMI build-ami made
    instance_type: str = "t3.small"          # small, x86_64 (build-ami's AMIs are amd64)
    name: str = "dcp-control-node"
    ssh_cidr: str = ""                       # the operator's address(es); see operator_cidrs()
    instance_profile: str = ""
    subnet_id: str = ""
    kms_key_id: str = ""
    ssh_username: str = "ubuntu"
    ami_name_prefix: str = "dcp-control-node"
    project: str = "cellprofiler"            # whose AMI launch-node picks (its dcp:distributed-project tag)
    endpoint: str = ""                       # an EC2-compatible endpoint (emulator); empty for AWS
    ssh_host: str = ""                       # where SSH is dialled instead of the instance's address (emulator)
    ssh_port: int = 22
    dry_run: bool = False
    wait_timeout: float = 600.0              # seconds for "running" and then for SSH to answer
    poll: float = 5.0
    ssh_dir: Path = field(default_factory=lambda: Path.home() / ".ssh")

    @classmethod
    def from_options(cls, **options: Any) -> NodeConfig:
        """Empty options ("" / None) mean the default; no region means the AWS configuration's."""
        given = {k: v for k, v in options.items() if v is not None and v != ""}
        if "project" in given:
            from agent import flavours

            try:
                given["project"] = flavours.by_key(str(given["project"])).key
            except KeyError:
                raise NodeError(f"--project {given['project']!r} is not one of {', '.join(flavours.FLAVOURS)}") from None
        return cls(**{"region": given.pop("region", "") or _region(""), **given})


@dataclass
class Plan:
    """What the read-only checks found: everything RunInstances needs, and what must be created first."""
    image: dict[str, Any]
    vpc_id: str
    key_pub: bytes = b""                    # to import (empty: the key pair exists)
    private_key: Path | None = None
    group_id: str = ""                      # existing group (empty: to create)
    group_has_rule: bool = False
    cidrs: tuple[str, ...] = ()
    others: tuple[str, ...] = ()            # sources the group lets in besides the operator's (earlier launches)


@dataclass
class NodeResult:
    instance_id: str
    address: str
    ssh_command: str
    image_id: str
    group_id: str
    seconds: float


def _say(text: str) -> None:
    print(f"launch-node: {text}", flush=True)


def _error(e: Exception) -> str:
    from botocore.exceptions import ClientError

    if isinstance(e, ClientError):
        err = e.response.get("Error", {})
        return f"{err.get('Code', 'Error')}: {err.get('Message', '')}".strip()
    return f"{type(e).__name__}: {e}"


def _tags(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or []}


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


# -- inputs ---------------------------------------------------------------------------------------------------

def check_inputs(cfg: NodeConfig) -> None:
    """What can be judged without AWS."""
    _region(cfg.region)
    _endpoint(cfg.endpoint)
    if not cfg.key_name:
        raise NodeError("give --key-name: an EC2 key pair, or NAME of ~/.ssh/NAME.pub to import")
    if not re.fullmatch(r"[A-Za-z0-9 ._@:/+=-]{1,255}", cfg.key_name):
        raise NodeError(f"key name {cfg.key_name!r} has characters EC2 does not allow")
    if not re.fullmatch(r"[a-z0-9-]+\.[a-z0-9]+", cfg.instance_type):
        raise NodeError(f"instance type {cfg.instance_type!r} is not like t3.small")
    if cfg.ami and not re.fullmatch(r"ami-[0-9a-f]{8,17}", cfg.ami):
        raise NodeError(f"--ami {cfg.ami!r} is not an AMI id (ami-0123456789abcdef0)")
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,128}", cfg.name):
        raise NodeError(f"--name {cfg.name!r}: use 1–128 letters, digits, '.', '_' or '-'")
    if not 1 <= cfg.ssh_port <= 65535:
        raise NodeError(f"ssh port {cfg.ssh_port} is not a port number")
    if not 0 < cfg.wait_timeout <= MAX_WAIT:
        raise NodeError(f"--wait-timeout {cfg.wait_timeout:.15g}: give seconds above 0 and at most {MAX_WAIT:.0f} "
                        "(e.g. --wait-timeout 600)")
    # The emulator makes addresses up (e.g. 54.x): never dial one. Its SSH must be pinned to loopback.
    if cfg.endpoint and is_loopback_url(cfg.endpoint) and not (cfg.ssh_host and is_loopback_url(cfg.ssh_host)):
        raise NodeError("with a local --endpoint (an emulator) give --ssh-host 127.0.0.1: its instance addresses "
                        "are made up")
    operator_cidrs(cfg, ask=False)


def operator_cidrs(cfg: NodeConfig, ask: bool = True) -> tuple[str, ...]:
    """Who may SSH to the node: ``--ssh-cidr`` (or DCP_OPERATOR_CIDR); in the emulator (endpoint and SSH host on
    loopback) 127.0.0.1/32; on a real account, else, this machine's public address as AWS sees it."""
    from bootstrap.ami import BuildError

    given = cfg.ssh_cidr or os.environ.get("DCP_OPERATOR_CIDR", "")
    try:
        if given:
            return parse_cidrs(given, "--ssh-cidr" if cfg.ssh_cidr else "DCP_OPERATOR_CIDR")
    except BuildError as e:
        raise NodeError(str(e)) from None
    if cfg.endpoint and is_loopback_url(cfg.endpoint) and cfg.ssh_host and is_loopback_url(cfg.ssh_host):
        return ("127.0.0.1/32",)
    if cfg.endpoint:
        raise NodeError("with --endpoint give --ssh-cidr (who may SSH to the node)")
    if not ask:
        return ()
    import urllib.request

    try:
        with awsclient.waiting(f"{CHECKIP} to tell your public address (gives up after {CHECKIP_TIMEOUT:.0f} s)"), \
                urllib.request.urlopen(CHECKIP, timeout=CHECKIP_TIMEOUT) as resp:
            address = resp.read(64).decode(errors="replace").strip()
        return parse_cidrs(address, CHECKIP)
    except (OSError, ValueError, BuildError):
        raise NodeError(f"cannot find your public address ({CHECKIP}): pass --ssh-cidr <your IPv4>/32") from None


def _check_region(cfg: NodeConfig) -> Any:
    """The EC2 client for the region, once the region is known to exist (DescribeRegions in the partition's
    main region, since an unknown region has no endpoint to ask)."""
    home = "cn-north-1" if cfg.region.startswith("cn-") else (
        "us-gov-west-1" if cfg.region.startswith("us-gov-") else "us-east-1")
    regions = {r["RegionName"]: r.get("OptInStatus", "")
               for r in ec2_client(home, cfg.endpoint).describe_regions(AllRegions=True)["Regions"]}
    if cfg.region not in regions:
        raise NodeError(f"region {cfg.region!r} does not exist (e.g. us-east-1)")
    if regions[cfg.region] == "not-opted-in":
        raise NodeError(f"region {cfg.region} is not enabled for this account (Account settings → Regions)")
    return ec2_client(cfg.region, cfg.endpoint)


def image_project(image: dict[str, Any]) -> str:
    """The Distributed-* project an AMI of ours was built for: its dcp:distributed-project tag (a repository's
    name); AMIs built before the tag existed are Distributed-CellProfiler's."""
    tags = {t.get("Key"): t.get("Value") for t in image.get("Tags") or []}
    return str(tags.get("dcp:distributed-project") or "Distributed-CellProfiler")


def newest_image(ec2: Any, prefix: str, project: str = "cellprofiler") -> dict[str, Any]:
    """The newest available AMI this project's build-ami made in this account (tagged, named <prefix>-*) for the
    Distributed-* project ``project`` (a row of agent.flavours): another project's AMI has another clone."""
    from agent import flavours

    name = flavours.by_key(project).name
    images = [i for i in awsclient.every(ec2, "describe_images", "Images", Owners=["self"], Filters=[
        {"Name": f"tag:{PROJECT_TAG}", "Values": [PROJECT]}, {"Name": "name", "Values": [f"{prefix}-*"]},
        {"Name": "state", "Values": ["available"]}]) if image_project(i) == name]
    if not images:
        raise NodeError(f"no AMI named {prefix}-* built by this project for {name} in this region: run invoke "
                        f"build-ami{'' if name == 'Distributed-CellProfiler' else ' --project ' + project}, "
                        "or pass --ami")
    return max(images, key=lambda i: (i.get("CreationDate", ""), i.get("Name", "")))


def _image(ec2: Any, cfg: NodeConfig) -> dict[str, Any]:
    from botocore.exceptions import ClientError

    if not cfg.ami:
        return newest_image(ec2, cfg.ami_name_prefix, cfg.project)
    try:
        found = ec2.describe_images(ImageIds=[cfg.ami])["Images"]
    except ClientError as e:
        if "NotFound" in e.response["Error"]["Code"] or "Malformed" in e.response["Error"]["Code"]:
            found = []
        else:
            raise
    if not found:
        raise NodeError(f"AMI {cfg.ami} does not exist in {cfg.region} (or is not shared with this account)")
    if found[0].get("State") != "available":
        raise NodeError(f"AMI {cfg.ami} is {found[0].get('State')}, not available")
    return dict(found[0])


def _instance_type(ec2: Any, cfg: NodeConfig, image: dict[str, Any]) -> None:
    from botocore.exceptions import ClientError

    try:
        info = ec2.describe_instance_types(InstanceTypes=[cfg.instance_type])["InstanceTypes"]
    except ClientError as e:
        if e.response["Error"]["Code"] == "InvalidInstanceType":
            info = []
        else:
            raise
    if not info:
        raise NodeError(f"instance type {cfg.instance_type} does not exist in {cfg.region}")
    arches = info[0].get("ProcessorInfo", {}).get("SupportedArchitectures", [])
    arch = image.get("Architecture") or "x86_64"
    if arches and arch not in arches:
        other = counterpart(ec2, cfg.instance_type, arch)
        pick = f"pick e.g. --instance-type {other}" if other else f"pick an instance type that runs {arch}"
        raise NodeError(f"instance type {cfg.instance_type} runs {'/'.join(arches)}, AMI {image['ImageId']} is "
                        f"{arch}: {pick}")


# The same kind of instance on the other architecture (Graviton for x86 and back), by family.
_TO_ARM = {"t2": "t4g", "t3": "t4g", "t3a": "t4g", "m4": "m6g", "m5": "m6g", "m5a": "m6g", "m6i": "m7g",
           "m6a": "m7g", "m7i": "m7g", "m7a": "m7g", "c4": "c6g", "c5": "c6g", "c5a": "c6g", "c6i": "c7g",
           "c6a": "c7g", "c7i": "c7g", "r4": "r6g", "r5": "r6g", "r5a": "r6g", "r6i": "r7g", "r7i": "r7g"}
_TO_X86 = {"t4g": "t3", "a1": "t3", "m6g": "m6i", "m7g": "m7i", "m8g": "m7i", "c6g": "c6i", "c7g": "c7i",
           "c8g": "c7i", "r6g": "r6i", "r7g": "r7i", "r8g": "r7i"}
_SMALLEST = {"arm64": "t4g.small", "x86_64": "t3.small"}


def counterpart(ec2: Any, instance_type: str, arch: str) -> str:
    """An instance type that runs ``arch``, as close to ``instance_type`` as the table knows (same size in the
    other architecture's family, e.g. t3.small -> t4g.small), checked with EC2; else the smallest usual one
    (t4g.small, t3.small); "" for an architecture neither is (i386, mac)."""
    from botocore.exceptions import BotoCoreError, ClientError

    if arch not in _SMALLEST:
        return ""
    family, _, size = instance_type.partition(".")
    table = _TO_ARM if arch == "arm64" else _TO_X86
    candidates = [f"{table[family]}.{size}"] if family in table and size else []
    for candidate in candidates:
        try:
            info = ec2.describe_instance_types(InstanceTypes=[candidate])["InstanceTypes"]
        except ClientError:
            continue
        except BotoCoreError:
            break
        if info and arch in info[0].get("ProcessorInfo", {}).get("SupportedArchitectures", []):
            return candidate
    return _SMALLEST[arch]


def _key(ec2: Any, cfg: NodeConfig) -> tuple[bytes, Path | None]:
    """(public key to import or b"" when the key pair exists, the private key file if there is one)."""
    private = cfg.ssh_dir / cfg.key_name
    private_or_none = private if private.is_file() else None
    if ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [cfg.key_name]}])["KeyPairs"]:
        return b"", private_or_none
    pub = cfg.ssh_dir / f"{cfg.key_name}.pub"
    if not pub.is_file():
        raise NodeError(f"no key pair {cfg.key_name!r} in {cfg.region} and no {pub} to import: create one "
                        f"(ssh-keygen -t ed25519 -f {private}) or name an existing key pair")
    text = pub.read_bytes().strip()
    if not re.match(rb"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+", text):
        raise NodeError(f"{pub} is not an OpenSSH public key (ssh-ed25519, ssh-rsa or ecdsa)")
    return text, private_or_none


def _vpc(ec2: Any, cfg: NodeConfig) -> str:
    """The node's VPC; unless SSH is pinned to --ssh-host, its subnet (given, or a default one of the default
    VPC, which is what EC2 picks) must give it a public address the internet can reach."""
    from botocore.exceptions import ClientError

    from bootstrap.ami import BuildConfig, BuildError, build_subnet, check_public_path

    if cfg.subnet_id:
        try:
            subnets = ec2.describe_subnets(SubnetIds=[cfg.subnet_id])["Subnets"]
        except ClientError as e:
            if "NotFound" in e.response["Error"]["Code"]:
                raise NodeError(f"subnet {cfg.subnet_id} does not exist in {cfg.region}") from None
            raise
        vpc = str(subnets[0]["VpcId"])
    else:
        vpcs = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
        if not vpcs:
            raise NodeError(f"{cfg.region} has no default VPC: pass --subnet-id (a public subnet)")
        vpc = str(vpcs[0]["VpcId"])
    if not cfg.ssh_host:
        try:
            where = BuildConfig(region=cfg.region, subnet_id=cfg.subnet_id)
            check_public_path(where, ec2, build_subnet(where, ec2))
        except BuildError as e:
            reason = str(e).split(",")[0].replace("the build instance", "the node")
            raise NodeError(f"{reason}, so SSH from here could not reach the node: pass --subnet-id of a public "
                            "subnet (a route from 0.0.0.0/0 to an internet gateway, public addresses on launch)") from None
    return vpc


def _profile(cfg: NodeConfig) -> None:
    if not cfg.instance_profile:
        return
    from botocore.exceptions import ClientError

    iam = awsclient.client("iam", cfg.region, cfg.endpoint)
    name = cfg.instance_profile.rsplit("/", 1)[-1]
    try:
        iam.get_instance_profile(InstanceProfileName=name)
    except ClientError as e:
        if e.response["Error"]["Code"] == "NoSuchEntity":
            raise NodeError(f"instance profile {name} does not exist (a role's name is not enough: "
                            "aws iam create-instance-profile, add-role-to-instance-profile)") from None
        raise


def _group(ec2: Any, vpc_id: str, cidrs: tuple[str, ...]) -> tuple[str, bool, set[str]]:
    """(this project's SSH group in the VPC or "", whether it already lets every cidr in on tcp/22, the
    sources it lets in)."""
    groups = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                                   {"Name": "group-name", "Values": [SG_NAME]}])["SecurityGroups"]
    if not groups:
        return "", False, set()
    group = groups[0]
    if _tags(group).get(PROJECT_TAG) != PROJECT:
        raise NodeError(f"security group {SG_NAME} ({group['GroupId']}) in {vpc_id} was not made by launch-node: "
                        "rename or delete it")
    allowed = {r["CidrIp"] for p in group.get("IpPermissions", []) if p.get("IpProtocol") == "tcp"
               and p.get("FromPort") == 22 and p.get("ToPort") == 22 for r in p.get("IpRanges", [])}
    return str(group["GroupId"]), set(cidrs) <= allowed, allowed


def plan(ec2: Any, cfg: NodeConfig) -> Plan:
    """Every read-only check launch-node makes before it creates anything."""
    image = _image(ec2, cfg)
    _instance_type(ec2, cfg, image)
    pub, private = _key(ec2, cfg)
    vpc = _vpc(ec2, cfg)
    _profile(cfg)
    cidrs = operator_cidrs(cfg)
    group, has_rule, allowed = _group(ec2, vpc, cidrs)
    return Plan(image=image, vpc_id=vpc, key_pub=pub, private_key=private, group_id=group, group_has_rule=has_rule,
                cidrs=cidrs, others=tuple(sorted(allowed - set(cidrs))))


def _existing_node(ec2: Any, name: str) -> str:
    for inst in find_nodes(ec2, name):
        return str(inst["InstanceId"])
    return ""


# -- launch ---------------------------------------------------------------------------------------------------

def run_request(cfg: NodeConfig, p: Plan, group_id: str) -> dict[str, Any]:
    """RunInstances' parameters: IMDSv2 required, the root volume encrypted (gp3), the tags."""
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    tags = {"Name": cfg.name, PROJECT_TAG: PROJECT, NODE_TAG: cfg.name, LAUNCHED_TAG: when,
            "dcp:ami": p.image["ImageId"]}
    root = p.image.get("RootDeviceName") or "/dev/sda1"
    size = next((m.get("Ebs", {}).get("VolumeSize") or 0 for m in p.image.get("BlockDeviceMappings", [])
                 if m.get("DeviceName") == root), 0)
    ebs: dict[str, Any] = {"Encrypted": True, "VolumeType": "gp3", "DeleteOnTermination": True,
                           "VolumeSize": max(int(size), 8)}      # the image's own size (never smaller)
    if cfg.kms_key_id:
        ebs["KmsKeyId"] = cfg.kms_key_id
    req: dict[str, Any] = {
        "ImageId": p.image["ImageId"], "InstanceType": cfg.instance_type, "MinCount": 1, "MaxCount": 1,
        "KeyName": cfg.key_name,
        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 2},
        "BlockDeviceMappings": [{"DeviceName": root, "Ebs": ebs}],
        "TagSpecifications": [{"ResourceType": kind, "Tags": _tag_list(tags)} for kind in ("instance", "volume")],
    }
    if group_id:
        req["SecurityGroupIds"] = [group_id]
    if cfg.subnet_id:
        req["SubnetId"] = cfg.subnet_id
    if cfg.instance_profile:
        key = "Arn" if cfg.instance_profile.startswith("arn:") else "Name"
        req["IamInstanceProfile"] = {key: cfg.instance_profile}
    return req


def _dry(call: Callable[..., Any], **params: Any) -> str:
    """EC2's DryRun: "" when the request would have succeeded, else why not."""
    from botocore.exceptions import ClientError

    try:
        call(DryRun=True, **params)
    except ClientError as e:
        if e.response["Error"]["Code"] == "DryRunOperation":
            return ""
        awsclient.raise_unanswered(e)     # throttled or failing: no answer about the request
        return _error(e)
    return "the endpoint ignored DryRun"


def _sg_tags(cfg: NodeConfig) -> list[dict[str, Any]]:
    return [{"ResourceType": "security-group", "Tags": _tag_list(
        {"Name": SG_NAME, PROJECT_TAG: PROJECT, SG_ROLE_TAG: SG_ROLE})}]


def _ingress(cidrs: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
             "IpRanges": [{"CidrIp": c, "Description": "SSH from the operator (launch-node)"} for c in cidrs]}]


def dry_run(ec2: Any, cfg: NodeConfig, p: Plan) -> int:
    """Ask EC2 whether each create call would succeed; create nothing. Returns the number refused."""
    refused = 0
    checks: list[tuple[str, Callable[..., Any], dict[str, Any]]] = []
    if p.key_pub:
        checks.append((f"import key pair {cfg.key_name} from {cfg.ssh_dir / cfg.key_name}.pub", ec2.import_key_pair,
                       {"KeyName": cfg.key_name, "PublicKeyMaterial": p.key_pub}))
    if not p.group_id:
        checks.append((f"create security group {SG_NAME} in {p.vpc_id} (SSH from {', '.join(p.cidrs)})",
                       ec2.create_security_group, {"GroupName": SG_NAME, "VpcId": p.vpc_id,
                                                   "Description": "SSH to DCP control nodes from the operator",
                                                   "TagSpecifications": _sg_tags(cfg)}))
    elif not p.group_has_rule:
        checks.append((f"let {', '.join(p.cidrs)} in on SSH in {p.group_id}", ec2.authorize_security_group_ingress,
                       {"GroupId": p.group_id, "IpPermissions": _ingress(p.cidrs)}))
    req = run_request(cfg, p, p.group_id)
    if not p.group_id:
        req.pop("SecurityGroupIds", None)     # the group does not exist yet: ask about the rest of the request
    if p.key_pub:
        req.pop("KeyName")
    checks.append((f"launch {cfg.instance_type} {cfg.name} from {p.image['ImageId']} (IMDSv2, encrypted root)",
                   ec2.run_instances, req))
    for what, call, params in checks:
        why = _dry(call, **params)
        _say(f"dry run: would {what}: {'allowed' if not why else 'REFUSED, ' + why}")
        refused += bool(why)
    return refused


def _ensure_key(ec2: Any, cfg: NodeConfig, p: Plan, undo: list[Callable[[], Any]]) -> None:
    if not p.key_pub:
        return
    ec2.import_key_pair(KeyName=cfg.key_name, PublicKeyMaterial=p.key_pub, TagSpecifications=[
        {"ResourceType": "key-pair", "Tags": _tag_list({PROJECT_TAG: PROJECT})}])
    undo.append(lambda: ec2.delete_key_pair(KeyName=cfg.key_name))
    awsclient.did(f"imported key pair {cfg.key_name}")
    _say(f"imported key pair {cfg.key_name} from {cfg.ssh_dir / cfg.key_name}.pub")


def _ensure_group(ec2: Any, cfg: NodeConfig, p: Plan, undo: list[Callable[[], Any]]) -> str:
    if p.others:
        _say(f"security group {SG_NAME} ({p.group_id}) also lets in {', '.join(p.others)} (earlier addresses); "
             f"remove one with: aws ec2 revoke-security-group-ingress --group-id {p.group_id} --protocol tcp "
             f"--port 22 --cidr {p.others[0]} --region {cfg.region}")
    if p.group_id and p.group_has_rule:
        _say(f"security group {SG_NAME} ({p.group_id}) lets {', '.join(p.cidrs)} in on SSH; reused")
        return p.group_id
    group = p.group_id
    if not group:
        group = ec2.create_security_group(GroupName=SG_NAME, VpcId=p.vpc_id, TagSpecifications=_sg_tags(cfg),
                                          Description="SSH to DCP control nodes from the operator")["GroupId"]
        undo.append(lambda: ec2.delete_security_group(GroupId=group))
        awsclient.did(f"created security group {SG_NAME} ({group})")
        _say(f"created security group {SG_NAME} ({group}) in {p.vpc_id}")
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=_ingress(p.cidrs))
    awsclient.did(f"let {', '.join(p.cidrs)} in on SSH in {group}")
    _say(f"security group {group}: SSH (tcp/22) from {', '.join(p.cidrs)} {'added' if p.others else 'only'}")
    return str(group)


def wait_running(ec2: Any, instance_id: str, timeout: float, poll: float) -> dict[str, Any]:
    with awsclient.waiting(f"{instance_id} to run (gives up after {timeout:g} s)"):
        return _wait_running(ec2, instance_id, timeout, poll)


def _wait_running(ec2: Any, instance_id: str, timeout: float, poll: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        inst = found[0]["Instances"][0] if found else {}
        state = inst.get("State", {}).get("Name", "")
        if state == "running":
            return dict(inst)
        if state in {"shutting-down", "terminated", "stopping", "stopped"}:
            reason = inst.get("StateReason", {}).get("Message", "")
            raise NodeError(f"{instance_id} is {state} instead of running{': ' + reason if reason else ''}")
        left = deadline - time.monotonic()
        if left <= 0:
            raise NodeError(f"{instance_id} is still {state or 'unknown'} after {timeout:g} s")
        time.sleep(min(poll, left))


def wait_ssh(host: str, port: int, timeout: float, poll: float) -> None:
    """Until something on host:port speaks SSH (its banner); each try waits at most SSH_TRY seconds and none
    goes past the deadline."""
    deadline = time.monotonic() + timeout
    with awsclient.waiting(f"SSH on {host}:{port} to answer (gives up after {timeout:g} s)"):
        while True:
            left = deadline - time.monotonic()
            try:
                with socket.create_connection((host, port), timeout=max(min(SSH_TRY, left), 0.1)) as s:
                    s.settimeout(max(min(SSH_TRY, deadline - time.monotonic()), 0.1))
                    if s.recv(64).startswith(b"SSH-"):
                        return
            except OSError:
                pass
            left = deadline - time.monotonic()
            if left <= 0:
                raise NodeError(f"SSH on {host}:{port} did not answer within {timeout:g} s")
            time.sleep(min(poll, 2.0, left))


def _undo(steps: list[Callable[[], Any]]) -> str:
    """Remove what this run created, newest first; "" when all of it went, else what is left."""
    from botocore.exceptions import BotoCoreError, ClientError

    failed = 0
    for step in reversed(steps):
        try:
            step()
        except (ClientError, BotoCoreError) as err:
            failed += 1
            _say(f"could not remove what this run created: {awsclient.unreachable(err) or _error(err)}")
    steps.clear()
    return f"{failed} thing(s) this run created could not be removed, see above" if failed else ""


def ssh_command(cfg: NodeConfig, host: str, private_key: Path | None) -> str:
    parts = ["ssh"]
    if private_key:
        parts += ["-i", str(private_key).replace(str(Path.home()), "~", 1)]
    if cfg.ssh_port != 22:
        parts += ["-p", str(cfg.ssh_port)]
    return " ".join([*parts, f"{cfg.ssh_username}@{host}"])


def launch(cfg: NodeConfig) -> NodeResult | None:
    """The whole of `invoke launch-node`. Returns None for --dry-run; raises NodeError (one line)."""
    from botocore.exceptions import BotoCoreError, ClientError

    start = time.monotonic()
    check_inputs(cfg)
    undo: list[Callable[[], Any]] = []
    try:
        ec2 = _check_region(cfg)
        existing = _existing_node(ec2, cfg.name)
        if existing:
            raise NodeError(f"a node named {cfg.name} exists ({existing}): pick another --name, or "
                            f"invoke terminate-node {cfg.name}")
        p = plan(ec2, cfg)
        _say(f"{p.image['ImageId']} ({p.image.get('Name', '')}), {cfg.instance_type}, key pair {cfg.key_name}, "
             f"{p.vpc_id}")
        if cfg.dry_run:
            refused = dry_run(ec2, cfg, p)
            if refused:
                raise NodeError(f"dry run: {refused} request(s) would be refused (see above)")
            return None
        _ensure_key(ec2, cfg, p, undo)
        group = _ensure_group(ec2, cfg, p, undo)
        inst = ec2.run_instances(**run_request(cfg, p, group))["Instances"][0]
        undo.clear()                         # from here the node exists; its key pair and group are in use
    except (ClientError, BotoCoreError) as e:
        left = _undo(undo)                   # nothing half-done: what this run created goes again
        awsclient.raise_unanswered(e, left)
        raise NodeError(_error(e) + (f" ({left})" if left else "")) from None
    except NodeError:
        _undo(undo)
        raise
    instance_id = str(inst["InstanceId"])
    awsclient.did(f"launched {instance_id} (invoke terminate-node {cfg.name} removes it)")
    _say(f"launched {instance_id}; waiting until it runs")
    try:
        inst = wait_running(ec2, instance_id, cfg.wait_timeout, cfg.poll)
        address = inst.get("PublicIpAddress") or inst.get("PrivateIpAddress") or ""
        dial = cfg.ssh_host or address
        if not dial:
            raise NodeError(f"{instance_id} has no address")
        _say(f"{instance_id} is running at {address}; waiting for SSH on {dial}:{cfg.ssh_port}")
        wait_ssh(dial, cfg.ssh_port, cfg.wait_timeout, cfg.poll)
    except (ClientError, BotoCoreError) as e:
        launched = f"node {instance_id} is launched: invoke terminate-node {cfg.name}"
        awsclient.raise_unanswered(e, launched)
        raise NodeError(f"{_error(e)} ({launched})") from None
    except NodeError as e:
        raise NodeError(f"{e} (node {instance_id} is launched: invoke terminate-node {cfg.name})") from None
    command = ssh_command(cfg, dial, p.private_key)
    took = time.monotonic() - start
    _say(f"{cfg.name} ({instance_id}) answers SSH after {took:.1f} s")
    return NodeResult(instance_id, address, command, p.image["ImageId"], group, took)


# -- list, stop, terminate --------------------------------------------------------------------------------------

def find_nodes(ec2: Any, which: str = "", states: list[str] | None = None) -> list[dict[str, Any]]:
    """This project's nodes (``dcp:project`` and ``dcp:node`` tags), optionally one by name or instance id."""
    filters = [{"Name": f"tag:{PROJECT_TAG}", "Values": [PROJECT]}, {"Name": "tag-key", "Values": [NODE_TAG]},
               {"Name": "instance-state-name", "Values": states or LIVE}]
    found = [i for r in awsclient.every(ec2, "describe_instances", "Reservations", Filters=filters)
             for i in r["Instances"]]
    if which:
        found = [i for i in found if which in (i["InstanceId"], _tags(i).get(NODE_TAG))]
    return sorted(found, key=lambda i: (str(i.get("LaunchTime", "")), i["InstanceId"]))


def _region(region: str) -> str:
    return awsclient.region(region, error=NodeError)


def _endpoint(endpoint: str) -> str:
    return awsclient.endpoint(endpoint, error=NodeError)


def _client(region: str, endpoint: str) -> Any:
    return ec2_client(_region(region), _endpoint(endpoint))


def list_nodes(region: str = "", endpoint: str = "") -> list[str]:
    """One line per node this project launched (not terminated)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        nodes = find_nodes(_client(region, endpoint))
    except (ClientError, BotoCoreError) as e:
        awsclient.raise_unanswered(e)
        raise NodeError(_error(e)) from None
    lines = []
    for inst in nodes:
        tags = _tags(inst)
        launched = inst.get("LaunchTime")
        when = launched.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if isinstance(launched, datetime) else ""
        lines.append(f"{tags.get(NODE_TAG, ''):24} {inst['InstanceId']:20} {inst['State']['Name']:9} "
                     f"{inst.get('InstanceType', ''):10} {inst.get('PublicIpAddress') or inst.get('PrivateIpAddress') or '-':15} "
                     f"{inst.get('ImageId', '')} {when}")
    return lines


def change_node(which: str, action: str, region: str = "", endpoint: str = "", *, wait: bool = True,
                timeout: float = 600.0, poll: float = 5.0) -> list[str]:
    """stop or terminate this project's node named (or with instance id) ``which``; the ids changed."""
    from botocore.exceptions import BotoCoreError, ClientError, WaiterError

    if not which:
        raise NodeError(f"{action}-node needs a node name or instance id (invoke list-nodes)")
    ec2 = _client(region, endpoint)
    asked = ""
    try:
        nodes = find_nodes(ec2, which)
        if not nodes:
            raise NodeError(f"no node {which!r} launched by launch-node here (invoke list-nodes); nothing else is "
                            "touched")
        ids = [i["InstanceId"] for i in nodes]
        if action == "stop":
            ec2.stop_instances(InstanceIds=ids)
            target = "stopped"
        else:
            ec2.terminate_instances(InstanceIds=ids)
            target = "terminated"
        asked = f"asked EC2 to {action} {', '.join(ids)}"
        awsclient.did(f"{asked} (it goes on without this command)")
        if wait:
            with awsclient.waiting(f"{', '.join(ids)} to be {target} (gives up after {timeout:g} s)"):
                try:
                    ec2.get_waiter(f"instance_{target}").wait(InstanceIds=ids,
                                                              WaiterConfig=awsclient.waiter_config(timeout, poll))
                except WaiterError as e:
                    last = e.last_response if isinstance(e.last_response, dict) else {}
                    if "Error" in last:          # the waiter's own read failed: say why, as for any call
                        raise ClientError(last, "DescribeInstances") from None
                    raise NodeError(f"{', '.join(ids)} did not reach '{target}' in {timeout:g} s (EC2 goes on; "
                                    "invoke list-nodes shows its state)") from None
    except (ClientError, BotoCoreError) as e:
        awsclient.raise_unanswered(e, asked)
        raise NodeError(_error(e)) from None
    return [str(i) for i in ids]
