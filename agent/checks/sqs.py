"""Q: the queues DCP uses: names, the dead-letter queue, a leftover main queue, and their settings."""

from __future__ import annotations

import json
import re

from agent import gates
from agent.checks._common import is_true
from agent.context import Context
from agent.facts import aws, sqs
from agent.model import Finding, Severity, Skip, fail, ok, warn
from agent.registry import check

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
FOURTEEN_DAYS = 1209600


def dlq_name(ctx: Context) -> str | None:
    value = ctx.config.get("SQS_DEAD_LETTER_QUEUE")
    if not isinstance(value, str) or not value:
        return None
    if not ctx.flavour.strips_dlq_arn:   # Distributed-Something uses the value as the name, ARN or not
        return value
    return value.rsplit(":", 1)[-1] if value.startswith("arn:") else value  # run.py L29–30


def job_retries(ctx: Context) -> object:
    """maxReceiveCount as this project's run.py sets it: config.py's JOB_RETRIES (DCP) or a fixed count."""
    fixed = ctx.flavour.job_retries
    return ctx.config.get("JOB_RETRIES") if fixed == "JOB_RETRIES" else fixed


@check("Q01", "sqs.queue-names", "Queue names are valid", Severity.BLOCKER, needs=(gates.CONFIG,))
def queue_names(ctx: Context) -> Finding:
    for label, name in (("SQS_QUEUE_NAME", ctx.config.get("SQS_QUEUE_NAME")), ("SQS_DEAD_LETTER_QUEUE", dlq_name(ctx))):
        if not isinstance(name, str) or not NAME_RE.match(name):
            arn = isinstance(name, str) and name.startswith("arn:") and not ctx.flavour.strips_dlq_arn
            return fail(f"{label} {name!r} is not a valid queue name (1–80 of A-Z a-z 0-9 _ -)"
                        + (f": {ctx.flavour.name}'s run.py uses it as the queue's name as it is (DCP's takes the "
                           "name from an ARN)" if arn else ""),
                        f"set {label} = '{name.rsplit(':', 1)[-1]}'" if arn and isinstance(name, str) else
                        f"fix {label} in config.py")
    return ok(f"{ctx.config.get('SQS_QUEUE_NAME')}, {dlq_name(ctx)}")


@check("Q02", "sqs.dead-letter-queue", "The dead-letter queue exists in AWS_REGION", Severity.MEDIUM,
       needs=(*gates.AWS, queue_names), actions=("sqs:GetQueueUrl", "sqs:GetQueueAttributes"),
       cure="Creates the dead-letter queue with a 14-day retention.")
def dead_letter_queue(ctx: Context) -> Finding:
    raw = ctx.config.get("SQS_DEAD_LETTER_QUEUE")
    name = dlq_name(ctx)
    assert name
    if isinstance(raw, str) and raw.startswith("arn:"):
        parts = raw.split(":")
        if len(parts) >= 6 and (parts[3] != ctx.region or parts[4] != aws.identity(ctx).account):
            return fail(f"SQS_DEAD_LETTER_QUEUE is an ARN in {parts[3]}/{parts[4]}, but run.py only uses its name "
                        f"and would create a new queue in {ctx.region}/{aws.identity(ctx).account}",
                        f"set SQS_DEAD_LETTER_QUEUE = '{name}' and create it in {ctx.region}")
    if sqs.queue(ctx, name) is None:
        return warn(f"{name} does not exist in {ctx.region}; run.py setup creates it with a 4-day retention",
                    f"aws sqs create-queue --queue-name {name} --attributes MessageRetentionPeriod={FOURTEEN_DAYS} "
                    f"--region {ctx.region}")
    return ok(f"{name} in {ctx.region}")


@check("Q03", "sqs.dlq-attributes", "The dead-letter queue keeps messages as long as the job queue",
       Severity.MEDIUM, needs=(dead_letter_queue,), actions=("sqs:GetQueueAttributes",),
       cure="Raises a shorter retention to 14 days.")
def dlq_attributes(ctx: Context) -> Finding:
    name = dlq_name(ctx)
    q = sqs.queue(ctx, name) if name else None
    if q is None:
        raise Skip("the dead-letter queue does not exist yet")
    if q.get("FifoQueue") == "true":
        return fail(f"{name} is a FIFO queue; DCP's job queue is a standard queue and needs a standard DLQ",
                    "create a standard queue and set SQS_DEAD_LETTER_QUEUE to it")
    retention = int(q.get("MessageRetentionPeriod", FOURTEEN_DAYS))
    if retention < FOURTEEN_DAYS:
        return warn(f"{name} keeps messages {retention / 86400:.0f} days; failed jobs keep their first enqueue "
                    "time, so they can expire before you look",
                    f"aws sqs set-queue-attributes --queue-url {q['url']} --attributes "
                    f"MessageRetentionPeriod={FOURTEEN_DAYS}")
    return ok("standard queue, 14-day retention")


@check("Q04", "sqs.main-queue", "No stale job queue from an earlier run", Severity.MEDIUM,
       needs=(*gates.AWS, queue_names), actions=("sqs:GetQueueUrl", "sqs:GetQueueAttributes"))
def main_queue(ctx: Context) -> Finding:
    name = ctx.config.get("SQS_QUEUE_NAME")
    q = sqs.queue(ctx, name)
    if q is None:
        return ok(f"{name} does not exist yet; run.py setup creates it")
    notes = []
    waiting = int(q.get("ApproximateNumberOfMessages", 0)) + int(q.get("ApproximateNumberOfMessagesNotVisible", 0))
    if waiting:
        notes.append(f"{waiting} leftover messages")
    vis = ctx.config.get("SQS_MESSAGE_VISIBILITY")
    if isinstance(vis, int) and str(vis) != q.get("VisibilityTimeout"):
        notes.append(f"VisibilityTimeout {q.get('VisibilityTimeout')} ≠ SQS_MESSAGE_VISIBILITY {vis}")
    retries = job_retries(ctx)
    try:
        redrive = json.loads(q.get("RedrivePolicy") or "{}")
    except json.JSONDecodeError:
        redrive = {}
    if redrive and isinstance(retries, int) and int(redrive.get("maxReceiveCount", 0)) != retries:
        notes.append(f"maxReceiveCount {redrive.get('maxReceiveCount')} ≠ "
                     + (f"JOB_RETRIES {retries}" if ctx.flavour.job_retries == "JOB_RETRIES" else
                        f"{retries}, which {ctx.flavour.name}'s run.py sets"))
    if notes:
        return warn(f"{name} already exists with {'; '.join(notes)}; run.py keeps it as it is",
                    f"aws sqs purge-queue --queue-url {q['url']} (or delete it and let run.py setup recreate it)")
    return ok(f"{name} exists, empty and matching config.py")


@check("Q05", "sqs.ranges", "Visibility timeout and retries are in range", Severity.HIGH, needs=(gates.CONFIG,))
def ranges(ctx: Context) -> Finding:
    vis, retries = ctx.config.get("SQS_MESSAGE_VISIBILITY"), job_retries(ctx)
    if not isinstance(vis, int) or isinstance(vis, bool) or not 0 <= vis <= 43200:
        return fail(f"SQS_MESSAGE_VISIBILITY {vis!r} must be a whole number of seconds from 0 to 43200",
                    "set it to about 1.5 × the time one job takes")
    if not isinstance(retries, int) or isinstance(retries, bool) or not 1 <= retries <= 1000:
        return fail(f"JOB_RETRIES {retries!r} must be a whole number from 1 to 1000", "set JOB_RETRIES = 3")
    return ok(f"visibility {vis} s, {retries} retries")


@check("Q06", "sqs.monitor-naming", "Queue name follows APP_NAME for the monitor and dashboard", Severity.HIGH,
       needs=(gates.CONFIG,))
def monitor_naming(ctx: Context) -> Finding:
    if not (is_true(ctx.config.get("AUTO_MONITOR")) or is_true(ctx.config.get("CREATE_DASHBOARD"))):
        raise Skip("AUTO_MONITOR and CREATE_DASHBOARD are off")
    app, queue = ctx.config.get("APP_NAME"), ctx.config.get("SQS_QUEUE_NAME")
    if isinstance(app, str) and "Queue" in app:
        return fail(f"APP_NAME {app!r} contains 'Queue'; the monitor Lambda splits the queue name on it",
                    "rename APP_NAME without 'Queue'")
    if queue != f"{app}Queue":
        return fail(f"SQS_QUEUE_NAME is {queue!r}, but the alarms, dashboard and Lambda expect {app}Queue",
                    "set SQS_QUEUE_NAME = APP_NAME + 'Queue'")
    return ok(f"{queue}")
