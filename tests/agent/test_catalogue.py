"""The catalogue against moto server: a healthy account passes, each breakage is caught by its check."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.model import Status
from agent.registry import all_checks
from rig.quota_stub import QuotaStub
from rig.seed import DcpAccount
from tests.agent import test_least_privilege
from tests.agent.cases import CASES, Case, Env
from tests.agent.harness import run_agent

# Catalogue section B rows and the checks that must catch them.
SECTION_B = {"#178": {"F03", "R03", "I05"}, "#85": {"R04"}, "#131": {"R04"}, "#151": {"F03", "F05", "F06"},
             "#161": {"F03", "F05"}, "#157": {"Z01"}, "#126": {"N05", "Z03"}, "#184": {"N05"},
             "#200": {"N05", "R02", "S08", "F07"}, "#144": {"S05", "S04"}, "#84": {"S07", "S04"},
             "#186": {"K09", "C04"}, "#145": {"C04", "R08"}, "#115": {"N07", "Z04"}, "#216": {"F04", "Z03"},
             "#107": {"Z02", "Z04", "N08"}, "#93": {"M06"}}


@pytest.fixture(scope="module")
def healthy(moto: object, quotas: QuotaStub, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Status]:
    """Statuses of every default check on a healthy account (computed once for the module)."""
    mp = pytest.MonkeyPatch()
    try:
        from rig.seed import seed_healthy_account
        from tests.conftest import account as _  # noqa: F401 - documentation only: same seeding path

        acct = seed_healthy_account(moto.endpoint, tmp_path_factory.mktemp("healthy") / "home",  # type: ignore[attr-defined]
                                    account_id="299999999999")
        acct.extra_env["AWS_ENDPOINT_URL_SERVICE_QUOTAS"] = quotas.endpoint
        import os

        for k in [k for k in os.environ if k.startswith("AWS_")]:
            mp.delenv(k)
        for k, v in acct.env().items():
            mp.setenv(k, v)
        results = run_agent(acct)
    finally:
        mp.undo()
    return {code: r.status for code, r in results.items()}


def test_healthy_account_has_no_failures(healthy: dict[str, Status]) -> None:
    bad = {c: s for c, s in healthy.items() if s in (Status.FAIL, Status.ERROR)}
    assert not bad
    # The AWS-backed groups really ran: credentials, IAM, S3, SQS, network and quota checks passed.
    for code in ("I01", "R01", "R04", "S02", "S05", "Q02", "N01", "N05", "Z01", "F03", "F05"):
        assert healthy[code] == Status.PASS, code


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_catalogue_case(case: Case, account: DcpAccount, quotas: QuotaStub, tmp_path: Path,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "case"
    work.mkdir()
    case.mutate(account, Env(work, monkeypatch, quotas))
    results = run_agent(account, [case.code, *case.extra], job=account.job if case.job else None,
                        inject=case.inject(account) if case.inject else None)
    r = results[case.code]
    assert r.status == case.expect, f"{case.code} is {r.status}: {r.message}"
    if case.contains:
        assert case.contains in r.message + " " + r.fix
    if case.expect in ("fail", "warn"):
        assert r.fix, f"{case.code} {r.status} without a fix"


# Shown failing outside CASES, because it needs moto's IAM enforcement (a server of its own).
FAILS_ELSEWHERE = {"N10": test_least_privilege.test_dry_run_launch_fails_without_run_instances}


def test_every_check_fails_somewhere_and_passes_somewhere(healthy: dict[str, Status]) -> None:
    """Meta-test: each registered check has a case where it fails or warns, and one where it passes."""
    bad_cases = {c.code for c in CASES if c.expect in ("fail", "warn")} | set(FAILS_ELSEWHERE)
    good_cases = {c.code for c in CASES if c.expect == "pass"} | {c for c, s in healthy.items() if s == Status.PASS}
    codes = {c.code for c in all_checks()}
    assert codes - bad_cases == set(), "checks never shown failing or warning"
    assert codes - good_cases == set(), "checks never shown passing"


def test_section_b_reports_are_each_caught() -> None:
    caught: dict[str, set[str]] = {}
    for c in CASES:
        if c.issue and c.expect in ("fail", "warn"):
            caught.setdefault(c.issue, set()).add(c.code)
    for issue, codes in SECTION_B.items():
        assert caught.get(issue, set()) & codes, f"{issue}: no case where {sorted(codes)} catches it"
