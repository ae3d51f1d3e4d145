"""`invoke build-ami`: Packer builds the control-node AMI with the bootstrap recipe; boto3 finishes it.

Works with current Packer (>= 1.7, amazon plugin, `required_plugins`, installed by `packer init`, which
build-ami runs first) and with Debian's Packer 1.6.6: for the latter the template is copied without
plugins.pkr.hcl and without the lines marked "compat:modern-only" (metadata_options, imds_support,
temporary_security_group_source_public_ip). Either way the AMI is then marked to require IMDSv2
(ModifyImageAttribute ImdsSupport=v2.0) and tagged with what it contains, using boto3.

Every resource a build starts carries the run tags (:func:`run_tags`: project, build id, start time), which
is how `invoke cleanup-build` tells this project's leftovers from anyone else's.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import shutil
import subprocess
import time
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from agent.boundary import EXIT_USAGE, UserError
from agent.inputs import operator_network
from bootstrap import awsclient
from bootstrap.recipe import Options, recipe_hash, render_script
from bootstrap.stage import prepare

ROOT = Path(__file__).resolve().parent.parent
PACKER_DIR = ROOT / "packer"
BUILD_TAG = "packer dcp-control-node build"     # the build instance's Name
PROJECT = "dcp-control-node"                    # value of the PROJECT_TAG on everything a build makes
PROJECT_TAG = "dcp:project"
BUILD_ID_TAG = "dcp:build-id"
STARTED_TAG = "dcp:build-started"               # UTC, ISO 8601: how old a build's leftovers are
MODERN = (1, 7, 0)                              # Packer with `packer init` and external plugins
AMAZON_PLUGIN = "github.com/hashicorp/amazon"
SSH_INTERFACES = ("", "public_ip", "private_ip", "public_dns", "private_dns", "session_manager")
CHECKIP = "https://checkip.amazonaws.com"       # the operator's address, asked only on a real account


class BuildError(UserError):
    """One line for the user: what is wrong and what to do (exit 2; 1 when a Packer step failed)."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message, code)


@dataclass
class BuildConfig:
    region: str
    instance_type: str = "t3.small"
    source_ami_name: str = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"
    source_ami_owner: str = "099720109477"
    subnet_id: str = ""
    security_group_id: str = ""
    ssh_username: str = "ubuntu"
    ssh_host: str = ""
    ssh_port: int = 22
    ssh_keypair_name: str = ""
    ssh_private_key_file: str = ""
    endpoint: str = ""                      # an EC2-compatible endpoint (emulator); empty for AWS
    ami_name_prefix: str = "dcp-control-node"
    kms_key_id: str = ""
    ssh_cidr: str = ""                      # comma-separated IPv4 CIDRs allowed to SSH to the build instance
    associate_public_ip: bool = False       # a public address even where the subnet gives none
    ssh_interface: str = ""                 # "" (public, else private address), public_ip, …, session_manager
    iam_instance_profile: str = ""          # for the build instance (session_manager needs SSM's policy)
    repo_url: str = Options.repo_url        # the project's own repository when --project names a sibling
    project: str = "cellprofiler"           # the Distributed-* project the node is for (a row of agent.flavours)
    ref: str = ""                           # "" is the project's default branch (Flavour.default_branch)
    aws_cli_version: str = Options.aws_cli_version     # the official bundle's version (Ubuntu images)
    extra_tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.ref:
            from agent import flavours

            self.ref = flavours.by_key(self.project).default_branch

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """The build defaults, by field name (the one place they are written down)."""
        return {f.name: f.default for f in fields(cls) if f.default is not MISSING}

    @classmethod
    def from_options(cls, **options: Any) -> BuildConfig:
        """A config from command-line options: an empty value ("" or None) means the default; no region
        means the one the AWS configuration names."""
        given = {name: value for name, value in options.items() if value is not None and value != ""}
        if "project" in given:
            from agent import flavours
            from agent.boundary import UserError

            try:
                flavour = flavours.by_key(str(given["project"]))
            except KeyError:
                raise UserError(f"--project {given['project']!r} is not one of {', '.join(flavours.FLAVOURS)}") from None
            given["project"] = flavour.key
            if not flavour.is_dcp:
                given.setdefault("repo_url", flavour.repo_url)
        return cls(**{"region": given.pop("region", "") or check_region(""), **given})


@dataclass(frozen=True)
class SourceImage:
    """The base AMI Packer will pick (the newest match): its root device is where the encrypted volume goes."""
    image_id: str
    root_device: str
    root_size_gb: int


@dataclass(frozen=True)
class SshSource:
    """Who may reach the temporary security group's SSH port: explicit CIDRs, or (current Packer) the
    address Packer sees for itself. Never 0.0.0.0/0."""
    cidrs: tuple[str, ...] = ()
    public_ip: bool = False


@dataclass(frozen=True)
class BuildResult:
    image_id: str
    tags: dict[str, str]                    # as applied to the AMI and its snapshots
    work_dir: Path
    packer_version: tuple[int, int, int]


def aws_region() -> str:
    """The region of the normal AWS configuration (AWS_REGION, AWS_DEFAULT_REGION, the profile), or ""."""
    return awsclient.default_region()


def ec2_client(region: str, endpoint: str = "") -> Any:
    """EC2 for build-ami, cleanup-build and the node tasks (bounded timeouts and retries: bootstrap.awsclient)."""
    return awsclient.client("ec2", region, endpoint)


def check_region(region: str) -> str:
    """``--region`` by agent.inputs' rule, as a BuildError."""
    return awsclient.region(region, error=BuildError)


def check_endpoint(endpoint: str) -> str:
    return awsclient.endpoint(endpoint, error=BuildError)


def check_inputs(cfg: BuildConfig) -> None:
    check_region(cfg.region)
    check_endpoint(cfg.endpoint)
    if not re.fullmatch(r"[a-z0-9-]+\.[a-z0-9]+", cfg.instance_type):
        raise BuildError(f"instance type {cfg.instance_type!r} is not like t3.small")
    if not 1 <= cfg.ssh_port <= 65535:
        raise BuildError(f"ssh port {cfg.ssh_port} is not a port number")
    if cfg.ssh_private_key_file and not Path(cfg.ssh_private_key_file).is_file():
        raise BuildError(f"ssh private key {cfg.ssh_private_key_file} does not exist")
    if bool(cfg.ssh_keypair_name) != bool(cfg.ssh_private_key_file):
        raise BuildError("give both --ssh-keypair-name and --ssh-private-key-file, or neither")
    if not re.fullmatch(r"[A-Za-z0-9()\[\]./_ -]{3,100}", cfg.ami_name_prefix):
        raise BuildError(f"AMI name prefix {cfg.ami_name_prefix!r} must be 3–100 of letters, digits, ()[]./-_")
    if not re.fullmatch(r"2\.\d+\.\d+", cfg.aws_cli_version):
        raise BuildError(f"--aws-cli-version {cfg.aws_cli_version!r} is not an AWS CLI v2 version (e.g. 2.36.40)")
    if cfg.ssh_interface not in SSH_INTERFACES:
        raise BuildError(f"--ssh-interface {cfg.ssh_interface!r}: use one of {', '.join(i for i in SSH_INTERFACES if i)}")
    if cfg.ssh_interface == "session_manager" and not cfg.iam_instance_profile:
        raise BuildError("--ssh-interface session_manager needs --iam-instance-profile (a profile whose role has "
                         "AmazonSSMManagedInstanceCore), and the session-manager-plugin on this machine")
    if cfg.ssh_cidr and cfg.security_group_id:
        raise BuildError("--ssh-cidr is for the temporary security group; with --security-group-id that group's "
                         "rules decide who can SSH: give one or the other")
    parse_cidrs(cfg.ssh_cidr)


def parse_cidrs(text: str, source: str = "--ssh-cidr") -> tuple[str, ...]:
    """``--ssh-cidr`` (or what ``source`` names): comma-separated IPv4 networks (an address alone means /32).
    Refuses anything that is not one, has host bits set, or is the whole internet."""
    cidrs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            net = operator_network(item, flag=source, ipv4_only=True)     # the one rule (agent.inputs)
        except ValueError as e:
            raise BuildError(str(e)) from None
        cidrs.append(str(net))
    return tuple(cidrs)


def ssh_source(cfg: BuildConfig, modern: bool) -> SshSource:
    """Who the temporary security group lets in on the SSH port (Packer's default would be 0.0.0.0/0):

    - ``--security-group-id``: no temporary group (that group's rules decide);
    - ``--ssh-cidr``: exactly those networks (``temporary_security_group_source_cidrs``);
    - a build wholly on this machine (EC2 endpoint and SSH host both loopback, i.e. the emulator): 127.0.0.1/32;
    - current Packer: the address Packer sees for itself (``temporary_security_group_source_public_ip``);
    - Packer 1.6.6, which has no such option: refused, with what to pass instead.
    """
    if cfg.security_group_id:
        return SshSource()
    if cfg.ssh_cidr:
        return SshSource(cidrs=parse_cidrs(cfg.ssh_cidr))
    if cfg.endpoint and is_loopback_url(cfg.endpoint) and cfg.ssh_host and is_loopback_url(cfg.ssh_host):
        return SshSource(cidrs=("127.0.0.1/32",))
    if modern:
        return SshSource(public_ip=True)
    raise BuildError("Packer 1.6.6 cannot limit the temporary security group to your address: pass --ssh-cidr "
                     "<your public IPv4>/32 (or --security-group-id of a group that allows SSH from you), "
                     "or use Packer >= 1.7")


def is_loopback_url(url: str) -> bool:
    host = re.sub(r"^[a-z]+://", "", url).split("/")[0].rsplit(":", 1)[0].strip("[]")
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def preflight(cfg: BuildConfig, ec2: Any | None = None) -> SourceImage:
    """Credentials, region, subnet, security group (SSH open) and the base AMI, before anything is created.
    Returns the base AMI Packer's ``most_recent`` filter will choose."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        awsclient.client("sts", cfg.region, cfg.endpoint).get_caller_identity()
    except (BotoCoreError, ClientError) as e:
        awsclient.raise_unanswered(e, credentials=False)   # no answer says nothing of the credentials
        raise BuildError(f"AWS credentials do not work ({type(e).__name__}): run aws configure") from None
    ec2 = ec2 or ec2_client(cfg.region, cfg.endpoint)
    try:
        subnet = build_subnet(cfg, ec2)
        if cfg.ssh_host or cfg.ssh_interface in {"session_manager", "private_ip", "private_dns"}:
            pass                             # SSH goes to a given address, over SSM, or inside the VPC
        else:
            check_public_path(cfg, ec2, subnet)
        if cfg.security_group_id and cfg.ssh_interface != "session_manager":
            sg = ec2.describe_security_groups(GroupIds=[cfg.security_group_id])["SecurityGroups"][0]
            check_group_allows_ssh(sg, operator_address(cfg))
        found = awsclient.every(ec2, "describe_images", "Images", Owners=[cfg.source_ami_owner], Filters=[
            {"Name": "name", "Values": [cfg.source_ami_name]}, {"Name": "state", "Values": ["available"]}])
        if not found:
            raise BuildError(f"no AMI named {cfg.source_ami_name!r} from {cfg.source_ami_owner} in {cfg.region}: "
                             "check --source-ami-name/--source-ami-owner")
    except (ClientError, BotoCoreError) as e:
        awsclient.raise_unanswered(e)
        if not isinstance(e, ClientError):
            raise
        raise BuildError(f"{e.response['Error']['Code']}: {e.response['Error']['Message']}") from None
    image = max(found, key=lambda i: i.get("CreationDate", ""))
    root = image.get("RootDeviceName") or "/dev/sda1"
    size = next((m.get("Ebs", {}).get("VolumeSize") or 0 for m in image.get("BlockDeviceMappings", [])
                 if m.get("DeviceName") == root), 0)
    return SourceImage(image["ImageId"], root, max(int(size), 8))


def build_subnet(cfg: BuildConfig, ec2: Any) -> dict[str, Any]:
    """The subnet the build instance lands in: --subnet-id, else one of the default VPC's default subnets
    (which is what EC2 picks). No default VPC and no subnet: one line."""
    from botocore.exceptions import ClientError

    if cfg.subnet_id:
        try:
            return dict(ec2.describe_subnets(SubnetIds=[cfg.subnet_id])["Subnets"][0])
        except ClientError as e:
            if "NotFound" in e.response["Error"]["Code"]:
                raise BuildError(f"subnet {cfg.subnet_id} does not exist in {cfg.region}") from None
            raise
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        raise BuildError(f"{cfg.region} has no default VPC: pass --subnet-id (a public subnet, or a private one with "
                         "--ssh-interface session_manager)")
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpcs[0]["VpcId"]]},
                                            {"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    if not subnets:
        raise BuildError(f"the default VPC {vpcs[0]['VpcId']} has no default subnets: pass --subnet-id")
    return dict(subnets[0])


def check_public_path(cfg: BuildConfig, ec2: Any, subnet: dict[str, Any]) -> None:
    """SSH from here goes to the build instance's public address: it must get one (the subnet maps one, or
    --associate-public-ip) and the subnet must route 0.0.0.0/0 to an internet gateway."""
    sid = subnet["SubnetId"]
    if not (subnet.get("MapPublicIpOnLaunch") or cfg.associate_public_ip):
        raise BuildError(f"subnet {sid} gives the build instance no public address, so SSH from here cannot reach it: "
                         "pass --associate-public-ip, or for a private subnet --ssh-interface session_manager "
                         "--iam-instance-profile P")
    tables = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [sid]}])["RouteTables"]
    if not tables:                           # no table of its own: the VPC's main table
        tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [subnet["VpcId"]]},
                                                    {"Name": "association.main", "Values": ["true"]}])["RouteTables"]
    routes = [r for t in tables for r in t.get("Routes", [])]
    if not any(r.get("DestinationCidrBlock") == "0.0.0.0/0" and str(r.get("GatewayId", "")).startswith("igw-")
               and r.get("State", "active") == "active" for r in routes):
        raise BuildError(f"subnet {sid} has no route from 0.0.0.0/0 to an internet gateway, so its public addresses "
                         "are unreachable: use a public subnet, or --ssh-interface session_manager")


def operator_address(cfg: BuildConfig) -> ipaddress.IPv4Address | None:
    """The address SSH to the build instance comes from: loopback when SSH is pinned there (the emulator),
    else this machine's public address as AWS sees it (None when that cannot be found)."""
    if cfg.ssh_host and is_loopback_url(cfg.ssh_host):
        return ipaddress.IPv4Address("127.0.0.1")
    if cfg.endpoint:
        return None                          # an emulator: never ask the internet
    import urllib.request

    try:
        with urllib.request.urlopen(CHECKIP, timeout=10) as resp:
            return ipaddress.IPv4Address(resp.read().decode().strip())
    except (OSError, ValueError):
        return None


def check_group_allows_ssh(group: dict[str, Any], source: ipaddress.IPv4Address | None) -> None:
    """--security-group-id must let SSH in: a tcp (or all-traffic) rule covering port 22 whose source holds the
    operator's address. A rule from another group or a prefix list cannot be judged from here: accepted with
    a line saying so. Anything else: one line naming what the group allows instead."""
    gid = group["GroupId"]
    tcp22 = [p for p in group.get("IpPermissions", []) if p.get("IpProtocol") in {"tcp", "6", "-1"}
             and (p.get("IpProtocol") == "-1" or p.get("FromPort", 0) <= 22 <= p.get("ToPort", -1))]
    if not tcp22:
        raise BuildError(f"security group {gid} allows no SSH (tcp 22) in: add a tcp/22 rule from your address, or "
                         "leave --security-group-id empty")
    cidrs = [r["CidrIp"] for p in tcp22 for r in p.get("IpRanges", [])]
    if source is None:
        print(f"build-ami: could not find this machine's public address; {gid} lets tcp/22 in from "
              f"{', '.join(cidrs) or 'other groups or prefix lists'} (not checked against yours)", flush=True)
        return
    if any(source in ipaddress.ip_network(c, strict=False) for c in cidrs):
        return
    if any(p.get("UserIdGroupPairs") or p.get("PrefixListIds") for p in tcp22):
        print(f"build-ami: {gid} lets tcp/22 in from other groups or prefix lists; whether they include {source} "
              "cannot be told from here", flush=True)
        return
    raise BuildError(f"security group {gid} lets tcp/22 in only from {', '.join(cidrs)}, not from this machine "
                     f"({source}): add a rule for {source}/32, or leave --security-group-id empty")


def packer_path() -> str:
    # Packer phones HashiCorp's checkpoint service on every run unless told not to: never here.
    os.environ["CHECKPOINT_DISABLE"] = "1"
    exe = shutil.which("packer")
    if not exe:
        raise BuildError("packer is not installed: install it (https://developer.hashicorp.com/packer/install, "
                         "or apt-get install packer on Debian)")
    return exe


def packer_version(exe: str) -> tuple[int, int, int]:
    out = subprocess.run([exe, "version"], capture_output=True, text=True, check=False).stdout
    m = re.search(r"v?(\d+)\.(\d+)\.(\d+)", out)
    if not m:
        raise BuildError(f"cannot tell the Packer version from {out.strip()[:60]!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def template_dir(dest: Path, modern: bool) -> Path:
    """A copy of packer/ fit for this Packer (see the module docstring)."""
    dest.mkdir(parents=True, exist_ok=True)
    for src in PACKER_DIR.glob("*.pkr.hcl"):
        if src.name == "plugins.pkr.hcl" and not modern:
            continue
        lines = src.read_text().splitlines(keepends=True)
        if not modern:
            lines = [ln for ln in lines if "compat:modern-only" not in ln or ln.lstrip().startswith("#")]
        (dest / src.name).write_text("".join(lines))
    return dest


def git_commit() -> str:
    p = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                       check=False)
    return p.stdout.strip() or "unknown"


def run_tags(build_id: str, started: float | None = None) -> dict[str, str]:
    """Tags for everything the build runs: the instance and its volumes on every Packer, and the temporary
    key pair and security group on current Packer (the amazon plugin tags them with run_tags; 1.6.6 does not,
    so cleanup-build finds those through the tagged instance)."""
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
    return {"Name": BUILD_TAG, PROJECT_TAG: PROJECT, BUILD_ID_TAG: build_id, STARTED_TAG: when}


def packer_vars(cfg: BuildConfig, build: Path, stage_dir: Path, recipe: Path, tags: dict[str, str], *,
                run: dict[str, str], ssh: SshSource, source: SourceImage) -> Path:
    """The one variable file (HCL2 variable files are JSON-compatible) every Packer command gets; its path."""
    values: dict[str, Any] = {
        "region": cfg.region, "instance_type": cfg.instance_type, "source_ami_name": cfg.source_ami_name,
        "source_ami_owner": cfg.source_ami_owner, "subnet_id": cfg.subnet_id,
        "security_group_id": cfg.security_group_id, "ssh_username": cfg.ssh_username, "ssh_host": cfg.ssh_host,
        "ssh_port": cfg.ssh_port, "ssh_keypair_name": cfg.ssh_keypair_name,
        "ssh_private_key_file": cfg.ssh_private_key_file, "custom_endpoint_ec2": cfg.endpoint,
        "ami_name_prefix": cfg.ami_name_prefix, "kms_key_id": cfg.kms_key_id, "stage_dir": str(stage_dir),
        "recipe_script": str(recipe), "scripts_dir": str(PACKER_DIR / "scripts"),
        "node_manifest": str(build / "node-manifest.json"), "packer_manifest": str(build / "packer-manifest.json"),
        "root_device_name": source.root_device, "root_volume_size": source.root_size_gb,
        "ssh_source_cidrs": list(ssh.cidrs), "ssh_source_public_ip": ssh.public_ip,
        "tags": tags, "run_tags": run, "associate_public_ip_address": cfg.associate_public_ip,
        "ssh_interface": cfg.ssh_interface, "iam_instance_profile": cfg.iam_instance_profile,
    }
    var_file = build / "build.auto.pkrvars.json"
    var_file.write_text(json.dumps(values, indent=2))
    return var_file


# What `packer init` prints when it cannot download a plugin (no network, proxy, GitHub or releases API down).
_DOWNLOAD_FAILED = re.compile(r"Failed getting the|dial tcp|no such host|lookup |i/o timeout|connection refused|"
                              r"network is unreachable|TLS handshake|Client\.Timeout|rate limit", re.IGNORECASE)


def packer_init(exe: str, templates: Path) -> None:
    """`packer init` (current Packer only): installs the amazon plugin ``required_plugins`` asks for, or does
    nothing when it is installed already. Without the plugin and without network, one line says what to do."""
    from packerpy import PackerExecutable

    rc, out, err = PackerExecutable(executable_path=exe, machine_readable=False).execute_cmd("init", str(templates))
    if rc == 0:
        return
    text = ((out or b"") + (err or b"")).decode(errors="replace")
    if _DOWNLOAD_FAILED.search(text):
        raise BuildError(f"packer init cannot download the amazon plugin ({AMAZON_PLUGIN}) from here: on a machine "
                         f"with internet run `packer plugins install {AMAZON_PLUGIN}` and copy ~/.config/packer/plugins "
                         "to this one (or set PACKER_PLUGIN_PATH to a folder holding it), then run build-ami again")
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), f"exit status {rc}")
    raise BuildError(f"packer init failed: {first}", code=1)


class Phases:
    """Which phase a build is in, one line each with the time since build-ami started: build-ami's own
    (preflight, packer init/validate, tagging) and those read from Packer's streamed output."""

    # (pattern in a line of Packer's output, the phase it starts); the recipe's "==> STEP: applying" names a step.
    PACKER: tuple[tuple[re.Pattern[str], str], ...] = (
        (re.compile(r"Prevalidating|Found Image ID"), "base AMI and network"),
        (re.compile(r"Creating temporary (keypair|security group)|Launching a source AWS instance"),
         "launch: temporary key pair, security group, build instance"),
        (re.compile(r"Waiting for SSH to become available"), "waiting for SSH"),
        (re.compile(r"Provisioning with shell script: .*first-boot-wait"), "first boot: cloud-init, apt timers"),
        (re.compile(r"Provisioning with shell script: .*recipe"), "recipe"),
        (re.compile(r"==> ([\w:/.@-]+): applying"), "recipe: {0}"),
        (re.compile(r"Provisioning with shell script: .*cleanup"), "cleanup and in-image validation"),
        (re.compile(r"Stopping the source instance"), "stopping the build instance"),
        (re.compile(r"Creating AMI|Creating the AMI|Waiting for AMI to become ready"), "snapshot: creating the AMI"),
        (re.compile(r"Terminating the source AWS instance"), "removing the build instance, key pair and group"),
    )

    def __init__(self, start: float | None = None) -> None:
        self.start = time.monotonic() if start is None else start
        self.current = ""

    def enter(self, name: str) -> None:
        if name != self.current:
            self.current = name
            print(f"build-ami [{time.monotonic() - self.start:7.1f} s] {name}", flush=True)

    def feed(self, line: str) -> None:
        for pattern, name in self.PACKER:
            m = pattern.search(line)
            if m:
                self.enter(name.format(*m.groups()))
                return


def run_packer(exe: str, command: str, templates: Path, var_file: Path, *, stream: bool,
               phases: Phases | None = None) -> int:
    """packer-py runs Packer; its output is streamed for builds (through a pipe read line by line, so each
    line is shown at once and the phases are followed), captured otherwise."""
    import sys
    import threading

    from packerpy import PackerExecutable

    kwargs: dict[str, Any] = {"var_file": str(var_file)}
    if not stream:
        packer = PackerExecutable(executable_path=exe, machine_readable=False)
        rc, out, err = packer.validate(str(templates), **kwargs) if command == "validate" else \
            packer.build(str(templates), color="false", **kwargs)
        if rc != 0:
            text = ((out or b"") + (err or b"")).decode(errors="replace")
            first = next((ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("  ")), "")
            raise BuildError(f"packer {command} failed: {first}", code=1)
        return int(rc)
    read_fd, write_fd = os.pipe()

    def relay() -> None:
        with os.fdopen(read_fd, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                sys.stdout.write(line)
                sys.stdout.flush()
                if phases:
                    phases.feed(line)

    reader = threading.Thread(target=relay, daemon=True)
    reader.start()
    try:
        packer = PackerExecutable(executable_path=exe, machine_readable=False,
                                  config={"stdout": write_fd, "stderr": write_fd})
        if command == "build":
            rc, _, _ = packer.build(str(templates), color="false", **kwargs)
        else:
            rc, _, _ = packer.validate(str(templates), **kwargs)
    finally:
        os.close(write_fd)
        reader.join(timeout=30)
    return int(rc)


def ami_from_manifest(path: Path) -> str:
    try:
        builds = json.loads(path.read_text())["builds"]
        artifact = builds[-1]["artifact_id"]
    except (OSError, ValueError, KeyError, IndexError):
        raise BuildError("Packer finished without an AMI (no manifest entry); see its output above", code=1) from None
    return str(artifact).split(",")[0].split(":")[-1]


def finish_image(ec2: Any, ami: str, node_manifest: Path, tags: dict[str, str]) -> dict[str, str]:
    """Require IMDSv2 on the AMI and tag it and its snapshots with what the node manifest says."""
    ec2.modify_image_attribute(ImageId=ami, ImdsSupport={"Value": "v2.0"})
    manifest = json.loads(node_manifest.read_text()) if node_manifest.exists() else {}
    for key, name in (("python", "dcp:python"), ("aws_cli", "dcp:aws-cli"), ("dcp_commit", "dcp:dcp-commit"),
                      ("dcp_agent", "dcp:agent"), ("boto3", "dcp:boto3")):
        if manifest.get(key):
            tags[name] = str(manifest[key])[:255]
    image = ec2.describe_images(ImageIds=[ami])["Images"][0]
    snapshots = [m["Ebs"]["SnapshotId"] for m in image.get("BlockDeviceMappings", []) if m.get("Ebs", {}).get("SnapshotId")]
    ec2.create_tags(Resources=[ami, *snapshots], Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())])
    return tags


def base_tags(cfg: BuildConfig, build_id: str = "") -> dict[str, str]:
    from agent import __version__

    tags = {"Name": cfg.ami_name_prefix, PROJECT_TAG: PROJECT, "dcp:project-version": __version__,
            "dcp:git-commit": git_commit(), "dcp:recipe-sha256": recipe_hash(), "dcp:dcp-ref": cfg.ref,
            "dcp:distributed-project": Options(project=cfg.project).flavour.name, "dcp:dcp-repo": cfg.repo_url[:255]}
    if build_id:
        tags[BUILD_ID_TAG] = build_id
    return {**tags, **cfg.extra_tags}


def stage(cfg: BuildConfig, build: Path) -> tuple[Path, Path]:
    home = "/root" if cfg.ssh_username == "root" else f"/home/{cfg.ssh_username}"
    opts = Options(repo_url=cfg.repo_url, ref=cfg.ref, owner=cfg.ssh_username, owner_home=home,
                   aws_cli_version=cfg.aws_cli_version, project=cfg.project)
    st, full = prepare(build / "stage", opts)
    recipe = build / "recipe.sh"
    recipe.write_text(render_script(full))
    return st.directory, recipe


def new_build_dir() -> Path:
    """packer/build/<build id>: the id is also the build's BUILD_ID_TAG (a timestamp and a random suffix, so
    builds started in the same second, or on two machines, never share one)."""
    d = PACKER_DIR / "build" / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    d.mkdir(parents=True, exist_ok=False)
    return d


def build(cfg: BuildConfig) -> BuildResult:
    """The whole of `invoke build-ami`: inputs, Packer, preflight, staging, `packer validate` and `packer build`
    (output streamed), then IMDSv2 and tags on the AMI. Prints its progress; raises BuildError."""
    phases = Phases()
    phases.enter("preflight: inputs, Packer, credentials, region, subnet, security group, base AMI")
    check_inputs(cfg)
    exe = packer_path()
    version = packer_version(exe)
    modern = version >= MODERN
    ssh = ssh_source(cfg, modern)
    ec2 = ec2_client(cfg.region, cfg.endpoint)
    source = preflight(cfg, ec2)
    work = new_build_dir()
    print(f"build-ami: Packer {'.'.join(map(str, version))}; work folder {work}", flush=True)
    stage_dir, recipe = stage(cfg, work)
    templates = template_dir(work / "templates", modern=modern)
    tags = base_tags(cfg, work.name)
    var_file = packer_vars(cfg, work, stage_dir, recipe, tags, run=run_tags(work.name), ssh=ssh, source=source)
    if modern:
        phases.enter("packer init")
        packer_init(exe, templates)
    phases.enter("packer validate")
    run_packer(exe, "validate", templates, var_file, stream=False)
    phases.enter("packer build")
    awsclient.did(f"packer build was running (work folder {work}): Packer removes its build instance, key pair and "
                  f"group as it stops; invoke cleanup-build --region {cfg.region} lists anything left")
    if run_packer(exe, "build", templates, var_file, stream=True, phases=phases) != 0:
        raise BuildError(f"packer build failed (see the output above; work folder {work})", code=1)
    image = ami_from_manifest(work / "packer-manifest.json")
    awsclient.did(f"AMI {image} was made (tagging it had not finished)")
    phases.enter("tagging: IMDSv2 required, version tags on the AMI and its snapshots")
    final = finish_image(ec2, image, work / "node-manifest.json", tags)
    print("build-ami: tags " + ", ".join(f"{k}={v}" for k, v in sorted(final.items())))
    print(f"build-ami: IMDSv2 required on {image}")
    phases.enter(f"done: {image}")
    return BuildResult(image, final, work, version)


def validate() -> tuple[int, int, int]:
    """`packer fmt -check` and `packer validate` on the template (no AWS needed); returns Packer's version."""
    exe = packer_path()
    version = packer_version(exe)
    modern = version >= MODERN
    work = new_build_dir()
    templates = template_dir(work / "templates", modern=modern)
    if modern:
        packer_init(exe, templates)
    fmt = subprocess.run([exe, "fmt", "-check", "-diff", str(PACKER_DIR)], capture_output=True, text=True, check=False)
    if fmt.returncode != 0:
        raise BuildError(f"packer/ is not packer fmt-clean: run packer fmt packer/\n{fmt.stdout}")
    stage_dir = work / "stage"
    stage_dir.mkdir()
    (work / "recipe.sh").write_text(render_script(Options()))
    cfg = BuildConfig(region="us-east-1")
    # What a real build would pass (TEST-NET-3 stands in for an --ssh-cidr on 1.6.6).
    ssh = SshSource(public_ip=True) if modern else SshSource(cidrs=("203.0.113.7/32",))
    var_file = packer_vars(cfg, work, stage_dir, work / "recipe.sh", {"Name": "validate"}, run=run_tags(work.name),
                           ssh=ssh, source=SourceImage("ami-00000000", "/dev/sda1", 8))
    run_packer(exe, "validate", templates, var_file, stream=False)
    return version
