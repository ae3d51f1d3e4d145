"""SSM reads: the public parameters AWS publishes (the current ECS-optimized AMI of a region)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.facts.core import fact

if TYPE_CHECKING:
    from agent.context import Context

ECS_AMI_PARAMETER = "/aws/service/ecs/optimized-ami/{family}/recommended"
ECS_AMI_FAMILIES = {"al2023": "amazon-linux-2023", "al2": "amazon-linux-2"}


@dataclass(frozen=True)
class EcsAmi:
    parameter: str      # the SSM parameter it came from
    image_id: str
    image_name: str     # "" when the parameter did not say


@fact("ssm:GetParameter")
def ecs_ami(ctx: Context, family: str) -> EcsAmi:
    """The recommended ECS-optimized AMI of AWS_REGION for ``family`` (al2023 or al2), from AWS's public SSM
    parameter: a JSON object with image_id and image_name. Raises AwsError ParameterNotFound when the
    region does not publish it.

    moto 5.2.5 serves that parameter's value as Python's repr of the object (single quotes), not JSON; the
    parameter's own ``/image_id`` child, which AWS publishes too, is then read instead (one more call)."""
    name = ECS_AMI_PARAMETER.format(family=ECS_AMI_FAMILIES.get(family, family))
    ssm = ctx.client("ssm")
    value = str(ssm.get_parameter(Name=name)["Parameter"]["Value"])
    try:
        doc = json.loads(value)
    except json.JSONDecodeError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("image_id"), str):
        return EcsAmi(name, doc["image_id"], str(doc.get("image_name") or ""))
    image_id = str(ssm.get_parameter(Name=f"{name}/image_id")["Parameter"]["Value"]).strip()
    return EcsAmi(f"{name}/image_id", image_id, "")
