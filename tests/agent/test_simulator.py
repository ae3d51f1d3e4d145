"""The policy simulator's path of I06, R02, R06 and S08, through a loopback stand-in (tests/agent/simulator.py)
that answers SimulatePrincipalPolicy as AWS documents it: moto has no simulator.

AWS's simulator evaluates a condition only on the context keys the request supplies: the PassRole statement AWS
recommends (``StringEquals iam:PassedToService``) comes back implicitDeny, with the key in MissingContextValues,
when the caller sends no ContextEntries. The stand-in's ``decide`` answers exactly so.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent.model import Status
from rig.moto_server import MotoServer
from rig.seed import FLEET_ROLE, INSTANCE_ROLE, DcpAccount
from tests.agent.harness import run_agent
from tests.agent.simulator import SimulatorStandIn

SERVICE = {FLEET_ROLE: "spotfleet.amazonaws.com", INSTANCE_ROLE: "ec2.amazonaws.com"}


def pass_role_by_service(action: str, resource: str, context: dict[str, list[str]],
                         policy: str | None) -> tuple[str, list[str]]:
    """A least-privilege operator: iam:PassRole on each DCP role only to the service that uses it (conditioned
    on iam:PassedToService), everything else allowed."""
    if action != "iam:PassRole":
        return "allowed", []
    wanted = SERVICE.get(resource.rsplit("/", 1)[-1])
    if wanted is None:
        return "implicitDeny", []
    if "iam:PassedToService" not in context:
        return "implicitDeny", ["iam:PassedToService"]
    return ("allowed" if context["iam:PassedToService"] == [wanted] else "implicitDeny"), []


@pytest.fixture
def simulator(moto: MotoServer, account: DcpAccount, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatorStandIn]:
    with SimulatorStandIn(moto.endpoint, pass_role_by_service) as stand_in:
        monkeypatch.setenv("AWS_ENDPOINT_URL_IAM", stand_in.endpoint)
        yield stand_in


def test_pass_role_limited_by_passed_to_service_passes(account: DcpAccount, simulator: SimulatorStandIn) -> None:
    """R06 sends iam:PassedToService for each role (and the role ARNs, not '*'): the recommended policy passes."""
    r = run_agent(account, ["R06"])["R06"]
    assert r.status == Status.PASS, r.message
    assert "simulator" in r.message
    pass_role = [a for a in simulator.asked if "iam:PassRole" in a.actions]
    sent = {(res, tuple(a.context.get("iam:PassedToService", []))) for a in pass_role for res in a.resources}
    arn = f"arn:aws:iam::{account.account_id}:role/"
    assert sent == {(arn + FLEET_ROLE, ("spotfleet.amazonaws.com",)), (arn + INSTANCE_ROLE, ("ec2.amazonaws.com",))}
    assert all(a.context.get("aws:RequestedRegion") == [account.region] for a in pass_role)
    # The principal's own keys too, so a policy variable such as ${aws:username} is never reported missing.
    assert all(a.context.get("aws:username") == [account.operator_user] for a in pass_role)
    assert all(a.types.get("aws:SecureTransport") == "boolean" for a in pass_role)


def test_missing_context_values_cannot_confirm(account: DcpAccount, simulator: SimulatorStandIn) -> None:
    """A denial that hangs on a key the agent cannot supply (here aws:SourceIp) is 'cannot confirm', not a fail."""
    simulator.decide = lambda action, resource, context, policy: (
        ("implicitDeny", ["aws:SourceIp"]) if action == "iam:PassRole" else ("allowed", []))
    r = run_agent(account, ["R06"])["R06"]
    assert r.status == Status.WARN, r.message
    assert "cannot confirm" in r.message and "aws:SourceIp" in r.message


def test_the_simulators_denial_fails(account: DcpAccount, simulator: SimulatorStandIn) -> None:
    simulator.decide = lambda action, resource, context, policy: (
        ("explicitDeny", []) if action == "iam:PassRole" and resource.endswith(FLEET_ROLE) else ("allowed", []))
    r = run_agent(account, ["R06"])["R06"]
    assert r.status == Status.FAIL, r.message
    assert FLEET_ROLE in r.message and "simulator" in r.message


def test_every_page_is_read(account: DcpAccount, simulator: SimulatorStandIn) -> None:
    """The stand-in answers one action a page: I06 passes only if the agent followed every Marker."""
    r = run_agent(account, ["I06"])["I06"]
    assert r.status == Status.PASS, r.message
    markers = [a.marker for a in simulator.asked]
    assert max(markers) >= 10, markers
    # The real ARNs of config.py's queue, not '*'.
    resources = {res for a in simulator.asked for res in a.resources}
    assert f"arn:aws:sqs:{account.region}:{account.account_id}:CellPaintingRunQueue" in resources


def test_s08_sends_the_bucket_policy(account: DcpAccount, simulator: SimulatorStandIn) -> None:
    """S08 asks with the bucket's policy as ResourcePolicy (a grant there counts) and on object ARNs."""
    simulator.decide = lambda action, resource, context, policy: (
        ("allowed", []) if not action.startswith("s3:") or (policy and "logs." in policy) else ("implicitDeny", []))
    r = run_agent(account, ["S08"])["S08"]
    assert r.status == Status.PASS, r.message
    s3 = [a for a in simulator.asked if any(x.startswith("s3:") for x in a.actions)]
    assert s3 and all(a.resource_policy for a in s3)
    assert any(res.endswith("/ecsconfigs/CellPaintingRun_ecs.config") for a in s3 for res in a.resources)
