"""Lists that come a page at a time are read to the end.

IAM may answer a List* call with fewer items than there are (IsTruncated and a Marker), and EC2 may answer a
Describe* call with a NextToken; moto answers every list in one page, so a reader of the first page only
passes against it. Here IAM and EC2 are reached through a loopback stand-in (rig/pager.py) that hands out
moto's answers one item per page, as AWS may: a check that depends on the second item sees it only if the
fact followed the marker.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from agent.model import Status
from rig.moto_server import MotoServer
from rig.pager import PagingProxy
from rig.seed import OPERATOR_POLICY, DcpAccount
from tests.agent.harness import run_agent


@pytest.fixture
def pager(moto: MotoServer, account: DcpAccount, monkeypatch: pytest.MonkeyPatch) -> Iterator[PagingProxy]:
    """IAM and EC2 through the paging stand-in (botocore's per-service endpoint variables), the rest direct."""
    with PagingProxy(moto.endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_IAM", proxy.endpoint)
        monkeypatch.setenv("AWS_ENDPOINT_URL_EC2", proxy.endpoint)
        yield proxy


def _halves() -> tuple[dict[str, Any], dict[str, Any]]:
    """The operator's grant split in two policies: either one alone lacks what run.py needs."""
    actions: list[str] = OPERATOR_POLICY["Statement"][0]["Action"]  # type: ignore[index] # sqs, ecs, s3, ec2, …
    return ({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions[0::2], "Resource": "*"}]},
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions[1::2], "Resource": "*"}]})


def _operator_grant_in(a: DcpAccount, where: str) -> str:
    """Move the operator's grant into two policies of kind ``where``; returns the list call that pages them."""
    iam = a.client("iam")
    user = a.operator_user
    for p in iam.list_attached_user_policies(UserName=user)["AttachedPolicies"]:
        iam.detach_user_policy(UserName=user, PolicyArn=p["PolicyArn"])
    docs = _halves()
    if where == "user-inline":
        for i, doc in enumerate(docs):
            iam.put_user_policy(UserName=user, PolicyName=f"half{i}", PolicyDocument=json.dumps(doc))
        return "ListUserPolicies"
    if where == "user-attached":
        for i, doc in enumerate(docs):
            arn = iam.create_policy(PolicyName=f"half{i}", PolicyDocument=json.dumps(doc))["Policy"]["Arn"]
            iam.attach_user_policy(UserName=user, PolicyArn=arn)
        return "ListAttachedUserPolicies"
    if where == "two-groups":
        for i, doc in enumerate(docs):
            iam.create_group(GroupName=f"dcp-{i}")
            iam.put_group_policy(GroupName=f"dcp-{i}", PolicyName="half", PolicyDocument=json.dumps(doc))
            iam.add_user_to_group(GroupName=f"dcp-{i}", UserName=user)
        return "ListGroupsForUser"
    iam.create_group(GroupName="dcp")
    iam.add_user_to_group(GroupName="dcp", UserName=user)
    for i, doc in enumerate(docs):
        if where == "group-inline":
            iam.put_group_policy(GroupName="dcp", PolicyName=f"half{i}", PolicyDocument=json.dumps(doc))
        else:
            arn = iam.create_policy(PolicyName=f"half{i}", PolicyDocument=json.dumps(doc))["Policy"]["Arn"]
            iam.attach_group_policy(GroupName="dcp", PolicyArn=arn)
    return "ListGroupPolicies" if where == "group-inline" else "ListAttachedGroupPolicies"


@pytest.mark.parametrize("where", ["user-inline", "user-attached", "two-groups", "group-inline", "group-attached"])
def test_operator_policies_on_later_pages_count(account: DcpAccount, pager: PagingProxy, where: str) -> None:
    """I06 evaluates the operator's policies locally (moto has no simulator): all of them, every page."""
    action = _operator_grant_in(account, where)
    r = run_agent(account, ["I06"])["I06"]
    assert r.status == Status.PASS, r.message
    assert (action, 1) in pager.paged            # the second page was asked for, and served


@pytest.mark.parametrize("where", ["attached", "inline"])
def test_role_policies_on_later_pages_count(account: DcpAccount, pager: PagingProxy, where: str) -> None:
    """R02: the instance role may read its ecsconfig through a policy on the second page of its list, managed
    (IAM lists them by name: AmazonEC2ContainerServiceforEC2Role, then AmazonS3FullAccess) or inline."""
    iam = account.client("iam")
    role = "ecsInstanceRole"
    if where == "inline":
        iam.detach_role_policy(RoleName=role, PolicyArn="arn:aws:iam::aws:policy/AmazonS3FullAccess")
        iam.put_role_policy(RoleName=role, PolicyName="a-logs", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "logs:*", "Resource": "*"}]}))
        iam.put_role_policy(RoleName=role, PolicyName="b-ecsconfigs", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
                                                    "Resource": f"arn:aws:s3:::{account.bucket}/ecsconfigs/*"}]}))
    r = run_agent(account, ["R02"])["R02"]
    assert r.status == Status.PASS, r.message
    assert ("ListRolePolicies" if where == "inline" else "ListAttachedRolePolicies", 1) in pager.paged


def test_images_on_later_pages_count(account: DcpAccount, pager: PagingProxy) -> None:
    """Two launch specifications with two ECS-optimized AMIs: DescribeImages answers them a page each."""
    ec2 = account.client("ec2")
    others = [i for i in ec2.describe_images(Owners=["amazon"], Filters=[
        {"Name": "architecture", "Values": ["x86_64"]}, {"Name": "name", "Values": ["amzn2-ami-ecs-hvm-*"]}])["Images"]
        if i["ImageId"] != account.image_id]
    assert others, "moto's canned images hold no second ECS AMI"
    doc = account.fleet_doc()
    doc["LaunchSpecifications"][1]["ImageId"] = others[0]["ImageId"]
    account.write_fleet(doc)
    r = run_agent(account, ["F05"])["F05"]
    assert r.status != Status.FAIL, r.message
    assert others[0]["ImageId"] in r.message and account.image_id in r.message
    assert ("DescribeImages", 1) in pager.paged


def test_kept_lists_page_alike_and_a_write_forgets_them(moto: MotoServer, account: DcpAccount) -> None:
    """The benchmarks' ``keep_lists``: later pages come from the list gathered once, and a write through the
    proxy drops it, so the next read sees the change (a stand-in that kept a stale list would be a lie)."""
    import boto3

    with PagingProxy(moto.endpoint, mode="one", keep_lists=True) as proxy:
        iam = boto3.client("iam", endpoint_url=proxy.endpoint, region_name="us-east-1")

        def names() -> list[str]:
            return [name for p in iam.get_paginator("list_role_policies").paginate(RoleName="ecsInstanceRole")
                    for name in p["PolicyNames"]]

        for name in ("kept-a", "kept-b"):
            iam.put_role_policy(RoleName="ecsInstanceRole", PolicyName=name, PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
                                                        "Resource": "*"}]}))

        first = names()
        pages = len(proxy.paged)
        assert pages == len(first) > 1 and names() == first          # one item a page, the same items again
        iam.delete_role_policy(RoleName="ecsInstanceRole", PolicyName="kept-a")
        assert names() == [n for n in first if n != "kept-a"]
