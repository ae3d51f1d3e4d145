"""What every write of fix shares: the client, tolerance of "it exists already", tags in each API's shape,
and ARNs in the region's partition.

Reads stay facts (agent/facts); writes live only under agent/fix. A write that finds its resource already
there (a concurrent run, or one killed after the call) counts as done: that is what makes a re-run converge.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from agent.facts.core import code_of
from agent.fix.tags import TAG_KEY, TAG_VALUE

if TYPE_CHECKING:
    from agent.context import Context

EXISTS = frozenset({"EntityAlreadyExists", "BucketAlreadyOwnedByYou", "InvalidGroup.Duplicate",
                    "InvalidKeyPair.Duplicate", "InvalidPermission.Duplicate", "QueueAlreadyExists",
                    "InvalidInput"})


@contextlib.contextmanager
def exists_ok(*extra: str) -> Iterator[None]:
    """Swallow the error an API answers when what we create is already there (EXISTS, plus ``extra``)."""
    try:
        yield
    except Exception as e:
        code = code_of(e)
        if code not in EXISTS | set(extra):
            raise
        if code == "InvalidInput" and "already" not in str(e).lower():   # IAM's SLR answer, only that one
            raise


def partition(ctx: Context) -> str:
    """The ARN partition of the region DCP works in (aws, aws-cn, aws-us-gov …), as the facts know it."""
    from agent.facts import aws

    return aws.partition(ctx, ctx.region)


def managed(ctx: Context, path: str) -> str:
    """An AWS managed policy's ARN in this region's partition, e.g. managed(ctx, 'service-role/X')."""
    return f"arn:{partition(ctx)}:iam::aws:policy/{path}"


def iam_tags() -> list[dict[str, str]]:
    return [{"Key": TAG_KEY, "Value": TAG_VALUE}]


def ec2_tags(resource_type: str) -> list[dict[str, Any]]:
    return [{"ResourceType": resource_type, "Tags": iam_tags()}]


def sqs_tags() -> dict[str, str]:
    return {TAG_KEY: TAG_VALUE}
