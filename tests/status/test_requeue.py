"""dcp-agent requeue --apply when SQS misbehaves: a send without an answer, a delete that fails, Ctrl-C, a twin
whose partner was refused, and SQS's own redrive (through the loopback SQS stand-in, rig/sqsstandin.py)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from agent import context
from agent.status import requeue
from rig.dcprun import seed_run
from rig.dcpworker import DcpWorker
from rig.fleethistory import FleetHistoryStandIn
from rig.seed import APP_NAME, DLQ, DcpAccount
from rig.sqsstandin import SqsStandIn
from tests.status.conftest import agent


@pytest.fixture
def sqs_standin(run_account: DcpAccount, history_standin: FleetHistoryStandIn,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[SqsStandIn]:
    with SqsStandIn(history_standin.endpoint, run_account.client("sqs")) as standin:
        monkeypatch.setenv("AWS_ENDPOINT_URL", standin.endpoint)
        yield standin


def failed_run(acct: DcpAccount) -> dict[str, Any]:
    """Six jobs, two of them failed into the dead-letter queue; the job queue empty."""
    run = seed_run(acct, 6, retries=1)
    g = run["groups"]
    w = DcpWorker(acct.client, APP_NAME, run["queue_url"], APP_NAME, acct.bucket,
                  {g[1]: "empty-image-set", g[4]: "metadata-mismatch"})
    w.take()
    w.take()
    run["dlq_url"] = acct.client("sqs").get_queue_url(QueueName=DLQ)["QueueUrl"]
    assert count(acct, run["dlq_url"]) == 2 and count(acct, run["queue_url"]) == 0
    return run


def count(acct: DcpAccount, url: str) -> int:
    attrs = acct.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return sum(int(v) for v in attrs.values())


def bodies(acct: DcpAccount, url: str) -> list[str]:
    sqs, out = acct.client("sqs"), []
    while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30).get("Messages", []):
        out += [json.loads(m["Body"])["Metadata"] for m in got]
    return sorted(out)


def test_a_send_without_an_answer_is_sent_once_and_named_maybe_sent(run_account: DcpAccount, sqs_standin: SqsStandIn,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    run = failed_run(run_account)
    monkeypatch.setitem(context.BOTO_CONFIG, "read_timeout", 1)
    sqs_standin.slow["SendMessageBatch"] = 2.0          # SQS queued them; the answer comes after the read timeout
    code, out, err = agent("requeue", "--apply", "--settings", str(run_account.settings))
    assert sqs_standin.asked.count("SendMessageBatch") == 1, "the send was retried"
    assert count(run_account, run["queue_url"]) == 2    # each job once (botocore's retries would send it 3 times)
    assert count(run_account, run["dlq_url"]) == 2      # not deleted: nothing lost
    assert code == 1 and "2 maybe sent" in out and "check the job queue" in out, (out, err)


def test_a_delete_that_fails_keeps_the_summary(run_account: DcpAccount, sqs_standin: SqsStandIn) -> None:
    failed_run(run_account)
    sqs_standin.broken.add("DeleteMessageBatch")
    code, out, err = agent("requeue", "--apply", "--settings", str(run_account.settings))
    assert code == 1 and "2 job(s) moved" in out, (out, err)
    assert "could not be deleted from the dead-letter queue" in out and "stopped: deleting 2" in out


def test_a_delete_refused_then_done_later_is_not_reported(run_account: DcpAccount, sqs_standin: SqsStandIn,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    run = failed_run(run_account)
    monkeypatch.setattr(requeue, "MOVE_VISIBILITY_S", 1)   # the undeleted messages show again after 1 s
    sqs_standin.refuse_deletes = 1
    code, out, _err = agent("requeue", "--apply", "--json", "--settings", str(run_account.settings))
    applied = json.loads(out)["applied"]
    assert applied["failed_deletes"] == [] and applied["left"] == 0 and applied["complete"], applied
    assert code == 0 and count(run_account, run["queue_url"]) == 2


def test_ctrl_c_says_what_moved_within_two_seconds(run_account: DcpAccount, sqs_standin: SqsStandIn) -> None:
    failed_run(run_account)
    at: list[float] = []

    def interrupt(action: str) -> None:
        if action == "SendMessageBatch" and not at:
            at.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGINT)

    sqs_standin.on_action = interrupt
    code, _out, err = agent("requeue", "--apply", "--settings", str(run_account.settings))
    assert code == 130 and time.monotonic() - at[0] < 2.0
    assert "interrupted; receive-send-delete was interrupted: 2 job(s) moved" in err, err


def test_a_twin_is_not_deleted_before_its_partner_is_sent(run_account: DcpAccount, sqs_standin: SqsStandIn) -> None:
    run = failed_run(run_account)
    sqs = run_account.client("sqs")
    body = sqs.receive_message(QueueUrl=run["dlq_url"], VisibilityTimeout=0)["Messages"][0]["Body"]
    sqs.send_message(QueueUrl=run["dlq_url"], MessageBody=body)     # the same job twice in the dead-letter queue
    sqs_standin.refuse_sends = True
    code, out, _ = agent("requeue", "--apply", "--json", "--settings", str(run_account.settings))
    applied = json.loads(out)["applied"]
    assert count(run_account, run["dlq_url"]) == 3 and applied["same_body_deleted"] == 0   # nothing lost
    assert count(run_account, run["queue_url"]) == 0 and code == 1 and applied["left"] == 3


def test_redrive_reports_its_own_task_not_an_older_one(run_account: DcpAccount, history_standin: FleetHistoryStandIn,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    run = failed_run(run_account)
    sqs = run_account.client("sqs")
    arn = sqs.get_queue_attributes(QueueUrl=run["dlq_url"], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    dest = sqs.get_queue_attributes(QueueUrl=run["queue_url"], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    with SqsStandIn(history_standin.endpoint, sqs, redrive=True, step_s=0.2) as standin:
        monkeypatch.setenv("AWS_ENDPOINT_URL", standin.endpoint)
        standin.old_task(arn, dest, int((time.time() - 86400) * 1000), moved=99)   # yesterday's redrive
        standin.list_lag_s = 0.5                            # the new task is not listed at once
        code, out, err = agent("requeue", "--apply", "--json", "--settings", str(run_account.settings))
        applied = json.loads(out)["applied"]
        assert applied["method"] == "StartMessageMoveTask", (out, err)
        assert applied["task"]["ApproximateNumberOfMessagesMoved"] == 2 and applied["task"]["Status"] == "COMPLETED"
        assert code == 0 and applied["left"] == 0
        assert bodies(run_account, run["queue_url"]) == sorted([run["groups"][1], run["groups"][4]])


def test_ctrl_c_during_redrive_says_the_task_runs_on_and_how_to_cancel(
        run_account: DcpAccount, history_standin: FleetHistoryStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    failed_run(run_account)
    with SqsStandIn(history_standin.endpoint, run_account.client("sqs"), redrive=True, step_s=30) as standin:
        monkeypatch.setenv("AWS_ENDPOINT_URL", standin.endpoint)
        lists: list[str] = []

        def interrupt(action: str) -> None:
            if action == "ListMessageMoveTasks":
                lists.append(action)
                if len(lists) == 3:                         # the plan's, then two polls
                    os.kill(os.getpid(), signal.SIGINT)

        standin.on_action = interrupt
        code, _, err = agent("requeue", "--apply", "--settings", str(run_account.settings))
        handle = standin.tasks[-1].handle
        assert code == 130 and "keeps running on AWS" in err, err
        assert f"aws sqs cancel-message-move-task --task-handle {handle}" in err
        standin.CancelMessageMoveTask({"TaskHandle": handle})
