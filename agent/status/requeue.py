"""``dcp-agent requeue``: the failed jobs (the dead-letter queue's messages) back to the job queue.

A write, so plan first (what would move, and how), ``--apply`` to do it, as ``dcp-agent fix`` does:

- where the endpoint has SQS's own redrive (``ListMessageMoveTasks`` answers), ``StartMessageMoveTask`` from the
  dead-letter queue to the job queue, then its progress until it completes;
- otherwise (moto 5.2.5 has neither) receive-send-delete: each message received from the dead-letter queue
  (hidden 60 s while it is moved), sent to the job queue with the same body, and deleted from the dead-letter
  queue only after SQS accepted the send. Nothing is lost: a send that fails leaves its message where it was
  (it shows again after 60 s, or at once: its visibility is reset). Nothing is doubled within a run: a message
  received twice (its MessageId) is only deleted, a second message with the same body (the same job) is not sent
  again. Ctrl-C waits for the batch in hand to be sent and deleted. What is left: a delete that fails after its
  send succeeded (the network gone between the two) leaves that message in both queues; the summary names it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from agent.boundary import UserError
from agent.context import Context
from agent.facts import run, sqs
from agent.status.compute import metadata_of, names

MOVE_VISIBILITY_S = 60
SETTLE_S = run.PEEK_VISIBILITY_S + 10   # messages a peek (a status refresh) hid are visible again by then
PLAN_CALLS = 100                         # up to 1,000 messages listed in a plan
# What `requeue --apply` calls (beyond the read-only policy's reads): the job queue and the dead-letter queue.
ACTIONS = ("sqs:ReceiveMessage", "sqs:SendMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
           "sqs:StartMessageMoveTask", "sqs:ListMessageMoveTasks", "sqs:GetQueueAttributes", "sqs:GetQueueUrl")


@dataclass
class Plan:
    dlq: str
    dlq_url: str
    dlq_arn: str
    queue: str
    queue_url: str
    queue_arn: str
    count: int
    letters: list[run.Letter]
    method: str

    def as_json(self) -> dict[str, Any]:
        return {"from": self.dlq, "to": self.queue, "count": self.count, "method": self.method,
                "jobs": [{"message_id": lt.message_id, "metadata": metadata_of(lt.job()),
                          "receive_count": lt.receive_count} for lt in self.letters]}


@dataclass
class Moved:
    method: str
    sent: list[str] = field(default_factory=list)          # MessageIds moved
    same_body: int = 0                                      # duplicates of a job already sent: deleted only
    failed_sends: list[str] = field(default_factory=list)
    failed_deletes: list[str] = field(default_factory=list)  # sent, but still in the dead-letter queue
    left: int = 0                                           # in the dead-letter queue at the end
    task: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"method": self.method, "moved": len(self.sent), "same_body_deleted": self.same_body,
                "failed_sends": self.failed_sends, "failed_deletes": self.failed_deletes, "left": self.left,
                "task": self.task}


def make_plan(ctx: Context) -> Plan:
    n = names(ctx)
    queue = sqs.queue(ctx, n.queue)
    dlq = sqs.queue(ctx, n.dlq)
    if dlq is None:
        raise UserError(f"there is no dead-letter queue {n.dlq} (SQS_DEAD_LETTER_QUEUE) in {ctx.region}: nothing to "
                        "requeue")
    if queue is None:
        raise UserError(f"the job queue {n.queue} does not exist (run.py monitor deletes it when a run ends): "
                        "run 'python run.py setup' in the DCP clone first, then dcp-agent requeue", code=2)
    count = sum(int(dlq.get(a) or 0) for a in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"))
    letters = list(run.dead_letters(ctx, str(dlq["url"]), PLAN_CALLS)) if count else []
    redrive = run.move_tasks(ctx, str(dlq["QueueArn"]))
    method = "StartMessageMoveTask" if redrive is not None else "receive-send-delete"
    return Plan(n.dlq, str(dlq["url"]), str(dlq["QueueArn"]), n.queue, str(queue["url"]), str(queue["QueueArn"]),
                count, letters, method)


def render_plan(plan: Plan) -> str:
    if not plan.count:
        return f"Nothing to requeue: {plan.dlq} is empty."
    how = ("SQS's own redrive (StartMessageMoveTask)" if plan.method == "StartMessageMoveTask" else
           "receive-send-delete (this endpoint has no StartMessageMoveTask): each message sent to the job queue, "
           "then deleted from the dead-letter queue")
    lines = [f"Plan: move {plan.count} failed job(s) from {plan.dlq} back to {plan.queue}, by {how}:"]
    for lt in plan.letters:
        lines.append(f"  ~ {metadata_of(lt.job())}  (received {lt.receive_count} times)")
    if plan.count > len(plan.letters):
        lines.append(f"  … and {plan.count - len(plan.letters)} more not readable just now (they move too)")
    lines.append("Run with --apply to move them (the jobs run again when workers take them).")
    return "\n".join(lines)


@contextlib.contextmanager
def _batch_atomic() -> Iterator[None]:
    """Defer Ctrl-C until the block (a batch's send and delete) is done."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if caught:
            raise KeyboardInterrupt


def apply(ctx: Context, plan: Plan, *, deadline_s: float = 120.0) -> Moved:
    if plan.method == "StartMessageMoveTask":
        return _redrive(ctx, plan, deadline_s)
    return _receive_send_delete(ctx, plan, deadline_s)


def _redrive(ctx: Context, plan: Plan, deadline_s: float) -> Moved:
    client = ctx.client("sqs")
    moved = Moved("StartMessageMoveTask")
    handle = client.start_message_move_task(SourceArn=plan.dlq_arn, DestinationArn=plan.queue_arn)["TaskHandle"]
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        tasks = client.list_message_move_tasks(SourceArn=plan.dlq_arn, MaxResults=1).get("Results", [])
        task = tasks[0] if tasks else {}
        if task.get("TaskHandle") in (handle, None) and task.get("Status") in ("COMPLETED", "FAILED", "CANCELLED"):
            moved.task = dict(task)
            break
        time.sleep(1)
    moved.left = _left(client, plan.dlq_url)
    return moved


def _left(client: Any, url: str) -> int:
    attrs = client.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return sum(int(v or 0) for v in attrs.values())


def _receive_send_delete(ctx: Context, plan: Plan, deadline_s: float) -> Moved:
    client = ctx.client("sqs")
    moved = Moved("receive-send-delete")
    sent_ids: set[str] = set()
    bodies: set[str] = set()
    end = time.monotonic() + deadline_s
    quiet_since: float | None = None
    while time.monotonic() < end:
        got = client.receive_message(QueueUrl=plan.dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                     VisibilityTimeout=MOVE_VISIBILITY_S).get("Messages", [])
        if not got:
            left = _left(client, plan.dlq_url)
            if left == 0:
                break
            # Messages another reader (a status peek) holds come back within SETTLE_S; ours never do.
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > SETTLE_S:
                break
            continue
        quiet_since = None
        with _batch_atomic():
            to_delete: list[dict[str, Any]] = []
            to_send: list[dict[str, Any]] = []
            for m in got:
                if m["MessageId"] in sent_ids:
                    to_delete.append(m)           # received again in this run: already sent once
                elif m["Body"] in bodies:
                    moved.same_body += 1
                    to_delete.append(m)           # the same job twice: sent once
                else:
                    bodies.add(m["Body"])
                    to_send.append(m)
            if to_send:
                resp = client.send_message_batch(QueueUrl=plan.queue_url, Entries=[
                    {"Id": str(i), "MessageBody": m["Body"]} for i, m in enumerate(to_send)])
                ok = {int(e["Id"]) for e in resp.get("Successful", [])}
                for i, m in enumerate(to_send):
                    if i in ok:
                        sent_ids.add(m["MessageId"])
                        moved.sent.append(m["MessageId"])
                        to_delete.append(m)
                    else:
                        bodies.discard(m["Body"])
                        moved.failed_sends.append(m["MessageId"])
                        with contextlib.suppress(Exception):   # back at once, not after 60 s
                            client.change_message_visibility(QueueUrl=plan.dlq_url, ReceiptHandle=m["ReceiptHandle"],
                                                             VisibilityTimeout=0)
            if to_delete:
                resp = client.delete_message_batch(QueueUrl=plan.dlq_url, Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(to_delete)])
                for e in resp.get("Failed", []):
                    moved.failed_deletes.append(to_delete[int(e["Id"])]["MessageId"])
    moved.left = _left(client, plan.dlq_url)
    return moved


def render_moved(plan: Plan, moved: Moved) -> str:
    if moved.method == "StartMessageMoveTask":
        t = moved.task
        return (f"StartMessageMoveTask ran: {t.get('Status', 'no final status within the wait')}, "
                f"{t.get('ApproximateNumberOfMessagesMoved', '?')} moved from {plan.dlq} to {plan.queue}; "
                f"{moved.left} left in {plan.dlq}.")
    lines = [f"receive-send-delete ran: {len(moved.sent)} job(s) moved from {plan.dlq} to {plan.queue}"
             + (f", {moved.same_body} duplicate(s) of a job already sent deleted" if moved.same_body else "")
             + f"; {moved.left} left in {plan.dlq}."]
    if moved.failed_sends:
        lines.append(f"  {len(moved.failed_sends)} could not be sent and stay in {plan.dlq}: "
                     + ", ".join(moved.failed_sends[:5]))
    if moved.failed_deletes:
        lines.append(f"  {len(moved.failed_deletes)} were sent but could not be deleted from {plan.dlq} (they are in "
                     "both queues; delete them there by hand): " + ", ".join(moved.failed_deletes[:5]))
    return "\n".join(lines)
