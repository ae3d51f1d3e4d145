"""SQS reads: a queue's URL and attributes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.facts.core import code_of, fact

if TYPE_CHECKING:
    from agent.context import Context


@fact("sqs:GetQueueUrl", "sqs:GetQueueAttributes")
def queue(ctx: Context, name: str) -> dict[str, Any] | None:
    """The queue's attributes with its ``url``; None when it does not exist."""
    sqs = ctx.client("sqs")
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except Exception as e:
        if code_of(e) in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            return None
        raise
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return {"url": url, **attrs}
