"""``dcp-agent requeue``: the failed jobs (the dead-letter queue's messages) back to the job queue.

A write, so plan first (what would move, and how), ``--apply`` to do it, as ``dcp-agent fix`` does:

- where the endpoint has SQS's own redrive (``ListMessageMoveTasks`` answers), ``StartMessageMoveTask`` from the
  dead-letter queue to the job queue, then its progress until it completes;
- otherwise (moto 5.2.5 has neither) receive-send-delete: each message received from the dead-letter queue
  (hidden 60 s while it is moved), sent to the job queue with the same body, and deleted from the dead-letter
  queue only after SQS confirmed the send (``Successful``). Each call is one attempt (no botocore retries: a send
  retried after a read timeout could queue a job twice). Nothing is lost: a send SQS refused leaves its message
  where it was (visible again after 60 s, not tried again in this run); a send that got no answer stops the move, its messages are not deleted
  and are named "maybe sent — check the job queue". Nothing is doubled within a run: a message received twice
  (its MessageId) is only deleted, and a second message with the same body (the same job) is deleted only after
  its twin's send was confirmed. Ctrl-C waits for the batch in hand (one send and one delete, single attempts)
  and then says what was moved. What is left: a delete that fails after its send succeeded leaves that message in
  both queues; the summary names it (a later successful delete of it in the same run clears it).

Any AWS error stops the move; the summary says what had moved by then, and the exit status is 1 whenever work is
left (messages in the dead-letter queue, a task that did not reach COMPLETED, a send or delete in doubt).
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
    sent: list[str] = field(default_factory=list)          # MessageIds moved (their send confirmed)
    same_body: int = 0                                      # duplicates of a job whose send was confirmed: deleted
    failed_sends: list[str] = field(default_factory=list)   # SQS refused the send: still in the dead-letter queue
    maybe_sent: dict[str, str] = field(default_factory=dict)      # MessageId -> Metadata: the send raised (unknown)
    failed_deletes: dict[str, str] = field(default_factory=dict)  # sent, but still in the dead-letter queue
    errors: list[str] = field(default_factory=list)         # what stopped the move (one line each)
    left: int | None = None                                 # in the dead-letter queue at the end (None: not read)
    task: dict[str, Any] = field(default_factory=dict)
    handle: str = ""                                        # the StartMessageMoveTask's handle
    interrupted: bool = False

    @property
    def complete(self) -> bool:
        """Every job moved and nothing left over: exit 0."""
        if self.errors or self.failed_sends or self.maybe_sent or self.failed_deletes or self.interrupted:
            return False
        if self.method == "StartMessageMoveTask" and self.task.get("Status") != "COMPLETED":
            return False
        return self.left == 0

    def as_json(self) -> dict[str, Any]:
        return {"method": self.method, "moved": len(self.sent), "same_body_deleted": self.same_body,
                "failed_sends": self.failed_sends, "maybe_sent": self.maybe_sent,
                "failed_deletes": sorted(self.failed_deletes), "errors": self.errors, "left": self.left,
                "task": self.task, "task_handle": self.handle, "interrupted": self.interrupted,
                "complete": self.complete}


def _one_line(exc: BaseException) -> str:
    from agent.boundary import describe

    return describe("dcp-agent requeue", exc)[0] if isinstance(exc, Exception) else type(exc).__name__


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
    """Defer Ctrl-C until the block (a batch's send and delete) is done. The block is bounded: at most one send and
    one delete, each a single attempt (no retries) of at most connect + read timeout (BOTO_CONFIG)."""
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


def apply(ctx: Context, plan: Plan, *, deadline_s: float = 120.0, moved: Moved | None = None) -> Moved:
    """Move the jobs; ``moved`` (the caller's, so a Ctrl-C can still say what was done) is filled as it goes.
    An AWS error stops the move and is recorded in ``moved.errors``; only Ctrl-C raises."""
    moved = moved if moved is not None else Moved(plan.method)
    moved.method = plan.method
    try:
        if plan.method == "StartMessageMoveTask":
            _redrive(ctx, plan, deadline_s, moved)
        else:
            _receive_send_delete(ctx, plan, deadline_s, moved)
    except KeyboardInterrupt:
        moved.interrupted = True
        raise
    except Exception as e:
        moved.errors.append(_one_line(e))
    with contextlib.suppress(Exception):
        moved.left = _left(ctx.client("sqs", retries=1), plan.dlq_url)
    return moved


POLL_S = 1.0
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


def _redrive(ctx: Context, plan: Plan, deadline_s: float, moved: Moved) -> None:
    """StartMessageMoveTask, then its progress. ListMessageMoveTasks names a task's handle only while it runs, so
    a finished task is taken for ours only when it started after our start (StartedTimestamp) or was seen
    running under our handle first: an older task of the same queue is never reported as this one."""
    client = ctx.client("sqs", retries=1)
    start_ms = int(time.time() * 1000)
    moved.handle = client.start_message_move_task(SourceArn=plan.dlq_arn, DestinationArn=plan.queue_arn)["TaskHandle"]
    seen_running = False
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        for task in client.list_message_move_tasks(SourceArn=plan.dlq_arn, MaxResults=10).get("Results", []):
            if task.get("TaskHandle") == moved.handle:
                seen_running = True
                moved.task = dict(task)
                break
            if task.get("Status") in TERMINAL and (seen_running or int(task.get("StartedTimestamp") or 0) >= start_ms):
                moved.task = dict(task)
                break
        if moved.task.get("Status") in TERMINAL:
            return
        time.sleep(POLL_S)


def _left(client: Any, url: str) -> int:
    attrs = client.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return sum(int(v or 0) for v in attrs.values())


def _receive_send_delete(ctx: Context, plan: Plan, deadline_s: float, moved: Moved) -> None:
    # One attempt per call: botocore retrying a send after a read timeout could send a job twice, and a call
    # inside the held section must not hold Ctrl-C for several attempts.
    client = ctx.client("sqs", retries=1)
    sent_ids: set[str] = set()
    sent_bodies: dict[str, str] = {}       # body -> the MessageId whose send SQS confirmed
    held: set[str] = set()                 # refused (and their twins): left hidden, not tried again this run
    end = time.monotonic() + deadline_s
    quiet_since: float | None = None
    while time.monotonic() < end:
        got = client.receive_message(QueueUrl=plan.dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                     VisibilityTimeout=MOVE_VISIBILITY_S).get("Messages", [])
        if not got:
            # Done when all that is left is what this run holds hidden (refused sends, twins of them).
            if _left(client, plan.dlq_url) <= len(held):
                return
            # Messages another reader (a status peek) holds come back within SETTLE_S; ours never do.
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > SETTLE_S:
                return
            continue
        quiet_since = None
        with _batch_atomic():
            if not _batch(client, plan, got, moved, sent_ids=sent_ids, sent_bodies=sent_bodies, held=held):
                return


def _batch(client: Any, plan: Plan, got: list[dict[str, Any]], moved: Moved, *, sent_ids: set[str],
           sent_bodies: dict[str, str], held: set[str]) -> bool:
    """One received batch sent and deleted; False when an exception stopped it (recorded in ``moved``)."""
    to_delete: list[tuple[dict[str, Any], bool]] = []   # (message, a same-body twin)
    to_send: list[dict[str, Any]] = []
    twins: list[dict[str, Any]] = []                    # same body as one in to_send: deleted once that is sent
    for m in got:
        if m["MessageId"] in held:
            continue
        if m["MessageId"] in sent_ids:
            to_delete.append((m, False))                # received again in this run: already sent once
        elif m["Body"] in sent_bodies:
            to_delete.append((m, True))                 # the same job as one whose send was confirmed
        elif any(m["Body"] == s["Body"] for s in to_send):
            twins.append(m)
        else:
            to_send.append(m)
    if to_send:
        try:
            resp = client.send_message_batch(QueueUrl=plan.queue_url, Entries=[
                {"Id": str(i), "MessageBody": m["Body"]} for i, m in enumerate(to_send)])
        except Exception as e:
            # No answer: SQS may have queued them. Not deleted (nothing lost), not sent again (not doubled).
            for m in to_send:
                moved.maybe_sent[m["MessageId"]] = _meta(m)
            moved.errors.append(f"sending {len(to_send)} job(s) to {plan.queue}: {_one_line(e)}")
            for m, _ in to_delete:
                if m["MessageId"] in sent_ids:
                    moved.failed_deletes.setdefault(m["MessageId"], _meta(m))
            return False
        ok = {int(e["Id"]) for e in resp.get("Successful", [])}
        for i, m in enumerate(to_send):
            if i in ok:
                sent_ids.add(m["MessageId"])
                sent_bodies[m["Body"]] = m["MessageId"]
                moved.sent.append(m["MessageId"])
                to_delete.append((m, False))
            else:   # stays in the dead-letter queue (visible again after MOVE_VISIBILITY_S), not tried again
                moved.failed_sends.append(m["MessageId"])
                held.add(m["MessageId"])
    # A twin is deleted only once its partner's send was confirmed; else it stays where it is.
    to_delete += [(m, True) for m in twins if m["Body"] in sent_bodies]
    held.update(m["MessageId"] for m in twins if m["Body"] not in sent_bodies)
    if not to_delete:
        return True
    try:
        resp = client.delete_message_batch(QueueUrl=plan.dlq_url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, (m, _) in enumerate(to_delete)])
    except Exception as e:
        for m, _ in to_delete:
            moved.failed_deletes.setdefault(m["MessageId"], _meta(m))
        moved.errors.append(f"deleting {len(to_delete)} moved job(s) from {plan.dlq}: {_one_line(e)}")
        return False
    failed = {int(e["Id"]) for e in resp.get("Failed", [])}
    for i, (m, twin) in enumerate(to_delete):
        if i in failed:
            moved.failed_deletes.setdefault(m["MessageId"], _meta(m))
        else:
            moved.failed_deletes.pop(m["MessageId"], None)   # a later delete of it succeeded
            moved.same_body += int(twin)
    return True


def _meta(m: dict[str, Any]) -> str:
    return metadata_of(run.Letter(m["MessageId"], str(m.get("Body") or ""), 0, 0).job())


def render_moved(plan: Plan, moved: Moved, region: str = "") -> str:
    lines: list[str] = []
    left = "an unknown number" if moved.left is None else str(moved.left)
    if moved.method == "StartMessageMoveTask":
        t = moved.task
        lines.append(f"StartMessageMoveTask {'was started' if moved.handle else 'did not start'}: "
                     f"{t.get('Status', 'no final status seen')}, {t.get('ApproximateNumberOfMessagesMoved', '?')} "
                     f"moved from {plan.dlq} to {plan.queue}; {left} left in {plan.dlq}.")
        if t.get("FailureReason"):
            lines.append(f"  the task failed: {t['FailureReason']}")
        if moved.handle and t.get("Status") not in TERMINAL:
            where = f" --region {region}" if region else ""
            lines.append(f"  the task keeps running on AWS; to stop it: aws sqs cancel-message-move-task "
                         f"--task-handle {moved.handle}{where}")
    else:
        lines.append(f"receive-send-delete {'was interrupted' if moved.interrupted else 'ran'}: {len(moved.sent)} "
                     f"job(s) moved from {plan.dlq} to {plan.queue}"
                     + (f", {moved.same_body} duplicate(s) of a job already sent deleted" if moved.same_body else "")
                     + f"; {left} left in {plan.dlq}.")
    for e in moved.errors:
        lines.append(f"  stopped: {e}")
    if moved.failed_sends:
        lines.append(f"  {len(moved.failed_sends)} SQS refused to send stay in {plan.dlq} (visible again within "
                     f"{MOVE_VISIBILITY_S} s): "
                     + ", ".join(moved.failed_sends[:5]))
    if moved.maybe_sent:
        lines.append(f"  {len(moved.maybe_sent)} maybe sent (the send got no answer) — check the job queue "
                     f"{plan.queue} for them before requeueing again; they are still in {plan.dlq}: "
                     + ", ".join(f"{k} ({v})" for k, v in list(moved.maybe_sent.items())[:5]))
    if moved.failed_deletes:
        lines.append(f"  {len(moved.failed_deletes)} were sent but could not be deleted from the dead-letter queue "
                     f"{plan.dlq} (they are in both queues; delete them from {plan.dlq} by hand): "
                     + ", ".join(f"{k} ({v})" for k, v in list(moved.failed_deletes.items())[:5]))
    return "\n".join(lines)
