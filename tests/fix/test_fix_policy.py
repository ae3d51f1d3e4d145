"""``dcp-agent policy --fix`` is enough for ``fix --apply`` from an empty account, on IAM-enforcing moto server.

moto enforces IAM after INITIAL_NO_AUTH_ACTION_COUNT requests (see tests/agent/test_least_privilege.py): an
admin seeds the account, and the operator holds nothing but the shipped fix policy (placeholders filled).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from importlib import resources

import boto3
import pytest

from agent import iamsim
from agent.cli import main
from agent.fix import policy as fix_policy
from agent.fix.planner import Options, make_plan
from rig.moto_server import MotoServer
from rig.quota_stub import QuotaStub
from rig.seed import APP_NAME, DLQ, KEY_NAME, OPERATOR, OPERATOR_IP, DcpAccount, seed_empty_account


@pytest.fixture(scope="module")
def enforcing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with MotoServer(extra_env={"INITIAL_NO_AUTH_ACTION_COUNT": "4"},
                    log=tmp_path_factory.mktemp("moto-iam") / "moto.log") as server:
        yield server


def filled(acct: DcpAccount) -> str:
    text = resources.files("agent").joinpath("data/policy-fix.json").read_text()
    for placeholder, value in (("<PARTITION>", "aws"), ("<ACCT>", acct.account_id), ("<REGION>", acct.region),
                               ("<AWS_BUCKET>", acct.bucket),
                               ("<SOURCE_BUCKET>", acct.bucket), ("<WORKSPACE_BUCKET>", acct.bucket),
                               ("<DESTINATION_BUCKET>", acct.bucket), ("<SQS_DEAD_LETTER_QUEUE>", DLQ),
                               ("<SQS_QUEUE_NAME>", f"{APP_NAME}Queue"), ("<KEY_NAME>", KEY_NAME)):
        text = text.replace(placeholder, value)
    assert "<" not in text
    doc = json.loads(text)
    # Moto-only aliases, as in tests/agent/test_least_privilege.py: moto authorizes HeadBucket as s3:HeadBucket
    # and CloudWatch as monitoring:*; AWS has neither name (the shipped policy grants AWS's).
    doc["Statement"].append({"Sid": "MotoOnlyAliases", "Effect": "Allow", "Action": ["s3:HeadBucket"],
                             "Resource": f"arn:aws:s3:::{acct.bucket}"})
    doc["Statement"].append({"Sid": "MotoOnlyCloudWatch", "Effect": "Allow", "Resource": "*",
                             "Action": ["monitoring:DescribeAlarms", "monitoring:ListDashboards"]})
    # moto authorizes every action outside S3 against Resource "*" (moto/core/authorization.py), so a statement
    # scoped to DCP's role, queue or key-pair ARNs never matches there. Moto-only: the same write actions on "*".
    # This test proves the action list is complete; test_fix_policy_is_scoped_to_dcps_resources proves the
    # scoping with the policy evaluator, against the ARNs AWS would authorize.
    doc["Statement"].append({"Sid": "MotoOnlyUnscoped", "Effect": "Allow", "Resource": "*",
                             "Action": [a for a in fix_policy.actions() if not a.startswith("s3:")]})
    return json.dumps(doc)


@pytest.fixture
def fixer(enforcing: MotoServer, quotas: QuotaStub, tmp_path_factory: pytest.TempPathFactory,
          monkeypatch: pytest.MonkeyPatch) -> DcpAccount:
    boot = boto3.client("iam", endpoint_url=enforcing.endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")
    boot.create_user(UserName="admin")                                                                   # 1
    boot.attach_user_policy(UserName="admin", PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")   # 2
    key = boot.create_access_key(UserName="admin")["AccessKey"]                                         # 3
    acct = seed_empty_account(enforcing.endpoint, tmp_path_factory.mktemp("fixpol") / "home",
                              admin_keys=(key["AccessKeyId"], key["SecretAccessKey"]))
    iam = acct.client("iam")
    for p in iam.list_attached_user_policies(UserName=OPERATOR)["AttachedPolicies"]:
        iam.detach_user_policy(UserName=OPERATOR, PolicyArn=p["PolicyArn"])
    iam.put_user_policy(UserName=OPERATOR, PolicyName="dcp-fix", PolicyDocument=filled(acct))
    acct.extra_env["AWS_ENDPOINT_URL_SERVICE_QUOTAS"] = quotas.endpoint
    for k in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(k)
    for k, v in acct.env().items():
        monkeypatch.setenv(k, v)
    return acct


def test_shipped_fix_policy_is_generated() -> None:
    assert fix_policy.SHIPPED.read_text() == fix_policy.render(), "run .venv/bin/python -m agent.policy --write"


def test_fix_policy_is_enough_for_apply_from_empty(fixer: DcpAccount, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["fix", "--apply", "--yes", "--ssh-cidr", f"{OPERATOR_IP}/32"])
    out, err = capsys.readouterr()
    assert "FAILED" not in out and "skipped" not in out, out
    assert code == 0, out + err
    with pytest.raises(Exception, match=r"AccessDenied|not authorized"):
        boto3.Session().client("iam").create_user(UserName="not-in-the-policy")   # enforcement is on


def test_every_planned_action_is_in_the_fix_policy(empty_account: DcpAccount) -> None:
    from agent import settings as settings_mod
    from agent.context import Context

    s = settings_mod.load(empty_account.settings)
    plan, _ = make_plan(s, Context(s), Options(ssh_cidr=f"{OPERATOR_IP}/32", request_quota=True))
    planned = {a for step in plan.changes for a in step.actions}
    assert planned and planned <= set(fix_policy.actions())


def test_policy_command_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "--fix"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"FixRoles", "FixBucket", "EC2Describe"} <= {st["Sid"] for st in doc["Statement"]}


def test_fix_policy_is_scoped_to_dcps_resources() -> None:
    """Writes are allowed on DCP's named resources and nothing else (AWS's resource ARNs for each action)."""
    text = fix_policy.render()
    for placeholder, value in (("<PARTITION>", "aws"), ("<ACCT>", "111122223333"), ("<REGION>", "us-east-1"),
                               ("<AWS_BUCKET>", "lab-bucket"),
                               ("<SQS_DEAD_LETTER_QUEUE>", "lab_Dead"), ("<SQS_QUEUE_NAME>", "lab_Queue"),
                               ("<KEY_NAME>", "lab-key")):
        text = text.replace(placeholder, value)
    doc = json.loads(text)
    who = "arn:aws:iam::111122223333:user/op"

    def decide(action: str, resource: str) -> str:
        return iamsim.evaluate([doc], iamsim.Ask(action, resource), who)[0]

    ours = [("iam:CreateRole", "arn:aws:iam::111122223333:role/ecsInstanceRole"),
            ("iam:AttachRolePolicy", "arn:aws:iam::111122223333:role/aws-ec2-spot-fleet-tagging-role"),
            ("iam:CreateInstanceProfile", "arn:aws:iam::111122223333:instance-profile/ecsInstanceRole"),
            ("s3:CreateBucket", "arn:aws:s3:::lab-bucket"), ("s3:PutBucketPolicy", "arn:aws:s3:::lab-bucket"),
            ("sqs:CreateQueue", "arn:aws:sqs:us-east-1:111122223333:lab_Dead"),
            ("ec2:CreateKeyPair", "arn:aws:ec2:us-east-1:111122223333:key-pair/lab-key"),
            ("sqs:DeleteMessage", "arn:aws:sqs:us-east-1:111122223333:lab_Dead"),
            ("sqs:SendMessage", "arn:aws:sqs:us-east-1:111122223333:lab_Queue")]
    theirs = [("iam:CreateRole", "arn:aws:iam::111122223333:role/Admin"),
              ("iam:AttachRolePolicy", "arn:aws:iam::111122223333:role/other-team"),
              ("iam:PassRole", "arn:aws:iam::111122223333:role/aws-ec2-spot-fleet-tagging-role"),
              ("s3:PutBucketPolicy", "arn:aws:s3:::someone-elses-bucket"),
              ("sqs:SetQueueAttributes", "arn:aws:sqs:us-east-1:111122223333:their-queue"),
              ("ec2:CreateKeyPair", "arn:aws:ec2:us-east-1:111122223333:key-pair/other"),
              ("iam:DeleteRole", "arn:aws:iam::111122223333:role/ecsInstanceRole"),
              ("s3:DeleteBucket", "arn:aws:s3:::lab-bucket"),
              ("sqs:DeleteMessage", "arn:aws:sqs:us-east-1:111122223333:lab_Queue"),      # requeue: DLQ only
              ("sqs:SendMessage", "arn:aws:sqs:us-east-1:111122223333:their-queue")]
    assert [decide(*a) for a in ours] == [iamsim.ALLOWED] * len(ours)
    assert [decide(*a) for a in theirs] == [iamsim.DENIED] * len(theirs)
