"""R: the IAM roles DCP's setup_AWS.py (or the console) should have made."""

from __future__ import annotations

from agent import gates, iamsim
from agent.checks._common import fleet_role_name, instance_profile_name, is_true, name_from_arn
from agent.context import Context
from agent.facts import aws, iam, local, s3
from agent.iamsim import Ask
from agent.model import Finding, Severity, Skip, fail, ok, warn
from agent.registry import check

ECS_POLICY = "iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"     # after arn:<partition>:
TAGGING_POLICY = "iam::aws:policy/service-role/AmazonEC2SpotFleetTaggingRole"
LEGACY_FLEET_POLICY = "iam::aws:policy/service-role/AmazonEC2SpotFleetRole"
SETUP = "python setup_AWS.py (in the DCP clone), or create it in the IAM console"

# Shared by the checks that read trust policies (docs/checks.md prints it once, at R01).
PARTITIONS = ("Managed-policy, S3 and fix-hint ARNs are built from the region's partition (botocore's partitions "
              "file), so GovCloud and China accounts get no false R02/R04 failure (tested on moto's per-partition "
              "IAM). In China (aws-cn), R01, R04, R07, R08 and ``fix`` accept a role trusted by the plain service "
              "name (``ec2.amazonaws.com``) or by the older China form (``ec2.amazonaws.com.cn``), which China's IAM "
              "once required; elsewhere only the plain name counts. Tested on moto's aws-cn IAM, which stores trust "
              "policies as given: this proves how the checks read them, not which names AWS China accepts (no AWS "
              "page states the rule; the two forms come from users' reports).")
# What dcp-agent fix does for R01 and R02 (agent/fix/iam.py): one role, made or mended.
INSTANCE_ROLE_CURE = ("Creates ``ecsInstanceRole`` (trusted by ec2), attaches AmazonEC2ContainerServiceforEC2Role, "
                      "adds an inline read of ``AWS_BUCKET/ecsconfigs/*`` when the role may not read its ecsconfig; "
                      "an existing role gets the missing trust statement appended.")


def _instance_role_name(ctx: Context) -> str:
    return iam.instance_role_name(ctx, instance_profile_name(ctx))


def managed(ctx: Context, tail: str) -> str:
    """An AWS managed policy's ARN in the partition of the region (arn:aws:…, arn:aws-us-gov:…, arn:aws-cn:…)."""
    return f"arn:{aws.partition(ctx, ctx.region)}:{tail}"


def service_names(ctx: Context, service: str) -> tuple[str, ...]:
    """The names a trust policy may give ``service`` (``ec2.amazonaws.com``) in the region's partition. In China
    (aws-cn) roles are also trusted by the older form ``ec2.amazonaws.com.cn`` (required there until AWS accepted
    the plain name, and what roles made then still carry), so both count."""
    if aws.partition(ctx, ctx.region) == "aws-cn":
        return service, f"{service}.cn"
    return (service,)


def trusted_as(ctx: Context, role: iam.Role, service: str) -> str | None:
    """The name under which the role trusts ``service`` (see service_names), or None when it does not."""
    return next((n for n in service_names(ctx, service) if n in role.trusted_services), None)


def _names(ctx: Context, service: str) -> str:
    return " or ".join(service_names(ctx, service))


@check("R01", "iam.instance-role", "The ECS instance role exists and EC2 may assume it", Severity.BLOCKER,
       needs=(gates.CREDENTIALS,), actions=("iam:GetRole", "iam:GetInstanceProfile"),
       cure=INSTANCE_ROLE_CURE, blind=(PARTITIONS,))
def instance_role(ctx: Context) -> Finding:
    name = _instance_role_name(ctx)
    role = iam.role(ctx, name)
    if role is None:
        return fail(f"the role {name} does not exist: workers cannot join ECS", SETUP)
    trusted = trusted_as(ctx, role, "ec2.amazonaws.com")
    if trusted is None:
        return fail(f"{name} is not trusted by {_names(ctx, 'ec2.amazonaws.com')}",
                    f"aws iam update-assume-role-policy --role-name {name} "
                    "--policy-document '{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\","
                    "\"Principal\":{\"Service\":\"ec2.amazonaws.com\"},\"Action\":\"sts:AssumeRole\"}]}'")
    return ok(f"{name}, trusted by {trusted}")


@check("R02", "iam.instance-role-policies", "The ECS instance role may join ECS and read its ecsconfig",
       Severity.BLOCKER, needs=(instance_role, gates.CONFIG), actions=(*iamsim.ACTIONS, *s3.policy.actions),
       cure=INSTANCE_ROLE_CURE, blind=(iamsim.ASKED, iamsim.LOCAL, PARTITIONS))
def instance_role_policies(ctx: Context) -> Finding:
    name = _instance_role_name(ctx)
    attached = iam.attached_role_policies(ctx, name)
    if managed(ctx, ECS_POLICY) not in attached:
        return fail(f"{name} lacks AmazonEC2ContainerServiceforEC2Role: no ECS registration, no awslogs",
                    f"aws iam attach-role-policy --role-name {name} --policy-arn {managed(ctx, ECS_POLICY)}")
    bucket, app = ctx.config.get("AWS_BUCKET"), ctx.config.get("APP_NAME")
    if isinstance(bucket, str) and isinstance(app, str):
        profile = iam.instance_profile(ctx, instance_profile_name(ctx))
        role = profile.roles[0] if profile and profile.roles else iam.role(ctx, name)
        if role is None:
            raise Skip(f"the role {name} does not exist (see iam.instance-role)")
        obj = aws.arn(ctx, "s3", f"{bucket}/ecsconfigs/{app}_ecs.config")
        policy, known = iamsim.bucket_policy(ctx, bucket)
        ask = Ask("s3:GetObject", obj, iamsim.region_context(ctx), policy)
        verdicts = iamsim.simulate(ctx, role.arn, [ask])
        finding = iamsim.judge(verdicts, lambda a: f"{name} reading s3://{bucket}/ecsconfigs/ (workers join the "
                               "'default' cluster instead of ECS_CLUSTER)",
                               f"attach a policy allowing s3:GetObject on {obj} to {name}", blocker=known)
        if finding:
            return finding
        return ok(f"AmazonEC2ContainerServiceforEC2Role attached; ecsconfig readable ({iamsim.how(verdicts)})")
    return ok("AmazonEC2ContainerServiceforEC2Role attached")


@check("R03", "iam.instance-profile", "The fleet's instance profile wraps the role", Severity.BLOCKER,
       needs=(gates.CREDENTIALS,), actions=("iam:GetInstanceProfile",),
       cure="Creates the instance profile, adds the role.")
def instance_profile(ctx: Context) -> Finding:
    name = instance_profile_name(ctx)
    prof = iam.instance_profile(ctx, name)
    if prof is None:
        return fail(f"the instance profile {name} does not exist (spotFleetRequestConfigurationInvalid)",
                    f"aws iam create-instance-profile --instance-profile-name {name} && aws iam "
                    f"add-role-to-instance-profile --role-name ecsInstanceRole --instance-profile-name {name}")
    if not prof.roles:
        return fail(f"the instance profile {name} holds no role",
                    f"aws iam add-role-to-instance-profile --role-name ecsInstanceRole --instance-profile-name {name}")
    return ok(f"{name} → {prof.roles[0].name}")


@check("R04", "iam.spot-fleet-role", "The spot-fleet role is trusted by spotfleet.amazonaws.com", Severity.BLOCKER,
       needs=(gates.CREDENTIALS,), actions=("iam:GetRole", "iam:ListAttachedRolePolicies"),
       cure="Creates ``aws-ec2-spot-fleet-tagging-role`` (trusted by spotfleet) with "
            "AmazonEC2SpotFleetTaggingRole, or appends the trust / attaches the policy.",
       blind=(PARTITIONS,))
def spot_fleet_role(ctx: Context) -> Finding:
    name = fleet_role_name(ctx)
    role = iam.role(ctx, name)
    trust_fix = (f"aws iam update-assume-role-policy --role-name {name} --policy-document "
                 "'{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":"
                 "{\"Service\":\"spotfleet.amazonaws.com\"},\"Action\":\"sts:AssumeRole\"}]}'")
    if role is None:
        return fail(f"the spot-fleet role {name} does not exist", SETUP)
    services = role.trusted_services
    trusted = trusted_as(ctx, role, "spotfleet.amazonaws.com")
    if trusted is None:
        return fail(f"{name} is trusted by {', '.join(sorted(services)) or 'nobody'}, not "
                    f"{_names(ctx, 'spotfleet.amazonaws.com')} (IamFleetRole is invalid)", trust_fix)
    attached = iam.attached_role_policies(ctx, name)
    tagging = managed(ctx, TAGGING_POLICY)
    if tagging not in attached:
        if managed(ctx, LEGACY_FLEET_POLICY) in attached:
            return warn(f"{name} has only the legacy AmazonEC2SpotFleetRole, which cannot tag instances",
                        f"aws iam attach-role-policy --role-name {name} --policy-arn {tagging}")
        return fail(f"{name} lacks AmazonEC2SpotFleetTaggingRole",
                    f"aws iam attach-role-policy --role-name {name} --policy-arn {tagging}")
    return ok(f"{name}, trusted by {trusted}, with AmazonEC2SpotFleetTaggingRole")


@check("R05", "iam.spot-service-linked-roles", "The spot service-linked roles exist", Severity.HIGH,
       needs=(gates.CREDENTIALS,), actions=("iam:GetRole",),
       cure="Creates the spot service-linked roles (AWS owns them: they carry no tags).")
def spot_slr(ctx: Context) -> Finding:
    missing = [(n, s) for n, s in (("AWSServiceRoleForEC2SpotFleet", "spotfleet.amazonaws.com"),
                                   ("AWSServiceRoleForEC2Spot", "spot.amazonaws.com")) if iam.role(ctx, n) is None]
    if missing:
        return warn(f"{' and '.join(n for n, _ in missing)} missing: created on first use only if you may "
                    "iam:CreateServiceLinkedRole", " && ".join(
                        f"aws iam create-service-linked-role --aws-service-name {s}" for _, s in missing))
    return ok("AWSServiceRoleForEC2SpotFleet and AWSServiceRoleForEC2Spot")


def _task_role_arn(ctx: Context) -> str | None:
    """The role_arn of config.AWS_PROFILE (run.py registers the task definition with it as taskRoleArn)."""
    try:
        layout = local.credential_layout(ctx)
        if layout.kind == "a" and layout.section is not None:
            return str(local.aws_files(ctx).config.get(layout.section, "role_arn"))
    except Exception:
        return None
    return None


@check("R06", "iam.pass-role", "The operator may pass the fleet, instance and task roles", Severity.BLOCKER,
       needs=(instance_role, spot_fleet_role), actions=iamsim.ACTIONS,
       blind=(iamsim.ASKED, iamsim.LOCAL, "Not yet: R06 asks with ``iam:PassedToService`` set to the plain "
              "service names, also in China (see R01)."))
def pass_role(ctx: Context) -> Finding:
    """iam:PassRole as the real calls ask it: the fleet role to spotfleet.amazonaws.com (RequestSpotFleet's
    IamFleetRole), the instance role to ec2.amazonaws.com (the launch specifications' instance profile) and,
    in the role_arn layout, the task role to ecs-tasks.amazonaws.com (RegisterTaskDefinition's taskRoleArn)."""
    arn = iam.principal_arn(ctx)
    if arn is None:
        raise Skip("the identity is neither an IAM user nor a role")
    asks = []
    for name, service in ((fleet_role_name(ctx), "spotfleet.amazonaws.com"),
                          (_instance_role_name(ctx), "ec2.amazonaws.com")):
        role = iam.role(ctx, name)
        if role:
            asks.append(Ask("iam:PassRole", role.arn, iamsim.region_context(ctx, **{"iam:PassedToService": service})))
    task = _task_role_arn(ctx)
    if task:
        asks.append(Ask("iam:PassRole", task, iamsim.region_context(ctx, **{"iam:PassedToService": "ecs-tasks.amazonaws.com"})))
    verdicts = iamsim.simulate(ctx, arn, asks)
    finding = iamsim.judge(verdicts, lambda a: f"iam:PassRole on {a.resource.rsplit('/', 1)[-1]} to "
                           f"{dict(a.context)['iam:PassedToService']}",
                           "allow iam:PassRole on " + ", ".join(a.resource for a in asks)
                           + " (Condition StringEquals iam:PassedToService: the service) for this user or role")
    if finding:
        return finding
    names = ", ".join(a.resource.rsplit("/", 1)[-1] for a in asks)
    return ok(f"iam:PassRole allowed on {names} ({iamsim.how(verdicts)})")


@check("R07", "iam.monitor-role", "The Auto-Monitor Lambda role exists", Severity.HIGH,
       needs=(gates.CREDENTIALS, gates.CONFIG), actions=("iam:GetRole", "iam:ListAttachedRolePolicies"),
       cure="With ``AUTO_MONITOR = 'True'``: creates the ``LambdaFullAccess`` role with DCP's policy list "
            "(CloudWatchFullAccessV2 for the deprecated CloudWatchFullAccess).",
       blind=(PARTITIONS,))
def monitor_role(ctx: Context) -> Finding:
    if not is_true(ctx.config.get("AUTO_MONITOR")):
        raise Skip("AUTO_MONITOR is not 'True'")
    role = iam.role(ctx, "LambdaFullAccess")
    if role is None:
        return fail("the role LambdaFullAccess (for the Monitor Lambda) does not exist: fleets are not cleaned up",
                    SETUP)
    trusted = trusted_as(ctx, role, "lambda.amazonaws.com")
    if trusted is None:
        return fail(f"LambdaFullAccess is not trusted by {_names(ctx, 'lambda.amazonaws.com')}", SETUP)
    if not iam.attached_role_policies(ctx, "LambdaFullAccess"):
        return fail("LambdaFullAccess has no policies attached", SETUP)
    return ok(f"LambdaFullAccess, trusted by {trusted}")


@check("R08", "iam.task-role", "The task role (role_arn profile) is trusted by ECS tasks", Severity.BLOCKER,
       needs=(gates.CREDENTIALS, gates.CREDENTIAL_LAYOUT), actions=("iam:GetRole",),
       blind=(PARTITIONS,))
def task_role(ctx: Context) -> Finding:
    layout = local.credential_layout(ctx)
    if layout.kind != "a" or layout.section is None:
        raise Skip("the profile has no role_arn; workers use copied keys")
    arn = local.aws_files(ctx).config.get(layout.section, "role_arn")
    name = name_from_arn(arn)
    role = iam.role(ctx, name) if name else None
    if role is None:
        return fail(f"the task role {arn} does not exist", "create it as in DCP's external_buckets.md")
    trusted = trusted_as(ctx, role, "ecs-tasks.amazonaws.com")
    if trusted is None:
        return fail(f"{name} is not trusted by {_names(ctx, 'ecs-tasks.amazonaws.com')}: workers cannot assume it",
                    "edit the role's trust relationship so ecs-tasks.amazonaws.com (and you) may assume it")
    return ok(f"{name}, trusted by {trusted}")


LEGACY = {   # after arn:<partition>:
    "iam::aws:policy/CloudWatchFullAccess": "CloudWatchFullAccessV2",
    "iam::aws:policy/AWSLambdaFullAccess": "AWSLambda_FullAccess",
    LEGACY_FLEET_POLICY: "AmazonEC2SpotFleetTaggingRole",
}


@check("R09", "iam.legacy-policies", "No deprecated managed policies on DCP's roles", Severity.LOW,
       needs=(instance_role, spot_fleet_role), actions=("iam:ListAttachedRolePolicies",))
def legacy_policies(ctx: Context) -> Finding:
    found = []
    for role in (_instance_role_name(ctx), fleet_role_name(ctx)):
        for arn in iam.attached_role_policies(ctx, role):
            tail = arn.split(":", 2)[-1]
            if tail in LEGACY:
                found.append(f"{role} has {arn.rsplit('/', 1)[-1]} (use {LEGACY[tail]})")
    if found:
        return warn("; ".join(found), "attach the suggested policy, then detach the old one")
    return ok("none")
