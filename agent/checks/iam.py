"""R: the IAM roles DCP's setup_AWS.py (or the console) should have made."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from agent import iamsim
from agent.checks._common import CONFIG, CREDS, error_code, is_true
from agent.checks.awsconfig import _layout
from agent.context import Context
from agent.model import Finding, Severity, Skip, fail, ok, warn
from agent.registry import check

ECS_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"
TAGGING_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonEC2SpotFleetTaggingRole"
LEGACY_FLEET_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonEC2SpotFleetRole"
SETUP = "python setup_AWS.py (in the DCP clone), or create it in the IAM console"


def _name_from_arn(arn: Any) -> str | None:
    if isinstance(arn, str) and ":" in arn and "/" in arn:
        return arn.rsplit("/", 1)[-1]
    return None


def fleet_role_name(ctx: Context) -> str:
    if ctx.fleet and not ctx.fleet.error:
        name = _name_from_arn(ctx.fleet.doc.get("IamFleetRole"))
        if name:
            return name
    return "aws-ec2-spot-fleet-tagging-role"


def instance_profile_name(ctx: Context) -> str:
    if ctx.fleet and not ctx.fleet.error:
        for spec in ctx.fleet.specs:
            name = _name_from_arn((spec.get("IamInstanceProfile") or {}).get("Arn"))
            if name:
                return name
    return "ecsInstanceRole"


def _role(ctx: Context, name: str) -> dict[str, Any] | None:
    def get() -> dict[str, Any] | None:
        try:
            return dict(ctx.client("iam").get_role(RoleName=name)["Role"])
        except Exception as e:
            if error_code(e) == "NoSuchEntity":
                return None
            raise

    return ctx.memo(f"role:{name}:full", get)


def _trusted_services(role: dict[str, Any]) -> set[str]:
    doc = role.get("AssumeRolePolicyDocument") or {}
    if isinstance(doc, str):
        doc = json.loads(urllib.parse.unquote(doc))
    services: set[str] = set()
    statements = doc.get("Statement", [])
    for st in statements if isinstance(statements, list) else [statements]:
        if isinstance(st, dict) and st.get("Effect") == "Allow":
            svc = (st.get("Principal") or {}).get("Service") if isinstance(st.get("Principal"), dict) else None
            services.update([svc] if isinstance(svc, str) else svc or [])
    return services


def _attached(ctx: Context, role: str) -> list[str]:
    return ctx.memo(f"attached:{role}", lambda: [
        p["PolicyArn"] for p in ctx.client("iam").list_attached_role_policies(RoleName=role)["AttachedPolicies"]])


def _instance_role_name(ctx: Context) -> str:
    def find() -> str:
        try:
            prof = ctx.client("iam").get_instance_profile(InstanceProfileName=instance_profile_name(ctx))
            roles = prof["InstanceProfile"]["Roles"]
            if roles:
                return str(roles[0]["RoleName"])
        except Exception as e:
            if error_code(e) != "NoSuchEntity":
                raise
        return "ecsInstanceRole"

    return ctx.memo("instance-role-name", find)


@check("R01", "iam.instance-role", "The ECS instance role exists and EC2 may assume it", Severity.BLOCKER,
       needs=(CREDS,), actions=("iam:GetRole", "iam:GetInstanceProfile"))
def instance_role(ctx: Context) -> Finding:
    name = _instance_role_name(ctx)
    role = _role(ctx, name)
    if role is None:
        return fail(f"the role {name} does not exist: workers cannot join ECS", SETUP)
    if "ec2.amazonaws.com" not in _trusted_services(role):
        return fail(f"{name} is not trusted by ec2.amazonaws.com", f"aws iam update-assume-role-policy --role-name {name} "
                    "--policy-document '{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\","
                    "\"Principal\":{\"Service\":\"ec2.amazonaws.com\"},\"Action\":\"sts:AssumeRole\"}]}'")
    return ok(f"{name}, trusted by ec2.amazonaws.com")


@check("R02", "iam.instance-role-policies", "The ECS instance role may join ECS and read its ecsconfig",
       Severity.BLOCKER, needs=("iam.instance-role", CONFIG),
       actions=("iam:ListAttachedRolePolicies", "iam:SimulatePrincipalPolicy", "iam:GetPolicyVersion"))
def instance_role_policies(ctx: Context) -> Finding:
    name = _instance_role_name(ctx)
    attached = _attached(ctx, name)
    if ECS_POLICY not in attached:
        return fail(f"{name} lacks AmazonEC2ContainerServiceforEC2Role: no ECS registration, no awslogs",
                    f"aws iam attach-role-policy --role-name {name} --policy-arn {ECS_POLICY}")
    bucket, app = ctx.config.get("AWS_BUCKET"), ctx.config.get("APP_NAME")
    if isinstance(bucket, str) and isinstance(app, str):
        role = _role(ctx, name)
        assert role is not None
        obj = f"arn:aws:s3:::{bucket}/ecsconfigs/{app}_ecs.config"
        if not iamsim.simulate(ctx, role["Arn"], [("s3:GetObject", obj)])[("s3:GetObject", obj)]:
            return fail(f"{name} may not read s3://{bucket}/ecsconfigs/: workers join the 'default' cluster "
                        "instead of ECS_CLUSTER", f"attach a policy allowing s3:GetObject on {obj} to {name}")
    return ok("AmazonEC2ContainerServiceforEC2Role attached; ecsconfig readable (simulated)")


@check("R03", "iam.instance-profile", "The fleet's instance profile wraps the role", Severity.BLOCKER,
       needs=(CREDS,), actions=("iam:GetInstanceProfile",))
def instance_profile(ctx: Context) -> Finding:
    name = instance_profile_name(ctx)
    try:
        prof = ctx.client("iam").get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    except Exception as e:
        if error_code(e) == "NoSuchEntity":
            return fail(f"the instance profile {name} does not exist (spotFleetRequestConfigurationInvalid)",
                        f"aws iam create-instance-profile --instance-profile-name {name} && aws iam "
                        f"add-role-to-instance-profile --role-name ecsInstanceRole --instance-profile-name {name}")
        raise
    if not prof.get("Roles"):
        return fail(f"the instance profile {name} holds no role",
                    f"aws iam add-role-to-instance-profile --role-name ecsInstanceRole --instance-profile-name {name}")
    return ok(f"{name} → {prof['Roles'][0]['RoleName']}")


@check("R04", "iam.spot-fleet-role", "The spot-fleet role is trusted by spotfleet.amazonaws.com", Severity.BLOCKER,
       needs=(CREDS,), actions=("iam:GetRole", "iam:ListAttachedRolePolicies"))
def spot_fleet_role(ctx: Context) -> Finding:
    name = fleet_role_name(ctx)
    role = _role(ctx, name)
    trust_fix = (f"aws iam update-assume-role-policy --role-name {name} --policy-document "
                 "'{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":"
                 "{\"Service\":\"spotfleet.amazonaws.com\"},\"Action\":\"sts:AssumeRole\"}]}'")
    if role is None:
        return fail(f"the spot-fleet role {name} does not exist", SETUP)
    services = _trusted_services(role)
    if "spotfleet.amazonaws.com" not in services:
        return fail(f"{name} is trusted by {', '.join(sorted(services)) or 'nobody'}, not spotfleet.amazonaws.com "
                    "(IamFleetRole is invalid)", trust_fix)
    attached = _attached(ctx, name)
    if TAGGING_POLICY not in attached:
        if LEGACY_FLEET_POLICY in attached:
            return warn(f"{name} has only the legacy AmazonEC2SpotFleetRole, which cannot tag instances",
                        f"aws iam attach-role-policy --role-name {name} --policy-arn {TAGGING_POLICY}")
        return fail(f"{name} lacks AmazonEC2SpotFleetTaggingRole",
                    f"aws iam attach-role-policy --role-name {name} --policy-arn {TAGGING_POLICY}")
    return ok(f"{name}, trusted by spotfleet.amazonaws.com, with AmazonEC2SpotFleetTaggingRole")


@check("R05", "iam.spot-service-linked-roles", "The spot service-linked roles exist", Severity.HIGH,
       needs=(CREDS,), actions=("iam:GetRole",))
def spot_slr(ctx: Context) -> Finding:
    missing = [(n, s) for n, s in (("AWSServiceRoleForEC2SpotFleet", "spotfleet.amazonaws.com"),
                                   ("AWSServiceRoleForEC2Spot", "spot.amazonaws.com")) if _role(ctx, n) is None]
    if missing:
        return warn(f"{' and '.join(n for n, _ in missing)} missing: created on first use only if you may "
                    "iam:CreateServiceLinkedRole", " && ".join(
                        f"aws iam create-service-linked-role --aws-service-name {s}" for _, s in missing))
    return ok("AWSServiceRoleForEC2SpotFleet and AWSServiceRoleForEC2Spot")


@check("R06", "iam.pass-role", "The operator may pass the fleet and instance roles", Severity.BLOCKER,
       needs=("iam.instance-role", "iam.spot-fleet-role"),
       actions=("iam:SimulatePrincipalPolicy", "iam:GetRole"))
def pass_role(ctx: Context) -> Finding:
    arn = iamsim.principal_arn(ctx)
    if arn is None:
        raise Skip("the identity is neither an IAM user nor a role")
    targets = []
    for name in (fleet_role_name(ctx), _instance_role_name(ctx)):
        role = _role(ctx, name)
        if role:
            targets.append(str(role["Arn"]))
    verdict = iamsim.simulate(ctx, arn, [("iam:PassRole", t) for t in targets])
    denied = [r for (_, r), allowed in verdict.items() if not allowed]
    if denied:
        return fail(f"iam:PassRole is denied on {', '.join(d.rsplit('/', 1)[-1] for d in denied)} (simulated)",
                    "allow iam:PassRole on " + ", ".join(denied) + " for this user or role")
    return ok("iam:PassRole allowed on both roles (simulated)")


@check("R07", "iam.monitor-role", "The Auto-Monitor Lambda role exists", Severity.HIGH,
       needs=(CREDS, CONFIG), actions=("iam:GetRole", "iam:ListAttachedRolePolicies"))
def monitor_role(ctx: Context) -> Finding:
    if not is_true(ctx.config.get("AUTO_MONITOR")):
        raise Skip("AUTO_MONITOR is not 'True'")
    role = _role(ctx, "LambdaFullAccess")
    if role is None:
        return fail("the role LambdaFullAccess (for the Monitor Lambda) does not exist: fleets are not cleaned up",
                    SETUP)
    if "lambda.amazonaws.com" not in _trusted_services(role):
        return fail("LambdaFullAccess is not trusted by lambda.amazonaws.com", SETUP)
    if not _attached(ctx, "LambdaFullAccess"):
        return fail("LambdaFullAccess has no policies attached", SETUP)
    return ok("LambdaFullAccess, trusted by lambda.amazonaws.com")


@check("R08", "iam.task-role", "The task role (role_arn profile) is trusted by ECS tasks", Severity.BLOCKER,
       needs=(CREDS, "aws.credential-layout"), actions=("iam:GetRole",))
def task_role(ctx: Context) -> Finding:
    layout, _ = _layout(ctx)
    if layout != "a":
        raise Skip("the profile has no role_arn; workers use copied keys")
    section = ctx.aws_files.profile_section(ctx.config_profile())
    assert section is not None
    arn = ctx.aws_files.config.get(section, "role_arn")
    name = _name_from_arn(arn)
    role = _role(ctx, name) if name else None
    if role is None:
        return fail(f"the task role {arn} does not exist", "create it as in DCP's external_buckets.md")
    if "ecs-tasks.amazonaws.com" not in _trusted_services(role):
        return fail(f"{name} is not trusted by ecs-tasks.amazonaws.com: workers cannot assume it",
                    "edit the role's trust relationship so ecs-tasks.amazonaws.com (and you) may assume it")
    return ok(f"{name}, trusted by ecs-tasks.amazonaws.com")


LEGACY = {
    "arn:aws:iam::aws:policy/CloudWatchFullAccess": "CloudWatchFullAccessV2",
    "arn:aws:iam::aws:policy/AWSLambdaFullAccess": "AWSLambda_FullAccess",
    LEGACY_FLEET_POLICY: "AmazonEC2SpotFleetTaggingRole",
}


@check("R09", "iam.legacy-policies", "No deprecated managed policies on DCP's roles", Severity.LOW,
       needs=("iam.instance-role", "iam.spot-fleet-role"), actions=("iam:ListAttachedRolePolicies",))
def legacy_policies(ctx: Context) -> Finding:
    found = []
    for role in (_instance_role_name(ctx), fleet_role_name(ctx)):
        for arn in _attached(ctx, role):
            if arn in LEGACY:
                found.append(f"{role} has {arn.rsplit('/', 1)[-1]} (use {LEGACY[arn]})")
    if found:
        return warn("; ".join(found), "attach the suggested policy, then detach the old one")
    return ok("none")
