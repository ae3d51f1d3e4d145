"""What a DCP run in progress looks like from AWS: the reads ``dcp-agent status`` adds to group M's.

The queue itself (``sqs.queue``), the fleet (``ec2.spot_fleets``, ``ec2.fleet_instances``), its cost
(``ec2.instances``, ``ec2.spot_prices``), the cluster's container instances (``ecs.container_instances``) and the
service (``ecs.service``) are group M's facts and are reused as they are. The ones here are the run's own:
the fleet's error history, the dead-letter queue's messages (peeked, never consumed), the tasks ECS stopped,
log events matching one pattern, and the queue's CloudWatch sums.

Every read is bounded: a fixed number of pages, so one refresh costs a fixed number of requests.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agent.facts.core import code_of, fact

if TYPE_CHECKING:
    from agent.context import Context

# ReceiveMessage on the dead-letter queue: how long each peeked message stays hidden. Not 0: with 0 every
# call may hand out the same messages again (moto always does; SQS samples its servers), so more than ten
# could never be listed. 5 s is long enough for one refresh's few calls to see distinct messages; then the peek
# gives them back at once (ChangeMessageVisibilityBatch to 0), so a `requeue` or another look right after sees
# them all. The peek deletes nothing; a message's retention (counted from when it was first sent) is unchanged;
# its ApproximateReceiveCount grows by one (the dead-letter queue has no redrive policy of its own in DCP).
PEEK_VISIBILITY_S = 5
PEEK_CALLS = 3                 # at most 30 failed jobs listed by name a refresh (the count is the queue's own)
LOG_PAGES = 2                  # FilterLogEvents pages read per pattern (each up to 10,000 events / 1 MB)
HISTORY_PAGES = 2


@dataclass(frozen=True)
class Letter:
    """One message of the dead-letter queue, as peeked."""

    message_id: str
    body: str
    receive_count: int
    sent_ms: int

    def job(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.body)
        except ValueError:
            return {}
        return doc if isinstance(doc, dict) else {}


@fact("sqs:ReceiveMessage", "sqs:ChangeMessageVisibility")
def dead_letters(ctx: Context, url: str, calls: int = PEEK_CALLS) -> tuple[Letter, ...]:
    """Up to ``calls`` × 10 messages of the dead-letter queue at ``url``, each hidden for PEEK_VISIBILITY_S while
    the calls page through, then visible again at once; never deleted; distinct by MessageId. Stops at the first
    call that brings nothing new."""
    sqs = ctx.client("sqs")
    seen: dict[str, Letter] = {}
    handles: list[str] = []
    try:
        _peek(sqs, url, calls, seen, handles)
    finally:
        for i in range(0, len(handles), 10):   # give them back (a failure here only delays them 5 s)
            with contextlib.suppress(Exception):
                sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
                    {"Id": str(j), "ReceiptHandle": h, "VisibilityTimeout": 0} for j, h in enumerate(handles[i:i + 10])])
    return tuple(seen.values())


def _peek(sqs: Any, url: str, calls: int, seen: dict[str, Letter], handles: list[str]) -> None:
    for _ in range(calls):
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=PEEK_VISIBILITY_S,
                                  WaitTimeSeconds=0, AttributeNames=["ApproximateReceiveCount", "SentTimestamp"]
                                  ).get("Messages", [])
        handles += [m["ReceiptHandle"] for m in got]
        new = [m for m in got if m["MessageId"] not in seen]
        for m in new:
            attrs = m.get("Attributes") or {}
            seen[m["MessageId"]] = Letter(m["MessageId"], str(m.get("Body") or ""),
                                          int(attrs.get("ApproximateReceiveCount") or 0),
                                          int(attrs.get("SentTimestamp") or 0))
        if not new or len(got) < 10:
            break


@fact("sqs:ListMessageMoveTasks")
def move_tasks(ctx: Context, source_arn: str) -> tuple[dict[str, Any], ...] | None:
    """SQS's redrive tasks of the dead-letter queue (newest first); None when the endpoint has no such API
    (moto 5.2.5 answers it with HTTP 500): then ``requeue`` moves messages itself."""
    try:
        return tuple(ctx.client("sqs", retries=1).list_message_move_tasks(SourceArn=source_arn, MaxResults=10)
                     .get("Results", []))
    except Exception as e:
        code = code_of(e)
        if code in ("ResponseParserError", "InvalidAction", "UnknownOperationException", "UnsupportedOperation",
                    "AWS.SimpleQueueService.UnsupportedOperation") or code.startswith("5"):
            return None
        status = getattr(e, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
        if isinstance(status, int) and status >= 500:
            return None
        raise


@fact("ec2:DescribeSpotFleetRequestHistory")
def fleet_errors(ctx: Context, fleet_id: str, since: datetime) -> tuple[dict[str, Any], ...]:
    """The fleet's ``error`` events since ``since`` (AWS keeps them 48 hours), newest last."""
    ec2 = ctx.client("ec2")
    found: list[dict[str, Any]] = []
    token = ""
    for _ in range(HISTORY_PAGES):
        resp = ec2.describe_spot_fleet_request_history(SpotFleetRequestId=fleet_id, StartTime=since,
                                                       EventType="error", MaxResults=1000,
                                                       **({"NextToken": token} if token else {}))
        found += resp.get("HistoryRecords", [])
        token = resp.get("NextToken") or ""
        if not token:
            break
    return tuple(found)


@fact("ecs:ListTasks", "ecs:DescribeTasks")
def stopped_tasks(ctx: Context, cluster_name: str, family: str) -> tuple[dict[str, Any], ...]:
    """The task definition family's stopped tasks ECS still lists (about an hour after they stopped): their
    stoppedReason and their containers' reasons. At most 100 (one DescribeTasks)."""
    ecs = ctx.client("ecs")
    try:
        arns = ecs.list_tasks(cluster=cluster_name, family=family, desiredStatus="STOPPED",
                              maxResults=100).get("taskArns", [])
    except Exception as e:
        if code_of(e) == "ClusterNotFoundException":
            return ()
        raise
    if not arns:
        return ()
    return tuple(dict(t) for t in ecs.describe_tasks(cluster=cluster_name, tasks=arns[:100]).get("tasks", []))


@dataclass(frozen=True)
class Event:
    stream: str
    at_ms: int
    message: str


@fact("logs:FilterLogEvents")
def log_events(ctx: Context, group: str, pattern: str, start_ms: int,
               streams: tuple[str, ...] = ()) -> tuple[Event, ...]:
    """Events of ``group`` since ``start_ms`` matching ``pattern`` (CloudWatch's filter syntax; "" for all),
    only in ``streams`` when given (at most 100). LOG_PAGES pages at most. One pattern a request: moto
    answers the OR form (``?"a" ?"b"``) with every event, so the agent never sends it."""
    logs = ctx.client("logs")
    params: dict[str, Any] = {"logGroupName": group, "startTime": int(start_ms), "limit": 10000}
    if pattern:
        params["filterPattern"] = pattern
    if streams:
        params["logStreamNames"] = list(streams[:100])
    found: list[Event] = []
    for _ in range(LOG_PAGES):
        try:
            resp = logs.filter_log_events(**params)
        except Exception as e:
            if code_of(e) == "ResourceNotFoundException":   # no such group (yet): no events
                return tuple(found)
            raise
        found += [Event(str(e.get("logStreamName", "")), int(e.get("timestamp", 0)), str(e.get("message", "")))
                  for e in resp.get("events", [])]
        token = resp.get("nextToken")
        if not token:
            break
        params["nextToken"] = token
    return tuple(found)


TAIL_EVENTS = 25     # the last lines of a failed job's stream: cp-worker.py's cause lines are at its end


@fact("logs:GetLogEvents")
def stream_tail(ctx: Context, group: str, stream: str) -> tuple[Event, ...]:
    """The last TAIL_EVENTS events of one log stream (GetLogEvents from the end, one request), oldest first; none
    when the stream or the group does not exist."""
    try:
        resp = ctx.client("logs").get_log_events(logGroupName=group, logStreamName=stream, startFromHead=False,
                                                 limit=TAIL_EVENTS)
    except Exception as e:
        if code_of(e) == "ResourceNotFoundException":
            return ()
        raise
    return tuple(Event(stream, int(e.get("timestamp", 0)), str(e.get("message", ""))) for e in resp.get("events", []))


@fact("cloudwatch:GetMetricData")
def queue_sums(ctx: Context, queue_name: str, start: datetime, end: datetime) -> tuple[int, int] | None:
    """(messages sent, messages deleted) to the queue between ``start`` and ``end``, from SQS's CloudWatch
    metrics (5-minute sums); None when CloudWatch has no datapoints (a new queue, or moto, which records none)."""
    queries = [{"Id": metric.lower(), "ReturnData": True, "MetricStat": {
        "Metric": {"Namespace": "AWS/SQS", "MetricName": name, "Dimensions": [{"Name": "QueueName",
                                                                             "Value": queue_name}]},
        "Period": 300, "Stat": "Sum"}} for metric, name in (("sent", "NumberOfMessagesSent"),
                                                           ("deleted", "NumberOfMessagesDeleted"))]
    resp = ctx.client("cloudwatch").get_metric_data(MetricDataQueries=queries, StartTime=start, EndTime=end)
    sums = {r["Id"]: r.get("Values") or [] for r in resp.get("MetricDataResults", [])}
    if not sums.get("sent") and not sums.get("deleted"):
        return None
    return int(sum(sums.get("sent", []))), int(sum(sums.get("deleted", [])))
