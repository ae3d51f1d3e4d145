"""Group M on whole run states: a run that finished cleanly leaves no finding; a run left running is caught
by every check that should see it, and costs what its instances cost."""

from __future__ import annotations

import json

from agent.model import Status
from rig.seed import APP_NAME, DcpAccount
from tests.agent.cases import alarm, leftover_fleet, monitor_file, scaled_service, spot_price
from tests.agent.harness import run_agent

M_CODES = ("M01", "M02", "M03", "M05", "M06", "M07", "M08", "M09", "M10")


def test_a_cleanly_finished_run_leaves_no_m_finding(account: DcpAccount) -> None:
    """The state run.py's monitor leaves behind: fleet cancelled, service scaled to 0 and deleted, worker alarms
    deleted, the two trigger alarms kept (startCluster reuses them), log groups with 60 days, dashboard gone."""
    fid = leftover_fleet(account)
    monitor_file(account, fid)
    scaled_service(account, 0)
    ecs = account.client("ecs")
    ecs.delete_service(cluster="dcp-cluster", service=f"{APP_NAME}Service")
    account.client("ec2").cancel_spot_fleet_requests(SpotFleetRequestIds=[fid], TerminateInstances=True)
    for which in ("Visible", "NotVisible"):
        alarm(account, f"ApproximateNumberOfMessages{which}isZero_{APP_NAME}")
    logs = account.client("logs")
    for group in (APP_NAME, f"{APP_NAME}_perInstance"):
        logs.create_log_group(logGroupName=group)
        logs.put_retention_policy(logGroupName=group, retentionInDays=60)
    results = run_agent(account, ["M"])
    findings = {c: (r.status, r.message) for c, r in results.items() if c in M_CODES
                and r.status in (Status.WARN, Status.FAIL, Status.ERROR)}
    assert findings == {}
    assert set(M_CODES) <= set(results)


def test_a_run_left_running_is_seen_from_every_side(account: DcpAccount) -> None:
    fid = leftover_fleet(account, machines=2)
    monitor_file(account, fid)
    scaled_service(account, 2)
    alarm(account, f"{APP_NAME}_i-00000000000000000")       # a worker of an earlier run, long gone
    results = run_agent(account, ["M"], inject=spot_price(0.25)(account))
    assert results["M08"].status == Status.FAIL
    m10 = results["M10"]
    assert m10.status == Status.WARN and m10.cost_per_day == 2 * 0.25 * 24
    assert fid in m10.message and "2 × m5.xlarge" in m10.message and fid in m10.fix
    assert results["M06"].status == Status.WARN and "1 alarm(s)" in results["M06"].message
    doc = json.dumps(m10.as_json())
    assert '"cost_per_day": 12.0' in doc
