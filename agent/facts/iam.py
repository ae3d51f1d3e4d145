"""IAM reads: roles, instance profiles, attached and inline policies, and the policy simulator.

Policy documents are gathered level by level (all lists at once, then all managed policies at once, then
all their versions at once), because each level is a round trip to IAM."""

from __future__ import annotations

import functools
import json
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent.facts import aws
from agent.facts.core import AwsError, code_of, fact, gather, translate
from agent.netcause import THROTTLED

if TYPE_CHECKING:
    from agent.context import Context


def _doc(raw: Any) -> dict[str, Any]:
    if isinstance(raw, str):
        raw = json.loads(urllib.parse.unquote(raw))
    return raw if isinstance(raw, dict) else {}


@dataclass(frozen=True)
class Role:
    name: str
    arn: str
    trust: dict[str, Any] = field(default_factory=dict, compare=False)
    boundary: str | None = field(default=None, compare=False)   # the permissions boundary's policy ARN

    @property
    def trusted_services(self) -> set[str]:
        services: set[str] = set()
        statements = self.trust.get("Statement", [])
        for st in statements if isinstance(statements, list) else [statements]:
            if isinstance(st, dict) and st.get("Effect") == "Allow" and isinstance(st.get("Principal"), dict):
                svc = st["Principal"].get("Service")
                services.update([svc] if isinstance(svc, str) else svc or [])
        return services


def _role(raw: dict[str, Any]) -> Role:
    boundary = (raw.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
    return Role(str(raw["RoleName"]), str(raw["Arn"]), _doc(raw.get("AssumeRolePolicyDocument") or {}),
                str(boundary) if boundary else None)


@fact("iam:GetRole")
def role(ctx: Context, name: str) -> Role | None:
    """The role, or None when it does not exist."""
    try:
        return _role(ctx.client("iam").get_role(RoleName=name)["Role"])
    except Exception as e:
        if code_of(e) == "NoSuchEntity":
            return None
        raise


@dataclass(frozen=True)
class InstanceProfile:
    name: str
    roles: tuple[Role, ...]


@fact("iam:GetInstanceProfile")
def instance_profile(ctx: Context, name: str) -> InstanceProfile | None:
    try:
        prof = ctx.client("iam").get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    except Exception as e:
        if code_of(e) == "NoSuchEntity":
            return None
        raise
    return InstanceProfile(str(prof["InstanceProfileName"]), tuple(_role(r) for r in prof.get("Roles", [])))


def _all(ctx: Context, operation: str, key: str, **params: Any) -> list[Any]:
    """Every item of an IAM list, page after page: IAM may answer with fewer items than there are
    (IsTruncated and a Marker), even below MaxItems."""
    pages = ctx.client("iam").get_paginator(operation).paginate(**params)
    return [item for page in pages for item in page.get(key, [])]


@fact("iam:ListAttachedRolePolicies")
def attached_role_policies(ctx: Context, name: str) -> tuple[str, ...]:
    return tuple(p["PolicyArn"] for p in _all(ctx, "list_attached_role_policies", "AttachedPolicies", RoleName=name))


@fact("iam:GetPolicy", "iam:GetPolicyVersion")
def managed_policy(ctx: Context, arn: str) -> dict[str, Any]:
    """A managed policy's default version's document."""
    iam = ctx.client("iam")
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    return _doc(iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"])


@fact("iam:ListRolePolicies", "iam:GetRolePolicy", "iam:ListUserPolicies", "iam:GetUserPolicy",
      "iam:ListGroupPolicies", "iam:GetGroupPolicy")
def inline_policies(ctx: Context, kind: str, name: str) -> tuple[dict[str, Any], ...]:
    """The inline policy documents of a role, user or group (all fetched side by side)."""
    iam = ctx.client("iam")
    getter, param = {
        "role": (iam.get_role_policy, "RoleName"),
        "user": (iam.get_user_policy, "UserName"),
        "group": (iam.get_group_policy, "GroupName"),
    }[kind]
    names = _all(ctx, f"list_{kind}_policies", "PolicyNames", **{param: name})
    return tuple(gather(functools.partial(lambda pn: _doc(getter(**{param: name, "PolicyName": pn})["PolicyDocument"]),
                                          pn) for pn in names))


@fact("iam:ListAttachedRolePolicies", "iam:ListAttachedUserPolicies", "iam:ListAttachedGroupPolicies")
def attached_policies(ctx: Context, kind: str, name: str) -> tuple[str, ...]:
    """The managed policy ARNs attached to a role, user or group."""
    if kind == "role":
        return attached_role_policies(ctx, name)
    operation = "list_attached_user_policies" if kind == "user" else "list_attached_group_policies"
    return tuple(p["PolicyArn"] for p in _all(ctx, operation, "AttachedPolicies", **{f"{kind.title()}Name": name}))


@fact("iam:ListGroupsForUser")
def user_groups(ctx: Context, name: str) -> tuple[str, ...]:
    return tuple(g["GroupName"] for g in _all(ctx, "list_groups_for_user", "Groups", UserName=name))


@fact(*inline_policies.actions, *attached_policies.actions, *user_groups.actions, *managed_policy.actions)
def identity_policies(ctx: Context, arn: str) -> tuple[dict[str, Any], ...]:
    """Every identity policy of a user (its groups' included) or a role. Each read starts as soon as what
    it depends on is known: the user's lists and its groups at once, then the groups' lists and the
    managed policies as their ARNs arrive."""
    kind, name = arn.split(":", 5)[5].split("/", 1)
    name = name.rsplit("/", 1)[-1]
    if kind not in ("user", "role"):
        return ()
    if kind == "user":
        ctx.facts.prefetch(user_groups, name)
    principals = [(kind, name)]
    ctx.facts.prefetch(attached_policies, kind, name)
    ctx.facts.prefetch(inline_policies, kind, name)
    if kind == "user":
        principals += [("group", g) for g in user_groups(ctx, name)]
        for p in principals[1:]:
            ctx.facts.prefetch(attached_policies, *p)
            ctx.facts.prefetch(inline_policies, *p)
    for p in principals:
        for policy in attached_policies(ctx, *p):
            ctx.facts.prefetch(managed_policy, policy)
    docs: list[dict[str, Any]] = []
    for p in principals:
        docs += [managed_policy(ctx, policy) for policy in attached_policies(ctx, *p)]
        docs += inline_policies(ctx, *p)
    return tuple(docs)


@fact("iam:GetUser", "iam:GetRole")
def permissions_boundary(ctx: Context, arn: str) -> str | None:
    """The permissions boundary (a managed policy ARN) of an IAM user or role, or None."""
    kind, _, name = arn.split(":", 5)[5].partition("/")
    name = name.rsplit("/", 1)[-1]
    if kind == "role":
        found = role(ctx, name)
        return found.boundary if found else None
    if kind != "user":
        return None
    raw = ctx.client("iam").get_user(UserName=name)["User"]
    boundary = (raw.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
    return str(boundary) if boundary else None


@fact("iam:GetRole")
def principal_arn(ctx: Context) -> str | None:
    """The IAM user or role ARN behind the operator's credentials (an assumed role resolved to its role)."""
    arn = aws.identity(ctx).arn
    parts = arn.split(":", 5)
    if len(parts) < 6:
        return None
    kind = parts[5]
    if kind.startswith("user/"):
        return arn
    if kind.startswith("assumed-role/"):
        found = role(ctx, kind.split("/")[1])
        return found.arn if found else None
    return None


_UNSUPPORTED = {"NotImplemented", "InternalFailure", "InternalError", "500", "NotSupported"}


def _simulator_missing(e: AwsError) -> bool:
    return e.code in _UNSUPPORTED or e.status == 500 or "AccessDenied" in e.code or (
        e.status is None and not e.unreachable)   # an answer that is not the IAM API


_BOOLEAN_KEYS = {"aws:securetransport", "aws:multifactorauthpresent", "aws:viaawsservice"}


@dataclass(frozen=True)
class Simulation:
    """One SimulatePrincipalPolicy call: every action on every resource, in one request context."""

    actions: tuple[str, ...]
    resources: tuple[str, ...]
    context: tuple[tuple[str, str], ...] = ()    # (key, value) pairs: ContextEntries
    resource_policy: str | None = None           # ResourcePolicy (a bucket policy), JSON


@fact("iam:SimulatePrincipalPolicy")
def simulate(ctx: Context, arn: str, sim: Simulation) -> dict[tuple[str, str], tuple[str, tuple[str, ...]]] | None:
    """SimulatePrincipalPolicy's decision and missing context keys per (action, resource); None where the API
    is unavailable. The context goes out as ContextEntries, the resource policy as ResourcePolicy (its owner
    is the principal's account), and every page of the answer is read (IsTruncated/Marker).

    Asked without retries: an endpoint that lacks the API answers 500, and retrying that (with backoff)
    would cost every simulating check a second or more before the local evaluation takes over. Once one
    call found it missing, later ones in the run do not ask again."""
    if "iam:SimulatePrincipalPolicy" in ctx.facts.missing_apis:
        return None
    by_key: dict[str, list[str]] = {}
    for k, v in sim.context:
        by_key.setdefault(k, []).append(v)
    params: dict[str, Any] = {"PolicySourceArn": arn, "ActionNames": list(sim.actions),
                              "ResourceArns": list(sim.resources)}
    if by_key:
        params["ContextEntries"] = [
            {"ContextKeyName": k, "ContextKeyValues": v,
             "ContextKeyType": ("boolean" if k.lower() in _BOOLEAN_KEYS else "string") + ("List" if len(v) > 1 else "")}
            for k, v in by_key.items()]
    if sim.resource_policy:
        params["ResourcePolicy"] = sim.resource_policy
    try:
        try:
            pages = ctx.client("iam", retries=1).get_paginator("simulate_principal_policy").paginate(**params)
            results = [r for page in pages for r in page.get("EvaluationResults", [])]
        except Exception as e:
            if code_of(e) not in THROTTLED:
                raise
            # Throttled: ask again with the standard retries (backoff), as every other read is.
            pages = ctx.client("iam").get_paginator("simulate_principal_policy").paginate(**params)
            results = [r for page in pages for r in page.get("EvaluationResults", [])]
    except Exception as e:
        err = translate(e)
        if err is not None and _simulator_missing(err):
            ctx.facts.missing_apis.add("iam:SimulatePrincipalPolicy")
            return None
        raise
    out: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}
    for r in results:
        action = str(r.get("EvalActionName", ""))
        top_missing = tuple(r.get("MissingContextValues") or ())
        specific = r.get("ResourceSpecificResults") or []
        for s in specific:
            out[(action, str(s.get("EvalResourceName", "")))] = (
                str(s.get("EvalResourceDecision", "implicitDeny")), tuple(s.get("MissingContextValues") or top_missing))
        if not specific:
            out[(action, str(r.get("EvalResourceName", "*")))] = (str(r.get("EvalDecision", "implicitDeny")), top_missing)
    return out


@fact("iam:GetInstanceProfile")
def instance_role_name(ctx: Context, profile: str) -> str:
    """The role inside an instance profile (ecsInstanceRole when the profile is missing or empty)."""
    prof = instance_profile(ctx, profile)
    return prof.roles[0].name if prof and prof.roles else "ecsInstanceRole"
