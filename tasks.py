"""Invoke tasks: ``invoke --list`` shows them. See the README for what each does.

The tasks only turn options into calls: the work is in ``bootstrap`` (its CLI, ``bootstrap.ami`` and
``bootstrap.cleanup``), where the build's defaults live too (``bootstrap.ami.BuildConfig``).
"""

from __future__ import annotations

import sys

from invoke import Context, task
from invoke.exceptions import Exit

from bootstrap import ami, cleanup, node


@task
def demo(c: Context) -> None:
    """The whole flow against a local AWS emulator and a sandbox host (what `make demo` runs)."""
    c.run(f"{sys.executable} -m rig.demo", pty=sys.stdout.isatty())


@task(help={
    "hosts": "one or more hosts, comma- or space-separated: user@host:port, host, or ~/.ssh/config aliases",
    "identity": "SSH private key (-i)", "dry_run": "connect, read state and list what would change",
    "repo_url": "Distributed-CellProfiler repository to clone", "ref": "branch, tag or commit",
    "no_s3fs": "do not install s3fs", "log_dir": "one log file per host (default bootstrap-logs/)",
    "connect_timeout": "seconds to wait for SSH (default 10)",
    "accept_new_host_keys": "trust hosts not yet in known_hosts and add them (a changed key is always refused)",
    "known_hosts": "known_hosts file (default ~/.ssh/known_hosts)",
    "aws_cli_version": "AWS CLI v2 bundle version where the OS has no v2 package (Ubuntu)",
})
def bootstrap(c: Context, hosts: str, identity: str = "", dry_run: bool = False, repo_url: str = "",  # noqa: PLR0917
              ref: str = "", no_s3fs: bool = False, log_dir: str = "", connect_timeout: float = 0,
              accept_new_host_keys: bool = False, known_hosts: str = "", aws_cli_version: str = "") -> None:
    """Turn running hosts into DCP control nodes over SSH (the same recipe as build-ami)."""
    from bootstrap import cli

    args = hosts.replace(",", " ").split()
    for flag, value in (("-i", identity), ("--repo-url", repo_url), ("--ref", ref), ("--log-dir", log_dir),
                        ("--known-hosts", known_hosts), ("--aws-cli-version", aws_cli_version)):
        if value:
            args += [flag, value]
    if connect_timeout:
        args += ["--connect-timeout", str(connect_timeout)]
    if dry_run:
        args.append("--dry-run")
    if no_s3fs:
        args.append("--no-s3fs")
    if accept_new_host_keys:
        args.append("--accept-new-host-keys")
    try:
        code = cli.main(args)
    except SystemExit as e:                 # the CLI's usage errors (one line on stderr already)
        code = e.code if isinstance(e.code, int) else 1
    if code:
        raise Exit(code=code)


# The build's defaults belong to BuildConfig: an empty option ("" or 0) means "BuildConfig's default".
_BUILD = ami.BuildConfig.defaults()


@task(help={
    "region": "AWS region (e.g. us-east-1; default: the AWS configuration's)",
    "instance_type": f"build instance type (default {_BUILD['instance_type']})",
    "subnet_id": "subnet for the build instance", "security_group_id": "security group allowing SSH from here",
    "ssh_username": f"login user of the base AMI (default {_BUILD['ssh_username']})",
    "source_ami_name": f"base AMI name filter (default {_BUILD['source_ami_name']})",
    "source_ami_owner": f"base AMI owner (default {_BUILD['source_ami_owner']})",
    "ami_name_prefix": f"AMI name prefix (default {_BUILD['ami_name_prefix']})",
    "kms_key_id": "KMS key for the root volume",
    "ssh_cidr": "IPv4 network(s) allowed to SSH to the build instance, e.g. 203.0.113.7/32 (default: your public "
                "address as Packer sees it; Packer 1.6.6 needs this or --security-group-id)",
    "repo_url": f"Distributed-CellProfiler repository (default {_BUILD['repo_url']})",
    "ref": f"branch, tag or commit (default {_BUILD['ref']})",
    "endpoint": "EC2-compatible endpoint (an emulator); empty for AWS", "ssh_host": "SSH address override",
    "ssh_port": f"SSH port (default {_BUILD['ssh_port']})", "ssh_keypair_name": "existing key pair",
    "ssh_private_key_file": "its private key",
    "aws_cli_version": f"AWS CLI v2 bundle version for Ubuntu images (default {_BUILD['aws_cli_version']})",
    "associate_public_ip": "give the build instance a public address even where the subnet gives none",
    "ssh_interface": "how Packer reaches it: public_ip, private_ip, or session_manager (private subnets; needs "
                     "--iam-instance-profile and the session-manager-plugin)",
    "iam_instance_profile": "instance profile for the build instance",
})
def build_ami(c: Context, region: str = "", instance_type: str = "", subnet_id: str = "",  # noqa: PLR0917
              security_group_id: str = "", ssh_username: str = "", source_ami_name: str = "",
              source_ami_owner: str = "", ami_name_prefix: str = "", kms_key_id: str = "",
              repo_url: str = "", ref: str = "", endpoint: str = "", ssh_host: str = "", ssh_port: int = 0,
              ssh_keypair_name: str = "", ssh_private_key_file: str = "", ssh_cidr: str = "",
              aws_cli_version: str = "", associate_public_ip: bool = False, ssh_interface: str = "",
              iam_instance_profile: str = "") -> None:
    """Bake a DCP control-node AMI with Packer (the bootstrap recipe), then print its id."""
    cfg = ami.BuildConfig.from_options(
        region=region, instance_type=instance_type, subnet_id=subnet_id, security_group_id=security_group_id,
        ssh_username=ssh_username, source_ami_name=source_ami_name, source_ami_owner=source_ami_owner,
        ami_name_prefix=ami_name_prefix, kms_key_id=kms_key_id, repo_url=repo_url, ref=ref, endpoint=endpoint,
        ssh_host=ssh_host, ssh_port=ssh_port, ssh_keypair_name=ssh_keypair_name,
        ssh_private_key_file=ssh_private_key_file, ssh_cidr=ssh_cidr, aws_cli_version=aws_cli_version,
        associate_public_ip=associate_public_ip, ssh_interface=ssh_interface,
        iam_instance_profile=iam_instance_profile)
    try:
        result = ami.build(cfg)
    except ami.BuildError as e:
        raise Exit(f"build-ami: {e}", code=2 if "failed" not in str(e) else 1) from None
    print(result.image_id)


@task
def validate(c: Context) -> None:
    """packer fmt -check and packer validate on the template; no AWS credentials needed."""
    try:
        version = ami.validate()
    except ami.BuildError as e:
        raise Exit(f"validate: {e}", code=1) from None
    print(f"validate: packer/ is formatted and valid (Packer {'.'.join(map(str, version))})")


@task(help={"region": "AWS region", "endpoint": "EC2-compatible endpoint (an emulator)",
            "delete": "delete what is found (default: only list it)",
            "keep": f"AMIs to keep (newest first; default {cleanup.KEEP})",
            "older_than": f"only builds started at least this many minutes ago (default {cleanup.OLDER_THAN})",
            "prefix": f"AMI name prefix (default {_BUILD['ami_name_prefix']})"})
def cleanup_build(c: Context, region: str = "", endpoint: str = "", delete: bool = False,  # noqa: PLR0917
                  keep: int = cleanup.KEEP, older_than: int = cleanup.OLDER_THAN, prefix: str = "") -> None:
    """Find (and with --delete remove) what this project's interrupted builds left, and AMIs beyond --keep."""
    try:
        failed = cleanup.cleanup(region, endpoint, prefix=prefix, keep=keep, delete=delete, older_than=older_than)
    except ami.BuildError as e:
        raise Exit(f"cleanup-build: {e}", code=2) from None
    if failed:
        raise Exit(f"cleanup-build: {failed} could not be deleted (see above)", code=1)


_NODE = node.NodeConfig.__dataclass_fields__


@task(help={
    "region": "AWS region (default: the AWS configuration's)",
    "key_name": "EC2 key pair, or NAME of ~/.ssh/NAME.pub to import as one",
    "ami": "AMI id (default: the newest one build-ami made here)",
    "instance_type": f"instance type, x86_64 (default {_NODE['instance_type'].default})",
    "name": f"the node's name (tag; default {_NODE['name'].default})",
    "ssh_cidr": "who may SSH in, e.g. 203.0.113.7/32 (default: DCP_OPERATOR_CIDR, else your public address)",
    "instance_profile": "instance profile name or ARN for the node", "subnet_id": "subnet (default: the default VPC's)",
    "kms_key_id": "KMS key for the root volume (default: the account's EBS key)",
    "ssh_username": f"login user of the AMI (default {_NODE['ssh_username'].default})",
    "dry_run": "check everything and ask EC2 (DryRun) whether each create call would succeed; create nothing",
    "endpoint": "EC2-compatible endpoint (an emulator); empty for AWS", "ssh_host": "SSH address override",
    "ssh_port": "SSH port (default 22)", "wait_timeout": "seconds to wait for running, then for SSH (default 600)",
})
def launch_node(c: Context, region: str = "", key_name: str = "", ami: str = "", instance_type: str = "",  # noqa: PLR0917
                name: str = "", ssh_cidr: str = "", instance_profile: str = "", subnet_id: str = "",
                kms_key_id: str = "", ssh_username: str = "", dry_run: bool = False, endpoint: str = "",
                ssh_host: str = "", ssh_port: int = 0, wait_timeout: float = 0) -> None:
    """Start a control node from this project's newest AMI; wait for SSH; print the ssh command."""
    try:
        cfg = node.NodeConfig.from_options(
            region=region, key_name=key_name, ami=ami, instance_type=instance_type, name=name, ssh_cidr=ssh_cidr,
            instance_profile=instance_profile, subnet_id=subnet_id, kms_key_id=kms_key_id, ssh_username=ssh_username,
            dry_run=dry_run, endpoint=endpoint, ssh_host=ssh_host, ssh_port=ssh_port, wait_timeout=wait_timeout)
        result = node.launch(cfg)
    except node.NodeError as e:
        raise Exit(f"launch-node: {e}", code=2) from None
    if result:
        print(result.ssh_command)


@task(help={"region": "AWS region", "endpoint": "EC2-compatible endpoint (an emulator)"})
def list_nodes(c: Context, region: str = "", endpoint: str = "") -> None:
    """The control nodes launch-node started (not terminated)."""
    try:
        lines = node.list_nodes(region, endpoint)
    except node.NodeError as e:
        raise Exit(f"list-nodes: {e}", code=2) from None
    print("\n".join(lines) if lines else "list-nodes: no nodes")


@task(help={"node_name": "node name or instance id (invoke list-nodes)", "region": "AWS region",
            "endpoint": "EC2-compatible endpoint (an emulator)"})
def stop_node(c: Context, node_name: str, region: str = "", endpoint: str = "") -> None:
    """Stop a node launch-node started (its volume stays, and keeps costing)."""
    _change(node_name, "stop", region, endpoint)


@task(help={"node_name": "node name or instance id (invoke list-nodes)", "region": "AWS region",
            "endpoint": "EC2-compatible endpoint (an emulator)"})
def terminate_node(c: Context, node_name: str, region: str = "", endpoint: str = "") -> None:
    """Terminate a node launch-node started (its root volume goes with it)."""
    _change(node_name, "terminate", region, endpoint)


def _change(which: str, action: str, region: str, endpoint: str) -> None:
    try:
        ids = node.change_node(which, action, region, endpoint)
    except node.NodeError as e:
        raise Exit(f"{action}-node: {e}", code=2) from None
    print(f"{action}-node: {', '.join(ids)} {'stopped' if action == 'stop' else 'terminated'}")
