"""Auto-Monitor reads: the Monitor Lambda, its invoke permission, and the SNS topic that feeds it."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from agent.facts.core import code_of, fact

if TYPE_CHECKING:
    from agent.context import Context


@fact("lambda:GetFunctionConfiguration")
def function(ctx: Context, name: str) -> dict[str, Any] | None:
    """The function's configuration (runtime, role, environment), or None when it does not exist."""
    try:
        return dict(ctx.client("lambda").get_function_configuration(FunctionName=name))
    except Exception as e:
        if code_of(e) == "ResourceNotFoundException":
            return None
        raise


@fact("lambda:GetPolicy")
def function_policy(ctx: Context, name: str) -> dict[str, Any] | None:
    """The function's resource policy (who may invoke it), or None when it has none."""
    try:
        return dict(json.loads(ctx.client("lambda").get_policy(FunctionName=name)["Policy"]))
    except Exception as e:
        if code_of(e) == "ResourceNotFoundException":
            return None
        raise


@fact("sns:ListSubscriptionsByTopic")
def subscriptions(ctx: Context, topic_arn: str) -> tuple[dict[str, Any], ...] | None:
    """The topic's subscriptions, asked by the topic's ARN; None when there is no such topic (SNS answers
    NotFound). One read says both whether the topic exists and what it feeds, without listing the account's
    topics (ListTopics pages 100 at a time)."""
    try:
        pages = ctx.client("sns").get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn)
        return tuple(s for page in pages for s in page.get("Subscriptions", []))
    except Exception as e:
        if code_of(e) in ("NotFound", "NotFoundException"):
            return None
        raise
