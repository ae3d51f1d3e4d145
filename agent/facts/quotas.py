"""Service Quotas reads."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.facts.core import code_of, fact

if TYPE_CHECKING:
    from agent.context import Context


@fact("servicequotas:GetServiceQuota", "servicequotas:GetAWSDefaultServiceQuota")
def ec2_quota(ctx: Context, code: str) -> float:
    """An EC2 quota's applied value (its default when the account never changed it)."""
    client = ctx.client("service-quotas")
    try:
        return float(client.get_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"]["Value"])
    except Exception as e:
        if code_of(e) != "NoSuchResourceException":
            raise
    return float(client.get_aws_default_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"]["Value"])
