"""The catalogue's failure modes, one per case: start from the healthy account, break one thing, and
name the check that must catch it. ``issue`` ties a case to a user report in the catalogue's section B.

A few cases answer a fact themselves (``inject``: fact -> function, by reference) because moto cannot
produce that state (a root identity, a skewed AWS clock, a deprecated or AL1 AMI with its snapshot); they
say so.
"""

# Cases chain a few calls in a lambda as a tuple: their None results are never used.
# mypy: disable-error-code="func-returns-value"
from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent import facts
from agent.facts.aws import CredentialInfo, Identity
from agent.facts.s3 import Head
from rig.seed import (
    APP_NAME,
    DLQ,
    FLEET_ROLE,
    INSTANCE_ROLE,
    DcpAccount,
    log_export_policy,
    monitor_source,
    raw,
    trust_policy,
)
from tests.agent.harness import Overrides, set_path, tool_path


@dataclass
class Env:
    tmp: Path
    monkeypatch: pytest.MonkeyPatch
    quotas: Any = None

    def tools(self, keep: tuple[str, ...] = (), **fakes: str) -> None:
        set_path(self.monkeypatch, tool_path(self.tmp, fakes, keep=keep))

    def quota(self, code: str, value: float) -> None:
        assert self.quotas is not None
        self.quotas.quotas[code] = value

    def setenv(self, key: str, value: str) -> None:
        self.monkeypatch.setenv(key, value)


Mutate = Callable[[DcpAccount, Env], Any]


@dataclass
class Case:
    code: str
    expect: str                      # pass | warn | fail | skip
    desc: str
    mutate: Mutate = lambda a, e: None
    contains: str = ""               # a piece of the message (or fix) that must be there
    issue: str = ""                  # catalogue section B row, e.g. "#85"
    job: bool = False
    inject: Callable[[DcpAccount], Overrides] | None = None
    extra: list[str] = field(default_factory=list)   # run these too (opt-in checks)

    @property
    def id(self) -> str:
        return f"{self.code}-{self.expect}-{self.desc.replace(' ', '_')[:40]}"


def py(version: str = "3.11.7", *, pip: bool = True, boto3: bool = True) -> str:
    """A stand-in interpreter answering the agent's probe (version, pip, boto3) as a real one would."""
    return (f'echo {version}\n'
            f'echo {"pip 24.0" if pip else "nopip"}\n'
            f'echo {"boto3 1.40.0 1.40.0" if boto3 else "noboto3 ModuleNotFoundError"}')


def set_setting(a: DcpAccount, key: str, value: str | None) -> None:
    """Rewrite (or, with None, drop) one line of the agent's settings file."""
    lines = [line for line in a.settings.read_text().splitlines() if not line.startswith(f"{key} =")]
    if value is not None:
        lines.append(f'{key} = "{value}"')
    a.settings.write_text("\n".join(lines) + "\n")


def use_python(a: DcpAccount, e: Env, body: str) -> None:
    fake = e.tmp / "fakepy"
    fake.write_text("#!/bin/sh\n" + body + "\n")
    fake.chmod(0o755)
    set_setting(a, "python", str(fake))


def edit_aws_config(a: DcpAccount, text: str) -> None:
    a.aws_config.write_text(text)


def fleet(a: DcpAccount, fn: Callable[[dict[str, Any]], object]) -> None:
    doc = a.fleet_doc()
    fn(doc)
    a.write_fleet(doc)


def spec0(doc: dict[str, Any]) -> dict[str, Any]:
    return dict(doc["LaunchSpecifications"][0])


def operator_policy(a: DcpAccount, statements: list[dict[str, Any]]) -> None:
    iam = a.client("iam")
    iam.put_user_policy(UserName=a.operator_user, PolicyName="extra",
                        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}))


def grant_in_bucket_policy(a: DcpAccount, principal: str, action: str, keys: str) -> None:
    """Add to the seeded bucket's policy a statement granting ``principal`` ``action`` on the bucket and ``keys``."""
    s3 = a.client("s3")
    policy = json.loads(s3.get_bucket_policy(Bucket=a.bucket)["Policy"])
    policy["Statement"].append({"Sid": "Grant", "Effect": "Allow", "Principal": {"AWS": principal}, "Action": action,
                                "Resource": [f"arn:aws:s3:::{a.bucket}", f"arn:aws:s3:::{a.bucket}/{keys}"]})
    s3.put_bucket_policy(Bucket=a.bucket, Policy=json.dumps(policy))


def only_operator_grant_without_s3(a: DcpAccount) -> None:
    """The operator's managed grant, rewritten without s3:*."""
    iam = a.client("iam")
    arn = next(p["PolicyArn"] for p in iam.list_attached_user_policies(UserName=a.operator_user)["AttachedPolicies"])
    doc = iam.get_policy_version(PolicyArn=arn, VersionId=iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"])[
        "PolicyVersion"]["Document"]
    doc = json.loads(doc) if isinstance(doc, str) else doc
    for st in doc["Statement"]:
        st["Action"] = [x for x in st["Action"] if not x.startswith("s3:")]
    iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(doc), SetAsDefault=True)


def one_spec(doc: dict[str, Any]) -> None:
    doc["LaunchSpecifications"] = doc["LaunchSpecifications"][:1]


GV2 = 'echo "aws-cli/2.15.30 Python/3.11.8 Linux/6.1 exe/x86_64.debian.12"'
def root_identity(a: DcpAccount) -> Overrides:
    root = Identity(a.account_id, f"arn:aws:iam::{a.account_id}:root", a.account_id)
    return {facts.aws.identity: lambda ctx, session="operator": root}


def skewed(minutes: int) -> Callable[[DcpAccount], Overrides]:
    def inject(a: DcpAccount) -> Overrides:
        when = (datetime.now(UTC) - timedelta(minutes=minutes)).strftime("%a, %d %b %Y %H:%M:%S GMT")
        me = Identity(a.account_id, f"arn:aws:iam::{a.account_id}:user/dcp-operator", "AIDA", when)
        return {facts.aws.identity: lambda ctx, session="operator": me}
    return inject


def image_override(**fields: Any) -> Callable[[DcpAccount], Overrides]:
    def inject(a: DcpAccount) -> Overrides:
        img = a.client("ec2").describe_images(ImageIds=[a.image_id])["Images"][0]
        img.update(fields)
        return {facts.ec2.images: lambda ctx, ids: {a.image_id: img}}
    return inject


def role_arn_profile(a: DcpAccount, e: Env, trust: str = "ecs-tasks.amazonaws.com") -> None:
    a.client("iam").create_role(RoleName="DCPTaskRole", AssumeRolePolicyDocument=trust_policy(trust))
    a.client("iam").attach_role_policy(RoleName="DCPTaskRole", PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
    edit_aws_config(a, f"[default]\nregion = us-east-1\noutput = json\n"
                       f"role_arn = arn:aws:iam::{a.account_id}:role/DCPTaskRole\nsource_profile = base\n")
    creds = a.aws_credentials.read_text().replace("[default]", "[base]")
    a.aws_credentials.write_text(creds)


def lab_profile(a: DcpAccount) -> None:
    """A second profile, [lab], with the operator's keys (the same account)."""
    a.aws_config.write_text(a.aws_config.read_text() + "[profile lab]\nregion = us-east-1\noutput = json\n")
    a.aws_credentials.write_text(a.aws_credentials.read_text() + a.aws_credentials.read_text().replace(
        "[default]", "[lab]"))


def credential_process(a: DcpAccount, e: Env) -> None:
    """Credentials from a credential_process that hands out 2-hour session credentials (botocore reruns it)."""
    (e.tmp / "creds.sh").write_text("#!/bin/sh\nprintf '%s' '" + json.dumps({
        "Version": 1, "AccessKeyId": a.access_key_id, "SecretAccessKey": a.secret_access_key,
        "SessionToken": "TOKEN", "Expiration": (datetime.now(UTC) + timedelta(hours=2)).isoformat()}) + "'\n")
    (e.tmp / "creds.sh").chmod(0o755)
    a.aws_credentials.unlink()
    edit_aws_config(a, f"[default]\nregion = us-east-1\noutput = json\ncredential_process = {e.tmp}/creds.sh\n")


def instance_role_only(a: DcpAccount, e: Env) -> None:
    """No keys anywhere: botocore falls back to the instance metadata service, here moto's (on loopback)."""
    a.aws_credentials.unlink()
    e.setenv("AWS_EC2_METADATA_DISABLED", "false")
    e.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", a.endpoint + "/")


def credentials_of(method: str, *, hours: float, prefix: str = "ASIA") -> Callable[[DcpAccount], Overrides]:
    """Credentials as botocore would describe them for ``method``, expiring in ``hours``."""
    def inject(a: DcpAccount) -> Overrides:
        info = CredentialInfo(method, prefix, True, datetime.now(UTC) + timedelta(hours=hours))
        return {facts.aws.credential_info: lambda ctx: info}
    return inject


def foreign_bucket(a: DcpAccount) -> str:
    name = f"partner-lab-images-{a.account_id}"
    a.client("s3", account="111122223333").create_bucket(Bucket=name)
    return name


def drop_config(a: DcpAccount, *names: str) -> None:
    """Remove the ``NAME = …`` lines of config.py (run.py's own defaults, or none, then apply)."""
    lines = a.config_py.read_text().splitlines()
    a.config_py.write_text("\n".join(line for line in lines if line.split("=", 1)[0].strip() not in names) + "\n")


def workspace_in_source(a: DcpAccount, e: Env) -> None:
    """No WORKSPACE_BUCKET: the job's pipeline and data file are in SOURCE_BUCKET, where DCP's worker looks."""
    src = f"dcp-source-{a.account_id}"
    s3 = a.client("s3")
    s3.create_bucket(Bucket=src)
    for key in ("projects/analysis.cppipe", "projects/list_of_images.csv", "projects/input/img1.tif"):
        s3.put_object(Bucket=src, Key=key, Body=b"x")
    drop_config(a, "WORKSPACE_BUCKET")
    a.edit_config(SOURCE_BUCKET=src)


def weight(w: Any) -> Callable[[DcpAccount, Env], None]:
    return lambda a, e: fleet(a, lambda d: d["LaunchSpecifications"][-1].update(WeightedCapacity=w))


def instance_types(vcpus: dict[str, int]) -> Callable[[DcpAccount], Overrides]:
    """DescribeInstanceTypes as EC2 answers it for types moto's list lacks (their vCPUs), the rest from moto."""
    def inject(a: DcpAccount) -> Overrides:
        real = facts.ec2.instance_types.fn
        def answer(ctx: Any, types: tuple[str, ...]) -> dict[str, dict[str, Any]]:
            known = real(ctx, tuple(t for t in types if t not in vcpus))
            return {**known, **{t: {"InstanceType": t, "VCpuInfo": {"DefaultVCpus": vcpus[t]},
                                    "MemoryInfo": {"SizeInMiB": 1024 * vcpus[t]}} for t in types if t in vcpus}}
        return {facts.ec2.instance_types: answer}
    return inject


def eu_bucket(a: DcpAccount) -> str:
    return f"dcp-images-eu-{a.account_id}"


def elsewhere(status: int, region: str | None) -> Callable[[DcpAccount], Overrides]:
    """HeadBucket on eu_bucket() answers ``status`` (301 or 400) with x-amz-bucket-region ``region``, as S3 does
    for a bucket in another region when the request cannot be redirected. Injected: botocore follows such an
    answer itself when it names the region, and moto answers 200 from any region."""
    def inject(a: DcpAccount) -> Overrides:
        real = facts.s3.head.fn
        headers = {"x-amz-bucket-region": region} if region else {}
        return {facts.s3.head: lambda ctx, bucket: Head(status, headers) if bucket == eu_bucket(a) else real(ctx, bucket)}
    return inject


def in_region(a: DcpAccount, e: Env, region: str) -> None:
    a.edit_config(AWS_REGION=region)
    edit_aws_config(a, f"[default]\nregion = {region}\noutput = json\n")


def partition_roles(a: DcpAccount, e: Env, region: str) -> None:
    """DCP's two roles as setup_AWS.py makes them in the partition of ``region`` (moto keeps IAM per partition),
    with the managed policies of that partition (arn:aws-us-gov:…, arn:aws-cn:…); config and CLI in ``region``."""
    in_region(a, e, region)
    iam = a.client("iam", region=region)
    part = "aws-us-gov" if region.startswith("us-gov") else "aws-cn"
    iam.create_role(RoleName=FLEET_ROLE, AssumeRolePolicyDocument=trust_policy("spotfleet.amazonaws.com"))
    iam.attach_role_policy(RoleName=FLEET_ROLE,
                           PolicyArn=f"arn:{part}:iam::aws:policy/service-role/AmazonEC2SpotFleetTaggingRole")
    iam.create_role(RoleName=INSTANCE_ROLE, AssumeRolePolicyDocument=trust_policy("ec2.amazonaws.com"))
    for arn in ("service-role/AmazonEC2ContainerServiceforEC2Role", "AmazonS3FullAccess"):
        iam.attach_role_policy(RoleName=INSTANCE_ROLE, PolicyArn=f"arn:{part}:iam::aws:policy/{arn}")
    iam.create_instance_profile(InstanceProfileName=INSTANCE_ROLE)
    iam.add_role_to_instance_profile(InstanceProfileName=INSTANCE_ROLE, RoleName=INSTANCE_ROLE)


def nat_route(a: DcpAccount) -> None:
    ec2 = a.client("ec2")
    eip = ec2.allocate_address(Domain="vpc")
    nat = ec2.create_nat_gateway(SubnetId=a.subnets[0], AllocationId=eip["AllocationId"])["NatGateway"]["NatGatewayId"]
    for subnet in a.subnets:
        rt = ec2.create_route_table(VpcId=a.vpc_id)["RouteTable"]["RouteTableId"]
        ec2.create_route(RouteTableId=rt, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)
        ec2.associate_route_table(RouteTableId=rt, SubnetId=subnet)


def nat_route_for_first_subnet(a: DcpAccount) -> None:
    """Only the first subnet (launch specification 0's) routes through a NAT gateway; the second keeps the
    internet gateway."""
    ec2 = a.client("ec2")
    eip = ec2.allocate_address(Domain="vpc")
    nat = ec2.create_nat_gateway(SubnetId=a.subnets[1], AllocationId=eip["AllocationId"])["NatGateway"]["NatGatewayId"]
    rt = ec2.create_route_table(VpcId=a.vpc_id)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=rt, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)
    ec2.associate_route_table(RouteTableId=rt, SubnetId=a.subnets[0])


def without_network_interfaces(doc: dict[str, Any]) -> None:
    """Launch specifications that name SubnetId and SecurityGroups themselves, as older DCP fleet files did."""
    for s in doc["LaunchSpecifications"]:
        nic = s.pop("NetworkInterfaces")[0]
        s["SubnetId"] = nic["SubnetId"]
        s["SecurityGroups"] = [{"GroupId": g} for g in nic["Groups"]]


def no_public_ip(doc: dict[str, Any]) -> None:
    for s in doc["LaunchSpecifications"]:
        s["NetworkInterfaces"][0]["AssociatePublicIpAddress"] = False


def kms(a: DcpAccount, e: Env) -> None:
    a.client("s3").put_bucket_encryption(Bucket=a.bucket, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                                "KMSMasterKeyID": f"arn:aws:kms:us-east-1:{a.account_id}:key/1234"}}]})


def upload_job_objects(a: DcpAccount, e: Env) -> None:
    s3 = a.client("s3")
    for key in ("projects/analysis.cppipe", "projects/list_of_images.csv", "projects/input/img1.tif"):
        s3.put_object(Bucket=a.bucket, Key=key, Body=b"x")


def write_job(a: DcpAccount, **changes: Any) -> None:
    doc = json.loads(a.job.read_text())
    doc.update(changes)
    a.job.write_text(json.dumps(doc))


# -- group M: what earlier runs left behind -------------------------------------------------------------------
def dcp_user_data(a: DcpAccount, app: str = APP_NAME) -> str:
    """Worker user data shaped as run.py's startCluster writes it (it fetches the app's ECS config from S3)."""
    script = f"#!/bin/bash\naws s3 cp s3://{a.bucket}/ecsconfigs/{app}_ecs.config /etc/ecs/ecs.config\n"
    return base64.b64encode(script.encode()).decode()


def leftover_fleet(a: DcpAccount, app: str = APP_NAME, machines: int = 2, user_data: bool = True) -> str:
    """A spot fleet as run.py's startCluster requests it (moto fulfils it at once); returns its id."""
    spec = dict(spec0(a.fleet_doc()), InstanceType="m5.xlarge")
    spec.pop("NetworkInterfaces", None)
    spec["SubnetId"] = a.subnets[0]
    if user_data:
        spec["UserData"] = dcp_user_data(a, app)
    doc = dict(a.fleet_doc(), TargetCapacity=machines, SpotPrice="0.20", LaunchSpecifications=[spec])
    return str(a.client("ec2").request_spot_fleet(SpotFleetRequestConfig=doc)["SpotFleetRequestId"])


def monitor_file(a: DcpAccount, fleet_id: str) -> None:
    (a.clone / "files" / f"{APP_NAME}SpotFleetRequestId.json").write_text(json.dumps(
        {"MONITOR_FLEET_ID": fleet_id, "MONITOR_APP_NAME": APP_NAME, "MONITOR_ECS_CLUSTER": "dcp-cluster"}))


def spot_price(usd_per_hour: float) -> Callable[[DcpAccount], Overrides]:
    """moto answers spot price history with canned rows ($0.00001 in 2006): a current price, as AWS would give."""
    def inject(a: DcpAccount) -> Overrides:
        return {facts.ec2.spot_prices: lambda ctx, types, zones: {f"{t} in {z}": usd_per_hour for t in types for z in zones}}
    return inject


def launched_long_ago(a: DcpAccount) -> Overrides:
    """moto launches instances now; the never-joined check waits 15 minutes: launch them an hour ago."""
    real = facts.ec2.instances.fn
    def answer(ctx: Any, ids: tuple[str, ...]) -> dict[str, dict[str, Any]]:
        return {i: dict(d, LaunchTime=datetime.now(UTC) - timedelta(hours=1)) for i, d in real(ctx, ids).items()}
    return {facts.ec2.instances: answer, **spot_price(0.05)(a)}


def scaled_service(a: DcpAccount, count: int = 2) -> None:
    ecs = a.client("ecs")
    ecs.create_cluster(clusterName="dcp-cluster")
    ecs.register_task_definition(family=f"{APP_NAME}Task", containerDefinitions=[
        {"name": APP_NAME, "image": "cellprofiler/distributed-cellprofiler:2.2.1_4.2.8", "memory": 15000}])
    ecs.create_service(cluster="dcp-cluster", serviceName=f"{APP_NAME}Service", taskDefinition=f"{APP_NAME}Task",
                       desiredCount=count)


def alarm(a: DcpAccount, name: str) -> None:
    a.client("cloudwatch").put_metric_alarm(AlarmName=name, MetricName="CPUUtilization", Namespace="AWS/EC2",
                                            Statistic="Maximum", Period=60, EvaluationPeriods=15, Threshold=1,
                                            ComparisonOperator="LessThanThreshold")


def running_export(a: DcpAccount) -> Overrides:
    """moto finishes export tasks at once; one still RUNNING, as CloudWatch Logs reports it for minutes."""
    task = {"taskId": "0123abcd", "taskName": "OtherRunLogs", "status": {"code": "RUNNING"}}
    return {facts.cloudwatch.active_export_tasks: lambda ctx: (task,)}


def no_monitor_subscription(a: DcpAccount) -> None:
    sns = a.client("sns")
    topic = next(t["TopicArn"] for t in sns.list_topics()["Topics"] if t["TopicArn"].endswith(":Monitor"))
    for sub in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]:
        sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])



CASES: list[Case] = [
    # -- L: local tools ---------------------------------------------------------------------------
    Case("L01", "fail", "python 3.7", lambda a, e: use_python(a, e, py("3.7.9")), "3.7.9"),
    Case("L01", "warn", "python 3.9", lambda a, e: use_python(a, e, py("3.9.18")), "3.9.18"),
    Case("L01", "fail", "python missing", lambda a, e: set_setting(a, "python", f"{e.tmp}/no/python"),
         "no working Python"),
    Case("L02", "fail", "no pip", lambda a, e: use_python(a, e, py(pip=False)), "no pip"),
    Case("L03", "fail", "boto3 missing", lambda a, e: use_python(a, e, py(boto3=False)), "boto3"),
    Case("L04", "fail", "git missing", lambda a, e: e.tools(), "git"),
    Case("L04", "pass", "git present", lambda a, e: e.tools(keep=("git",))),
    Case("L05", "fail", "no clone", lambda a, e: set_setting(a, "dcp_clone", f"{e.tmp}/nothing"), "no DCP clone"),
    Case("L05", "warn", "other remote", lambda a, e: subprocess.run(
        ["git", "-C", str(a.clone), "remote", "set-url", "origin", "https://example.invalid/fork.git"], check=True),
        "example.invalid"),
    Case("L06", "fail", "no aws cli", lambda a, e: e.tools(), "not installed"),
    Case("L06", "warn", "aws cli v1", lambda a, e: e.tools(aws='echo "aws-cli/1.32.0 Python/3.11"'), "v1"),
    Case("L06", "pass", "aws cli v2", lambda a, e: e.tools(aws=GV2)),
    Case("L07", "warn", "no s3fs", lambda a, e: e.tools(), "s3fs"),
    Case("L07", "pass", "s3fs", lambda a, e: e.tools(s3fs='echo "Amazon Simple Storage Service File System V1.91"')),
    Case("L08", "warn", "no parallel", lambda a, e: e.tools(), "not installed"),
    Case("L08", "warn", "moreutils parallel", lambda a, e: e.tools(parallel='echo "parallel: invalid option"; exit 1'),
         "not GNU parallel"),
    Case("L08", "pass", "gnu parallel", lambda a, e: e.tools(parallel='echo "GNU parallel 20221122"')),
    Case("L09", "warn", "no tmux", lambda a, e: e.tools(), "tmux"),
    Case("L09", "pass", "tmux", lambda a, e: e.tools(tmux="exit 0")),
    Case("L10", "fail", "key world-readable", lambda a, e: (a.home / ".ssh" / "dcp-key.pem").chmod(0o644), "chmod"),
    Case("L10", "warn", "key missing", lambda a, e: (a.home / ".ssh" / "dcp-key.pem").unlink(), "does not exist"),
    Case("L11", "warn", "clock unsynced", lambda a, e: e.tools(timedatectl="echo no"), "not NTP"),
    Case("L11", "pass", "clock synced", lambda a, e: e.tools(timedatectl="echo yes")),
    Case("L12", "warn", "venv inside clone", lambda a, e: (a.clone / ".venv").mkdir(), ".venv"),
    # -- C: AWS config ----------------------------------------------------------------------------
    Case("C01", "fail", "garbled config", lambda a, e: edit_aws_config(a, "[default\nregion = us-east-1\n"), "cannot parse"),
    Case("C01", "warn", "credentials readable", lambda a, e: a.aws_credentials.chmod(0o644), "chmod 600"),
    Case("C02", "fail", "AWS_PROFILE unknown", lambda a, e: e.setenv("AWS_PROFILE", "nosuch"), "does not exist"),
    # boto3.Session() takes AWS_DEFAULT_PROFILE before AWS_PROFILE (botocore's session variables): C02 names the winner.
    Case("C02", "fail", "AWS_DEFAULT_PROFILE unknown, AWS_PROFILE right", lambda a, e: (
        e.setenv("AWS_PROFILE", "default"), e.setenv("AWS_DEFAULT_PROFILE", "nosuch")), "AWS_DEFAULT_PROFILE=nosuch"),
    Case("C02", "warn", "AWS_DEFAULT_PROFILE overrides AWS_PROFILE", lambda a, e: (
        lab_profile(a), e.setenv("AWS_PROFILE", "default"), e.setenv("AWS_DEFAULT_PROFILE", "lab")),
         "unset AWS_DEFAULT_PROFILE"),
    Case("C02", "pass", "AWS_PROFILE names config.AWS_PROFILE", lambda a, e: (
        lab_profile(a), a.edit_config(AWS_PROFILE="lab"), e.setenv("AWS_PROFILE", "lab")), "'lab' (AWS_PROFILE)"),
    Case("C02", "warn", "profiles differ, same account", lambda a, e: (
        a.aws_config.write_text(a.aws_config.read_text() + "[profile lab]\nregion = us-east-1\noutput = json\n"),
        a.aws_credentials.write_text(a.aws_credentials.read_text() + a.aws_credentials.read_text().replace(
            "[default]", "[lab]")),
        a.edit_config(AWS_PROFILE="lab")), "same account"),
    Case("C03", "fail", "profile section missing", lambda a, e: a.edit_config(AWS_PROFILE="nosuch"), "Problem handling"),
    Case("C04", "fail", "keys only in credentials (non-default)", lambda a, e: (
        a.aws_config.write_text(a.aws_config.read_text() + "[profile lab]\nregion = us-east-1\n"),
        a.aws_credentials.write_text(a.aws_credentials.read_text() + a.aws_credentials.read_text().replace(
            "[default]", "[lab]")),
        a.edit_config(AWS_PROFILE="lab")), "cannot copy", issue="#145"),
    Case("C04", "pass", "role_arn profile", role_arn_profile),
    Case("C05", "fail", "temporary keys", lambda a, e: a.aws_credentials.write_text(
        a.aws_credentials.read_text() + "aws_session_token = FQoGZXIvYXdzEXAMPLETOKEN\n"), "temporary"),
    Case("C06", "warn", "static keys to workers", contains="plain text"),
    Case("C06", "pass", "task role", role_arn_profile),
    Case("C07", "fail", "no region", lambda a, e: edit_aws_config(a, "[default]\noutput = json\n"), "NoRegionError"),
    Case("C08", "fail", "AZ as region", lambda a, e: edit_aws_config(a, "[default]\nregion = us-east-1a\noutput = json\n"),
         "availability zone"),
    Case("C08", "fail", "AZ in config.py", lambda a, e: a.edit_config(AWS_REGION="us-east-1a"), "us-east-1"),
    Case("C08", "pass", "GovCloud region", lambda a, e: in_region(a, e, "us-gov-west-1")),
    Case("C08", "pass", "China region", lambda a, e: in_region(a, e, "cn-north-1")),
    Case("C09", "fail", "regions differ", lambda a, e: edit_aws_config(a, "[default]\nregion = us-west-2\noutput = json\n"),
         "us-west-2"),
    Case("C10", "warn", "output text", lambda a, e: edit_aws_config(a, "[default]\nregion = us-east-1\noutput = text\n"),
         "json"),
    # -- I: identity ------------------------------------------------------------------------------
    Case("I01", "fail", "no credentials", lambda a, e: a.aws_credentials.unlink(), "aws configure"),
    Case("I02", "fail", "clock 20 min off (injected Date: moto's clock is ours)", inject=skewed(20), contains="20 min"),
    Case("I02", "warn", "clock 7 min off (injected)", inject=skewed(7), contains="7 min"),
    # I03 decides by how botocore obtains the credentials, not by whether they carry an expiry.
    Case("I03", "pass", "credential_process, 2 h left: botocore reruns it", credential_process,
         "refreshed by botocore"),
    Case("I03", "pass", "role_arn profile, 1 h left: botocore assumes again", role_arn_profile,
         "refreshed by botocore"),
    Case("I03", "pass", "instance role from the metadata service", instance_role_only, "iam-role"),
    Case("I03", "pass", "instance role with 5 h left (injected: moto's IMDS hands out a day)",
         inject=credentials_of("iam-role", hours=5), contains="refreshed by botocore"),
    Case("I03", "pass", "long-term keys", contains="long-term"),
    Case("I03", "warn", "ASIA keys and a session token in ~/.aws/credentials", lambda a, e: (
        a.aws_credentials.write_text("[default]\naws_access_key_id = ASIAEXAMPLETEMPKEY01\n"
                                     "aws_secret_access_key = x\naws_session_token = FQoGZXIvYXdzEXAMPLETOKEN\n")),
         "cannot be refreshed"),
    Case("I03", "warn", "ASIA keys and a session token in the environment", lambda a, e: (
        e.setenv("AWS_ACCESS_KEY_ID", "ASIAEXAMPLETEMPKEY01"), e.setenv("AWS_SECRET_ACCESS_KEY", "x"),
        e.setenv("AWS_SESSION_TOKEN", "FQoGZXIvYXdzEXAMPLETOKEN")), "role_arn"),
    Case("I04", "warn", "root keys (injected: moto has no root identity)", inject=root_identity, contains="root"),
    Case("I05", "fail", "fleet role from another account", lambda a, e: fleet(a, lambda d: d.update(
        IamFleetRole="arn:aws:iam::999999999999:role/aws-ec2-spot-fleet-tagging-role")), "999999999999", issue="#178"),
    Case("I06", "warn", "operator denied sqs", lambda a, e: operator_policy(a, [
        {"Effect": "Deny", "Action": "sqs:CreateQueue", "Resource": "*"}]), "sqs:CreateQueue"),
    # -- R: IAM -----------------------------------------------------------------------------------
    Case("R01", "fail", "instance role trusted by ecs", lambda a, e: a.client("iam").update_assume_role_policy(
        RoleName=INSTANCE_ROLE, PolicyDocument=trust_policy("ecs.amazonaws.com")), "ec2.amazonaws.com"),
    Case("R02", "fail", "no ECS policy", lambda a, e: a.client("iam").detach_role_policy(
        RoleName=INSTANCE_ROLE, PolicyArn="arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"),
        "AmazonEC2ContainerServiceforEC2Role", issue="#200"),
    # moto has no policy simulator: the local evaluation decides, and a local denial warns (never a BLOCKER fail).
    Case("R02", "warn", "cannot read ecsconfigs (local evaluation)", lambda a, e: a.client("iam").detach_role_policy(
        RoleName=INSTANCE_ROLE, PolicyArn="arn:aws:iam::aws:policy/AmazonS3FullAccess"), "ecsconfigs"),
    Case("R02", "pass", "ecsconfigs readable through the bucket policy only", lambda a, e: (
        a.client("iam").detach_role_policy(RoleName=INSTANCE_ROLE, PolicyArn="arn:aws:iam::aws:policy/AmazonS3FullAccess"),
        grant_in_bucket_policy(a, f"arn:aws:iam::{a.account_id}:role/{INSTANCE_ROLE}", "s3:GetObject",
                               "ecsconfigs/*"))),
    Case("R03", "fail", "profile without role", lambda a, e: a.client("iam").remove_role_from_instance_profile(
        InstanceProfileName=INSTANCE_ROLE, RoleName=INSTANCE_ROLE), "holds no role", issue="#178"),
    Case("R04", "fail", "fleet role trusted by ec2", lambda a, e: a.client("iam").update_assume_role_policy(
        RoleName=FLEET_ROLE, PolicyDocument=trust_policy("ec2.amazonaws.com")), "spotfleet.amazonaws.com", issue="#85"),
    Case("R04", "fail", "fleet role without tagging policy", lambda a, e: a.client("iam").detach_role_policy(
        RoleName=FLEET_ROLE, PolicyArn="arn:aws:iam::aws:policy/service-role/AmazonEC2SpotFleetTaggingRole"),
        "AmazonEC2SpotFleetTaggingRole", issue="#131"),
    Case("R04", "pass", "GovCloud: the tagging policy's ARN is arn:aws-us-gov:",
         lambda a, e: partition_roles(a, e, "us-gov-west-1")),
    Case("R02", "pass", "China: the ECS policy's ARN is arn:aws-cn:", lambda a, e: partition_roles(a, e, "cn-north-1")),
    Case("R05", "warn", "spot SLR missing", lambda a, e: a.client("iam").delete_role(RoleName="AWSServiceRoleForEC2Spot"),
         "create-service-linked-role"),
    Case("R06", "warn", "PassRole denied (local evaluation)", lambda a, e: operator_policy(a, [
        {"Effect": "Deny", "Action": "iam:PassRole", "Resource": "*"}]), "PassRole"),
    Case("R06", "warn", "PassRole on the task role denied (role_arn layout)", lambda a, e: (
        role_arn_profile(a, e), a.client("iam").put_role_policy(
            RoleName="DCPTaskRole", PolicyName="no-pass", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                {"Effect": "Deny", "Action": "iam:PassRole", "Resource": f"arn:aws:iam::{a.account_id}:role/DCPTaskRole"}]}))),
        "DCPTaskRole to ecs-tasks.amazonaws.com"),
    Case("R06", "warn", "PassRole only under a condition not evaluated locally", lambda a, e: operator_policy(a, [
        {"Effect": "Deny", "Action": "iam:PassRole", "Resource": "*",
         "Condition": {"IpAddress": {"aws:SourceIp": "198.51.100.0/24"}}}]), "cannot confirm"),
    Case("R07", "fail", "no monitor role", lambda a, e: [a.client("iam").detach_role_policy(
        RoleName="LambdaFullAccess", PolicyArn=p["PolicyArn"]) for p in a.client("iam").list_attached_role_policies(
        RoleName="LambdaFullAccess")["AttachedPolicies"]] and a.client("iam").delete_role(RoleName="LambdaFullAccess"),
        "LambdaFullAccess"),
    Case("R07", "skip", "monitor off", lambda a, e: a.edit_config(AUTO_MONITOR="False")),
    Case("R08", "pass", "task role trusted by ecs-tasks", role_arn_profile),
    Case("R08", "fail", "task role trusted by ec2", lambda a, e: role_arn_profile(a, e, "ec2.amazonaws.com"),
         "ecs-tasks", issue="#145"),
    Case("R09", "warn", "legacy CloudWatchFullAccess", lambda a, e: a.client("iam").attach_role_policy(
        RoleName=INSTANCE_ROLE, PolicyArn="arn:aws:iam::aws:policy/CloudWatchFullAccess"), "CloudWatchFullAccessV2"),
    # -- S: S3 ------------------------------------------------------------------------------------
    Case("S01", "pass", "SOURCE_BUCKET 'False' (old config): workers use AWS_BUCKET", lambda a, e: a.edit_config(
        SOURCE_BUCKET="False", WORKSPACE_BUCKET="False")),
    Case("S01", "fail", "invalid bucket name", lambda a, e: a.edit_config(DESTINATION_BUCKET="My_Bucket"), "not a valid"),
    Case("S02", "fail", "bucket missing", lambda a, e: a.edit_config(DESTINATION_BUCKET="no-such-bucket-here"),
         "does not exist"),
    # A 301/400 HeadBucket answer: the bucket exists, in another region (injected, see elsewhere()).
    Case("S02", "pass", "bucket answers 301 from eu-west-1 (injected)", lambda a, e: a.edit_config(
        SOURCE_BUCKET=eu_bucket(a)), "eu-west-1", inject=elsewhere(301, "eu-west-1")),
    Case("S02", "pass", "bucket answers 400 without a region (injected)", lambda a, e: a.edit_config(
        SOURCE_BUCKET=eu_bucket(a)), "another region", inject=elsewhere(400, None)),
    Case("S03", "warn", "foreign destination", lambda a, e: a.edit_config(DESTINATION_BUCKET=foreign_bucket(a)),
         "another account"),
    Case("S04", "fail", "log bucket in another region", lambda a, e: (
        a.client("s3", region="us-west-2").create_bucket(Bucket=f"dcp-logs-west-{a.account_id}", CreateBucketConfiguration={
            "LocationConstraint": "us-west-2"}),
        a.client("s3").put_bucket_policy(Bucket=f"dcp-logs-west-{a.account_id}", Policy=json.dumps(
            log_export_policy(f"dcp-logs-west-{a.account_id}", "us-east-1", a.account_id))),
        a.edit_config(AWS_BUCKET=f"dcp-logs-west-{a.account_id}")), "us-west-2", issue="#144"),
    Case("S04", "warn", "source bucket in eu-west-1", lambda a, e: (
        a.client("s3", region="eu-west-1").create_bucket(Bucket=f"dcp-images-eu-{a.account_id}", CreateBucketConfiguration={
            "LocationConstraint": "eu-west-1"}), a.edit_config(SOURCE_BUCKET=f"dcp-images-eu-{a.account_id}")), "eu-west-1", issue="#84"),
    Case("S04", "warn", "source bucket answers 301 from eu-west-1 (injected)", lambda a, e: a.edit_config(
        SOURCE_BUCKET=eu_bucket(a)), "eu-west-1", inject=elsewhere(301, "eu-west-1")),
    Case("S04", "fail", "log bucket answers 400 from us-west-2 (injected)", lambda a, e: a.edit_config(
        AWS_BUCKET=eu_bucket(a)), "us-west-2", inject=elsewhere(400, "us-west-2")),
    Case("S05", "fail", "no bucket policy", lambda a, e: a.client("s3").delete_bucket_policy(Bucket=a.bucket),
         "GetBucketAcl", issue="#144"),
    Case("S05", "fail", "policy for the wrong region", lambda a, e: a.client("s3").put_bucket_policy(
        Bucket=a.bucket, Policy=json.dumps(log_export_policy(a.bucket, "eu-west-1", a.account_id))), "logs.us-east-1"),
    Case("S06", "warn", "customer KMS key", kms, "KMS"),
    Case("S07", "fail", "dotted source with s3fs", lambda a, e: a.edit_config(SOURCE_BUCKET=f"lab.images.{a.account_id}"),
         "dots", issue="#84"),
    Case("S08", "warn", "operator may not write ecsconfigs (local evaluation)", lambda a, e: operator_policy(a, [
        {"Effect": "Deny", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{a.bucket}/*"}]), "s3:PutObject",
        issue="#200"),
    Case("S08", "pass", "S3 granted by the bucket policy only", lambda a, e: (
        only_operator_grant_without_s3(a),
        grant_in_bucket_policy(a, f"arn:aws:iam::{a.account_id}:user/{a.operator_user}", "s3:*", "*"))),
    Case("S09", "warn", "job objects missing", job=True, contains="not found"),
    Case("S09", "pass", "no WORKSPACE_BUCKET: the worker reads SOURCE_BUCKET", workspace_in_source, job=True),
    Case("S09", "pass", "job objects present", upload_job_objects, job=True),
    # -- Q: SQS -----------------------------------------------------------------------------------
    Case("Q01", "fail", "bad DLQ name", lambda a, e: a.edit_config(SQS_DEAD_LETTER_QUEUE="dead letters!"), "not a valid"),
    Case("Q02", "warn", "DLQ missing", lambda a, e: a.client("sqs").delete_queue(
        QueueUrl=a.client("sqs").get_queue_url(QueueName=DLQ)["QueueUrl"]), "4-day"),
    Case("Q02", "fail", "DLQ ARN in another region", lambda a, e: a.edit_config(
        SQS_DEAD_LETTER_QUEUE=f"arn:aws:sqs:eu-west-1:{a.account_id}:{DLQ}"), "eu-west-1"),
    Case("Q03", "warn", "short DLQ retention", lambda a, e: a.client("sqs").set_queue_attributes(
        QueueUrl=a.client("sqs").get_queue_url(QueueName=DLQ)["QueueUrl"],
        Attributes={"MessageRetentionPeriod": "345600"}), "4 days"),
    Case("Q04", "warn", "leftover job queue", lambda a, e: a.client("sqs").send_message(
        QueueUrl=a.client("sqs").create_queue(QueueName="CellPaintingRunQueue")["QueueUrl"], MessageBody="{}"),
        "leftover"),
    Case("Q05", "fail", "visibility too long", lambda a, e: a.edit_config(SQS_MESSAGE_VISIBILITY=50000), "43200"),
    Case("Q06", "fail", "queue name not APP_NAME+Queue", lambda a, e: a.edit_config(SQS_QUEUE_NAME="OtherQueue"),
         "CellPaintingRunQueue"),
    # -- N: networking ----------------------------------------------------------------------------
    Case("N01", "fail", "unknown subnet", lambda a, e: fleet(a, lambda d: d["LaunchSpecifications"][0][
        "NetworkInterfaces"][0].update(SubnetId="subnet-0123456789abcdef0")), "subnet-0123456789abcdef0"),
    Case("N02", "fail", "unknown security group", lambda a, e: fleet(a, lambda d: d["LaunchSpecifications"][0][
        "NetworkInterfaces"][0].update(Groups=["sg-0123456789abcdef0"])), "sg-0123456789abcdef0"),
    Case("N02", "fail", "security group of another VPC", lambda a, e: fleet(a, lambda d: d["LaunchSpecifications"][0][
        "NetworkInterfaces"][0].update(Groups=[a.client("ec2").create_security_group(
            GroupName="elsewhere", Description="x", VpcId=a.client("ec2").create_vpc(
                CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"])["GroupId"]])), "not in the subnets' VPC"),
    Case("N03", "fail", "no HTTPS egress", lambda a, e: a.client("ec2").revoke_security_group_egress(
        GroupId=a.security_group, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]), "HTTPS"),
    Case("N04", "warn", "no SSH ingress", lambda a, e: a.client("ec2").revoke_security_group_ingress(
        GroupId=a.security_group, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                                                   "IpRanges": [{"CidrIp": "203.0.113.7/32"}]}]), "203.0.113.7"),
    Case("N05", "fail", "example fleet: no public IP, no NAT", lambda a, e: fleet(a, no_public_ip),
         "AssociatePublicIpAddress", issue="#184"),
    Case("N05", "fail", "ASSIGN_IP False without NAT", lambda a, e: a.edit_config(ASSIGN_IP="False"), "ASSIGN_IP",
         issue="#126"),
    Case("N05", "warn", "through NAT", lambda a, e: (nat_route(a), fleet(a, no_public_ip)), "NAT"),
    # run.py's ASSIGN_IP = 'False' rewrites launch specification 0's network interface 0 only, and only when it
    # has NetworkInterfaces: every other specification is sent as the fleet file has it.
    Case("N05", "warn", "ASSIGN_IP False: spec 0 through NAT, spec 1 keeps its public IP", lambda a, e: (
        nat_route_for_first_subnet(a), a.edit_config(ASSIGN_IP="False")), "NAT"),
    Case("N05", "pass", "ASSIGN_IP False without NetworkInterfaces: run.py changes nothing", lambda a, e: (
        fleet(a, without_network_interfaces), a.edit_config(ASSIGN_IP="False"))),
    Case("N05", "fail", "ASSIGN_IP 'false' (any case) without NAT", lambda a, e: a.edit_config(ASSIGN_IP="false"),
         "ASSIGN_IP"),
    Case("N06", "fail", "VPC DNS off", lambda a, e: a.client("ec2").modify_vpc_attribute(
        VpcId=a.vpc_id, EnableDnsSupport={"Value": False}), "DNS"),
    Case("N07", "fail", "more machines than addresses", lambda a, e: a.edit_config(CLUSTER_MACHINES=9000),
         "free addresses", issue="#115"),
    Case("N08", "fail", "arm instance type", lambda a, e: a.edit_config(MACHINE_TYPE=["m5.xlarge", "m6g.xlarge"]),
         "x86_64", issue="#107"),
    Case("N08", "fail", "no such type", lambda a, e: a.edit_config(MACHINE_TYPE=["m5.xlarge", "m5.gigantic"]),
         "m5.gigantic"),
    Case("N09", "fail", "key pair missing", lambda a, e: fleet(a, lambda d: [s.update(KeyName="nosuch")
                                                                            for s in d["LaunchSpecifications"]]),
         "nosuch"),
    Case("N09", "warn", "key differs from SSH_KEY_NAME", lambda a, e: a.edit_config(SSH_KEY_NAME="other.pem"),
         "other.pem"),
    Case("N10", "pass", "dry run accepted", extra=["N10"]),
    # -- Z: quotas and capacity -------------------------------------------------------------------
    Case("Z01", "fail", "new-account spot quota", lambda a, e: e.quota("L-34B43A08", 5.0),
         "spotInstanceCountLimitExceeded", issue="#157"),
    Case("Z01", "warn", "quota used by running spot", lambda a, e: (e.quota("L-34B43A08", 12.0), a.client(
        "ec2").run_instances(ImageId=a.image_id, MinCount=2, MaxCount=2, InstanceType="m5.xlarge",
                             InstanceMarketOptions={"MarketType": "spot"})), "already run"),
    # Each spot family has its own vCPU quota, and every MACHINE_TYPE counts, not only the first.
    Case("Z01", "fail", "second type is Inf, whose spot quota is 0", lambda a, e: (
        a.edit_config(MACHINE_TYPE=["m5.xlarge", "inf1.xlarge"]), e.quota("L-B5D1601B", 0.0)), "L-B5D1601B"),
    Case("Z01", "fail", "second type is G, whose spot quota is too small", lambda a, e: (
        a.edit_config(MACHINE_TYPE=["m5.xlarge", "g4dn.xlarge"]), e.quota("L-3819A6DF", 4.0)), "G and VT"),
    Case("Z01", "fail", "Trn type against the Trn quota", lambda a, e: (
        a.edit_config(MACHINE_TYPE=["trn1.2xlarge", "trn1.2xlarge"]), e.quota("L-6B0D517C", 8.0)), "L-6B0D517C"),
    Case("Z01", "warn", "X quota used by running X spot", lambda a, e: (
        a.edit_config(MACHINE_TYPE=["x1e.xlarge", "m5.xlarge"]), e.quota("L-E3A00192", 12.0), a.client(
            "ec2").run_instances(ImageId=a.image_id, MinCount=2, MaxCount=2, InstanceType="x1e.xlarge",
                                 InstanceMarketOptions={"MarketType": "spot"})), "All X Spot"),
    Case("Z01", "fail", "DL and F types (injected: moto does not know dl1 and f1)", lambda a, e: (
        a.edit_config(MACHINE_TYPE=["dl1.24xlarge", "f1.2xlarge"]), e.quota("L-85EED4F7", 96.0),
        e.quota("L-88CF9481", 128.0)), "L-85EED4F7", inject=instance_types({"dl1.24xlarge": 96, "f1.2xlarge": 8})),
    Case("Z01", "pass", "mixed families within their quotas", lambda a, e: (
        a.edit_config(MACHINE_TYPE=["m5.xlarge", "g4dn.xlarge"]), e.quota("L-3819A6DF", 8.0)), "G and VT"),
    Case("Z02", "fail", "price rounds to zero", lambda a, e: a.edit_config(MACHINE_PRICE=0.001), "0.00"),
    Case("Z03", "fail", "container larger than machine", lambda a, e: a.edit_config(MEMORY=20000), "does not fit",
         issue="#126"),
    Case("Z03", "warn", "container leaves no headroom", lambda a, e: a.edit_config(MEMORY=16000), "8%", issue="#216"),
    Case("Z04", "warn", "single zone", lambda a, e: (fleet(a, one_spec), a.edit_config(MACHINE_TYPE=["m5.xlarge"])),
         "one zone", issue="#115"),
    # -- K: config.py -----------------------------------------------------------------------------
    Case("K01", "fail", "syntax error", lambda a, e: a.config_py.write_text(a.config_py.read_text() + "\nAPP_NAME = (\n"),
         "syntax error"),
    Case("K01", "fail", "missing names", lambda a, e: a.config_py.write_text("APP_NAME = 'x'\n"), "does not define"),
    Case("K01", "pass", "no SSH_KEY_NAME (run.py never reads it)", lambda a, e: drop_config(a, "SSH_KEY_NAME")),
    Case("K01", "pass", "no SOURCE_BUCKET, WORKSPACE_BUCKET or DESTINATION_BUCKET (an old config)", lambda a, e: (
        drop_config(a, "SOURCE_BUCKET", "WORKSPACE_BUCKET", "DESTINATION_BUCKET"))),
    Case("K01", "fail", "plugins on without PLUGINS_COMMIT", lambda a, e: (
        a.edit_config(USE_PLUGINS="True", REQUIREMENTS=""), drop_config(a, "PLUGINS_COMMIT")), "PLUGINS_COMMIT"),
    Case("K01", "fail", "plugins on without REQUIREMENTS", lambda a, e: (
        a.edit_config(USE_PLUGINS="True"), drop_config(a, "REQUIREMENTS", "REQUIREMENTS_FILE")), "REQUIREMENTS"),
    Case("K01", "pass", "plugins on, with PLUGINS_COMMIT and REQUIREMENTS", lambda a, e: (
        a.edit_config(USE_PLUGINS="True", PLUGINS_COMMIT="v4.2.8", REQUIREMENTS=""), drop_config(a, "REQUIREMENTS_FILE"))),
    Case("K01", "warn", "DESTINATION_BUCKET without SOURCE_BUCKET is never sent", lambda a, e: (
        drop_config(a, "SOURCE_BUCKET"), a.edit_config(DESTINATION_BUCKET=f"dcp-results-{a.account_id}")),
         "AWS_BUCKET"),
    Case("K01", "warn", "unsupported construct", lambda a, e: a.config_py.write_text(
        "import os\n" + a.config_py.read_text()), "not evaluated"),
    Case("K02", "fail", "key placeholder", lambda a, e: a.edit_config(SSH_KEY_NAME="your-key-file.pem"), "your-key-file"),
    Case("K02", "warn", "shared default DLQ", lambda a, e: a.edit_config(SQS_DEAD_LETTER_QUEUE="user_DeadMessages"),
         "user_DeadMessages"),
    Case("K03", "fail", "bool flag", lambda a, e: a.edit_config(DOWNLOAD_FILES=raw("False")), ".lower()"),
    Case("K03", "fail", "lower-case flag", lambda a, e: a.edit_config(ASSIGN_IP="true"), "exactly"),
    Case("K04", "fail", "MACHINE_TYPE string", lambda a, e: a.edit_config(MACHINE_TYPE="m5.xlarge"), "list"),
    Case("K04", "warn", "odd CPU_SHARES", lambda a, e: a.edit_config(CPU_SHARES=1000), "CPU_SHARES"),
    Case("K05", "fail", "space in APP_NAME", lambda a, e: a.edit_config(APP_NAME="my run"), "APP_NAME"),
    Case("K06", "fail", "malformed tag", lambda a, e: a.edit_config(DOCKERHUB_TAG="not a tag"), "repository:tag"),
    Case("K06", "warn", "foreign image", lambda a, e: a.edit_config(DOCKERHUB_TAG="myorg/cp:1.0"), "not DCP's own"),
    Case("K07", "warn", "too little disk per task", lambda a, e: a.edit_config(EBS_VOL_SIZE=22, TASKS_PER_MACHINE=2,
                                                                               MEMORY=7000), "10 GB"),
    Case("K08", "warn", "h5 batch file downloaded", lambda a, e: (write_job(a, pipeline="projects/Batch_data.h5"),
                                                                   a.edit_config(DOWNLOAD_FILES="True")), ".h5", job=True),
    Case("K08", "pass", "ordinary pipeline", job=True),
    Case("K09", "warn", "foreign source mounted", lambda a, e: a.edit_config(SOURCE_BUCKET=foreign_bucket(a)),
         "another account", issue="#186"),
    # -- F: fleet file ----------------------------------------------------------------------------
    Case("F01", "fail", "not JSON", lambda a, e: a.fleet.write_text("{ not json"), "not valid JSON"),
    Case("F01", "fail", "one block device", lambda a, e: fleet(a, lambda d: [s.update(
        BlockDeviceMappings=s["BlockDeviceMappings"][:1]) for s in d["LaunchSpecifications"]]), "two BlockDeviceMappings"),
    Case("F01", "skip", "no fleet file", lambda a, e: set_setting(a, "fleet", None)),
    Case("F02", "fail", "example fleet unedited", lambda a, e: a.fleet.write_text(
        (Path(__file__).resolve().parent.parent / "fixtures/dcp/exampleFleet_us-east-1.json").read_text()), "XXXXXXXX"),
    Case("F03", "fail", "role ARN as instance profile", lambda a, e: fleet(a, lambda d: [s["IamInstanceProfile"].update(
        Arn=f"arn:aws:iam::{a.account_id}:role/ecsInstanceRole") for s in d["LaunchSpecifications"]]), "role ARN",
        issue="#178"),
    Case("F03", "fail", "another account's ARNs", lambda a, e: fleet(a, lambda d: d.update(
        IamFleetRole="arn:aws:iam::999999999999:role/aws-ec2-spot-fleet-tagging-role")), "999999999999", issue="#161"),
    Case("F04", "fail", "fewer types than specs", lambda a, e: a.edit_config(MACHINE_TYPE=["m5.xlarge"]), "IndexError",
         issue="#216"),
    Case("F04", "warn", "more types than specs", lambda a, e: a.edit_config(
        MACHINE_TYPE=["m5.xlarge", "m5a.xlarge", "m5d.xlarge"]), "ignores"),
    Case("F05", "fail", "AMI from another region", lambda a, e: fleet(a, lambda d: [s.update(ImageId="ami-c9c87cb1")
                                                                                   for s in d["LaunchSpecifications"]]),
         "per region", issue="#151"),
    Case("F05", "warn", "deprecated AMI (injected: moto keeps no deprecation times)",
         inject=image_override(DeprecationTime="2024-01-01T00:00:00.000Z"), contains="deprecated", issue="#161"),
    Case("F06", "fail", "root device name wrong", lambda a, e: fleet(a, lambda d: [s["BlockDeviceMappings"][0].update(
        DeviceName="/dev/sda1") for s in d["LaunchSpecifications"]]), "root", issue="#151"),
    Case("F06", "fail", "root volume smaller than snapshot (injected AMI root size)",
         inject=image_override(BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 60}}]),
         contains="≥ 60 GB"),
    # AWS's ECS-optimized names beyond the plain ones: the kernel-5.10 AL2 line and the GPU/Inferentia/Neuron
    # variants (injected names: moto's canned list has only the plain ones).
    *[Case(code, status, f"ECS AMI named {name[:28]} (injected name)", inject=image_override(Name=name),
           contains=contains)
      for name in ("amzn2-ami-ecs-kernel-5.10-hvm-2.0.20240131-x86_64-ebs", "amzn2-ami-ecs-gpu-hvm-2.0.20240131-x86_64-ebs",
                   "amzn2-ami-ecs-inf-hvm-2.0.20240131-x86_64-ebs",
                   "al2023-ami-ecs-gpu-hvm-2023.0.20240131-kernel-6.1-x86_64",
                   "al2023-ami-ecs-neuron-hvm-2023.0.20240131-kernel-6.1-x86_64")
      for code, status, contains in (("F05", "pass", ""), ("F07", "warn", "overlay2"))],
    Case("F05", "warn", "an Amazon Linux AMI that is not ECS-optimized (injected name)",
         inject=image_override(Name="amzn2-ami-kernel-5.10-hvm-2.0.20240131.0-x86_64-gp2"), contains="not an ECS-optimized"),
    Case("F07", "warn", "AL2023 AMI with AL1 user data", contains="overlay2", issue="#200"),
    Case("F07", "pass", "AL2023 AMI, root volume sized for the data", lambda a, e: fleet(a, lambda d: [
        s["BlockDeviceMappings"][0]["Ebs"].update(VolumeSize=40) for s in d["LaunchSpecifications"]]), "≥ EBS_VOL_SIZE"),
    Case("F07", "pass", "AL1 ECS AMI (injected name)", inject=image_override(
        Name="amzn-ami-2018.03.20240131-amazon-ecs-optimized")),
    Case("F08", "warn", "fleet sets TargetCapacity", lambda a, e: fleet(a, lambda d: d.update(TargetCapacity=5)),
         "TargetCapacity"),
    Case("F09", "warn", "lowestPrice", lambda a, e: fleet(a, lambda d: d.update(AllocationStrategy="lowestPrice")),
         "lowestPrice"),
    Case("F10", "fail", "WeightedCapacity 2: startCluster waits forever", weight(2), "never"),
    Case("F11", "warn", "maintain fleet, Auto-Monitor off", lambda a, e: a.edit_config(AUTO_MONITOR="False"),
         "365 days"),
    Case("F11", "pass", "request fleet, Auto-Monitor off", lambda a, e: (
        a.edit_config(AUTO_MONITOR="False"), fleet(a, lambda d: d.update(Type="request")))),
    Case("F10", "fail", "WeightedCapacity 0.5: twice the machines", weight(0.5), "WeightedCapacity"),
    Case("F10", "pass", "WeightedCapacity 1", weight(1)),
    # M: leftovers of earlier runs, their cost, and Auto-Monitor
    Case("M01", "fail", "lambda bucket placeholder", lambda a, e: (a.clone / "lambda_function.py").write_text(
        monitor_source("BUCKET_NAME")), "BUCKET_NAME", issue="#178"),
    Case("M02", "fail", "no Monitor function", lambda a, e: a.client("lambda").delete_function(FunctionName="Monitor"),
         "no Monitor function"),
    Case("M02", "warn", "deprecated runtime", lambda a, e: a.client("lambda").update_function_configuration(
        FunctionName="Monitor", Runtime="python3.9"), "python3.9"),
    Case("M03", "fail", "topic without subscription", lambda a, e: no_monitor_subscription(a), "no subscription"),
    Case("M03", "fail", "no invoke permission", lambda a, e: a.client("lambda").remove_permission(
        FunctionName="Monitor", StatementId="InvokeBySNS"), "may not invoke"),
    Case("M03", "pass", "wired as setup_AWS.py wires it"),
    Case("M05", "warn", "cleanup call with three arguments", lambda a, e: (a.clone / "lambda_function.py").write_text(
        monitor_source(a.bucket, call_args=3)), "run.py monitor"),
    Case("M05", "pass", "cleanup calls match"),
    Case("M06", "warn", "worker alarms of finished runs", lambda a, e: (alarm(a, f"{APP_NAME}_i-0123456789abcdef0"),
         alarm(a, f"{APP_NAME}_i-0fedcba9876543210")), "2 alarm(s)", issue="#93"),
    Case("M06", "warn", "a dashboard monitor should have removed", lambda a, e: a.client("cloudwatch").put_dashboard(
        DashboardName=APP_NAME, DashboardBody='{"widgets": []}'), "dashboard(s)"),
    Case("M06", "pass", "another app's alarms", lambda a, e: alarm(a, "OtherApp_i-0123456789abcdef0")),
    Case("M07", "warn", "an export task still running", contains="cannot export", inject=running_export),
    Case("M07", "warn", "log group without retention", lambda a, e: a.client("logs").create_log_group(
        logGroupName=APP_NAME), "keep logs forever"),
    Case("M08", "fail", "previous service still scaled up", lambda a, e: scaled_service(a), "--desired-count 0"),
    Case("M08", "pass", "previous service scaled to 0", lambda a, e: scaled_service(a, 0)),
    Case("M09", "warn", "fleet instances that never joined ECS", lambda a, e: (
        a.client("ecs").create_cluster(clusterName="dcp-cluster"), leftover_fleet(a)), "never joined",
         issue="#126", inject=launched_long_ago),
    Case("M09", "pass", "cluster active, nothing running", lambda a, e: a.client("ecs").create_cluster(
        clusterName="dcp-cluster")),
    Case("M10", "warn", "leftover fleet costs money", lambda a, e: leftover_fleet(a, machines=3), "$7.20/day",
         inject=spot_price(0.10)),
    Case("M10", "warn", "fleet named only by the monitor file", lambda a, e: monitor_file(
        a, leftover_fleet(a, user_data=False)), "cancel-spot-fleet-requests", inject=spot_price(0.10)),
    Case("M10", "pass", "another app's fleet is not ours", lambda a, e: leftover_fleet(a, app="OtherApp")),
]
