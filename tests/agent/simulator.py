"""A loopback stand-in for IAM's policy simulator, in front of moto (which has no SimulatePrincipalPolicy).

It answers ``SimulatePrincipalPolicy`` as AWS documents it (IAM API reference, SimulatePrincipalPolicy and
EvaluationResult): one ``EvaluationResults`` member per action, with ``EvalResourceName``, ``EvalDecision``
(allowed | explicitDeny | implicitDeny), ``MissingContextValues`` (the condition keys a decision needed that
the request's ``ContextEntries`` did not hold; the decision is then implicitDeny) and
``ResourceSpecificResults`` per resource; and it pages them (``IsTruncated`` and ``Marker``), here one member a
page, as IAM may. The decisions come from a test's ``decide`` function, not from policies: this stand-in proves
what the agent asks (context entries, resource ARNs, the resource policy) and how it reads the answer, not
AWS's policy logic. Every other request goes on to moto untouched. Tests only (moto does not check signatures).
"""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from xml.sax.saxutils import escape

from rig.proxy import LoopbackServer, ask_upstream, read_body, reply


@dataclass
class Asked:
    """One SimulatePrincipalPolicy request as the stand-in received it."""

    source: str
    actions: list[str]
    resources: list[str]
    context: dict[str, list[str]]
    resource_policy: str | None
    marker: int = 0
    types: dict[str, str] = field(default_factory=dict)


# (action, resource, context, resource policy) -> (EvalDecision, MissingContextValues)
Decide = Callable[[str, str, dict[str, list[str]], str | None], tuple[str, list[str]]]


def _members(form: dict[str, list[str]], prefix: str) -> list[str]:
    out = []
    n = 1
    while f"{prefix}.member.{n}" in form:
        out.append(form[f"{prefix}.member.{n}"][0])
        n += 1
    return out


def parse(form: dict[str, list[str]]) -> Asked:
    context: dict[str, list[str]] = {}
    types: dict[str, str] = {}
    n = 1
    while f"ContextEntries.member.{n}.ContextKeyName" in form:
        key = form[f"ContextEntries.member.{n}.ContextKeyName"][0]
        context[key] = _members(form, f"ContextEntries.member.{n}.ContextKeyValues")
        types[key] = (form.get(f"ContextEntries.member.{n}.ContextKeyType") or [""])[0]
        n += 1
    return Asked((form.get("PolicySourceArn") or [""])[0], _members(form, "ActionNames"),
                 _members(form, "ResourceArns") or ["*"], context, (form.get("ResourcePolicy") or [""])[0] or None,
                 int((form.get("Marker") or ["0"])[0] or 0), types)


def _missing(keys: list[str]) -> str:
    return "<MissingContextValues>" + "".join(f"<member>{escape(k)}</member>" for k in keys) + "</MissingContextValues>"


def answer(asked: Asked, decide: Decide) -> bytes:
    """The page of the simulator's answer that ``asked.marker`` points at: one action's result."""
    i = asked.marker
    action = asked.actions[i]
    specific = []
    overall = "allowed"
    all_missing: list[str] = []
    for resource in asked.resources:
        decision, missing = decide(action, resource, asked.context, asked.resource_policy)
        specific.append(f"<member><EvalResourceName>{escape(resource)}</EvalResourceName>"
                        f"<EvalResourceDecision>{decision}</EvalResourceDecision><MatchedStatements/>"
                        f"{_missing(missing)}</member>")
        all_missing += [k for k in missing if k not in all_missing]
        if decision != "allowed":
            overall = decision if overall in ("allowed", "implicitDeny") else overall
    more = i + 1 < len(asked.actions)
    return (
        '<SimulatePrincipalPolicyResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
        "<SimulatePrincipalPolicyResult>"
        f"<IsTruncated>{'true' if more else 'false'}</IsTruncated>" + (f"<Marker>{i + 1}</Marker>" if more else "")
        + "<EvaluationResults><member>"
        f"<EvalActionName>{escape(action)}</EvalActionName>"
        f"<EvalResourceName>{escape(asked.resources[0])}</EvalResourceName>"
        f"<EvalDecision>{overall}</EvalDecision><MatchedStatements/>{_missing(all_missing)}"
        f"<ResourceSpecificResults>{''.join(specific)}</ResourceSpecificResults>"
        "</member></EvaluationResults>"
        "</SimulatePrincipalPolicyResult>"
        "<ResponseMetadata><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ResponseMetadata>"
        "</SimulatePrincipalPolicyResponse>").encode()


class SimulatorStandIn(LoopbackServer):
    """IAM's SimulatePrincipalPolicy answered by ``decide``, a page per action; the rest forwarded to ``upstream``
    (loopback only). ``asked`` holds every simulator request, pages included."""

    def __init__(self, upstream: str, decide: Decide) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        assert self.upstream.hostname in ("127.0.0.1", "localhost", "::1"), "upstream must be loopback"
        self.decide = decide
        self.asked: list[Asked] = []
        self._lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _serve(self) -> None:
                body = read_body(self)
                form = urllib.parse.parse_qs(body.decode(errors="replace"), keep_blank_values=True)
                if self.command == "POST" and (form.get("Action") or [""])[0] == "SimulatePrincipalPolicy":
                    asked = parse(form)
                    with stand_in._lock:
                        stand_in.asked.append(asked)
                    data = answer(asked, stand_in.decide)
                    reply(self, (200, "OK", [("Content-Type", "text/xml")], data))
                    return
                reply(self, ask_upstream(stand_in.upstream, self, body))

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _serve

        super().__init__(Handler, "simulator")
