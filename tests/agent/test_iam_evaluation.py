"""The IAM evaluation behind I06, R02, R06 and S08: the local fallback evaluator on the kinds of policy real
accounts hold (conditions, policy variables, IAM's wildcards, resource-scoped grants, bucket policies), what a
local answer may conclude (never a BLOCKER fail), and a healthy account whose operator holds a least-privilege
policy with conditions.

moto has no SimulatePrincipalPolicy, so on moto these checks take the local path; the simulator's own path
(ContextEntries, MissingContextValues, pages) is tested through a loopback stand-in in test_simulator.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent.iamsim import ALLOWED, DENIED, UNKNOWN, Ask, Verdict, evaluate, judge
from agent.model import Status
from rig.seed import DcpAccount
from tests.agent.harness import run_agent

USER = "arn:aws:iam::123456789012:user/alice"
REGION = (("aws:RequestedRegion", "us-east-1"),)


def doc(*statements: dict[str, Any], version: str = "2012-10-17") -> dict[str, Any]:
    return {"Version": version, "Statement": list(statements)}


def decide(policy: dict[str, Any], action: str, resource: str, context: tuple[tuple[str, str], ...] = REGION,
           *, principal: str = USER, resource_policy: dict[str, Any] | None = None) -> str:
    return evaluate([policy], Ask(action, resource, context), principal, resource_policy)[0]


ALLOW_ALL = {"Effect": "Allow", "Action": "*", "Resource": "*"}


def test_conditional_mfa_deny_is_not_a_denial() -> None:
    """AWS's 'deny everything without MFA' statement: long-term keys carry no aws:MultiFactorAuthPresent, and
    whether the key is there is not known locally: cannot confirm, not denied."""
    mfa = doc(ALLOW_ALL, {"Sid": "NoMFA", "Effect": "Deny", "NotAction": ["iam:ChangePassword", "sts:GetSessionToken"],
                          "Resource": "*", "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}})
    assert decide(mfa, "sqs:CreateQueue", "arn:aws:sqs:us-east-1:123456789012:DCPQueue") == UNKNOWN
    assert decide(mfa, "sqs:CreateQueue", "arn:aws:sqs:us-east-1:123456789012:DCPQueue",
                  (*REGION, ("aws:MultiFactorAuthPresent", "true"))) == ALLOWED
    assert decide(mfa, "iam:ChangePassword", USER) == ALLOWED     # NotAction: the Deny does not cover it


def test_region_condition() -> None:
    region = doc({"Effect": "Allow", "Action": "ec2:*", "Resource": "*",
                  "Condition": {"StringEquals": {"aws:RequestedRegion": ["us-east-1", "us-west-2"]}}})
    assert decide(region, "ec2:RequestSpotFleet", "*") == ALLOWED
    assert decide(region, "ec2:RequestSpotFleet", "*", (("aws:RequestedRegion", "eu-west-1"),)) == DENIED
    deny_elsewhere = doc(ALLOW_ALL, {"Effect": "Deny", "Action": "*", "Resource": "*",
                                     "Condition": {"StringNotEquals": {"aws:RequestedRegion": "us-east-1"}}})
    assert decide(deny_elsewhere, "ecs:CreateCluster", "*") == ALLOWED
    assert decide(deny_elsewhere, "ecs:CreateCluster", "*", (("aws:RequestedRegion", "eu-west-1"),)) == DENIED


def test_pass_role_limited_by_passed_to_service() -> None:
    role = "arn:aws:iam::123456789012:role/aws-ec2-spot-fleet-tagging-role"
    policy = doc({"Effect": "Allow", "Action": "iam:PassRole", "Resource": "arn:aws:iam::*:role/aws-ec2-spot-fleet-*",
                  "Condition": {"StringEquals": {"iam:PassedToService": "spotfleet.amazonaws.com"}}})
    assert decide(policy, "iam:PassRole", role, (("iam:PassedToService", "spotfleet.amazonaws.com"),)) == ALLOWED
    assert decide(policy, "iam:PassRole", role, (("iam:PassedToService", "ec2.amazonaws.com"),)) == DENIED
    # Without the key the local evaluation cannot tell (the simulator would list it in MissingContextValues).
    assert decide(policy, "iam:PassRole", role, context=()) == UNKNOWN


def test_resource_scoped_allow_is_asked_on_the_real_arn() -> None:
    policy = doc({"Effect": "Allow", "Action": "sqs:*", "Resource": "arn:aws:sqs:*:*:DCP*"})
    assert decide(policy, "sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:DCPQueue") == ALLOWED
    assert decide(policy, "sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:OtherQueue") == DENIED
    assert decide(policy, "SQS:sendmessage", "arn:aws:sqs:us-east-1:123456789012:DCPQueue") == ALLOWED  # actions: any case
    assert decide(policy, "sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:dcpqueue") == DENIED   # resources: exact


def test_policy_variables() -> None:
    policy = doc({"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::lab/${aws:username}/*"})
    assert decide(policy, "s3:PutObject", "arn:aws:s3:::lab/alice/x") == ALLOWED
    assert decide(policy, "s3:PutObject", "arn:aws:s3:::lab/bob/x") == DENIED
    # A role has no aws:username: the variable cannot be resolved, so the statement cannot be evaluated.
    assert decide(policy, "s3:PutObject", "arn:aws:s3:::lab/alice/x",
                  principal="arn:aws:iam::123456789012:role/r") == UNKNOWN
    with_default = doc({"Effect": "Allow", "Action": "s3:PutObject",
                        "Resource": "arn:aws:s3:::lab/${aws:username, 'shared'}/*"})
    assert decide(with_default, "s3:PutObject", "arn:aws:s3:::lab/shared/x",
                  principal="arn:aws:iam::123456789012:role/r") == ALLOWED
    # Version 2008-10-17 has no policy variables: ${…} is literal text there.
    old = doc({"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::lab/${aws:username}/*"},
              version="2008-10-17")
    assert decide(old, "s3:PutObject", "arn:aws:s3:::lab/alice/x") == DENIED
    literal = doc({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::lab/${*}"})
    assert decide(literal, "s3:GetObject", "arn:aws:s3:::lab/*") == ALLOWED
    assert decide(literal, "s3:GetObject", "arn:aws:s3:::lab/x") == DENIED


def test_iam_wildcards_are_star_and_question_mark_only() -> None:
    policy = doc({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::lab/[ab]?"})
    assert decide(policy, "s3:GetObject", "arn:aws:s3:::lab/a1") == DENIED       # [ is not a character class
    assert decide(policy, "s3:GetObject", "arn:aws:s3:::lab/[ab]x") == ALLOWED
    assert decide(policy, "s3:GetObject", "arn:aws:s3:::lab/[ab]") == DENIED     # ? is exactly one character


def test_condition_operators() -> None:
    arn_like = doc({"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*",
                    "Condition": {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/al*"}}})
    assert decide(arn_like, "iam:PassRole", "arn:aws:iam::123456789012:role/x") == ALLOWED
    assert decide(arn_like, "iam:PassRole", "arn:aws:iam::123456789012:role/x",
                  principal="arn:aws:iam::123456789012:user/bob") == DENIED
    like = doc({"Effect": "Allow", "Action": "ec2:*", "Resource": "*",
                "Condition": {"StringLike": {"aws:RequestedRegion": "us-*"}}})
    assert decide(like, "ec2:DescribeSpotFleetInstances", "*") == ALLOWED
    secure = doc({"Effect": "Allow", "Action": "s3:*", "Resource": "*",
                  "Condition": {"Bool": {"aws:SecureTransport": "true"}}})
    assert decide(secure, "s3:PutObject", "arn:aws:s3:::lab/x") == ALLOWED
    any_value = doc({"Effect": "Allow", "Action": "ec2:*", "Resource": "*",
                     "Condition": {"ForAnyValue:StringEquals": {"aws:RequestedRegion": ["eu-west-1", "us-east-1"]}}})
    assert decide(any_value, "ec2:RequestSpotFleet", "*") == ALLOWED
    # A key the request context does not hold, or an operator not evaluated here: cannot confirm.
    source_ip = doc({"Effect": "Allow", "Action": "*", "Resource": "*",
                     "Condition": {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}})
    assert decide(source_ip, "sqs:CreateQueue", "*") == UNKNOWN
    # One false test makes the statement not apply, whatever else in it is unknown.
    mixed = doc({"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {
        "StringEquals": {"aws:RequestedRegion": "eu-west-1"}, "IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}},
        ALLOW_ALL)
    assert decide(mixed, "sqs:CreateQueue", "*") == ALLOWED


def test_explicit_deny_wins_over_unknowns() -> None:
    policy = doc({"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"IpAddress": {"aws:SourceIp": "1.2.3.4"}}},
                 {"Effect": "Deny", "Action": "sqs:DeleteQueue", "Resource": "*"})
    assert decide(policy, "sqs:DeleteQueue", "*") == DENIED


def test_a_bucket_policy_grant_counts() -> None:
    nothing = doc({"Effect": "Allow", "Action": "sqs:*", "Resource": "*"})
    obj = "arn:aws:s3:::lab/ecsconfigs/x"
    grant = doc({"Effect": "Allow", "Principal": {"AWS": USER}, "Action": "s3:PutObject", "Resource": "arn:aws:s3:::lab/*"})
    assert decide(nothing, "s3:PutObject", obj) == DENIED
    assert decide(nothing, "s3:PutObject", obj, resource_policy=grant) == ALLOWED
    # The account as principal only delegates to the account's IAM policies: no grant by itself.
    account = doc({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "s3:*",
                   "Resource": "arn:aws:s3:::lab/*"})
    assert decide(nothing, "s3:PutObject", obj, resource_policy=account) == DENIED
    deny = doc({"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::lab/*"})
    assert decide(doc(ALLOW_ALL), "s3:PutObject", obj, resource_policy=deny) == DENIED


def test_a_local_answer_is_never_a_blocker_fail() -> None:
    ask = Ask("iam:PassRole", "arn:aws:iam::123456789012:role/r", REGION)
    local_deny = judge({ask: Verdict(DENIED, True)}, lambda a: a.action, "fix")
    assert local_deny is not None and local_deny.status == Status.WARN
    unknown = judge({ask: Verdict(UNKNOWN, True, "statement 'X' (the condition key aws:SourceIp)")},
                    lambda a: a.action, "fix")
    assert unknown is not None and unknown.status == Status.WARN and "cannot confirm" in unknown.message
    simulated = judge({ask: Verdict(DENIED, False)}, lambda a: a.action, "fix")
    assert simulated is not None and simulated.status == Status.FAIL
    assert judge({ask: Verdict(ALLOWED, True)}, lambda a: a.action, "fix") is None


def least_privilege(a: DcpAccount) -> dict[str, Any]:
    """A careful lab's operator policy: PassRole only to the services that use each role, SQS only on DCP*
    queues, EC2 and ECS only in the region, the rest as DCP's docs list it."""
    acct, region = a.account_id, a.region
    return doc(
        {"Sid": "PassFleetRole", "Effect": "Allow", "Action": "iam:PassRole",
         "Resource": f"arn:aws:iam::{acct}:role/aws-ec2-spot-fleet-tagging-role",
         "Condition": {"StringEquals": {"iam:PassedToService": "spotfleet.amazonaws.com"}}},
        {"Sid": "PassInstanceRole", "Effect": "Allow", "Action": "iam:PassRole",
         "Resource": f"arn:aws:iam::{acct}:role/ecsInstanceRole",
         "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}},
        {"Sid": "DcpQueues", "Effect": "Allow", "Action": "sqs:*", "Resource": f"arn:aws:sqs:{region}:{acct}:DCP*"},
        {"Sid": "ListQueues", "Effect": "Allow", "Action": "sqs:ListQueues", "Resource": "*"},
        {"Sid": "InRegion", "Effect": "Allow", "Action": ["ec2:*", "ecs:*"], "Resource": "*",
         "Condition": {"StringEquals": {"aws:RequestedRegion": region}}},
        {"Sid": "Buckets", "Effect": "Allow", "Action": "s3:*",
         "Resource": [f"arn:aws:s3:::{a.bucket}", f"arn:aws:s3:::{a.bucket}/*"]},
        {"Sid": "ListBuckets", "Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"},
        {"Sid": "Rest", "Effect": "Allow", "Action": ["logs:*", "cloudwatch:*", "sns:*", "lambda:*", "iam:Get*",
                                                       "iam:List*", "servicequotas:Get*"], "Resource": "*"},
    )


def use_least_privilege(a: DcpAccount) -> None:
    iam = a.client("iam")
    for p in iam.list_attached_user_policies(UserName=a.operator_user)["AttachedPolicies"]:
        iam.detach_user_policy(UserName=a.operator_user, PolicyArn=p["PolicyArn"])
    iam.put_user_policy(UserName=a.operator_user, PolicyName="dcp-least-privilege",
                        PolicyDocument=json.dumps(least_privilege(a)))
    sqs = a.client("sqs")
    sqs.create_queue(QueueName="DCP_DeadMessages", Attributes={"MessageRetentionPeriod": "1209600"})
    a.edit_config(APP_NAME="DCPCellPainting", SQS_DEAD_LETTER_QUEUE="DCP_DeadMessages")


def test_least_privilege_operator_with_conditions_has_no_failure(account: DcpAccount) -> None:
    """Issue #10's acceptance: a healthy account whose operator holds a least-privilege policy with conditions
    (PassRole limited by iam:PassedToService, SQS limited to DCP* queues, EC2/ECS to the region): no fail."""
    use_least_privilege(account)
    results = run_agent(account)
    bad = {c: r.message for c, r in results.items() if r.status in (Status.FAIL, Status.ERROR)}
    assert bad == {}
    for code in ("I06", "R02", "R06", "S08"):
        assert results[code].status == Status.PASS, (code, results[code].message)
    assert "local evaluation" in results["R06"].message


@pytest.mark.parametrize("service", ["ec2.amazonaws.com", "ecs-tasks.amazonaws.com"])
def test_pass_role_to_the_wrong_service_is_seen(account: DcpAccount, service: str) -> None:
    """The fleet role may be passed only to ec2 (or ECS tasks): R06 sees it, as a warning (local evaluation)."""
    use_least_privilege(account)
    policy = least_privilege(account)
    policy["Statement"][0]["Condition"]["StringEquals"]["iam:PassedToService"] = service
    account.client("iam").put_user_policy(UserName=account.operator_user, PolicyName="dcp-least-privilege",
                                          PolicyDocument=json.dumps(policy))
    r = run_agent(account, ["R06"])["R06"]
    assert r.status == Status.WARN, r.message
    assert "aws-ec2-spot-fleet-tagging-role to spotfleet.amazonaws.com" in r.message
    assert "local evaluation" in r.message


def test_unknown_principal_cannot_be_confirmed(account: DcpAccount) -> None:
    """Keys moto does not know answer GetCallerIdentity as user/moto, a user IAM then does not have: the
    policies cannot be read, which is 'cannot confirm', not an error."""
    account.aws_credentials.write_text("[default]\naws_access_key_id = AKIAEXAMPLEEXAMPLE01\n"
                                       "aws_secret_access_key = testing\n")
    r = run_agent(account, ["I06"])["I06"]
    assert r.status == Status.WARN, r.message
    assert "cannot confirm" in r.message and "NoSuchEntity" in r.message


def test_i06_asks_what_run_py_calls(account: DcpAccount) -> None:
    r = run_agent(account, ["I06"])["I06"]
    assert r.status == Status.PASS, r.message
    # DCP's config defaults (AUTO_MONITOR, CREATE_DASHBOARD, CLEAN_DASHBOARD on): 48 calls, 41 distinct asks.
    assert "41 run.py calls allowed" in r.message and "setup 10, submitJob 2, startCluster 14, monitor 22" in r.message


def test_a_permissions_boundary_limits_the_local_answer(account: DcpAccount) -> None:
    """A role whose own policy allows everything but whose permissions boundary allows only S3: I06's run.py
    calls are outside it (local denial, a warning), S08's bucket actions inside. moto keeps boundaries on roles
    (not on users), so the operator works through a role_arn profile."""
    iam = account.client("iam")
    iam.create_role(RoleName="DCPTaskRole", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))
    iam.attach_role_policy(RoleName="DCPTaskRole", PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
    only_s3 = iam.create_policy(PolicyName="only-s3", PolicyDocument=json.dumps(doc(
        {"Effect": "Allow", "Action": ["s3:*", "iam:PassRole"], "Resource": "*"})))["Policy"]["Arn"]
    iam.put_role_permissions_boundary(RoleName="DCPTaskRole", PermissionsBoundary=only_s3)
    account.aws_config.write_text(f"[default]\nregion = us-east-1\noutput = json\n"
                                  f"role_arn = arn:aws:iam::{account.account_id}:role/DCPTaskRole\nsource_profile = base\n")
    account.aws_credentials.write_text(account.aws_credentials.read_text().replace("[default]", "[base]"))
    results = run_agent(account, ["I06", "S08", "R06"])
    assert results["I06"].status == Status.WARN, results["I06"].message
    assert "sqs:CreateQueue" in results["I06"].message and "local evaluation" in results["I06"].message
    assert results["S08"].status == Status.PASS, results["S08"].message
    assert results["R06"].status == Status.PASS, results["R06"].message
