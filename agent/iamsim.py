"""Would this principal be allowed to do that? ``iam:SimulatePrincipalPolicy``, or a local approximation.

SimulatePrincipalPolicy is the right tool, but it is missing from some endpoints (moto answers 500, and
it needs a permission a locked-down preflight identity may lack). Then the principal's own policies
(attached, inline and, for users, their groups') are read and evaluated here: explicit Deny wins, then
any Allow whose Action and Resource patterns match. Conditions, permission boundaries, SCPs and
resource policies are not evaluated, so the answer is an approximation and the checks say so.
"""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING, Any

from agent.facts import iam

if TYPE_CHECKING:
    from agent.context import Context

# Every IAM action a simulating check's reads need: the simulator, and the policies of the fallback.
ACTIONS = tuple(dict.fromkeys((*iam.simulate.actions, *iam.principal_arn.actions,
                               *iam.identity_policies.actions)))


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


def simulate(ctx: Context, arn: str, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], bool]:
    """Whether ``arn`` may perform each (action, resource): the simulator's answer, else a local evaluation of
    the principal's own policies."""
    by_resource: dict[str, list[str]] = {}
    for action, resource in pairs:
        by_resource.setdefault(resource, []).append(action)
    for resource, actions in by_resource.items():
        ctx.facts.prefetch(iam.simulate, arn, tuple(actions), resource)
    # The fallback's reads start with the simulator's call, not after it: waiting for its answer costs a
    # round trip, and where the simulator works they are a few spare reads (which cost nothing).
    ctx.facts.prefetch(iam.identity_policies, arn)
    answers = [iam.simulate(ctx, arn, tuple(actions), resource) for resource, actions in by_resource.items()]
    if any(answer is None for answer in answers):
        docs = list(iam.identity_policies(ctx, arn))
        return {(a, r): evaluate(docs, a, r) for a, r in pairs}
    return {(a, resource): bool(answer and answer.get(a, False))
            for (resource, actions), answer in zip(by_resource.items(), answers, strict=True) for a in actions}
