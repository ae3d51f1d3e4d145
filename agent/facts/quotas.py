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


@fact("servicequotas:ListRequestedServiceQuotaChangeHistoryByQuota")
def open_requests(ctx: Context, code: str) -> tuple[float, ...]:
    """The desired values of this account's increase requests for an ec2 quota that are still open."""
    pages = ctx.client("service-quotas").get_paginator("list_requested_service_quota_change_history_by_quota")
    return tuple(float(r.get("DesiredValue", 0)) for page in pages.paginate(ServiceCode="ec2", QuotaCode=code)
                 for r in page.get("RequestedQuotas", []) if r.get("Status") in ("PENDING", "CASE_OPENED"))
