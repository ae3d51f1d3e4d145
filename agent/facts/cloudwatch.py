"""CloudWatch and CloudWatch Logs reads: alarms, dashboards, log groups, export tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.facts.core import fact

if TYPE_CHECKING:
    from agent.context import Context


@fact("cloudwatch:DescribeAlarms")
def alarm_names(ctx: Context, prefix: str) -> tuple[str, ...]:
    """The names of the metric alarms whose names start with ``prefix``, narrowed by CloudWatch itself
    (``AlarmNamePrefix``): DCP's per-worker alarms are ``<APP_NAME>_<instance-id>`` (worker/run-worker.sh),
    and run.py's own cleanup asks the same way (``describe_alarms(AlarmNamePrefix=monitorapp)``). An account
    shared by many labs holds thousands of others' alarms, at 50 a page."""
    pages = ctx.client("cloudwatch").get_paginator("describe_alarms").paginate(
        AlarmNamePrefix=prefix, AlarmTypes=["MetricAlarm"])
    return tuple(a["AlarmName"] for page in pages for a in page.get("MetricAlarms", []))


@fact("cloudwatch:ListDashboards")
def dashboard_names(ctx: Context, prefix: str) -> tuple[str, ...]:
    """The dashboards whose names start with ``prefix`` (``DashboardNamePrefix``: run.py names its dashboard
    ``APP_NAME``)."""
    pages = ctx.client("cloudwatch").get_paginator("list_dashboards").paginate(DashboardNamePrefix=prefix)
    return tuple(d["DashboardName"] for page in pages for d in page.get("DashboardEntries", []))


@fact("logs:DescribeLogGroups")
def log_groups(ctx: Context, prefix: str) -> dict[str, dict[str, Any]]:
    """Log groups whose names start with ``prefix``: name -> description (retentionInDays when set)."""
    pages = ctx.client("logs").get_paginator("describe_log_groups").paginate(logGroupNamePrefix=prefix)
    return {g["logGroupName"]: dict(g) for page in pages for g in page.get("logGroups", [])}


@fact("logs:DescribeExportTasks")
def active_export_tasks(ctx: Context) -> tuple[dict[str, Any], ...]:
    """Export tasks still PENDING or RUNNING (the account may have only one active at a time)."""
    logs = ctx.client("logs")
    found: list[dict[str, Any]] = []
    for status in ("PENDING", "RUNNING"):
        for page in logs.get_paginator("describe_export_tasks").paginate(statusCode=status):
            found += page.get("exportTasks", [])
    return tuple(found)
