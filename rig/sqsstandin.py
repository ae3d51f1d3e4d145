"""A loopback STAND-IN in front of moto's SQS for the requeue tests: SQS's redrive API, which moto 5.2.5 answers
with HTTP 500, and faults injected into the calls it forwards. Every other request goes to ``upstream`` untouched.

Redrive (``redrive=True``): ``StartMessageMoveTask``, ``ListMessageMoveTasks`` and ``CancelMessageMoveTask``
answered as the SQS API reference documents them (JSON protocol, ``X-Amz-Target: AmazonSQS.<Action>``):
Start answers ``TaskHandle``; List answers ``Results``, newest first, at most ``MaxResults`` (1–10), each with
``Status`` (RUNNING, COMPLETED, CANCELLING, CANCELLED, FAILED), ``SourceArn``, ``DestinationArn``,
``ApproximateNumberOfMessagesMoved``, ``ApproximateNumberOfMessagesToMove``, ``StartedTimestamp`` (ms), and
``TaskHandle`` only while the task is RUNNING; Cancel answers ``ApproximateNumberOfMessagesMoved``, and a
second task while one runs is refused (``UnsupportedOperation``). Behind the scenes a thread moves the
messages on the real moto queues by receive-send-delete, ``step_s`` between batches (so a task is seen
RUNNING). ``old_tasks`` seeds finished tasks from before (as ListMessageMoveTasks keeps them).

Faults (any mode): ``slow`` (action -> seconds: forwarded, the answer held back that long, as a read timeout
would see it), ``broken`` (actions answered HTTP 500 InternalError, not forwarded), ``refuse_sends``
(SendMessageBatch answered with every entry ``Failed``, not forwarded), ``refuse_deletes`` (so many
DeleteMessageBatch calls answered the same way), ``list_lag_s`` (a new task listed only after that long) and ``on_action`` (called with each
action's name before it is handled: a test sends itself SIGINT there). It is a stand-in for the tests only,
never proof of what SQS does.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rig.proxy import LoopbackServer, QuietHandler, ask_upstream, read_body, reply, send

JSON = "application/x-amz-json-1.0"


@dataclass
class Task:
    handle: str
    source: str
    dest: str
    started_ms: int
    status: str = "RUNNING"
    moved: int = 0
    to_move: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)

    def entry(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Status": self.status, "SourceArn": self.source, "DestinationArn": self.dest,
                               "ApproximateNumberOfMessagesMoved": self.moved,
                               "ApproximateNumberOfMessagesToMove": self.to_move, "StartedTimestamp": self.started_ms}
        if self.status == "RUNNING":
            out["TaskHandle"] = self.handle
        return out


class SqsStandIn(LoopbackServer):
    def __init__(self, upstream: str, mover: Any = None, *, redrive: bool = False, step_s: float = 0.3) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        assert self.upstream.hostname in ("127.0.0.1", "localhost", "::1"), "stand-in upstream must be loopback"
        self.mover = mover              # an SQS client to the upstream (moto), for the moves behind the scenes
        self.redrive = redrive
        self.step_s = step_s
        self.tasks: list[Task] = []
        self.slow: dict[str, float] = {}
        self.broken: set[str] = set()
        self.refuse_sends = False
        self.refuse_deletes = 0         # DeleteMessageBatch calls answered with every entry Failed (not forwarded)
        self.list_lag_s = 0.0           # a new task is listed only this long after it started (SQS is eventual)
        self.on_action: Callable[[str], None] | None = None
        self.asked: list[str] = []
        self._lock = threading.Lock()
        standin = self

        class Handler(QuietHandler):
            def answer(self) -> None:
                body = read_body(self)
                target = self.headers.get("X-Amz-Target") or ""
                action = target.rsplit(".", 1)[-1] if target.startswith("AmazonSQS.") else ""
                if not action and body:
                    action = urllib.parse.parse_qs(body.decode(errors="replace")).get("Action", [""])[0]
                standin.asked.append(action)
                if standin.on_action is not None and action:
                    standin.on_action(action)
                if action in standin.broken:
                    standin._json(self, 500, {"__type": "com.amazonaws.sqs#InternalError",
                                              "message": "stand-in: injected failure"})
                    return
                if action == "SendMessageBatch" and standin.refuse_sends:
                    entries = json.loads(body or b"{}").get("Entries", [])
                    standin._json(self, 200, {"Successful": [], "Failed": [
                        {"Id": e["Id"], "SenderFault": False, "Code": "InternalError", "Message": "stand-in refusal"}
                        for e in entries]})
                    return
                if action == "DeleteMessageBatch" and standin.refuse_deletes > 0:
                    standin.refuse_deletes -= 1
                    entries = json.loads(body or b"{}").get("Entries", [])
                    standin._json(self, 200, {"Successful": [], "Failed": [
                        {"Id": e["Id"], "SenderFault": False, "Code": "InternalError", "Message": "stand-in refusal"}
                        for e in entries]})
                    return
                if standin.redrive and action in ("StartMessageMoveTask", "ListMessageMoveTasks",
                                                  "CancelMessageMoveTask"):
                    status, doc = getattr(standin, action)(json.loads(body or b"{}"))
                    standin._json(self, status, doc)
                    return
                answer = ask_upstream(standin.upstream, self, body)
                if action in standin.slow:
                    time.sleep(standin.slow[action])
                reply(self, answer)

        super().__init__(Handler, "sqs-standin")

    @staticmethod
    def _json(handler: QuietHandler, status: int, doc: dict[str, Any]) -> None:
        send(handler, status, {"Content-Type": JSON, "x-amzn-RequestId": str(uuid.uuid4())}, json.dumps(doc).encode())

    def old_task(self, source: str, dest: str, started_ms: int, moved: int, status: str = "COMPLETED") -> None:
        with self._lock:
            self.tasks.append(Task(f"old-{len(self.tasks)}", source, dest, started_ms, status, moved, moved))

    # -- the redrive API --------------------------------------------------------------------------------
    def StartMessageMoveTask(self, req: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        source, dest = str(req.get("SourceArn") or ""), str(req.get("DestinationArn") or "")
        with self._lock:
            if any(t.source == source and t.status in ("RUNNING", "CANCELLING") for t in self.tasks):
                return 400, {"__type": "com.amazonaws.sqs#UnsupportedOperation",
                             "message": "There is already a task running. Only one active task is allowed for a "
                                        "source queue arn at a given time."}
            task = Task(f"stand-in-{uuid.uuid4()}", source, dest, int(time.time() * 1000))
            self.tasks.append(task)
        threading.Thread(target=self._move, args=(task,), daemon=True, name="sqs-standin-move").start()
        return 200, {"TaskHandle": task.handle}

    def ListMessageMoveTasks(self, req: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        source = str(req.get("SourceArn") or "")
        size = max(1, min(int(req.get("MaxResults") or 1), 10))
        with self._lock:
            now_ms = time.time() * 1000
            mine = sorted((t for t in self.tasks if t.source == source
                           and now_ms - t.started_ms >= self.list_lag_s * 1000), key=lambda t: -t.started_ms)
            return 200, {"Results": [t.entry() for t in itertools.islice(mine, size)]}

    def CancelMessageMoveTask(self, req: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        handle = str(req.get("TaskHandle") or "")
        with self._lock:
            task = next((t for t in self.tasks if t.handle == handle and t.status == "RUNNING"), None)
            if task is None:
                return 400, {"__type": "com.amazonaws.sqs#ResourceNotFoundException",
                             "message": "The task handle is not valid or the task is not running."}
            task.status = "CANCELLING"
            task.cancel.set()
            return 200, {"ApproximateNumberOfMessagesMoved": task.moved}

    def _url(self, arn: str) -> str:
        return str(self.mover.get_queue_url(QueueName=arn.rsplit(":", 1)[-1])["QueueUrl"])

    def _move(self, task: Task) -> None:
        try:
            src, dst = self._url(task.source), self._url(task.dest)
            attrs = self.mover.get_queue_attributes(QueueUrl=src, AttributeNames=["ApproximateNumberOfMessages"])
            task.to_move = int(attrs["Attributes"]["ApproximateNumberOfMessages"])
            while not task.cancel.is_set():
                time.sleep(self.step_s)
                got = self.mover.receive_message(QueueUrl=src, MaxNumberOfMessages=10, VisibilityTimeout=30
                                                 ).get("Messages", [])
                if not got:
                    break
                self.mover.send_message_batch(QueueUrl=dst, Entries=[
                    {"Id": str(i), "MessageBody": m["Body"]} for i, m in enumerate(got)])
                self.mover.delete_message_batch(QueueUrl=src, Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])
                with self._lock:
                    task.moved += len(got)
            with self._lock:
                task.status = "CANCELLED" if task.cancel.is_set() else "COMPLETED"
        except Exception:
            with self._lock:
                task.status = "FAILED"
