"""Invoke tasks: ``invoke --list`` shows them. See the README for what each does."""

from __future__ import annotations

import shlex
import sys

from invoke import Context, task


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
})
def bootstrap(c: Context, hosts: str, identity: str = "", dry_run: bool = False, repo_url: str = "",  # noqa: PLR0917
              ref: str = "", no_s3fs: bool = False, log_dir: str = "", connect_timeout: float = 0) -> None:
    """Turn running hosts into DCP control nodes over SSH (the same recipe as build-ami)."""
    args = hosts.replace(",", " ").split()
    for flag, value in (("-i", identity), ("--repo-url", repo_url), ("--ref", ref), ("--log-dir", log_dir)):
        if value:
            args += [flag, value]
    if connect_timeout:
        args += ["--connect-timeout", str(connect_timeout)]
    if dry_run:
        args.append("--dry-run")
    if no_s3fs:
        args.append("--no-s3fs")
    c.run(f"{sys.executable} -m bootstrap {' '.join(shlex.quote(a) for a in args)}", pty=sys.stdout.isatty())


def _ec2(region: str, endpoint: str) -> object:
    import boto3
    from botocore.config import Config

    return boto3.Session().client("ec2", region_name=region, endpoint_url=endpoint or None,
                                  config=Config(retries={"mode": "standard", "max_attempts": 3}))


def _preflight(cfg: object) -> None:
    """Credentials, region, subnet and security group, before anything is created."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from bootstrap.ami import BuildError

    try:
        boto3.Session().client("sts", region_name=cfg.region, endpoint_url=cfg.endpoint or None).get_caller_identity()  # type: ignore[attr-defined]
    except (BotoCoreError, ClientError) as e:
        raise BuildError(f"AWS credentials do not work ({type(e).__name__}): run aws configure") from None
    ec2 = _ec2(cfg.region, cfg.endpoint)  # type: ignore[attr-defined]
    try:
        if cfg.subnet_id:  # type: ignore[attr-defined]
            ec2.describe_subnets(SubnetIds=[cfg.subnet_id])  # type: ignore[attr-defined]
        if cfg.security_group_id:  # type: ignore[attr-defined]
            sg = ec2.describe_security_groups(GroupIds=[cfg.security_group_id])["SecurityGroups"][0]  # type: ignore[attr-defined]
            ssh = [p for p in sg.get("IpPermissions", []) if p.get("IpProtocol") == "-1"
                   or (p.get("FromPort", 0) <= 22 <= p.get("ToPort", 0))]
            if not ssh:
                raise BuildError(f"security group {cfg.security_group_id} allows no SSH (tcp 22) in: add a rule "  # type: ignore[attr-defined]
                                 "for your address, or leave --security-group-id empty")
        owner = cfg.source_ami_owner  # type: ignore[attr-defined]
        found = ec2.describe_images(Owners=[owner], Filters=[  # type: ignore[attr-defined]
            {"Name": "name", "Values": [cfg.source_ami_name]}, {"Name": "state", "Values": ["available"]}])["Images"]  # type: ignore[attr-defined]
        if not found:
            raise BuildError(f"no AMI named {cfg.source_ami_name!r} from {owner} in {cfg.region}: "  # type: ignore[attr-defined]
                             "check --source-ami-name/--source-ami-owner")
    except ClientError as e:
        raise BuildError(f"{e.response['Error']['Code']}: {e.response['Error']['Message']}") from None


@task(help={
    "region": "AWS region (e.g. us-east-1)", "instance_type": "build instance type (default t3.small)",
    "subnet_id": "subnet for the build instance", "security_group_id": "security group allowing SSH from here",
    "ssh_username": "login user of the base AMI (default ubuntu)", "source_ami_name": "base AMI name filter",
    "source_ami_owner": "base AMI owner", "ami_name_prefix": "AMI name prefix", "kms_key_id": "KMS key for the root volume",
    "repo_url": "Distributed-CellProfiler repository", "ref": "branch, tag or commit",
    "endpoint": "EC2-compatible endpoint (an emulator); empty for AWS", "ssh_host": "SSH address override",
    "ssh_port": "SSH port", "ssh_keypair_name": "existing key pair", "ssh_private_key_file": "its private key",
})
def build_ami(c: Context, region: str = "", instance_type: str = "t3.small", subnet_id: str = "",  # noqa: PLR0917
              security_group_id: str = "", ssh_username: str = "ubuntu", source_ami_name: str = "",
              source_ami_owner: str = "", ami_name_prefix: str = "dcp-control-node", kms_key_id: str = "",
              repo_url: str = "", ref: str = "master", endpoint: str = "", ssh_host: str = "", ssh_port: int = 22,
              ssh_keypair_name: str = "", ssh_private_key_file: str = "") -> None:
    """Bake a DCP control-node AMI with Packer (the bootstrap recipe), then print its id."""
    import boto3
    from invoke.exceptions import Exit

    from bootstrap import ami

    cfg = ami.BuildConfig(
        region=region or boto3.Session().region_name or "", instance_type=instance_type, subnet_id=subnet_id,
        security_group_id=security_group_id, ssh_username=ssh_username, ami_name_prefix=ami_name_prefix,
        kms_key_id=kms_key_id, ref=ref, endpoint=endpoint, ssh_host=ssh_host, ssh_port=ssh_port,
        ssh_keypair_name=ssh_keypair_name, ssh_private_key_file=ssh_private_key_file)
    for name, value in (("source_ami_name", source_ami_name), ("source_ami_owner", source_ami_owner),
                        ("repo_url", repo_url)):
        if value:
            setattr(cfg, name, value)
    try:
        ami.check_inputs(cfg)
        exe = ami.packer_path()
        version = ami.packer_version(exe)
        _preflight(cfg)
        build = ami.new_build_dir()
        print(f"build-ami: Packer {'.'.join(map(str, version))}; work folder {build}", flush=True)
        stage_dir, recipe = ami.stage(cfg, build)
        templates = ami.template_dir(build / "templates", modern=version >= (1, 7, 0))
        tags = ami.base_tags(cfg)
        ami.packer_vars(cfg, build, stage_dir, recipe, tags)
        var_file = build / "build.auto.pkrvars.json"
        ami.run_packer(exe, "validate", templates, var_file, stream=False)
        if ami.run_packer(exe, "build", templates, var_file, stream=True) != 0:
            raise ami.BuildError(f"packer build failed (see the output above; work folder {build})")
        image = ami.ami_from_manifest(build / "packer-manifest.json")
        final = ami.finish_image(_ec2(cfg.region, cfg.endpoint), image, build / "node-manifest.json", tags)
    except ami.BuildError as e:
        raise Exit(f"build-ami: {e}", code=2 if "failed" not in str(e) else 1) from None
    print("build-ami: tags " + ", ".join(f"{k}={v}" for k, v in sorted(final.items())))
    print(f"build-ami: IMDSv2 required on {image}")
    print(image)


@task
def validate(c: Context) -> None:
    """packer fmt -check and packer validate on the template; no AWS credentials needed."""
    from invoke.exceptions import Exit

    from bootstrap import ami
    from bootstrap.recipe import Options, render_script

    try:
        exe = ami.packer_path()
        version = ami.packer_version(exe)
        build = ami.new_build_dir()
        templates = ami.template_dir(build / "templates", modern=version >= (1, 7, 0))
        fmt = c.run(f"{exe} fmt -check -diff {ami.PACKER_DIR}", warn=True, hide=True)
        if fmt is None or fmt.exited != 0:
            raise ami.BuildError(f"packer/ is not packer fmt-clean: run packer fmt packer/\n{fmt.stdout if fmt else ''}")
        stage = build / "stage"
        stage.mkdir()
        cfg = ami.BuildConfig(region="us-east-1")
        (build / "recipe.sh").write_text(render_script(Options()))
        ami.packer_vars(cfg, build, stage, build / "recipe.sh", {"Name": "validate"})
        ami.run_packer(exe, "validate", templates, build / "build.auto.pkrvars.json", stream=False)
    except ami.BuildError as e:
        raise Exit(f"validate: {e}", code=1) from None
    print(f"validate: packer/ is formatted and valid (Packer {'.'.join(map(str, version))})")


@task(help={"region": "AWS region", "endpoint": "EC2-compatible endpoint (an emulator)",
            "delete": "delete what is found (default: only list it)", "keep": "AMIs to keep (newest first)",
            "prefix": "AMI name prefix"})
def cleanup_build(c: Context, region: str = "", endpoint: str = "", delete: bool = False, keep: int = 3,  # noqa: PLR0917
                  prefix: str = "dcp-control-node") -> None:
    """Find (and with --delete remove) what interrupted builds left, and AMIs beyond --keep."""
    import boto3

    from bootstrap import ami

    region = region or boto3.Session().region_name or ""
    if not ami.REGION_RE.match(region):
        from invoke.exceptions import Exit

        raise Exit(f"cleanup-build: {region or 'no region'} is not an AWS region (e.g. us-east-1)", code=2)
    ec2 = _ec2(region, endpoint)
    found = ami.find_leftovers(ec2, prefix, keep)
    if found.empty():
        print("cleanup-build: nothing to clean up")
        return
    for label, items in (("key pairs", found.key_pairs), ("security groups", found.security_groups),
                         ("build instances", found.instances), ("old AMIs", [a for a, _ in found.images])):
        if items:
            print(f"cleanup-build: {label}: {', '.join(items)}")
    if delete:
        ami.delete_leftovers(ec2, found)
        print("cleanup-build: deleted")
    else:
        print("cleanup-build: nothing deleted; run again with --delete")
