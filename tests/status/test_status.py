"""dcp-agent status on run states seeded directly by the rig (no DCP mirror needed): phase, counts, workers,
spend, and each problem diagnosed with its fix."""

from __future__ import annotations

from rig.dcprun import seed_run
from rig.dcpworker import DcpWorker
from rig.seed import APP_NAME, DcpAccount
from tests.status.conftest import status


def worker(acct: DcpAccount, run: dict, outcomes: dict[str, str] | None = None) -> DcpWorker:
    return DcpWorker(acct.client, APP_NAME, run["queue_url"], APP_NAME, acct.bucket, outcomes or {})


def test_nothing_submitted_is_not_started(run_account: DcpAccount) -> None:
    code, doc = status(run_account)
    assert doc["phase"] == "not started" and doc["jobs"]["waiting"] == 0
    assert doc["problems"] == [] and code == 0


def test_a_run_before_any_job_is_done(run_account: DcpAccount) -> None:
    run = seed_run(run_account, 12)
    _code, doc = status(run_account, "--job", str(run["job_file"]))
    assert doc["app"] == APP_NAME
    assert doc["phase"] == "fleet starting"        # fleet up, nothing taken yet
    assert doc["jobs"] == {"total": 12, "waiting": 12, "in_progress": 0, "done": 0, "failed": 0}
    w = doc["workers"]
    assert (w["target"], w["running"], w["registered"], w["tasks"]) == (2, 2, 0, {"running": 2, "desired": 2})
    assert doc["eta"] is None and doc["fleets"] == [run["fleet_id"]]
    assert set(doc) >= {"app", "phase", "jobs", "workers", "cost", "eta", "problems"}
