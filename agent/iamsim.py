"""Would this principal be allowed to do that? ``iam:SimulatePrincipalPolicy``, or an honest local evaluation.

Each question is an :class:`Ask`: an action on a real resource ARN, with the request context DCP's own call
carries (``aws:RequestedRegion``, ``iam:PassedToService`` …) and, for S3, the bucket's policy. The simulator
gets all of it (``ContextEntries``, ``ResourceArns``, ``ResourcePolicy``); a reply that lists
``MissingContextValues`` for a denial means the answer hangs on a key we could not supply, so it is
*unknown*, not denied.

Where the simulator is missing (moto answers 500) or denied, the principal's own policies (attached, inline
and, for users, their groups') and the resource's policy are evaluated here, three-valued: a statement
applies, does not apply, or cannot be evaluated (an unknown condition key or operator, an unresolvable
policy variable). An explicit Deny that applies wins; else an Allow that applies allows, unless a Deny that
cannot be evaluated might still apply; a statement that cannot be evaluated and decides the answer makes it
*unknown* ("cannot confirm"). A permissions boundary on the user or role is evaluated the same way and must
allow too. What it never sees: SCPs, session policies, resource policies other than the bucket's. So a local
answer is never a BLOCKER fail (see :func:`judge`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent.facts import iam, s3
from agent.facts.core import code_of
from agent.model import Finding, fail, warn

if TYPE_CHECKING:
    from agent.context import Context

# Every IAM action a simulating check's reads need: the simulator, and the policies of the fallback.
ACTIONS = tuple(dict.fromkeys((*iam.simulate.actions, *iam.principal_arn.actions,
                               *iam.identity_policies.actions, *iam.permissions_boundary.actions)))

ALLOWED, DENIED, UNKNOWN = "allowed", "denied", "unknown"

# What the checks that ask this module (I06, R02, R06, S08) cannot see, or approximate: docs/checks.md prints
# each once, at the first of them.
ASKED = ("I06, R02, R06, S08 ask ``iam:SimulatePrincipalPolicy`` the way DCP's own calls reach AWS: on the real "
         "ARNs config.py names (queues, buckets and objects, roles, log groups, alarms, dashboard, topic; EC2's spot "
         "calls and every list/describe on ``*``, since no fleet exists yet to name), with ``ContextEntries`` "
         "(``aws:RequestedRegion`` = ``AWS_REGION``, ``iam:PassedToService`` for each role: the fleet role to "
         "spotfleet, the instance role to ec2, the ``role_arn`` task role to ecs-tasks; and the principal's "
         "``aws:username``, ``aws:PrincipalArn``, ``aws:PrincipalAccount``, ``aws:PrincipalType``, "
         "``aws:SecureTransport``), with the bucket's policy as ``ResourcePolicy``, reading every page of the "
         "answer. A denial that lists ``MissingContextValues``, or a pair the answer does not name, is \"cannot "
         "confirm\", not denied. Only the simulator's denial fails a BLOCKER check.")
LOCAL = ("Where the simulator is missing (moto) or denied, the user's or role's own policies (attached, inline, its "
         "groups'), its permissions boundary and the bucket policy are evaluated locally, three-valued (allowed, "
         "denied, unknown): IAM's wildcards (``*`` and ``?`` only; ``[`` is literal), policy variables (in "
         "``2012-10-17`` policies), the String, Arn, Bool and Numeric operators with ``IfExists``, ``ForAnyValue`` "
         "and ``ForAllValues``. It cannot see SCPs and resource control policies, session policies, resource "
         "policies other than the bucket's (SQS queue policies, KMS key policies, VPC endpoint policies); "
         "condition keys whose value in the real request it does not know (``aws:SourceIp``, "
         "``aws:MultiFactorAuthPresent``, ``aws:CurrentTime``, tags, ``aws:CalledVia``, service keys such as "
         "``s3:x-amz-acl``); the Date, IpAddress and Binary operators and ``Null`` on a key it does not know. When "
         "such a statement decides the answer, the check warns \"cannot confirm …\"; a local denial is a warning "
         "that says it comes from a local evaluation, never a BLOCKER fail. ARN wildcards are matched over the "
         "whole ARN, not segment by segment; a bucket policy grants only when it names the principal itself or "
         "``*`` (naming the account hands the decision to IAM); another account's buckets are not evaluated for "
         "the workers. The policy lists behind it are read page by page to the end: IAM may truncate a list below "
         "``MaxItems``.")


@dataclass(frozen=True)
class Ask:
    """One question: may the principal do ``action`` on ``resource`` in this request context?"""

    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()   # (key, value): what the real request carries
    resource_policy: str | None = field(default=None, compare=True)   # the resource's own policy (JSON)

    def keys(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for k, v in self.context:
            out.setdefault(k.lower(), []).append(v)
        return out


@dataclass(frozen=True)
class Verdict:
    decision: str            # allowed | denied | unknown
    local: bool              # decided by the local evaluation, not the simulator
    reason: str = ""         # for unknown: what could not be evaluated

    @property
    def allowed(self) -> bool:
        return self.decision == ALLOWED


# -- IAM's own wildcard and policy-variable rules ------------------------------------------------------

def _glob(pattern: str) -> re.Pattern[str]:
    """IAM's wildcards: ``*`` any run of characters, ``?`` one character; everything else (``[`` too) is literal."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern) + r"\Z",
                      re.S)


def like(pattern: str, value: str, *, case: bool = True) -> bool:
    if not case:
        pattern, value = pattern.lower(), value.lower()
    return _glob(pattern).match(value) is not None


class _Unresolved(Exception):
    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def _substitute(text: str, keys: dict[str, list[str]], version: str) -> str:
    """Replace policy variables (``${aws:username}``, ``${key, 'default'}``, ``${*}`` …); only in policies of
    Version 2012-10-17 (older ones treat ``${…}`` literally). An unresolvable variable raises."""
    if version != "2012-10-17" or "${" not in text:
        return text

    def one(m: re.Match[str]) -> str:
        inner = m.group(1).strip()
        if inner in ("*", "?", "$"):
            return {"*": "\x00", "?": "\x01", "$": "$"}[inner]   # literal characters, escaped from globbing
        key, _, default = inner.partition(",")
        values = keys.get(key.strip().lower())
        if values and len(values) == 1:
            return values[0]
        default = default.strip()
        if default.startswith("'") and default.endswith("'") and len(default) >= 2:
            return default[1:-1]
        raise _Unresolved(f"the policy variable ${{{key.strip()}}}")

    return _VARIABLE.sub(one, text)


def _match_resource(pattern: str, value: str, keys: dict[str, list[str]], version: str) -> bool:
    p = _substitute(pattern, keys, version)
    if "\x00" in p or "\x01" in p:   # ${*} / ${?}: literal characters
        parts = re.split("([\x00\x01*?])", p)
        rx = "".join(".*" if s == "*" else "." if s == "?" else re.escape("*") if s == "\x00"
                     else re.escape("?") if s == "\x01" else re.escape(s) for s in parts)
        return re.compile(rx + r"\Z", re.S).match(value) is not None
    return like(p, value)


# -- conditions -------------------------------------------------------------------------------------------

def _as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v] if v is not None else []


def _str(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def _num(v: str) -> float:
    return float(v)


_STRING_OPS: dict[str, Callable[[str, str], bool]] = {
    "stringequals": lambda c, v: c == v,
    "stringequalsignorecase": lambda c, v: c.lower() == v.lower(),
    "stringlike": like,
    "arnequals": like,    # ARN operators compare with wildcards
    "arnlike": like,
    "bool": lambda c, v: c.lower() == v.lower(),
    "numericequals": lambda c, v: _num(v) == _num(c),
    "numericlessthan": lambda c, v: _num(v) < _num(c),
    "numericlessthanequals": lambda c, v: _num(v) <= _num(c),
    "numericgreaterthan": lambda c, v: _num(v) > _num(c),
    "numericgreaterthanequals": lambda c, v: _num(v) >= _num(c),
}
_NEGATED = {"stringnotequals": "stringequals", "stringnotequalsignorecase": "stringequalsignorecase",
            "stringnotlike": "stringlike", "arnnotequals": "arnequals", "arnnotlike": "arnlike",
            "numericnotequals": "numericequals"}


def _condition(op: str, key: str, wanted: list[Any], keys: dict[str, list[str]], version: str) -> bool:
    """One operator on one key. Raises _Unresolved when the answer depends on something not known here."""
    base = op
    qualifier = ""
    if ":" in op:
        qualifier, base = op.split(":", 1)
        qualifier = qualifier.lower()
        if qualifier not in ("forallvalues", "foranyvalue"):
            raise _Unresolved(f"the condition operator {op}")
    low = base.lower()
    if_exists = low.endswith("ifexists") and low != "null"
    if if_exists:
        low = low[: -len("ifexists")]
    present = keys.get(key.lower())
    if low == "null":
        if present is None:
            raise _Unresolved(f"the condition key {key}")
        return any(_str(w).lower() == "false" for w in wanted)   # Null:false = "the key is present"
    if present is None:
        raise _Unresolved(f"the condition key {key}")
    negated = low in _NEGATED
    test = _STRING_OPS.get(_NEGATED.get(low, low))
    if test is None:
        raise _Unresolved(f"the condition operator {op}")
    try:
        conds = [_substitute(_str(w), keys, version) for w in wanted]

        def hit(value: str) -> bool:
            return any(test(c, value) for c in conds)

        result = all(hit(v) for v in present) if qualifier == "forallvalues" else any(hit(v) for v in present)
    except ValueError:
        raise _Unresolved(f"the condition {op} on {key}") from None
    return not result if negated else result


def _conditions(block: Any, keys: dict[str, list[str]], version: str) -> bool:
    if not block:
        return True
    if not isinstance(block, dict):
        raise _Unresolved("a malformed Condition")
    unresolved: _Unresolved | None = None
    for op, tests in block.items():
        if not isinstance(tests, dict):
            raise _Unresolved(f"a malformed Condition {op}")
        for key, wanted in tests.items():
            try:
                if not _condition(op, key, _as_list(wanted), keys, version):
                    return False   # one false test makes the statement not apply, whatever else is unknown
            except _Unresolved as e:
                unresolved = unresolved or e
    if unresolved:
        raise unresolved
    return True


# -- statements and documents -----------------------------------------------------------------------------

def _principal_matches(st: dict[str, Any], principal: str, account: str, effect: str) -> bool:
    """Whether a resource-policy statement names this principal. An account (or its root) in an Allow only
    delegates to the account's IAM policies, so it grants nothing itself; in a Deny it covers everyone there."""
    if "NotPrincipal" in st:
        return not _principal_matches({"Principal": st["NotPrincipal"]}, principal, account, "Deny")
    p = st.get("Principal")
    if p == "*":
        return True
    if not isinstance(p, dict):
        return False
    for value in _as_list(p.get("AWS")):
        if value in ("*", principal):
            return True
        if effect == "Deny" and value in (account, f"arn:{principal.split(':')[1]}:iam::{account}:root"):
            return True
    return False


def _applies(st: dict[str, Any], ask: Ask, keys: dict[str, list[str]], version: str) -> bool:
    """Whether the statement covers the request; raises _Unresolved when that cannot be told here."""
    if "Action" in st:
        if not any(isinstance(p, str) and like(p, ask.action, case=False) for p in _as_list(st["Action"])):
            return False
    elif not any(isinstance(p, str) for p in _as_list(st.get("NotAction"))) or any(
            isinstance(p, str) and like(p, ask.action, case=False) for p in _as_list(st.get("NotAction"))):
        return False
    if "Resource" in st:
        if not any(isinstance(p, str) and _match_resource(p, ask.resource, keys, version)
                   for p in _as_list(st["Resource"])):
            return False
    elif "NotResource" in st and any(isinstance(p, str) and _match_resource(p, ask.resource, keys, version)
                                     for p in _as_list(st["NotResource"])):
        return False
    return _conditions(st.get("Condition"), keys, version)


def _statements(doc: dict[str, Any]) -> Iterable[tuple[dict[str, Any], str]]:
    version = str(doc.get("Version") or "2008-10-17")
    for st in _as_list(doc.get("Statement")):
        if isinstance(st, dict):
            yield st, version


def principal_keys(arn: str) -> dict[str, str]:
    """The global condition keys (and policy variables) every request by this principal carries."""
    parts = arn.split(":", 5)
    keys = {"aws:PrincipalArn": arn, "aws:SecureTransport": "true"}   # boto3 always uses HTTPS
    if len(parts) == 6:
        keys["aws:PrincipalAccount"] = parts[4]
        kind, _, rest = parts[5].partition("/")
        keys["aws:PrincipalType"] = "User" if kind == "user" else "AssumedRole" if kind == "role" else kind
        if kind == "user":
            keys["aws:username"] = rest.rsplit("/", 1)[-1]
    return keys


def evaluate(documents: Iterable[dict[str, Any]], ask: Ask, principal: str = "arn:aws:iam::000000000000:user/x",
             resource_policy: dict[str, Any] | None = None) -> tuple[str, str]:
    """The local decision (allowed / denied / unknown) and, for unknown, what could not be evaluated."""
    keys = {**{k.lower(): [v] for k, v in principal_keys(principal).items()}, **ask.keys()}
    account = principal.split(":")[4] if principal.count(":") >= 5 else ""
    allow = deny = False
    maybe_allow: list[str] = []
    maybe_deny: list[str] = []
    sources = [(d, False) for d in documents] + ([(resource_policy, True)] if resource_policy else [])
    for doc, is_resource in sources:
        for st, version in _statements(doc):
            effect = st.get("Effect")
            if effect not in ("Allow", "Deny"):
                continue
            if is_resource and not _principal_matches(st, principal, account, str(effect)):
                continue
            label = f"statement {st['Sid']!r}" if st.get("Sid") else "a statement"
            try:
                hit = _applies(st, ask, keys, version)
            except _Unresolved as e:
                (maybe_deny if effect == "Deny" else maybe_allow).append(f"{label} ({e.what})")
                continue
            if hit and effect == "Deny":
                deny = True
            elif hit:
                allow = True
    if deny:
        return DENIED, ""
    if allow and maybe_deny:
        return UNKNOWN, f"a Deny could apply: {maybe_deny[0]} is not evaluated locally"
    if allow:
        return ALLOWED, ""
    if maybe_allow:
        return UNKNOWN, f"only {maybe_allow[0]} could allow it, and it is not evaluated locally"
    return DENIED, ""


def region_context(ctx: Context, **keys: str) -> tuple[tuple[str, str], ...]:
    """The request context DCP's calls carry: the region run.py's session asks in, and ``keys``."""
    return (("aws:RequestedRegion", ctx.region), *keys.items())


def bucket_policy(ctx: Context, bucket: str) -> tuple[str | None, bool]:
    """The bucket's policy as JSON (or None) for the simulator and the local evaluation, and whether it could
    be read: a grant there counts as much as one in the principal's own policies."""
    try:
        doc = s3.policy(ctx, bucket)
    except Exception:
        return None, False
    return (json.dumps(doc, sort_keys=True) if doc else None), True


def simulate(ctx: Context, arn: str, asks: Iterable[Ask]) -> dict[Ask, Verdict]:
    """Whether ``arn`` may do each ask: the simulator's answer, else a local evaluation of the principal's
    own policies (and the resource's policy)."""
    asks = list(dict.fromkeys(asks))
    groups: dict[tuple[tuple[tuple[str, str], ...], str | None], list[Ask]] = {}
    for a in asks:
        groups.setdefault((a.context, a.resource_policy), []).append(a)

    def call(key: tuple[tuple[tuple[str, str], ...], str | None], items: list[Ask]) -> iam.Simulation:
        asked = {k.lower() for k, _ in key[0]}
        context = key[0] + tuple((k, v) for k, v in principal_keys(arn).items() if k.lower() not in asked)
        return iam.Simulation(tuple(dict.fromkeys(a.action for a in items)),
                              tuple(dict.fromkeys(a.resource for a in items)), context, key[1])

    for key, items in groups.items():
        ctx.facts.prefetch(iam.simulate, arn, call(key, items))
    # The fallback's reads start with the simulator's call, not after it: waiting for its answer costs a
    # round trip, and where the simulator works they are a few spare reads (which cost nothing).
    ctx.facts.prefetch(iam.identity_policies, arn)
    ctx.facts.prefetch(iam.permissions_boundary, arn)
    answers = {key: iam.simulate(ctx, arn, call(key, items)) for key, items in groups.items()}
    out: dict[Ask, Verdict] = {}
    if all(answer is not None for answer in answers.values()):
        for key, items in groups.items():
            answer = answers[key]
            assert answer is not None
            for a in items:
                found = answer.get((a.action, a.resource))
                if found is None:   # an answer that does not name this pair decides nothing about it
                    out[a] = Verdict(UNKNOWN, False, "the simulator's answer does not name it")
                    continue
                decision, missing = found
                if decision == "allowed":
                    out[a] = Verdict(ALLOWED, False)
                elif decision == "implicitDeny" and missing:
                    out[a] = Verdict(UNKNOWN, False, "the simulator needs the context key(s) "
                                     + ", ".join(missing))
                else:
                    out[a] = Verdict(DENIED, False)
        return out
    try:
        docs = list(iam.identity_policies(ctx, arn))
    except Exception as e:
        if code_of(e) != "NoSuchEntity":
            raise   # AccessDenied becomes the runner's "cannot verify: needs …"
        return {a: Verdict(UNKNOWN, True, f"IAM does not know {arn.split(':', 5)[-1]} (NoSuchEntity), so its "
                           "policies cannot be read") for a in asks}
    boundary_arn = iam.permissions_boundary(ctx, arn)
    boundary = iam.managed_policy(ctx, boundary_arn) if boundary_arn else None
    for a in asks:
        rp = json.loads(a.resource_policy) if a.resource_policy else None
        rp = rp if isinstance(rp, dict) else None
        decision, reason = evaluate(docs, a, arn, rp)
        if boundary is not None and decision != DENIED:
            decision, reason = within_boundary(decision, reason, evaluate([boundary], a, arn),
                                               rp is not None and evaluate([], a, arn, rp)[0] == ALLOWED)
            out[a] = Verdict(decision, True, reason)
        else:
            out[a] = Verdict(decision, True, reason)
    return out


def within_boundary(decision: str, reason: str, bounded: tuple[str, str], resource_grant: bool) -> tuple[str, str]:
    """Combine the identity decision with the permissions boundary's: both must allow. A same-account resource
    policy that names the principal itself is not limited by the boundary (for users; for role sessions it
    is), so a boundary's denial of what such a grant allows is left unconfirmed."""
    b_decision, b_reason = bounded
    if b_decision == DENIED:
        if resource_grant:
            return UNKNOWN, "the permissions boundary does not allow it, and a resource policy grants it directly"
        return DENIED, "outside the permissions boundary"
    if b_decision == UNKNOWN:
        return UNKNOWN, f"in the permissions boundary: {b_reason}"
    return decision, reason


LOCAL_NOTE = ("local evaluation of your IAM policies; the policy simulator was unavailable, and SCPs and "
              "session policies are not seen")


def judge(verdicts: dict[Ask, Verdict], describe: Callable[[Ask], str], fix: str,
          *, blocker: bool = True) -> Finding | None:
    """The finding for a set of verdicts, or None when all are allowed. Only the simulator's denial fails a
    BLOCKER check: a local denial, and any answer that cannot be confirmed, warn."""
    denied = [a for a, v in verdicts.items() if v.decision == DENIED]
    unknown = [(a, v) for a, v in verdicts.items() if v.decision == UNKNOWN]
    sim_denied = [a for a in denied if not verdicts[a].local]
    local_denied = [a for a in denied if verdicts[a].local]
    if sim_denied:
        msg = f"denied (IAM policy simulator): {'; '.join(describe(a) for a in sim_denied[:5])}"
        msg += f" and {len(sim_denied) - 5} more" if len(sim_denied) > 5 else ""
        return fail(msg, fix) if blocker else warn(msg, fix)
    if local_denied:
        msg = f"denied ({LOCAL_NOTE}): {'; '.join(describe(a) for a in local_denied[:5])}"
        msg += f" and {len(local_denied) - 5} more" if len(local_denied) > 5 else ""
        return warn(msg, fix)
    if unknown:
        a, v = unknown[0]
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        return warn(f"cannot confirm {describe(a)}{more}: {v.reason}", fix)
    return None


def how(verdicts: dict[Ask, Verdict]) -> str:
    return "local evaluation" if any(v.local for v in verdicts.values()) else "IAM policy simulator"
