"""Seed moto with a *healthy* DCP account and a control node's local files; tests break one thing each.

What a careful lab would have after DCP's Step 0: the two IAM roles with the right trust and policies,
the instance profile, the spot service-linked roles, a bucket that accepts CloudWatch log exports, a
dead-letter queue, a worker security group with SSH from the operator's IP, an imported key pair, a
fleet file and config.py that point at all of it, and ~/.aws files DCP can read.
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from rig.dcprepo import FIXTURES, _git, make_dcp_worktree

CANONICAL_URL = "https://github.com/DistributedScience/Distributed-CellProfiler.git"

REGION = "us-east-1"
OPERATOR_IP = "203.0.113.7"       # documentation range; only ever written into a rule, never dialled
BUCKET = "dcp-lab-bucket"     # the seeded bucket is f"{BUCKET}-{account id}": names are global
DLQ = "alice_DeadMessages"
APP_NAME = "CellPaintingRun"
KEY_NAME = "dcp-key"
MACHINE_TYPES = ["m5.xlarge", "m5a.xlarge"]
INSTANCE_ROLE = "ecsInstanceRole"
FLEET_ROLE = "aws-ec2-spot-fleet-tagging-role"

TRUST = {
    "ec2": "ec2.amazonaws.com",
    "spotfleet": "spotfleet.amazonaws.com",
    "spot": "spot.amazonaws.com",
}


def trust_policy(service: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]})


def log_export_policy(bucket: str, region: str, account: str) -> dict[str, Any]:
    principal = {"Service": f"logs.{region}.amazonaws.com"}
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "DCPLogsAclCheck", "Effect": "Allow", "Principal": principal, "Action": "s3:GetBucketAcl",
         "Resource": f"arn:aws:s3:::{bucket}",
         "Condition": {"StringEquals": {"aws:SourceAccount": account}}},
        {"Sid": "DCPLogsWrite", "Effect": "Allow", "Principal": principal, "Action": "s3:PutObject",
         "Resource": f"arn:aws:s3:::{bucket}/exportedlogs/*",
         "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control",
                                        "aws:SourceAccount": account}}},
    ]}


OPERATOR_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [
    "sqs:*", "ecs:*", "s3:*", "ec2:*", "logs:*", "cloudwatch:*", "sns:*", "lambda:*", "iam:Get*",
    "iam:List*", "iam:PassRole", "iam:CreateServiceLinkedRole", "iam:SimulatePrincipalPolicy",
    "servicequotas:Get*"], "Resource": "*"}]}


def _assignment(assignment: str, m: re.Match[str]) -> str:
    return assignment + m.group(1)


def set_config_values(text: str, **values: Any) -> str:
    """Replace (or append) ``NAME = value`` assignments in a config.py, keeping comments and layout."""
    for name, value in values.items():
        literal = value if isinstance(value, _Raw) else repr(value)
        pattern = re.compile(rf"^{name}\s*=\s*[^#\n]*?(\s*(#.*)?)$", re.M)
        if pattern.search(text):
            text = pattern.sub(functools.partial(_assignment, f"{name} = {literal}"), text, count=1)
        else:
            text += f"\n{name} = {literal}\n"
    return text


class _Raw(str):
    """A config value written as-is (an expression), not repr()'d."""


def raw(expr: str) -> _Raw:
    return _Raw(expr)


@dataclass
class DcpAccount:
    """Everything a test needs to find, run against and break the seeded account."""

    endpoint: str
    home: Path
    account_id: str
    region: str
    clone: Path
    config_py: Path
    fleet: Path
    job: Path
    settings: Path
    aws_config: Path
    aws_credentials: Path
    vpc_id: str
    subnets: list[str]
    security_group: str
    image_id: str
    operator_user: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    admin_keys: tuple[str, str] = field(repr=False, default=("testing", "testing"))
    extra_env: dict[str, str] = field(default_factory=dict)

    # -- clients with the seeding (admin) identity -------------------------------------------------
    @property
    def bucket(self) -> str:
        return f"{BUCKET}-{self.account_id}"

    def client(self, service: str, region: str | None = None, account: str | None = None) -> Any:
        return admin_client(self.endpoint, service, region or self.region, self.admin_keys,
                            account or self.account_id)

    # -- the environment a control-node user would have --------------------------------------------
    def env(self) -> dict[str, str]:
        """Environment for running the agent as the operator: files, not env keys, hold credentials."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_CACHE_HOME": str(self.home / ".cache"),
            "AWS_CONFIG_FILE": str(self.aws_config),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.aws_credentials),
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",
            "SSH_CONNECTION": f"{OPERATOR_IP} 50022 127.0.0.1 22",
        })
        env.update(self.extra_env)
        return env

    def edit_config(self, **values: Any) -> None:
        self.config_py.write_text(set_config_values(self.config_py.read_text(), **values))

    def fleet_doc(self) -> dict[str, Any]:
        return dict(json.loads(self.fleet.read_text()))

    def write_fleet(self, doc: dict[str, Any]) -> None:
        self.fleet.write_text(json.dumps(doc, indent=2))

    def write_settings(self, extra: str = "") -> None:
        self.settings.parent.mkdir(parents=True, exist_ok=True)
        self.settings.write_text(
            f'dcp_clone = "{self.clone}"\nfleet = "{self.fleet}"\npython = "{_python()}"\n'
            f'repo_url = "{CANONICAL_URL}"\n{extra}')


def _python() -> str:
    import sys

    return sys.executable


def pick_ecs_ami(ec2: Any) -> dict[str, Any]:
    """An x86_64 ECS-optimized Amazon Linux AMI from moto's canned list (AL2023 preferred)."""
    images = ec2.describe_images(Owners=["amazon"], Filters=[
        {"Name": "architecture", "Values": ["x86_64"]},
        {"Name": "name", "Values": ["al2023-ami-ecs-hvm-*", "amzn2-ami-ecs-hvm-*"]}])["Images"]
    for pattern in (r"^al2023-ami-ecs-hvm-.*x86_64", r"^amzn2-ami-ecs-hvm-.*x86_64"):
        found = sorted((i for i in images if re.match(pattern, i.get("Name", ""))),
                       key=lambda i: i["Name"], reverse=True)
        if found:
            return dict(found[0])
    raise RuntimeError("moto has no ECS-optimized x86_64 AMI in its canned list")


def ssh_keypair() -> tuple[str, str]:
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return private, public


def monitor_source(bucket: str, *, call_args: int = 2) -> str:
    """A stand-in for DCP's lambda_function.py (ours, not DCP's code): the edited bucket line, and a cleanup
    helper called with ``call_args`` arguments (DCP's HEAD calls its two-argument helper with three)."""
    args = ", ".join(["fleet", "app", "project"][:call_args])
    return (f'bucket = "{bucket}"\n\n\ndef killdeadAlarms(fleetId, project):\n    return fleetId, project\n\n\n'
            f'def lambda_handler(event, context):\n    fleet, app, project = "sfr-1", "App", "AppQueue"\n'
            f'    killdeadAlarms({args})\n')


def seed_auto_monitor(lam: Any, sns: Any, source: bytes, role_arn: str, runtime: str = "python3.12") -> None:
    """What setup_AWS.py deploys for Auto-Monitor: the Monitor function, the Monitor topic, its subscription
    and SNS's permission to invoke it."""
    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as z:
        z.writestr("lambda_function.py", source)
    fn = lam.create_function(FunctionName="Monitor", Runtime=runtime, Role=role_arn, Handler="lambda_function.lambda_handler",
                             Code={"ZipFile": package.getvalue()}, Timeout=900, Publish=True)
    topic = sns.create_topic(Name="Monitor")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="lambda", Endpoint=fn["FunctionArn"])
    lam.add_permission(FunctionName="Monitor", StatementId="InvokeBySNS", Action="lambda:InvokeFunction",
                       Principal="sns.amazonaws.com")


@functools.lru_cache(maxsize=128)
def admin_client(endpoint: str, service: str, region: str, keys: tuple[str, str], account: str | None) -> Any:
    """A boto3 client for seeding; with ``account``, it acts in that moto account (x-moto-account-id).

    Clients are kept (~15 ms to make one; a seed and each ``DcpAccount.client`` call asked for new ones): boto3
    clients hold no AWS state and are safe to share between threads, and each is bound to its endpoint, region,
    keys and account, all part of the key."""
    c = boto3.client(service, endpoint_url=endpoint, region_name=region, aws_access_key_id=keys[0],
                     aws_secret_access_key=keys[1], config=Config(retries={"mode": "standard", "max_attempts": 2}))
    if account:
        c.meta.events.register("before-sign.*.*", lambda request, **_: request.headers.__setitem__(
            "x-moto-account-id", account))
    return c


OPERATOR = "dcp-operator"


def create_operator(iam: Any) -> dict[str, str]:
    """The operator: an IAM user whose long-term keys live under [default], as DCP can hand them on."""
    iam.create_user(UserName=OPERATOR)
    policy_arn = iam.create_policy(PolicyName="DCPOperator",
                                   PolicyDocument=json.dumps(OPERATOR_POLICY))["Policy"]["Arn"]
    iam.attach_user_policy(UserName=OPERATOR, PolicyArn=policy_arn)
    return dict(iam.create_access_key(UserName=OPERATOR)["AccessKey"])


def write_node_files(home: Path, region: str, key: dict[str, str], bucket: str) -> tuple[Path, Path, Path]:
    """A control node's ~/.aws (the operator's keys under [default]) and a DCP clone whose config.py names
    this account's resources; (~/.aws, clone, config.py)."""
    aws = home / ".aws"
    aws.mkdir(exist_ok=True)
    (aws / "config").write_text(f"[default]\nregion = {region}\noutput = json\n")
    (aws / "credentials").write_text(f"[default]\naws_access_key_id = {key['AccessKeyId']}\n"
                                     f"aws_secret_access_key = {key['SecretAccessKey']}\n")
    os.chmod(aws / "credentials", 0o600)
    clone = home / "Distributed-CellProfiler"
    if clone.exists():
        shutil.rmtree(clone)
    make_dcp_worktree(clone)
    for args in (("init", "-q", "-b", "master"), ("remote", "add", "origin", CANONICAL_URL), ("add", "-A"),
                 ("commit", "-q", "-m", "clone")):
        _git(*args, cwd=clone)
    (clone / "lambda_function.py").write_text(monitor_source(bucket))
    config_py = clone / "config.py"
    config_py.write_text(set_config_values(
        config_py.read_text(), APP_NAME=APP_NAME, AWS_REGION=region, AWS_PROFILE="default",
        SSH_KEY_NAME=f"{KEY_NAME}.pem", AWS_BUCKET=bucket, SOURCE_BUCKET=bucket, WORKSPACE_BUCKET=bucket,
        DESTINATION_BUCKET=bucket, ECS_CLUSTER="dcp-cluster", CLUSTER_MACHINES=2,
        MACHINE_TYPE=MACHINE_TYPES, MACHINE_PRICE=0.20, SQS_DEAD_LETTER_QUEUE=DLQ,
        SQS_MESSAGE_VISIBILITY=raw("10*60")))
    return aws, clone, config_py


def default_vpc_with_internet(ec2: Any) -> str:
    """The default VPC, with the internet gateway and 0.0.0.0/0 route every real default VPC has."""
    vpc = str(ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"])
    if not ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vpc]}])[
            "InternetGateways"]:
        igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
        main = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                                  {"Name": "association.main", "Values": ["true"]}])
        ec2.create_route(RouteTableId=main["RouteTables"][0]["RouteTableId"],
                         DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    return vpc


def seed_empty_account(endpoint: str, home: Path, admin_keys: tuple[str, str] = ("testing", "testing"),
                       region: str = REGION, account_id: str | None = None) -> DcpAccount:
    """An account as AWS hands it over (a default VPC) plus the operator's user, and a control node whose
    config.py is filled in but whose AWS side does not exist yet: no roles, bucket, queue, group, key pair or
    fleet file. What ``dcp-agent fix`` and ``dcp-agent fleet`` start from."""
    home.mkdir(parents=True, exist_ok=True)
    iam, ec2, sts = (admin_client(endpoint, s, region, admin_keys, account_id) for s in ("iam", "ec2", "sts"))
    account = account_id or sts.get_caller_identity()["Account"]
    bucket = f"{BUCKET}-{account}"
    key = create_operator(iam)
    vpc = default_vpc_with_internet(ec2)
    aws, clone, config_py = write_node_files(home, region, key, bucket)
    acct = DcpAccount(
        endpoint=endpoint, home=home, account_id=account, region=region, clone=clone, config_py=config_py,
        fleet=clone / "files" / f"{APP_NAME}Fleet_{region}.json", job=clone / "files" / "exampleJob.json",
        settings=home / ".config" / "dcp-agent" / "config.toml", aws_config=aws / "config",
        aws_credentials=aws / "credentials", vpc_id=vpc, subnets=[], security_group="", image_id="",
        operator_user=OPERATOR, access_key_id=key["AccessKeyId"], secret_access_key=key["SecretAccessKey"],
        admin_keys=admin_keys)
    acct.write_settings()
    return acct


def seed_healthy_account(endpoint: str, home: Path, admin_keys: tuple[str, str] = ("testing", "testing"),
                         region: str = REGION, account_id: str | None = None) -> DcpAccount:
    """Create the healthy account in moto and the control node's files under ``home``.

    With ``account_id`` the account is a fresh moto account of its own (tests use one per test: far
    cheaper than resetting moto); the operator's access key then belongs to it.
    """
    home.mkdir(parents=True, exist_ok=True)

    def client(service: str) -> Any:
        return admin_client(endpoint, service, region, admin_keys, account_id)

    iam, ec2, s3, sqs, sts = (client(s) for s in ("iam", "ec2", "s3", "sqs", "sts"))
    account = account_id or sts.get_caller_identity()["Account"]
    bucket = f"{BUCKET}-{account}"

    # IAM: the two DCP roles, the instance profile and the spot service-linked roles.
    iam.create_role(RoleName=INSTANCE_ROLE, AssumeRolePolicyDocument=trust_policy(TRUST["ec2"]))
    for arn in ("arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role",
                "arn:aws:iam::aws:policy/AmazonS3FullAccess",
                "arn:aws:iam::aws:policy/CloudWatchFullAccessV2"):
        iam.attach_role_policy(RoleName=INSTANCE_ROLE, PolicyArn=arn)
    iam.create_instance_profile(InstanceProfileName=INSTANCE_ROLE)
    iam.add_role_to_instance_profile(InstanceProfileName=INSTANCE_ROLE, RoleName=INSTANCE_ROLE)
    iam.create_role(RoleName=FLEET_ROLE, AssumeRolePolicyDocument=trust_policy(TRUST["spotfleet"]))
    iam.attach_role_policy(RoleName=FLEET_ROLE,
                           PolicyArn="arn:aws:iam::aws:policy/service-role/AmazonEC2SpotFleetTaggingRole")
    iam.create_role(RoleName="LambdaFullAccess", AssumeRolePolicyDocument=trust_policy("lambda.amazonaws.com"))
    for arn in ("arn:aws:iam::aws:policy/AWSLambda_FullAccess", "arn:aws:iam::aws:policy/AmazonSQSFullAccess",
                "arn:aws:iam::aws:policy/AmazonECS_FullAccess", "arn:aws:iam::aws:policy/AmazonS3FullAccess"):
        iam.attach_role_policy(RoleName="LambdaFullAccess", PolicyArn=arn)
    for name, svc in (("AWSServiceRoleForEC2SpotFleet", "spotfleet"), ("AWSServiceRoleForEC2Spot", "spot")):
        iam.create_role(RoleName=name, Path=f"/aws-service-role/{TRUST[svc]}/",
                        AssumeRolePolicyDocument=trust_policy(TRUST[svc]))

    key = create_operator(iam)
    operator = OPERATOR

    # S3: one bucket for logs and data, accepting CloudWatch log exports.
    if region == "us-east-1":
        s3.create_bucket(Bucket=bucket)
    else:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(log_export_policy(bucket, region, account)))
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})

    # SQS: a per-user dead-letter queue that keeps messages as long as DCP's main queue.
    sqs.create_queue(QueueName=DLQ, Attributes={"MessageRetentionPeriod": "1209600"})

    # EC2: default VPC with an internet route, a worker SG with SSH from the operator, a key pair.
    vpc = default_vpc_with_internet(ec2)
    subnets = sorted(ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"],
                     key=lambda s: s["AvailabilityZone"])[:2]
    sg = ec2.create_security_group(GroupName="dcp-workers", Description="DCP workers", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
        "IpRanges": [{"CidrIp": f"{OPERATOR_IP}/32", "Description": "operator"}]}])
    private, public = ssh_keypair()
    ec2.import_key_pair(KeyName=KEY_NAME, PublicKeyMaterial=public.encode())
    ami = pick_ecs_ami(ec2)
    root = next(m for m in ami["BlockDeviceMappings"] if m["DeviceName"] == ami["RootDeviceName"])

    # Local files: ~/.ssh key, ~/.aws, the DCP clone with config.py and a fleet file.
    ssh = home / ".ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    os.chmod(ssh, 0o700)
    (ssh / f"{KEY_NAME}.pem").write_text(private)
    os.chmod(ssh / f"{KEY_NAME}.pem", 0o600)
    aws, clone, config_py = write_node_files(home, region, key, bucket)
    seed_auto_monitor(client("lambda"), client("sns"), (clone / "lambda_function.py").read_bytes(),
                      f"arn:aws:iam::{account}:role/LambdaFullAccess")

    example = json.loads((FIXTURES / f"exampleFleet_{'us-east-1'}.json").read_text())
    spec_template = example["LaunchSpecifications"][0]
    specs = []
    for subnet in subnets:
        spec = json.loads(json.dumps(spec_template))
        spec["ImageId"] = ami["ImageId"]
        spec["KeyName"] = KEY_NAME
        spec["IamInstanceProfile"]["Arn"] = f"arn:aws:iam::{account}:instance-profile/{INSTANCE_ROLE}"
        spec["BlockDeviceMappings"][0]["DeviceName"] = ami["RootDeviceName"]
        spec["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"] = root["Ebs"]["SnapshotId"]
        spec["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] = max(30, int(root["Ebs"].get("VolumeSize", 8)))
        nic = spec["NetworkInterfaces"][0]
        nic.update(SubnetId=subnet["SubnetId"], Groups=[sg], AssociatePublicIpAddress=True)
        specs.append(spec)
    fleet_doc = dict(example, IamFleetRole=f"arn:aws:iam::{account}:role/{FLEET_ROLE}",
                     AllocationStrategy="capacityOptimized", LaunchSpecifications=specs)
    fleet = clone / "files" / f"{APP_NAME}Fleet_{region}.json"
    fleet.write_text(json.dumps(fleet_doc, indent=2))

    acct = DcpAccount(
        endpoint=endpoint, home=home, account_id=account, region=region, clone=clone,
        config_py=config_py, fleet=fleet, job=clone / "files" / "exampleJob.json",
        settings=home / ".config" / "dcp-agent" / "config.toml", aws_config=aws / "config",
        aws_credentials=aws / "credentials", vpc_id=vpc, subnets=[s["SubnetId"] for s in subnets],
        security_group=sg, image_id=ami["ImageId"], operator_user=operator,
        access_key_id=key["AccessKeyId"], secret_access_key=key["SecretAccessKey"], admin_keys=admin_keys)
    acct.write_settings()
    return acct
