"""ECS reads: the cluster DCP runs in, its services and the instances that joined it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.facts.core import code_of, fact

if TYPE_CHECKING:
    from agent.context import Context


@fact("ecs:DescribeClusters")
def cluster(ctx: Context, name: str) -> dict[str, Any] | None:
    """The cluster (status ACTIVE or INACTIVE), or None when ECS does not know it."""
    found = ctx.client("ecs").describe_clusters(clusters=[name]).get("clusters", [])
    return dict(found[0]) if found else None


@fact("ecs:DescribeServices")
def service(ctx: Context, cluster_name: str, name: str) -> dict[str, Any] | None:
    """The service, or None when it (or its cluster) does not exist, or was deleted (status INACTIVE)."""
    try:
        found = ctx.client("ecs").describe_services(cluster=cluster_name, services=[name]).get("services", [])
    except Exception as e:
        if code_of(e) == "ClusterNotFoundException":
            return None
        raise
    live = [s for s in found if s.get("status") != "INACTIVE"]
    return dict(live[0]) if live else None


@fact("ecs:ListContainerInstances", "ecs:DescribeContainerInstances")
def container_instances(ctx: Context, cluster_name: str) -> tuple[str, ...]:
    """EC2 instance ids registered (ACTIVE or DRAINING) in the cluster (none when there is no such cluster)."""
    ecs = ctx.client("ecs")
    try:
        arns = [a for page in ecs.get_paginator("list_container_instances").paginate(cluster=cluster_name)
                for a in page.get("containerInstanceArns", [])]
    except Exception as e:
        if code_of(e) == "ClusterNotFoundException":
            return ()
        raise
    ids: list[str] = []
    for i in range(0, len(arns), 100):   # DescribeContainerInstances takes 100 at a time
        described = ecs.describe_container_instances(cluster=cluster_name, containerInstances=arns[i:i + 100])
        ids += [c["ec2InstanceId"] for c in described.get("containerInstances", []) if c.get("ec2InstanceId")]
    return tuple(ids)
