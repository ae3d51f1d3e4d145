"""Every broken-account case of the catalogue (tests/agent/cases.py) through fix: the plan names the broken
check (as a change, or as a step for a person), changes only what is broken, and an apply cures what it
changes. The healthy account plans no change (tests/fix/test_fix.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent import settings as settings_mod
from agent.context import Context
from agent.fix.plan import Kind, Plan
from agent.fix.planner import Options, apply, make_plan
from agent.model import Status
from rig.quota_stub import QuotaStub
from rig.seed import OPERATOR_IP, DcpAccount
from tests.agent.cases import CASES, Case, Env
from tests.agent.harness import run_agent

# The checks fix can cure by itself (the rest of a plan is for a person).
CURABLE = {"C07", "C09", "C10", "R01", "R02", "R03", "R04", "R05", "R07", "S02", "S05", "Q02", "Q03", "N04", "N09"}
BROKEN = [c for c in CASES if c.expect in ("fail", "warn")]


def _plan(account: DcpAccount, case: Case) -> tuple[Plan, Context, set[str]]:
    s = settings_mod.load(account.settings)
    ctx = Context(s, job=account.job if case.job else None)
    for f, fn in (case.inject(account) if case.inject else {}).items():
        ctx.facts.override(f, fn)
    plan, outcome = make_plan(s, ctx, Options(ssh_cidr=f"{OPERATOR_IP}/32"))
    broken = {r.code for r in outcome.results if r.status in (Status.FAIL, Status.WARN, Status.ERROR)}
    return plan, ctx, broken


@pytest.mark.parametrize("case", [c for c in BROKEN if c.code in CURABLE], ids=lambda c: c.id)
def test_fix_cures_what_it_plans(case: Case, account: DcpAccount, quotas: QuotaStub, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    case.mutate(account, Env(tmp_path, monkeypatch, quotas))
    plan, ctx, broken = _plan(account, case)
    assert not plan.problems, plan.problems
    assert case.code in plan.codes(), f"{case.code} is not in the plan"
    for step in plan.changes:
        assert set(step.codes) & broken, f"{step.resource}: {step.change} changes what is not broken"
    if case.code in {c for s in plan.human for c in s.codes}:
        return   # for a person (e.g. a key pair name that differs from SSH_KEY_NAME): listed, not changed
    applied = apply(plan, ctx)
    assert not applied.failed, applied.failed
    r = run_agent(account, [case.code])[case.code]
    assert r.status == Status.PASS, f"{case.code} after fix: {r.status}: {r.message}"


# One case per check of the groups fix works on (all of them would take minutes; the first one of each shows the rule).
FIRST: dict[str, Case] = {c.code: c for c in reversed(BROKEN) if c.code not in CURABLE and c.code[0] in "CRSQN"}
OTHERS = [FIRST[code] for code in sorted(FIRST)]


@pytest.mark.parametrize("case", OTHERS, ids=lambda c: c.id)
def test_fix_lists_what_it_cannot_cure(case: Case, account: DcpAccount, quotas: QuotaStub, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    case.mutate(account, Env(tmp_path, monkeypatch, quotas))
    plan, _, broken = _plan(account, case)
    if plan.problems:
        return   # bad input (no credentials, no region): one line each, nothing planned (test_fix.py)
    for step in plan.changes:
        assert set(step.codes) & broken, f"{step.resource}: {step.change} changes what is not broken"
    severe = case.expect == "fail"
    if severe:
        assert case.code in {c for s in plan.steps for c in s.codes if s.kind in (Kind.HUMAN, Kind.CREATE,
                                                                                    Kind.MODIFY)}, case.code
