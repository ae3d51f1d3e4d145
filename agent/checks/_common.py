"""Small judging helpers the check modules share (no reads here: reads are facts)."""

from __future__ import annotations

from typing import Any

from agent.context import Context
from agent.model import Skip


def cfg(ctx: Context, name: str) -> Any:
    """A config.py value, or Skip when config.py does not define it statically."""
    if not ctx.config.has(name):
        raise Skip(f"{name} is not set (or not statically known) in {ctx.config_path}")
    return ctx.config.get(name)


def is_true(value: Any) -> bool:
    return value == "True"


def name_from_arn(arn: Any) -> str | None:
    if isinstance(arn, str) and ":" in arn and "/" in arn:
        return arn.rsplit("/", 1)[-1]
    return None


def fleet_role_name(ctx: Context) -> str:
    """The spot-fleet role the fleet file names (DCP's default when it names none)."""
    if ctx.fleet and not ctx.fleet.error:
        name = name_from_arn(ctx.fleet.doc.get("IamFleetRole"))
        if name:
            return name
    return "aws-ec2-spot-fleet-tagging-role"


def instance_profile_name(ctx: Context) -> str:
    """The instance profile the fleet file names (DCP's default when it names none)."""
    if ctx.fleet and not ctx.fleet.error:
        for spec in ctx.fleet.specs:
            name = name_from_arn((spec.get("IamInstanceProfile") or {}).get("Arn"))
            if name:
                return name
    return "ecsInstanceRole"
