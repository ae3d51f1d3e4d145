"""The whole catalogue with credentials that hold only the shipped read-only policy: no AccessDenied.

moto server enforces IAM once INITIAL_NO_AUTH_ACTION_COUNT requests have been served: the first three
requests make an admin user, whose keys then seed the account; the agent runs as a 'preflight' user
holding nothing but ``dcp-agent policy`` (placeholders filled in).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import boto3
import pytest

from agent.model import Status
from rig.moto_server import MotoServer
from rig.quota_stub import QuotaStub
from rig.seed import DLQ, DcpAccount, seed_healthy_account
from tests.agent.harness import run_agent


@pytest.fixture(scope="module")
def enforcing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with MotoServer(extra_env={"INITIAL_NO_AUTH_ACTION_COUNT": "4"},
                    log=tmp_path_factory.mktemp("moto-iam") / "moto.log") as server:
        yield server


def _actions(doc: dict[str, object]) -> list[str]:
    out: list[str] = []
    for st in doc["Statement"]:  # type: ignore[attr-defined]
        out += [st["Action"]] if isinstance(st["Action"], str) else st["Action"]
    return out


# moto server, when it enforces IAM, rejects the signature of every Lambda request (SignatureDoesNotMatch, an
# administrator's keys included), so the checks that read Lambda cannot be verified there. They must come out
# as exactly that "cannot verify", no more; the shipped policy's lambda:* reads are checked against the
# registry by tests/agent/test_registry.py.
MOTO_CANNOT_AUTHORIZE = {"M02": "lambda:GetFunctionConfiguration", "M03": "GetFunctionConfiguration"}


def shipped_policy(acct: DcpAccount) -> str:
    text = resources.files("agent").joinpath("data/policy.json").read_text()
    for placeholder, value in (("<PARTITION>", "aws"), ("<ACCT>", acct.account_id), ("<REGION>", acct.region),
                               ("<AWS_BUCKET>", acct.bucket), ("<SOURCE_BUCKET>", acct.bucket),
                               ("<WORKSPACE_BUCKET>", acct.bucket), ("<DESTINATION_BUCKET>", acct.bucket),
                               ("<SQS_DEAD_LETTER_QUEUE>", DLQ)):
        text = text.replace(placeholder, value)
    assert "<" not in text
    doc = json.loads(text)
    # moto authorizes HeadBucket as "s3:HeadBucket", an action AWS does not have (AWS checks s3:ListBucket,
    # which the shipped policy grants). This alias exists for moto only; it is not in the shipped policy.
    doc["Statement"].append({"Sid": "MotoOnlyAliases", "Effect": "Allow", "Action": ["s3:HeadBucket"],
                             "Resource": f"arn:aws:s3:::{acct.bucket}"})
    # moto names CloudWatch's actions after its signing name, "monitoring:…"; AWS's IAM prefix is "cloudwatch:"
    # (which the shipped policy grants). Moto-only aliases too.
    cloudwatch = [a for a in _actions(doc) if a.startswith("cloudwatch:")]
    doc["Statement"].append({"Sid": "MotoOnlyCloudWatchAliases", "Effect": "Allow", "Resource": "*",
                             "Action": [a.replace("cloudwatch:", "monitoring:") for a in cloudwatch]})
    return json.dumps(doc)


@pytest.fixture(scope="module")
def preflight_account(enforcing: MotoServer, quotas: QuotaStub,
                      tmp_path_factory: pytest.TempPathFactory) -> DcpAccount:
    boot = boto3.client("iam", endpoint_url=enforcing.endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")
    boot.create_user(UserName="admin")                                         # request 1
    boot.attach_user_policy(UserName="admin", PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")  # 2
    key = boot.create_access_key(UserName="admin")["AccessKey"]                # 3
    admin = (key["AccessKeyId"], key["SecretAccessKey"])
    acct = seed_healthy_account(enforcing.endpoint, tmp_path_factory.mktemp("lp") / "home", admin_keys=admin)
    iam = acct.client("iam")
    iam.create_user(UserName="preflight")
    iam.put_user_policy(UserName="preflight", PolicyName="dcp-preflight", PolicyDocument=shipped_policy(acct))
    pk = iam.create_access_key(UserName="preflight")["AccessKey"]
    acct.aws_credentials.write_text(f"[default]\naws_access_key_id = {pk['AccessKeyId']}\n"
                                    f"aws_secret_access_key = {pk['SecretAccessKey']}\n")
    acct.extra_env["AWS_ENDPOINT_URL_SERVICE_QUOTAS"] = quotas.endpoint
    return acct


@pytest.fixture
def as_preflight(preflight_account: DcpAccount, monkeypatch: pytest.MonkeyPatch) -> DcpAccount:
    for k in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(k)
    for k, v in preflight_account.env().items():
        monkeypatch.setenv(k, v)
    return preflight_account


def test_enforcement_is_on(as_preflight: DcpAccount) -> None:
    iam = boto3.Session().client("iam")   # the operator's session, as run.py would make it
    with pytest.raises(Exception, match=r"AccessDenied|not authorized"):
        iam.create_user(UserName="should-not-exist")


def test_no_check_needs_more_than_the_shipped_policy(as_preflight: DcpAccount) -> None:
    results = run_agent(as_preflight)
    denied = {c: r.message for c, r in results.items() if "cannot verify" in r.message}
    assert set(denied) <= set(MOTO_CANNOT_AUTHORIZE), denied
    assert all(MOTO_CANNOT_AUTHORIZE[c] in denied[c] for c in denied), denied
    errors = {c: r.message for c, r in results.items() if r.status == Status.ERROR}
    assert errors == {}
    # The identity really is the preflight user, and the reads really happened.
    assert "user/preflight" in results["I01"].message
    for code in ("R01", "R03", "R04", "S02", "S05", "Q02", "N01", "N05", "F05"):
        assert results[code].status == Status.PASS, (code, results[code].message)


def test_bucket_region_needs_no_get_bucket_location(as_preflight: DcpAccount) -> None:
    """S04 takes each bucket's region from HeadBucket's x-amz-bucket-region header (answered across accounts and
    regions), not from GetBucketLocation (which only the bucket owner may call): denying that action changes nothing."""
    iam = as_preflight.client("iam")
    deny = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Action": "s3:GetBucketLocation", "Resource": "*"}]}
    iam.put_user_policy(UserName="preflight", PolicyName="no-location", PolicyDocument=json.dumps(deny))
    try:
        r = run_agent(as_preflight, ["S04"])["S04"]
    finally:
        iam.delete_user_policy(UserName="preflight", PolicyName="no-location")
    assert r.status == Status.PASS, r.message
    assert r.message == as_preflight.region


def test_dry_run_launch_fails_without_run_instances(as_preflight: DcpAccount, tmp_path: Path) -> None:
    """N10 is opt-in because it needs ec2:RunInstances; with the read-only policy EC2 refuses it."""
    r = run_agent(as_preflight, ["N10"])["N10"]
    assert r.status == Status.FAIL
    assert "EC2 refused the launch" in r.message and r.fix
    assert json.dumps(r.as_json())
