"""A check costs the same in a busy shared account as in an empty one, and its verdicts stay exact there.

Every AWS request goes through rig/pager.py in its "aws" mode: moto's lists cut into pages at AWS's documented
page sizes (DescribeAlarms 50, ListRoles 100 …), and the instance-lifecycle filter moto lacks answered. The
clutter (rig/clutter.py) is other labs' roles, buckets, alarms, log groups, finished fleets, security groups,
queues, clusters, instances and key pairs: k = 100 units of them (the plain resources made inside moto by the
rig's bulk route, rig/moto_bulk.py, so that 13,000 resources take seconds, not a minute), and for M06 alarms up
to 10,000 (the benchmark bench/scale.py seeds all of it over HTTP).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from agent.model import Status
from rig.clutter import add_alarms, add_clutter
from rig.moto_server import MotoServer
from rig.pager import PagingProxy
from rig.seed import APP_NAME, DcpAccount, admin_client
from tests.agent.cases import alarm, leftover_fleet, monitor_file, spot_price
from tests.agent.harness import run_agent

K = 100     # issue 19: a 100× account (13,000 resources of other labs)


@pytest.fixture
def aws_pages(moto: MotoServer, account: DcpAccount, monkeypatch: pytest.MonkeyPatch) -> Iterator[PagingProxy]:
    """Every service but Service Quotas (its own stub) through the paging stand-in, at AWS's page sizes."""
    with PagingProxy(moto.endpoint, mode="aws") as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        yield proxy


# How many SimulatePrincipalPolicy calls a run sends depends on timing, not on the account: moto lacks the API,
# and once one call has found it missing the calls not yet sent are not sent (agent.facts.iam.simulate), so
# 3 to 5 go out. Whether it is asked is compared; how often is not.
TIMING_DEPENDENT = {"SimulatePrincipalPolicy"}


def _one_run(account: DcpAccount, pager: PagingProxy) -> tuple[Counter[tuple[str, int]], dict[str, Status]]:
    pager.requests.clear()
    results = run_agent(account)
    sent = Counter(pager.requests)
    for key in [k for k in sent if k[0] in TIMING_DEPENDENT]:
        sent[key] = 1
    return sent, {code: r.status for code, r in results.items()}


def test_a_cluttered_account_costs_the_requests_of_a_clean_one(account: DcpAccount, aws_pages: PagingProxy) -> None:
    """The same requests, each as often (action and page), and the same verdicts, before and after 100 units of
    clutter: 5,000 alarms would be 100 pages of DescribeAlarms, 1,000 log groups 20, 2,000 roles 20, were they
    asked for; 500 finished fleets are one page of DescribeSpotFleetRequests (AWS: up to 1,000 a page)."""
    clean, clean_verdicts = _one_run(account, aws_pages)
    assert clean_verdicts and all(s in (Status.PASS, Status.WARN, Status.SKIP) for s in clean_verdicts.values()), \
        {c: s for c, s in clean_verdicts.items() if s not in (Status.PASS, Status.WARN, Status.SKIP)}
    assert ("DescribeAlarms", 0) in clean and ("DescribeSpotFleetRequests", 0) in clean
    made = add_clutter(account, K, bulk=True)
    assert made.k == K
    assert len(account.client("cloudwatch").describe_alarms()["MetricAlarms"]) >= 50 * K   # moto: one page
    cluttered, cluttered_verdicts = _one_run(account, aws_pages)
    assert cluttered_verdicts == clean_verdicts
    assert cluttered == clean, {"more": cluttered - clean, "fewer": clean - cluttered}


def test_the_stand_in_pages_as_aws_and_filters_as_aws(account: DcpAccount, aws_pages: PagingProxy) -> None:
    """Through the stand-in, 120 alarms come 50 a page (3 requests, none lost) and the instance-lifecycle
    filter, which moto alone answers with HTTP 500, returns the spot instances only."""
    for n in range(120):
        alarm(account, f"Lab_i-{n:017x}")
    via = admin_client(aws_pages.endpoint, "cloudwatch", account.region, account.admin_keys, account.account_id)
    pages = list(via.get_paginator("describe_alarms").paginate(AlarmNamePrefix="Lab_"))
    assert [len(p["MetricAlarms"]) for p in pages] == [50, 50, 20]
    assert len({a["AlarmName"] for p in pages for a in p["MetricAlarms"]}) == 120

    leftover_fleet(account, machines=2)                        # two spot instances
    ec2 = account.client("ec2")
    ec2.run_instances(ImageId=account.image_id, InstanceType="t3.micro", MinCount=3, MaxCount=3,
                      SubnetId=account.subnets[0])             # three on-demand ones
    spot = [{"Name": "instance-lifecycle", "Values": ["spot"]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]}]
    with pytest.raises(Exception, match=r"500|parse"):         # moto lacks the filter
        ec2.describe_instances(Filters=spot)
    via_ec2 = admin_client(aws_pages.endpoint, "ec2", account.region, account.admin_keys, account.account_id)
    found = [i for r in via_ec2.describe_instances(Filters=spot)["Reservations"] for i in r["Instances"]]
    assert len(found) == 2 and {i.get("InstanceLifecycle") for i in found} == {"spot"}


def test_m06_and_m10_are_exact_among_the_clutter(account: DcpAccount, aws_pages: PagingProxy) -> None:
    """M10 finds this app's one active fleet among 500 finished ones (and 1,000 instances of other apps); M06
    counts exactly this app's 3 stale worker alarms among 10,000 of other apps' (one in 50 named CellPaintingRun2_…,
    which starts like this app's prefix), and not the alarms of the running workers."""
    add_clutter(account, K, bulk=True)
    add_alarms(account, 10_000 - 50 * K)
    assert len(account.client("cloudwatch").describe_alarms()["MetricAlarms"]) == 10_000
    fid = leftover_fleet(account, machines=2)
    monitor_file(account, fid)
    ec2 = account.client("ec2")
    for i in ec2.describe_spot_fleet_instances(SpotFleetRequestId=fid)["ActiveInstances"]:
        alarm(account, f"{APP_NAME}_{i['InstanceId']}")          # the live workers' own alarms: in use
    stale = [f"{APP_NAME}_i-{n:017x}" for n in (1, 2, 3)]
    for name in stale:
        alarm(account, name)
    results = run_agent(account, ["M06", "M10"], inject=spot_price(0.25)(account))
    m10 = results["M10"]
    assert m10.status == Status.WARN and "1 fleet(s)" in m10.message and fid in m10.message, m10.message
    assert m10.cost_per_day == 2 * 0.25 * 24
    m06 = results["M06"]
    assert m06.status == Status.WARN and "3 alarm(s)" in m06.message, m06.message
    assert sorted(m06.fix.split("--alarm-names ")[1].split(" --region")[0].split()) == stale
