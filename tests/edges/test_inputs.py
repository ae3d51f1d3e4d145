"""Every user-facing command on bad or awkward input (the table in cases_*.py): no traceback, the documented
exit status, one line on stderr that names the problem, a bounded time, and nothing outside the command's
target changed (HOME, the git work tree, the emulated account)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from rig.moto_server import MotoServer
from rig.quota_stub import QuotaStub
from rig.seed import DcpAccount, seed_healthy_account
from tests.edges import cases_agent, cases_bootstrap, cases_tasks
from tests.edges.harness import Case, account_state, check_ran, run_case, tree_state, work_tree_state

CASES: list[Case] = [*cases_agent.CASES, *cases_bootstrap.CASES, *cases_tasks.CASES]
# The error boundary's tracebacks (its intended target) and the copies of botocore's public model files
# (agent.facts.aws._parsed), which a run that got as far as creating a client may leave: caches, not state.
ALWAYS_WRITABLE = (".cache/dcp-agent/errors", ".cache/dcp-agent/models")


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
    """The tree without the allowed paths, their contents and the directories that lead to them."""
    return {k: v for k, v in state.items()
            if not any(k == a or k.startswith(a + "/") or a.startswith(k + "/") for a in allowed)}


def _one(case: Case, shared: DcpAccount, base: Path) -> list[str]:
    """Run one row in a directory of its own; what is wrong with it ([] when all is well)."""
    work = base / "work"
    work.mkdir(parents=True)
    if case.argv[0] == "dcp-agent":
        env, home = shared.env(), None   # the shared home: compared around the whole table
    else:   # the tasks and bootstrap get a home of their own, so that a write to it would show
        home = base / "home"
        home.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
        env["HOME"] = str(home)
    allowed = ALWAYS_WRITABLE + case.may_change
    before = _home_view(tree_state(home), allowed) if home else {}
    ran = run_case(case, work, env)
    problems = check_ran(case, ran)
    if home and _home_view(tree_state(home), allowed) != before:
        problems.append(f"HOME changed: {sorted(set(tree_state(home).items()) ^ set(before.items()))[:3]}")
    if problems:
        return [f"{case.name}: {'; '.join(problems)}\n  exit {ran.code}; stderr: {ran.stderr[-600:]!r}; "
                f"stdout: {ran.stdout[-300:]!r}"]
    return []


@pytest.mark.parametrize("table", [cases_agent, cases_bootstrap, cases_tasks], ids=["dcp-agent", "bootstrap", "tasks"])
def test_edges(table: Any, shared: DcpAccount, tmp_path: Path) -> None:
    """Each row of one command's table, four at a time; then HOME, the work tree and the account as they were."""
    rows: list[Case] = table.CASES
    allowed = ALWAYS_WRITABLE + tuple(p for c in rows for p in c.may_change)
    home = Path(shared.home)
    before_home = _home_view(tree_state(home), allowed)
    before_tree = work_tree_state()
    before_account = account_state(shared.client)
    with ThreadPoolExecutor(4) as pool:
        problems = [p for found in pool.map(lambda ic: _one(ic[1], shared, tmp_path / str(ic[0])), enumerate(rows))
                    for p in found]
    if _home_view(tree_state(home), allowed) != before_home:
        problems.append(f"the shared HOME changed: {sorted(set(tree_state(home).items()) ^ set(before_home.items()))[:3]}")
    if work_tree_state() != before_tree:
        problems.append("the git work tree changed")
    if account_state(shared.client) != before_account:
        problems.append("the emulated account changed")
    assert not problems, f"{len(problems)} of {len(rows)} rows:\n" + "\n".join(problems)
