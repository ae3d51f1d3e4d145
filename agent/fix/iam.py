"""The IAM part of a fix: DCP's roles, the instance profile and the spot service-linked roles.

fix attaches what the checks prove is needed, not setup_AWS.py's broad list: the instance role gets
AmazonEC2ContainerServiceforEC2Role and a read of AWS_BUCKET/ecsconfigs/ (R02); the fleet role
AmazonEC2SpotFleetTaggingRole (R04); the Monitor Lambda's role DCP's own list, with CloudWatchFullAccessV2 in
place of the deprecated CloudWatchFullAccess (R09). Trust is only ever added to, never replaced.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from agent import iamsim
from agent.checks._common import fleet_role_name, instance_profile_name, is_true
from agent.checks.iam import trusted_as
from agent.facts import iam
from agent.fix.plan import Kind, Step
from agent.fix.writes import exists_ok, iam_tags, managed, partition

if TYPE_CHECKING:
    from agent.context import Context

ECS_FOR_EC2 = "service-role/AmazonEC2ContainerServiceforEC2Role"
FLEET_TAGGING = "service-role/AmazonEC2SpotFleetTaggingRole"
LAMBDA_ROLE = "LambdaFullAccess"
LAMBDA_POLICIES = ("AWSLambda_FullAccess", "AmazonSNSFullAccess", "service-role/AWSLambdaVPCAccessExecutionRole",
                   "service-role/AWSLambdaSQSQueueExecutionRole", "AWSLambdaExecute", "AmazonECS_FullAccess",
                   FLEET_TAGGING, "AmazonS3FullAccess", "AmazonSQSFullAccess", "CloudWatchFullAccessV2")
ECSCONFIG_POLICY = "dcp-agent-ecsconfigs"
SLRS = (("AWSServiceRoleForEC2SpotFleet", "spotfleet.amazonaws.com"), ("AWSServiceRoleForEC2Spot", "spot.amazonaws.com"))


def trust_statement(service: str) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}


def _create_role(name: str, service: str, codes: tuple[str, ...]) -> Step:
    doc = {"Version": "2012-10-17", "Statement": [trust_statement(service)]}

    def run(ctx: Context) -> None:
        with exists_ok():
            ctx.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(doc), Tags=iam_tags(),
                                           Description="DCP role created by dcp-agent fix")

    return Step(codes, f"iam role {name}", Kind.CREATE, f"trusted by {service}", ("iam:CreateRole", "iam:TagRole"), run)


def _add_trust(role: iam.Role, service: str, codes: tuple[str, ...]) -> Step:
    statements = role.trust.get("Statement", [])
    doc = dict(role.trust or {"Version": "2012-10-17"})
    doc["Statement"] = [*(statements if isinstance(statements, list) else [statements]), trust_statement(service)]
    text = json.dumps(doc, sort_keys=True)

    def run(ctx: Context) -> None:
        ctx.client("iam").update_assume_role_policy(RoleName=role.name, PolicyDocument=text)

    return Step(codes, f"iam role {role.name}", Kind.MODIFY,
                f"trust policy gains {json.dumps(trust_statement(service))}; afterwards: {text}",
                ("iam:UpdateAssumeRolePolicy",), run, after=f"iam role {role.name}")


def _attach(name: str, arn: str, codes: tuple[str, ...]) -> Step:
    def run(ctx: Context) -> None:
        ctx.client("iam").attach_role_policy(RoleName=name, PolicyArn=arn)

    return Step(codes, f"iam role {name}", Kind.MODIFY, f"attach {arn}", ("iam:AttachRolePolicy",), run,
                after=f"iam role {name}")


def _role_steps(ctx: Context, name: str, service: str, policies: list[str], codes: tuple[str, ...],
                *, only_if_none: bool = False) -> list[Step]:
    """Create the role, or add the trust and the policies it lacks. ``only_if_none``: attach the list only to
    a role that has no policy at all (the Lambda role's list is a suggestion, not a requirement)."""
    role = iam.role(ctx, name)
    if role is None:
        return [_create_role(name, service, codes), *(_attach(name, arn, codes) for arn in policies)]
    steps = [] if trusted_as(ctx, role, service) else [_add_trust(role, service, codes)]
    attached = iam.attached_role_policies(ctx, name)
    if only_if_none and attached:
        return steps
    return steps + [_attach(name, arn, codes) for arn in policies if arn not in attached]


def _ecsconfig_step(ctx: Context, role_name: str, role_arn: str | None) -> Step | None:
    """An inline read of AWS_BUCKET/ecsconfigs/* when the role may not read its ecsconfig (R02)."""
    bucket, app = ctx.config.get("AWS_BUCKET"), ctx.config.get("APP_NAME")
    if not (isinstance(bucket, str) and bucket and isinstance(app, str) and app):
        return None
    part = partition(ctx)
    resource = f"arn:{part}:s3:::{bucket}/ecsconfigs/*"
    if role_arn is not None:
        obj = f"arn:{part}:s3:::{bucket}/ecsconfigs/{app}_ecs.config"
        ask = iamsim.Ask("s3:GetObject", obj)
        if iamsim.simulate(ctx, role_arn, [ask])[ask].decision != iamsim.DENIED:
            return None   # allowed, or cannot be confirmed (R02 then says so, and the plan lists it for a human)
    doc = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": resource}]})

    def run(ctx: Context) -> None:
        ctx.client("iam").put_role_policy(RoleName=role_name, PolicyName=ECSCONFIG_POLICY, PolicyDocument=doc)

    return Step(("R02",), f"iam role {role_name}", Kind.MODIFY,
                f"add inline policy {ECSCONFIG_POLICY}: s3:GetObject on {resource}", ("iam:PutRolePolicy",), run,
                after=f"iam role {role_name}")


def _instance_profile_steps(ctx: Context, profile_name: str, role_name: str) -> list[Step]:
    prof = iam.instance_profile(ctx, profile_name)
    steps = []
    if prof is None:
        def create(ctx: Context) -> None:
            with exists_ok():
                ctx.client("iam").create_instance_profile(InstanceProfileName=profile_name, Tags=iam_tags())

        steps.append(Step(("R03",), f"iam instance-profile {profile_name}", Kind.CREATE, "empty instance profile",
                          ("iam:CreateInstanceProfile", "iam:TagInstanceProfile"), create,
                          lane=f"iam role {role_name}"))
    if prof is None or not prof.roles:
        def add(ctx: Context) -> None:
            with exists_ok("LimitExceeded"):   # it holds a role already: a run before us added it
                ctx.client("iam").add_role_to_instance_profile(InstanceProfileName=profile_name, RoleName=role_name)

        steps.append(Step(("R03",), f"iam instance-profile {profile_name}", Kind.MODIFY, f"add role {role_name}",
                          ("iam:AddRoleToInstanceProfile", "iam:PassRole"), add,
                          after=f"iam instance-profile {profile_name}", lane=f"iam role {role_name}"))
    return steps


def _slr_steps(ctx: Context) -> list[Step]:
    steps = []
    for name, service in SLRS:
        if iam.role(ctx, name) is not None:
            continue

        def run(ctx: Context, service: str = service) -> None:
            with exists_ok():
                ctx.client("iam").create_service_linked_role(AWSServiceName=service)

        steps.append(Step(("R05",), f"iam role {name}", Kind.CREATE,
                          f"service-linked role for {service} (AWS owns it: it cannot carry tags)",
                          ("iam:CreateServiceLinkedRole",), run))
    return steps


def plan(ctx: Context) -> list[Step]:
    steps: list[Step] = []
    profile = instance_profile_name(ctx)
    role_name = iam.instance_role_name(ctx, profile)
    steps += _role_steps(ctx, role_name, "ec2.amazonaws.com", [managed(ctx, ECS_FOR_EC2)], ("R01", "R02"))
    role = iam.role(ctx, role_name)
    ecsconfig = _ecsconfig_step(ctx, role_name, role.arn if role else None)
    if ecsconfig:
        steps.append(ecsconfig)
    steps += _instance_profile_steps(ctx, profile, role_name)
    steps += _role_steps(ctx, fleet_role_name(ctx), "spotfleet.amazonaws.com", [managed(ctx, FLEET_TAGGING)], ("R04",))
    steps += _slr_steps(ctx)
    if is_true(ctx.config.get("AUTO_MONITOR")):
        steps += _role_steps(ctx, LAMBDA_ROLE, "lambda.amazonaws.com", [managed(ctx, p) for p in LAMBDA_POLICIES],
                             ("R07",), only_if_none=True)
    return steps
