"""fix and fleet per project: from an empty account, ``dcp-agent fix --apply`` then ``dcp-agent fleet`` then
``check`` leaves only what the plan listed for a person (synthetic clones: no mirror needed)."""

from __future__ import annotations

import pytest

from agent import settings as settings_mod
from agent.cli import main
from agent.context import Context
from agent.fix.plan import Kind
from agent.fix.planner import Options, make_plan
from agent.model import Status
from rig.seed import DcpAccount
from rig.siblings import as_sibling
from tests.agent.harness import run_agent

CIDR = "203.0.113.7/32"


@pytest.mark.parametrize("key", ["something", "fiji", "omezarr"])
def test_fix_then_fleet_leaves_only_what_the_plan_gave_a_person(empty_account: DcpAccount, key: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    sib = as_sibling(empty_account, key)
    s = settings_mod.load(sib.settings)
    plan, _ = make_plan(s, Context(s), Options(ssh_cidr=CIDR))
    for_a_person = {c for st in plan.steps if st.kind == Kind.HUMAN for c in st.codes}
    assert main(["fix", "--apply", "--yes", "--ssh-cidr", CIDR, "--settings", str(sib.settings)]) == 0, \
        capsys.readouterr()
    assert main(["fleet", "--settings", str(sib.settings)]) == 0, capsys.readouterr()
    capsys.readouterr()
    results = run_agent(sib, job=sib.job)
    left = {c for c, r in results.items() if r.status in (Status.FAIL, Status.ERROR)
            or (r.status == Status.WARN and r.severity in ("blocker", "high"))}
    # (the plan's F steps, "write a fleet file", were done by dcp-agent fleet: they pass now)
    assert left <= for_a_person, {c: results[c].message for c in left - for_a_person}
    assert all(results[c].status == Status.PASS for c in ("F01", "F03", "F05", "N01", "N02"))
    # Nothing DCP-only was made: the bucket is the project's one AWS_BUCKET.
    names = {b["Name"] for b in sib.client("s3").list_buckets()["Buckets"]}
    assert names == {sib.bucket}
    # Distributed-Something's ASSIGN_IP = 'False' keeps the file's public addresses: fleet used the IGW subnets.
    assert results["N05"].status == Status.PASS
