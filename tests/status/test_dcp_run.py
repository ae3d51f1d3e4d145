"""A DCP run end to end on the emulator, with DCP's own run.py (exported from the local mirror, never part of
this project): setup, submitJob (50 groups), startCluster, a stand-in worker doing to the queue and the logs what
cp-worker.py does, and run.py monitor's cleanup; dcp-agent status is asked at each point, then requeue."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rig.dcprun import export_dcp, job_file, mirror_missing, run_py
from rig.dcpworker import DcpWorker
from rig.seed import APP_NAME, DLQ, DcpAccount
from tests.status.conftest import agent, status

GROUPS = 50


@pytest.fixture
def dcp(run_account: DcpAccount, tmp_path: Path) -> Path:
    reason = mirror_missing()
    if reason:
        pytest.skip(f"DCP's run.py is needed for this test: {reason}")
    work = export_dcp(tmp_path / "Distributed-CellProfiler")
    shutil.copy(run_account.config_py, work / "config.py")
    run_account.clone = work                      # the agent follows this clone (its monitor file)
    run_account.write_settings()
    return work


def run(work: Path, acct: DcpAccount, *args: str) -> str:
    p = run_py(work, *args, env=acct.env())
    assert p.returncode == 0, f"run.py {' '.join(args)}:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    return p.stdout


def test_a_dcp_run_from_setup_to_monitor_and_back(dcp: Path, run_account: DcpAccount) -> None:
    acct = run_account
    jobs = job_file(dcp / "files" / "statusJob.json", GROUPS)
    groups = [g["Metadata"] for g in json.loads(jobs.read_text())["groups"]]
    run(dcp, acct, "setup")
    run(dcp, acct, "submitJob", str(jobs))
    out = run(dcp, acct, "startCluster", str(acct.fleet))
    assert "Spot fleet successfully created" in out
    monitor = json.loads((dcp / "files" / f"{APP_NAME}SpotFleetRequestId.json").read_text())

    # Before any job is done: the fleet is up, every job waits.
    _, doc = status(acct, "--job", str(jobs))
    assert doc["phase"] == "fleet starting" and doc["fleets"] == [monitor["MONITOR_FLEET_ID"]]
    assert doc["jobs"] == {"total": GROUPS, "waiting": GROUPS, "in_progress": 0, "done": 0, "failed": 0}
    assert doc["workers"]["target"] == doc["workers"]["running"] == 2 and doc["workers"]["tasks"]["desired"] == 2

    sqs = acct.client("sqs")
    queue = sqs.get_queue_url(QueueName=f"{APP_NAME}Queue")["QueueUrl"]
    failing = {groups[3]: "empty-image-set", groups[11]: "metadata-mismatch", groups[12]: "metadata-mismatch",
               groups[30]: "job-groups-syntax"}
    worker = DcpWorker(acct.client, APP_NAME, queue, APP_NAME, acct.bucket, failing)
    fleet = acct.client("ec2").describe_spot_fleet_instances(SpotFleetRequestId=monitor["MONITOR_FLEET_ID"])
    worker.register("dcp-cluster", [i["InstanceId"] for i in fleet["ActiveInstances"]])

    # Part way.
    worker.take(20)
    _, doc = status(acct, "--job", str(jobs))
    assert doc["phase"] == "running" and 0 < doc["jobs"]["done"] < GROUPS
    assert doc["workers"]["registered"] == 2 and doc["cost"]["per_hour"] >= 0

    # Every job taken; the failures (JOB_RETRIES = 3 receives each) in the dead-letter queue.
    while worker.take():
        pass
    code, doc = status(acct, "--job", str(jobs))
    assert doc["jobs"] == {"total": GROUPS, "waiting": 0, "in_progress": 0, "done": GROUPS - 4, "failed": 4}
    assert {j["metadata"]: j["cause"] for j in doc["failed_jobs"]} == failing
    problems = {p["code"]: p for p in doc["problems"]}
    assert "LoadData module" in problems["failed-empty-image-set"]["fix"]
    assert "2 job(s)" in problems["failed-metadata-mismatch"]["message"]
    assert "leading zeros" in problems["failed-metadata-mismatch"]["fix"]
    assert "without spaces" in problems["failed-job-groups-syntax"]["fix"]
    assert doc["phase"] == "finished" and "fleet-still-running" in problems and code == 1

    # run.py monitor cleans up: service, fleet, queue gone; the failed jobs stay in the dead-letter queue.
    out = run(dcp, acct, "monitor", f"files/{APP_NAME}SpotFleetRequestId.json")
    assert "Job done." in out
    _, doc = status(acct, "--job", str(jobs))
    assert doc["phase"] == "finished" and doc["jobs"]["failed"] == 4 and doc["fleets"] == []
    assert "fleet-still-running" not in {p["code"] for p in doc["problems"]}
    assert doc["cost"]["per_hour"] == 0 and doc["eta"] is None

    # Requeue: the job queue must exist again (run.py setup), then exactly the four failed jobs move back.
    code, _, err = agent("requeue", "--settings", str(acct.settings))
    assert code == 2 and "run.py setup" in err
    run(dcp, acct, "setup")
    code, out, _ = agent("requeue", "--apply", "--json", "--settings", str(acct.settings))
    result = json.loads(out)
    assert code == 0 and result["applied"]["method"] == "receive-send-delete" and result["applied"]["moved"] == 4
    queue = sqs.get_queue_url(QueueName=f"{APP_NAME}Queue")["QueueUrl"]
    back = []
    while got := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
        back += [json.loads(m["Body"])["Metadata"] for m in got]
    assert sorted(back) == sorted(failing)
    dlq = sqs.get_queue_url(QueueName=DLQ)["QueueUrl"]
    assert sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["All"])["Attributes"][
        "ApproximateNumberOfMessages"] == "0"
