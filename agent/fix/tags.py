"""How fix marks what it creates, and the names of the resources it creates (fleet reads these too)."""

from __future__ import annotations

TAG_KEY = "dcp-agent:created-by"
TAG_VALUE = "dcp-agent fix"
WORKER_SG_NAME = "dcp-workers"       # the workers' security group fix creates in the VPC (one per VPC)


def tags() -> list[dict[str, str]]:
    """The tag list every create carries (EC2, IAM and SQS shapes differ; callers convert)."""
    return [{"Key": TAG_KEY, "Value": TAG_VALUE}]


def is_ours(tag_list: list[dict[str, str]] | None) -> bool:
    return any(t.get("Key") == TAG_KEY and t.get("Value") == TAG_VALUE for t in tag_list or [])
