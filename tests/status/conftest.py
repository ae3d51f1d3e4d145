"""Fixtures of the status tests: the fleet-history stand-in in front of moto, and the agent run in-process."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

from agent.cli import main
from rig.fleethistory import FleetHistoryStandIn
from rig.moto_server import MotoServer
from rig.seed import DcpAccount


@pytest.fixture(scope="session")
def history_standin(moto: MotoServer) -> Iterator[FleetHistoryStandIn]:
    with FleetHistoryStandIn(moto.endpoint) as standin:
        yield standin


@pytest.fixture
def run_account(account: DcpAccount, history_standin: FleetHistoryStandIn,
                monkeypatch: pytest.MonkeyPatch) -> DcpAccount:
    """The healthy account, with the agent's AWS requests going through the fleet-history stand-in."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", history_standin.endpoint)
    account.extra_env["AWS_ENDPOINT_URL"] = history_standin.endpoint
    return account


def agent(*argv: str) -> tuple[int, str, str]:
    """``dcp-agent ARGV`` in-process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def status(acct: DcpAccount, *extra: str) -> tuple[int, dict[str, Any]]:
    code, out, err = agent("status", "--json", "--settings", str(acct.settings), *extra)
    assert out.strip(), f"no JSON (exit {code}): {err}"
    return code, json.loads(out)
