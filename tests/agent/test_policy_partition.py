"""The printed policies (``dcp-agent policy [--fix]``) hold no partition: every ARN starts ``arn:<PARTITION>:``,
a placeholder the user replaces like ``<ACCT>`` (the command prints the templates as shipped and fills in none of
them). Filled in with the partition of a GovCloud or China region, the policy grants there what it grants in
``aws``; with ``arn:aws:`` it granted nothing outside ``aws``.

The grants here are decided by the agent's own local policy evaluation (agent/iamsim.py, IAM's resource matching),
offline: what is proven is the ARNs the filled-in policy names. That the policy filled in for ``aws`` is enough
on IAM-enforcing moto server is tests/agent/test_least_privilege.py and tests/fix/test_fix_policy.py.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import pytest

from agent import iamsim
from agent import policy as read_policy
from agent.cli import main
from agent.context import Context
from agent.facts import aws
from agent.fix import policy as fix_policy
from agent.settings import Settings

TEMPLATES = ("data/policy.json", "data/policy-fix.json")
ARN = re.compile(r'"(arn:[^"]*)"')


def shipped(name: str) -> str:
    return resources.files("agent").joinpath(name).read_text(encoding="utf-8")


def filled(template: str, tmp_path: Path, region: str) -> dict[str, object]:
    """The template as a user in ``region`` fills it in: the region's partition (botocore's partitions file, as the
    checks use it), an account, the region, one bucket, the queue and the key."""
    ctx = Context(Settings(dcp_clone=tmp_path, config=tmp_path / "config.py"))
    text = template
    for placeholder, value in (("<PARTITION>", aws.partition(ctx, region)), ("<ACCT>", "111122223333"),
                               ("<REGION>", region), ("<AWS_BUCKET>", "lab-bucket"), ("<SOURCE_BUCKET>", "lab-bucket"),
                               ("<WORKSPACE_BUCKET>", "lab-bucket"), ("<DESTINATION_BUCKET>", "lab-bucket"),
                               ("<SQS_DEAD_LETTER_QUEUE>", "lab_Dead"), ("<SQS_QUEUE_NAME>", "lab_Queue"),
                               ("<KEY_NAME>", "lab-key")):
        text = text.replace(placeholder, value)
    assert "<" not in text
    return dict(json.loads(text))


@pytest.mark.parametrize("name", TEMPLATES)
def test_shipped_templates_name_no_partition(name: str) -> None:
    text = shipped(name)
    assert "arn:aws:" not in text
    arns = ARN.findall(text)
    assert arns and all(a.startswith("arn:<PARTITION>:") for a in arns), [a for a in arns if "<PARTITION>" not in a]
    # The service principals in conditions are names, not ARNs: they stay as AWS spells them.
    if name.endswith("policy-fix.json"):
        assert '"spotfleet.amazonaws.com"' in text


@pytest.mark.parametrize("fix", [False, True])
def test_policy_command_prints_the_template(fix: bool, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "--fix"] if fix else ["policy"]) == 0
    out = capsys.readouterr().out
    assert out == (fix_policy.render() if fix else read_policy.render())
    assert "arn:<PARTITION>:" in out and "arn:aws:" not in out


@pytest.mark.parametrize("region,partition", [("us-gov-west-1", "aws-us-gov"),
                                              ("cn-north-1", "aws-cn"), ("cn-northwest-1", "aws-cn")])
def test_filled_in_for_a_region_grants_in_its_partition(region: str, partition: str, tmp_path: Path) -> None:
    reads, fixes = (filled(shipped(name), tmp_path, region) for name in TEMPLATES)
    for doc in (reads, fixes):
        arns = ARN.findall(json.dumps(doc))
        assert arns and all(a.startswith(f"arn:{partition}:") for a in arns)
    who = f"arn:{partition}:iam::111122223333:user/op"

    def decide(doc: dict[str, object], action: str, resource: str) -> str:
        return iamsim.evaluate([doc], iamsim.Ask(action, resource), who)[0]

    bucket = f"arn:{partition}:s3:::lab-bucket"
    assert decide(reads, "s3:ListBucket", bucket) == iamsim.ALLOWED
    assert decide(reads, "s3:GetObject", f"{bucket}/job/x.csv") == iamsim.ALLOWED
    assert decide(reads, "iam:SimulatePrincipalPolicy", f"arn:{partition}:iam::111122223333:user/op") == iamsim.ALLOWED
    assert decide(fixes, "s3:CreateBucket", bucket) == iamsim.ALLOWED
    assert decide(fixes, "iam:CreateRole", f"arn:{partition}:iam::111122223333:role/ecsInstanceRole") == iamsim.ALLOWED
    assert decide(fixes, "sqs:CreateQueue", f"arn:{partition}:sqs:{region}:111122223333:lab_Dead") == iamsim.ALLOWED
    assert decide(fixes, "ec2:CreateKeyPair", f"arn:{partition}:ec2:{region}:111122223333:key-pair/lab-key") \
        == iamsim.ALLOWED
    # Still scoped: another partition's ARN of the same bucket is not granted.
    other = "aws-cn" if partition != "aws-cn" else "aws"
    assert decide(fixes, "s3:CreateBucket", f"arn:{other}:s3:::lab-bucket") == iamsim.DENIED
