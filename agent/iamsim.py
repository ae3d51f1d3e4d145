"""Would this principal be allowed to do that? ``iam:SimulatePrincipalPolicy``, or a local approximation.

SimulatePrincipalPolicy is the right tool, but it is missing from some endpoints (moto answers 500, and
it needs a permission a locked-down preflight identity may lack). Then the principal's own policies
(attached, inline and, for users, their groups') are read and evaluated here: explicit Deny wins, then
any Allow whose Action and Resource patterns match. Conditions, permission boundaries, SCPs and
resource policies are not evaluated, so the answer is an approximation and the checks say so.
"""

from __future__ import annotations

import fnmatch
import json
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

if TYPE_CHECKING:
    from agent.context import Context

_UNSUPPORTED_CODES = {"NotImplemented", "InternalFailure", "InternalError", "500", "NotSupported"}


def principal_arn(ctx: Context) -> str | None:
    """The IAM user or role ARN behind the operator's credentials (assumed roles resolved)."""
    arn = str(ctx.identity()["Arn"])
    parts = arn.split(":", 5)
    if len(parts) < 6:
        return None
    kind = parts[5]
    if kind.startswith("user/"):
        return arn
    if kind.startswith("assumed-role/"):
        role = kind.split("/")[1]
        return str(ctx.memo(f"role:{role}", lambda: ctx.client("iam").get_role(RoleName=role))["Role"]["Arn"])
    return None


def _as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v] if v is not None else []


def _matches(patterns: list[Any], value: str, *, case: bool) -> bool:
    for p in patterns:
        if not isinstance(p, str):
            continue
        if case and fnmatch.fnmatchcase(value, p):
            return True
        if not case and fnmatch.fnmatchcase(value.lower(), p.lower()):
            return True
    return False


def _statement_applies(st: dict[str, Any], action: str, resource: str) -> bool:
    if "Action" in st:
        hit = _matches(_as_list(st["Action"]), action, case=False)
    else:
        hit = not _matches(_as_list(st.get("NotAction")), action, case=False)
    if not hit:
        return False
    if "Resource" in st:
        return _matches(_as_list(st["Resource"]), resource, case=True)
    if "NotResource" in st:
        return not _matches(_as_list(st["NotResource"]), resource, case=True)
    return True


def evaluate(documents: list[dict[str, Any]], action: str, resource: str) -> bool:
    allowed = False
    for doc in documents:
        for st in _as_list(doc.get("Statement")):
            if not isinstance(st, dict) or not _statement_applies(st, action, resource):
                continue
            if st.get("Effect") == "Deny":
                return False
            if st.get("Effect") == "Allow":
                allowed = True
    return allowed


def _doc(raw: Any) -> dict[str, Any]:
    if isinstance(raw, str):
        raw = json.loads(urllib.parse.unquote(raw))
    return raw if isinstance(raw, dict) else {}


def policy_documents(ctx: Context, arn: str) -> list[dict[str, Any]]:
    """Every identity policy of a user or role (managed documents cached across checks)."""
    iam = ctx.client("iam")
    kind, name = arn.split(":", 5)[5].split("/", 1)
    name = name.rsplit("/", 1)[-1]

    def managed(parn: str) -> dict[str, Any]:
        def get() -> dict[str, Any]:
            version = iam.get_policy(PolicyArn=parn)["Policy"]["DefaultVersionId"]
            return _doc(iam.get_policy_version(PolicyArn=parn, VersionId=version)["PolicyVersion"]["Document"])

        return ctx.memo(f"policy:{parn}", get)

    def managed_all(arns: list[str]) -> list[dict[str, Any]]:
        # Each managed policy takes two calls; fetch them side by side (AWS is tens of ms away).
        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(managed, arns))

    def collect() -> list[dict[str, Any]]:
        docs: list[dict[str, Any]] = []
        if kind == "role":
            docs += managed_all([p["PolicyArn"] for p in ctx.memo(
                f"attached:{name}:full", lambda: iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"])])
            for pn in iam.list_role_policies(RoleName=name)["PolicyNames"]:
                docs.append(_doc(iam.get_role_policy(RoleName=name, PolicyName=pn)["PolicyDocument"]))
        elif kind == "user":
            with ThreadPoolExecutor(max_workers=3) as pool:   # three independent lists, side by side
                attached = pool.submit(iam.list_attached_user_policies, UserName=name)
                inline = pool.submit(iam.list_user_policies, UserName=name)
                groups = pool.submit(iam.list_groups_for_user, UserName=name)
                docs += managed_all([p["PolicyArn"] for p in attached.result()["AttachedPolicies"]])
                for pn in inline.result()["PolicyNames"]:
                    docs.append(_doc(iam.get_user_policy(UserName=name, PolicyName=pn)["PolicyDocument"]))
                group_list = groups.result()["Groups"]
            for g in group_list:
                gname = g["GroupName"]
                docs += managed_all([p["PolicyArn"] for p in iam.list_attached_group_policies(GroupName=gname)["AttachedPolicies"]])
                for pn in iam.list_group_policies(GroupName=gname)["PolicyNames"]:
                    docs.append(_doc(iam.get_group_policy(GroupName=gname, PolicyName=pn)["PolicyDocument"]))
        return docs

    return ctx.memo(f"docs:{arn}", collect)


def _api_works(ctx: Context, arn: str) -> bool:
    """One probe per run, without retries: an endpoint that lacks the API answers 500, and retrying that
    (with backoff) would cost every simulating check a second or more."""
    try:
        ctx.client("iam", retries=1).simulate_principal_policy(PolicySourceArn=arn, ActionNames=["sts:GetCallerIdentity"])
        return True
    except ClientError as e:
        code = str(e.response.get("Error", {}).get("Code", ""))
        status = str(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        if code in _UNSUPPORTED_CODES or status == "500" or "AccessDenied" in code:
            return False
        raise
    except (BotoCoreError, ResponseParserError):  # an endpoint that answers with something that is not the IAM API
        return False


def simulate(ctx: Context, arn: str, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], bool]:
    """Whether ``arn`` may perform each (action, resource)."""
    if ctx.memo(f"simulate:api:{arn}", lambda: _api_works(ctx, arn)):
        try:
            iam = ctx.client("iam")
            out: dict[tuple[str, str], bool] = {}
            by_resource: dict[str, list[str]] = {}
            for action, resource in pairs:
                by_resource.setdefault(resource, []).append(action)
            for resource, actions in by_resource.items():
                resp = iam.simulate_principal_policy(PolicySourceArn=arn, ActionNames=actions,
                                                     ResourceArns=[resource])
                for r in resp["EvaluationResults"]:
                    out[(r["EvalActionName"], resource)] = r["EvalDecision"] == "allowed"
            return out
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            status = str(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            if code not in _UNSUPPORTED_CODES and status != "500" and "AccessDenied" not in code:
                raise
        except (BotoCoreError, ResponseParserError):  # an endpoint that answers with something that is not the IAM API
            pass
    docs = policy_documents(ctx, arn)
    return {(a, r): evaluate(docs, a, r) for a, r in pairs}
