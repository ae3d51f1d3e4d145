"""China: DCP's roles trusted by the ``.amazonaws.com.cn`` service names are not a BLOCKER.

In the aws-cn partition a role's trust policy may name a service as ``ec2.amazonaws.com`` or, in the older form
that China's IAM once required (and that roles made then still carry), ``ec2.amazonaws.com.cn``; both are
accepted there. Elsewhere only the plain name counts.

Stand-in: moto server keeps IAM per partition, so the roles are made in moto's aws-cn partition (a client for
cn-north-1) as an operator would make them, and the agent reads them from there with ``AWS_REGION`` and the CLI
region set to the China region. moto stores a trust policy as given and never decides which service may assume
a role, so this proves what the checks read and how they judge the document, not that AWS China accepts each
name (that comes from AWS's behaviour as reported, see docs/checks.md, R01).
"""

from __future__ import annotations

import json

import pytest

from rig.seed import FLEET_ROLE, INSTANCE_ROLE, DcpAccount, trust_policy
from tests.agent.harness import run_agent

CODES = ["R01", "R04", "R07"]


def roles_in(a: DcpAccount, region: str, suffix: str) -> None:
    """config.py and the CLI in ``region``; DCP's roles made there (in its partition), each trusted by its service
    under the name ``<service>.amazonaws.com`` + ``suffix``."""
    a.edit_config(AWS_REGION=region)
    a.aws_config.write_text(f"[default]\nregion = {region}\noutput = json\n")
    part = "aws-cn" if region.startswith("cn-") else "aws"
    iam = a.client("iam", region=region)
    if part == "aws":   # the healthy account's roles, trusted by the plain names: start over
        for role, policies in ((FLEET_ROLE, iam.list_attached_role_policies(RoleName=FLEET_ROLE)),
                               (INSTANCE_ROLE, iam.list_attached_role_policies(RoleName=INSTANCE_ROLE)),
                               ("LambdaFullAccess", iam.list_attached_role_policies(RoleName="LambdaFullAccess"))):
            for p in policies["AttachedPolicies"]:
                iam.detach_role_policy(RoleName=role, PolicyArn=p["PolicyArn"])
        iam.remove_role_from_instance_profile(InstanceProfileName=INSTANCE_ROLE, RoleName=INSTANCE_ROLE)
        iam.delete_instance_profile(InstanceProfileName=INSTANCE_ROLE)
        for role in (FLEET_ROLE, INSTANCE_ROLE, "LambdaFullAccess"):
            iam.delete_role(RoleName=role)
    iam.create_role(RoleName=FLEET_ROLE, AssumeRolePolicyDocument=trust_policy(f"spotfleet.amazonaws.com{suffix}"))
    iam.attach_role_policy(RoleName=FLEET_ROLE,
                           PolicyArn=f"arn:{part}:iam::aws:policy/service-role/AmazonEC2SpotFleetTaggingRole")
    iam.create_role(RoleName=INSTANCE_ROLE, AssumeRolePolicyDocument=trust_policy(f"ec2.amazonaws.com{suffix}"))
    for arn in ("service-role/AmazonEC2ContainerServiceforEC2Role", "AmazonS3FullAccess"):
        iam.attach_role_policy(RoleName=INSTANCE_ROLE, PolicyArn=f"arn:{part}:iam::aws:policy/{arn}")
    iam.create_instance_profile(InstanceProfileName=INSTANCE_ROLE)
    iam.add_role_to_instance_profile(InstanceProfileName=INSTANCE_ROLE, RoleName=INSTANCE_ROLE)
    iam.create_role(RoleName="LambdaFullAccess", AssumeRolePolicyDocument=trust_policy(f"lambda.amazonaws.com{suffix}"))
    iam.attach_role_policy(RoleName="LambdaFullAccess", PolicyArn=f"arn:{part}:iam::aws:policy/AmazonS3FullAccess")


@pytest.mark.parametrize("region", ["cn-north-1", "cn-northwest-1"])
def test_cn_service_names_are_trusted_in_china_only(account: DcpAccount, region: str) -> None:
    roles_in(account, region, ".cn")
    results = run_agent(account, CODES)
    assert {c: results[c].status.value for c in CODES} == dict.fromkeys(CODES, "pass"), \
        {c: results[c].message for c in CODES}
    assert "ec2.amazonaws.com.cn" in results["R01"].message
    assert "spotfleet.amazonaws.com.cn" in results["R04"].message
    assert "lambda.amazonaws.com.cn" in results["R07"].message
    # The same roles in the aws partition: there ec2.amazonaws.com.cn is no name of EC2, and they are not trusted.
    # (Plain names in China pass: the R02 China case in tests/agent/cases.py.)
    roles_in(account, "us-east-1", ".cn")
    results = run_agent(account, CODES)
    assert {c: results[c].status.value for c in CODES} == dict.fromkeys(CODES, "fail")
    assert results["R01"].message == "ecsInstanceRole is not trusted by ec2.amazonaws.com"


def test_fix_plans_no_trust_change_for_a_china_role_trusted_by_the_cn_name(
        account: DcpAccount, capsys: pytest.CaptureFixture[str]) -> None:
    """fix judges trust as the checks do: a China role trusted as ec2.amazonaws.com.cn needs no new statement,
    while the same role in the aws partition does."""
    from agent.cli import main

    def trust_steps() -> list[str]:
        code = main(["fix", "--json", "--ssh-cidr", "203.0.113.7/32"])
        out, err = capsys.readouterr()
        assert code in (0, 1), err
        plan = json.loads(out)["plan"]
        return [s["resource"] for s in plan["steps"] if s["change"].startswith("trust policy gains")]

    (account.home / ".ssh" / "dcp-key.pem").unlink()   # its key pair is in us-east-1 only: fix would stop there
    roles_in(account, "cn-north-1", ".cn")
    assert trust_steps() == []
    roles_in(account, "us-east-1", ".cn")
    assert sorted(trust_steps()) == [f"iam role {r}" for r in sorted((FLEET_ROLE, INSTANCE_ROLE, "LambdaFullAccess"))]
