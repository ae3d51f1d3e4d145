"""Every user-facing command on bad or awkward input (the table in cases_*.py): no traceback, the documented
exit status, one line on stderr that names the problem, a bounded time, and nothing outside the command's
target changed (HOME, the git work tree, the emulated account)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.moto_server import MotoServer
from rig.quota_stub import QuotaStub
from rig.seed import DcpAccount, seed_healthy_account
from tests.edges import cases_agent, cases_bootstrap, cases_tasks
from tests.edges.harness import Case, account_state, check_ran, run_case, tree_state, work_tree_state

CASES: list[Case] = [*cases_agent.CASES, *cases_bootstrap.CASES, *cases_tasks.CASES]
ALWAYS_WRITABLE = (".cache/dcp-agent/errors",)   # the error boundary's tracebacks: its intended target


def test_the_table_is_large_and_its_names_unique() -> None:
    assert len(CASES) >= 150
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.fixture(scope="module")
def shared(moto: MotoServer, quotas: QuotaStub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DcpAccount]:
    """One healthy account for the whole table (each row leaves it as it found it, which each row checks)."""
    acct = seed_healthy_account(moto.endpoint, tmp_path_factory.mktemp("edges") / "home", account_id="299999999901")
    acct.extra_env["AWS_ENDPOINT_URL_SERVICE_QUOTAS"] = quotas.endpoint
    yield acct


def _home_view(state: dict[str, tuple[int, str]], allowed: tuple[str, ...]) -> dict[str, tuple[int, str]]:
    return {k: v for k, v in state.items() if not any(k == a or k.startswith(a + "/") for a in allowed)}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_edge(case: Case, shared: DcpAccount, tmp_path: Path) -> None:
    if case.argv[0] == "dcp-agent":
        env, home = shared.env(), Path(shared.home)
    else:   # the tasks and bootstrap get a home of their own, so that a write to it would show
        home = tmp_path / "home"
        home.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
        env["HOME"] = str(home)
    allowed = ALWAYS_WRITABLE + case.may_change
    before_home = _home_view(tree_state(home), allowed)
    before_tree = work_tree_state()
    before_account = account_state(shared.client)
    work = tmp_path / "work"
    work.mkdir()
    ran = run_case(case, work, env)
    problems = check_ran(case, ran)
    if _home_view(tree_state(home), allowed) != before_home:
        changed = sorted(set(tree_state(home).items()) ^ set(before_home.items()))[:3]
        problems.append(f"HOME changed: {changed}")
    if work_tree_state() != before_tree:
        problems.append("the git work tree changed")
    if account_state(shared.client) != before_account:
        problems.append("the emulated account changed")
    assert not problems, f"{case.name}: {'; '.join(problems)}\nexit {ran.code}\nstderr: {ran.stderr[-1500:]}\n" \
                         f"stdout: {ran.stdout[-800:]}"
