"""dcp-agent status on run states seeded directly by the rig (no DCP mirror needed): phase, counts, workers,
spend, and each problem diagnosed with its fix."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from rig.dcprun import seed_run
from rig.dcpworker import DcpWorker
from rig.fleethistory import FleetHistoryStandIn, Record
from rig.seed import APP_NAME, DLQ, DcpAccount
from tests.status.conftest import agent, status


def worker(acct: DcpAccount, run: dict, outcomes: dict[str, str] | None = None,
           twice: frozenset[str] = frozenset()) -> DcpWorker:
    return DcpWorker(acct.client, APP_NAME, run["queue_url"], APP_NAME, acct.bucket, outcomes or {}, twice)


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


def exit_codes_as_ecs_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's stopped tasks have no container exit codes: give them ECS's (137 for a task killed for memory,
    0 for a worker that found the queue empty and exited)."""
    from agent.facts import run

    real = run.stopped_tasks.fn

    def with_exit_codes(ctx: Any, cluster: str, family: str) -> tuple[dict[str, Any], ...]:
        out = []
        for t in real(ctx, cluster, family):
            oom = "OutOfMemory" in str(t.get("stoppedReason"))
            out.append(dict(t, stopCode="EssentialContainerExited", containers=[
                {"name": APP_NAME, "exitCode": 137 if oom else 0, "reason": "OutOfMemoryError" if oom else None}]))
        return tuple(out)

    monkeypatch.setattr(run.stopped_tasks, "fn", with_exit_codes)


def test_part_way_with_failures_each_diagnosed_with_its_fix(run_account: DcpAccount,
                                                             history_standin: FleetHistoryStandIn,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    exit_codes_as_ecs_reports(monkeypatch)
    acct = run_account
    run = seed_run(acct, 20, retries=2)
    g = run["groups"]
    outcomes = {g[0]: "empty-image-set", g[1]: "empty-image-set", g[2]: "metadata-mismatch",
                g[3]: "job-groups-syntax", g[4]: "no-load-data-file", g[5]: "slowdown", g[6]: "s3fs"}
    w = worker(acct, run, outcomes, twice=frozenset({g[7]}))
    arns = w.register("dcp-cluster", run["instances"][:1])           # the second instance never joins
    w.stop_tasks("dcp-cluster", arns[0], "OutOfMemoryError: Container killed due to memory usage", 2)
    w.stop_tasks("dcp-cluster", arns[0], "Essential container in task exited", 3)    # normal ends: exit 0
    history_standin.record(run["fleet_id"], Record("error", "allLaunchSpecsTemporarilyBlacklisted",
                                                   "m5.xlarge, ami-1, Linux/UNIX: insufficient capacity"))
    # Part way: 12 jobs taken (successes deleted, failures back in the queue or already in the DLQ).
    w.take(12)
    _, doc = status(acct, "--job", str(run["job_file"]))
    assert doc["phase"] == "running" and 0 < doc["jobs"]["done"] < 20 and doc["eta"] is not None
    # The rest, and the failures' retries, until the queue is empty: the failed jobs are in the DLQ.
    w.take()
    w.take()
    code, doc = status(acct, "--job", str(run["job_file"]))
    jobs = doc["jobs"]
    assert jobs == {"total": 20, "waiting": 0, "in_progress": 0, "done": 14, "failed": 6}, jobs
    failed = {j["metadata"]: j["cause"] for j in doc["failed_jobs"]}
    assert failed == {g[0]: "empty-image-set", g[1]: "empty-image-set", g[2]: "metadata-mismatch",
                      g[3]: "job-groups-syntax", g[4]: "no-load-data-file", g[6]: "cp-problem"}
    problems = {p["code"]: p for p in doc["problems"]}
    assert "LoadData module" in problems["failed-empty-image-set"]["fix"]
    assert "2 job(s)" in problems["failed-empty-image-set"]["message"]
    assert "leading zeros" in problems["failed-metadata-mismatch"]["fix"]
    assert "without spaces" in problems["failed-job-groups-syntax"]["fix"]
    assert "data_file" in problems["failed-no-load-data-file"]["fix"]
    assert "SECONDS_TO_START" in problems["s3-slowdown"]["fix"]
    assert "DOWNLOAD_FILES" in problems["s3fs-disconnected"]["fix"]
    assert "SQS_MESSAGE_VISIBILITY" in problems["received-twice"]["fix"]
    assert "Plate" in problems["received-twice"]["message"] and "600 s" in problems["received-twice"]["message"]
    assert "insufficient capacity" in problems["fleet-no-capacity"]["message"]
    assert "MACHINE_TYPE" in problems["fleet-no-capacity"]["fix"]
    assert problems["tasks-stopping"]["message"].startswith("2 task(s)")             # the exit-0 stops not counted
    assert "exit code 137" in problems["tasks-stopping"]["message"]
    assert doc["workers"]["registered"] == 1
    assert doc["phase"] == "finished" and code == 1
    assert "fleet-still-running" in problems


def test_tasks_that_exit_0_at_the_end_of_a_run_are_no_problem(run_account: DcpAccount,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    exit_codes_as_ecs_reports(monkeypatch)
    run = seed_run(run_account, 4)
    w = worker(run_account, run)
    arns = w.register("dcp-cluster", run["instances"])
    w.take()
    w.stop_tasks("dcp-cluster", arns[0], "Essential container in task exited", 3)   # "No messages in the queue"
    _, doc = status(run_account, "--job", str(run["job_file"]))
    assert doc["jobs"]["waiting"] == 0 and "tasks-stopping" not in {p["code"] for p in doc["problems"]}, doc


def test_an_instance_that_never_joined_is_nameless(run_account: DcpAccount, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime, timedelta

    from agent.facts import ec2

    seed_run(run_account, 3)
    old = datetime.now(UTC) - timedelta(hours=1)
    real = ec2.instances.fn

    def launched_an_hour_ago(ctx: Any, ids: tuple[str, ...]) -> dict[str, Any]:
        return {k: dict(v, LaunchTime=old) for k, v in real(ctx, ids).items()}   # moto launches "now"

    def ten_cents(ctx: Any, types: tuple[str, ...], zones: tuple[str, ...]) -> dict[str, float]:
        return {f"{t} in {z}": 0.10 for t in types for z in zones or ("any-zone",)}   # moto has no spot history

    monkeypatch.setattr(ec2.instances, "fn", launched_an_hour_ago)
    monkeypatch.setattr(ec2.spot_prices, "fn", ten_cents)
    _, doc = status(run_account)
    problems = {p["code"]: p for p in doc["problems"]}
    assert "2 of 2 instance(s) never registered" in problems["never-registered"]["message"]
    assert "ecsconfigs" in problems["never-registered"]["fix"]
    # Two instances at $0.10/h, launched an hour ago: $0.20/h now, about $0.20 so far (from their launch times).
    assert doc["cost"]["per_hour"] == pytest.approx(0.20) and doc["workers"]["running"] == 2
    assert doc["cost"]["so_far"] == pytest.approx(0.20, abs=0.01), doc["cost"]


def test_requeue_plans_then_moves_exactly_the_failed_jobs(run_account: DcpAccount) -> None:
    acct = run_account
    run = seed_run(acct, 6, retries=1)
    g = run["groups"]
    w = worker(acct, run, {g[1]: "empty-image-set", g[4]: "metadata-mismatch"})
    w.take()
    w.take()
    sqs = acct.client("sqs")
    dlq_url = sqs.get_queue_url(QueueName=DLQ)["QueueUrl"]
    # A second copy of one failed job (the same body) in the dead-letter queue: it is sent back once.
    body = json.loads(sqs.receive_message(QueueUrl=dlq_url, VisibilityTimeout=0)["Messages"][0]["Body"])
    sqs.send_message(QueueUrl=dlq_url, MessageBody=json.dumps(body))
    code, out, _ = agent("requeue", "--settings", str(acct.settings))
    assert code == 0 and "receive-send-delete" in out and "--apply" in out
    assert g[1] in out and g[4] in out and out.count("~ ") == 3
    assert sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"])[
        "Attributes"]["ApproximateNumberOfMessages"] == "3"                      # the plan moved nothing
    code, out, _ = agent("requeue", "--apply", "--json", "--settings", str(acct.settings))
    applied = json.loads(out)["applied"]
    assert code == 0 and applied["method"] == "receive-send-delete"
    assert (applied["moved"], applied["same_body_deleted"], applied["left"]) == (2, 1, 0)
    back = []
    while got := sqs.receive_message(QueueUrl=run["queue_url"], MaxNumberOfMessages=10).get("Messages", []):
        back += [json.loads(m["Body"])["Metadata"] for m in got]
    assert sorted(back) == sorted([g[1], g[4]])                                  # nothing lost, nothing doubled


def test_a_read_that_fails_is_could_not_check_never_finished(run_account: DcpAccount,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    seed_run(run_account, 3)
    monkeypatch.setenv("AWS_ENDPOINT_URL", run_account.endpoint)        # moto itself: no fleet history (HTTP 500)
    code, doc = status(run_account)
    assert code == 3
    assert any(p["code"] == "unchecked" and "history" in p["message"] for p in doc["problems"])
    from agent.status import samples

    before = samples.load(APP_NAME)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")           # nothing answers at all
    code, out, err = agent("status", "--json", "--settings", str(run_account.settings))
    assert code == 3 and out == "" and "could not reach AWS" in err and "127.0.0.1:9" in err, err
    after = samples.load(APP_NAME)         # nothing recorded for a refresh that read nothing (no 'finished' sample)
    assert after.samples == before.samples and after.last == before.last and before.last["phase"] != "finished"


def test_the_log_stream_of_each_metadata_form_is_cp_workers() -> None:
    from agent.status.compute import stream_name

    assert stream_name({"Metadata": "Metadata_Plate=P1,Metadata_Well=A01"}) == "P1-A01"
    assert stream_name({"Metadata": {"Metadata_Plate": "P1"}, "output_structure": "Metadata_Plate-x"}) == "P1-x"
    # dict Metadata without output_structure: cp-worker.py names the stream str(message['Metadata'].values())
    assert stream_name({"Metadata": {"Metadata_Plate": "P1", "Metadata_Well": "A01"}, "output_structure": ""}) == \
        "dict_values(['P1', 'A01'])"


def test_before_submit_job_nothing_is_done(run_account: DcpAccount) -> None:
    run = seed_run(run_account, 12)
    sqs = run_account.client("sqs")
    while got := sqs.receive_message(QueueUrl=run["queue_url"], MaxNumberOfMessages=10).get("Messages", []):
        sqs.delete_message_batch(QueueUrl=run["queue_url"], Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])   # never sent, as it were
    _, doc = status(run_account, "--job", str(run["job_file"]))
    assert doc["phase"] == "not started" and doc["jobs"]["done"] is None and doc["jobs"]["total"] == 12, doc


def test_an_earlier_runs_monitor_file_and_failures_are_not_this_runs(run_account: DcpAccount) -> None:
    from datetime import UTC, datetime, timedelta

    from agent.status import samples

    sqs = run_account.client("sqs")
    dlq_url = sqs.get_queue_url(QueueName=DLQ)["QueueUrl"]
    sqs.send_message(QueueUrl=dlq_url, MessageBody=json.dumps({"Metadata": "Metadata_Plate=Old"}))
    time.sleep(1.1)   # the old failure is sent (SentTimestamp) before this run's queue is created
    run = seed_run(run_account, 4, started=datetime.now(UTC) - timedelta(hours=2))   # the monitor file: 2 h old
    old = samples.History(run=run["fleet_id"], total=4, samples=[
        samples.Sample(time.time() - 600, 4, 0, 0, 0, 2, 1.0, 50.0)])                 # run 1's spend so far
    samples.save(APP_NAME, old)
    _, doc = status(run_account, "--job", str(run["job_file"]))
    assert doc["cost"]["so_far"] < 5.0, doc["cost"]                  # run 1's $50 not carried over
    assert doc["jobs"]["failed"] == 0 and doc["failed_jobs"] == [], doc


@pytest.mark.parametrize(("visibility", "quiet_s", "phase"), [(600, 1230, "stalled"), (1800, 950, "running")])
def test_stalled_only_after_twice_the_visibility_timeout(run_account: DcpAccount, visibility: int, quiet_s: int,
                                                         phase: str) -> None:
    from agent.status import samples

    run = seed_run(run_account, 4, visibility=visibility)
    status(run_account, "--job", str(run["job_file"]))             # the run's sample history begins
    h = samples.load(APP_NAME)
    now = time.time()
    # quiet_s with jobs waiting, tasks running and none done: a stall after 2 × 600 s, not within 2 × 1800 s
    # (beyond the old fixed 15 min either way).
    h.samples = [samples.Sample(now - quiet_s, 4, 0, 0, 0, 2, 0.0, 0.0), samples.Sample(now - 600, 3, 1, 0, 0, 2, 0.0, 0.0)]
    samples.save(APP_NAME, h)
    sqs = run_account.client("sqs")
    sqs.receive_message(QueueUrl=run["queue_url"], MaxNumberOfMessages=1)   # one job in flight, as a worker
    _, doc = status(run_account, "--job", str(run["job_file"]))
    assert doc["phase"] == phase, doc


def test_a_fleet_cancelled_with_its_instances_running_is_costed_and_named(run_account: DcpAccount,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.facts import ec2

    monkeypatch.setattr(ec2.spot_prices, "fn", lambda ctx, types, zones: {
        f"{t} in {z}": 0.10 for t in types for z in zones or ("any-zone",)})
    run = seed_run(run_account, 4)
    run_account.client("ec2").cancel_spot_fleet_requests(SpotFleetRequestIds=[run["fleet_id"]],
                                                         TerminateInstances=False)
    code, doc = status(run_account, "--job", str(run["job_file"]))
    problems = {p["code"]: p for p in doc["problems"]}
    assert doc["cost"]["per_hour"] == pytest.approx(0.20), doc["cost"]        # still billed
    assert "cancelled_running" in problems["fleet-cancelled"]["message"]
    assert "terminate-instances" in problems["fleet-cancelled"]["fix"]
    assert doc["phase"] == "stalled" and "fleet-not-running" in problems and code == 1


def test_a_failed_jobs_cause_is_read_from_its_streams_tail(run_account: DcpAccount,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.facts import run as run_facts

    real = run_facts.log_events.fn

    def long_logs(ctx: Any, group: str, pattern: str, start_ms: int, streams: tuple[str, ...] = ()) -> Any:
        # On real-sized logs FilterLogEvents' pages (oldest first) end before the failed streams' last lines.
        return () if streams else real(ctx, group, pattern, start_ms, streams)

    monkeypatch.setattr(run_facts.log_events, "fn", long_logs)
    run = seed_run(run_account, 4, retries=1)
    g = run["groups"]
    w = worker(run_account, run, {g[0]: "empty-image-set", g[2]: "metadata-mismatch"})
    w.take()
    w.take()
    _, doc = status(run_account, "--job", str(run["job_file"]))
    assert {j["metadata"]: j["cause"] for j in doc["failed_jobs"]} == {g[0]: "empty-image-set",
                                                                       g[2]: "metadata-mismatch"}, doc["failed_jobs"]
