"""`invoke build-ami`: Packer builds the control-node AMI with the bootstrap recipe; boto3 finishes it.

Works with current Packer (>= 1.7, amazon plugin, `required_plugins`) and with Debian's Packer 1.6.6:
for the latter the template is copied without plugins.pkr.hcl and without the lines marked
"compat:modern-only" (metadata_options, imds_support). Either way the AMI is then marked to require
IMDSv2 (ModifyImageAttribute ImdsSupport=v2.0) and tagged with what it contains, using boto3.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bootstrap.recipe import Options, recipe_hash, render_script
from bootstrap.stage import prepare

ROOT = Path(__file__).resolve().parent.parent
PACKER_DIR = ROOT / "packer"
REGION_RE = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
BUILD_TAG = "packer dcp-control-node build"


class BuildError(Exception):
    """One line for the user: what is wrong and what to do."""


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
    repo_url: str = Options.repo_url
    ref: str = "master"
    extra_tags: dict[str, str] = field(default_factory=dict)


def check_inputs(cfg: BuildConfig) -> None:
    if not REGION_RE.match(cfg.region):
        if REGION_RE.match(cfg.region[:-1]) and cfg.region[-1].isalpha():
            raise BuildError(f"region {cfg.region!r} is an availability zone; use {cfg.region[:-1]!r}")
        raise BuildError(f"region {cfg.region!r} is not an AWS region (e.g. us-east-1)")
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


def is_loopback_url(url: str) -> bool:
    host = re.sub(r"^[a-z]+://", "", url).split("/")[0].rsplit(":", 1)[0].strip("[]")
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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


def packer_vars(cfg: BuildConfig, build: Path, stage_dir: Path, recipe: Path, tags: dict[str, str]) -> dict[str, str]:
    values: dict[str, Any] = {
        "region": cfg.region, "instance_type": cfg.instance_type, "source_ami_name": cfg.source_ami_name,
        "source_ami_owner": cfg.source_ami_owner, "subnet_id": cfg.subnet_id,
        "security_group_id": cfg.security_group_id, "ssh_username": cfg.ssh_username, "ssh_host": cfg.ssh_host,
        "ssh_port": cfg.ssh_port, "ssh_keypair_name": cfg.ssh_keypair_name,
        "ssh_private_key_file": cfg.ssh_private_key_file, "custom_endpoint_ec2": cfg.endpoint,
        "ami_name_prefix": cfg.ami_name_prefix, "kms_key_id": cfg.kms_key_id, "stage_dir": str(stage_dir),
        "recipe_script": str(recipe), "scripts_dir": str(PACKER_DIR / "scripts"),
        "node_manifest": str(build / "node-manifest.json"), "packer_manifest": str(build / "packer-manifest.json"),
    }
    # HCL2 variable files are JSON-compatible: one file carries every value, tags included.
    var_file = build / "build.auto.pkrvars.json"
    var_file.write_text(json.dumps({**values, "tags": tags}, indent=2))
    return {k: str(v) for k, v in values.items()}


def run_packer(exe: str, command: str, templates: Path, var_file: Path, *, stream: bool) -> int:
    """packer-py runs Packer; its output is streamed (stdout inherited) for builds, captured otherwise."""
    from packerpy import PackerExecutable

    io = {"stdout": None, "stderr": None} if stream else {}
    packer = PackerExecutable(executable_path=exe, machine_readable=False, config=io)
    kwargs: dict[str, Any] = {"var_file": str(var_file)}
    if command == "build":
        kwargs["color"] = "false"
        rc, out, err = packer.build(str(templates), **kwargs)
    else:
        rc, out, err = packer.validate(str(templates), **kwargs)
    if rc != 0 and not stream:
        text = ((out or b"") + (err or b"")).decode(errors="replace")
        first = next((ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("  ")), "")
        raise BuildError(f"packer {command} failed: {first}")
    return int(rc)


def ami_from_manifest(path: Path) -> str:
    try:
        builds = json.loads(path.read_text())["builds"]
        artifact = builds[-1]["artifact_id"]
    except (OSError, ValueError, KeyError, IndexError):
        raise BuildError("Packer finished without an AMI (no manifest entry); see its output above") from None
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


def base_tags(cfg: BuildConfig) -> dict[str, str]:
    from agent import __version__

    return {"Name": cfg.ami_name_prefix, "dcp:project-version": __version__, "dcp:git-commit": git_commit(),
            "dcp:recipe-sha256": recipe_hash(), "dcp:dcp-ref": cfg.ref, **cfg.extra_tags}


def stage(cfg: BuildConfig, build: Path) -> tuple[Path, Path]:
    home = "/root" if cfg.ssh_username == "root" else f"/home/{cfg.ssh_username}"
    opts = Options(repo_url=cfg.repo_url, ref=cfg.ref, owner=cfg.ssh_username, owner_home=home)
    st, full = prepare(build / "stage", opts)
    recipe = build / "recipe.sh"
    recipe.write_text(render_script(full))
    return st.directory, recipe


def new_build_dir() -> Path:
    d = PACKER_DIR / "build" / time.strftime("%Y%m%d-%H%M%S")
    d.mkdir(parents=True, exist_ok=True)
    return d


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
