"""The least-privilege, read-only IAM policy the checks need, generated from what the registry declares.

``agent/data/policy.json`` is this module's output (``python -m agent.policy --write``); a test fails when
the shipped file and the registry differ. Actions a default check declares are granted; an opt-in check's
(N10's DryRun launch) are not, and neither is sts:GetCallerIdentity, which no policy can deny.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SHIPPED = Path(__file__).parent / "data" / "policy.json"
ALWAYS_ALLOWED = {"sts:GetCallerIdentity"}
# Every ARN starts with the partition placeholder (aws, aws-us-gov, aws-cn), replaced like <ACCT>: an
# ``arn:aws:`` resource grants nothing in GovCloud or China.
ARN = "arn:<PARTITION>"
BUCKETS = [f"{ARN}:s3:::<AWS_BUCKET>", f"{ARN}:s3:::<SOURCE_BUCKET>", f"{ARN}:s3:::<WORKSPACE_BUCKET>",
           f"{ARN}:s3:::<DESTINATION_BUCKET>"]
# Actions whose resources can be narrowed: action -> (statement id, resources). Everything else is read
# with Resource "*", in one statement per service.
SCOPED: dict[str, tuple[str, list[str]]] = {
    "iam:SimulatePrincipalPolicy": ("IAMSimulate", [f"{ARN}:iam::<ACCT>:user/*", f"{ARN}:iam::<ACCT>:role/*"]),
    "s3:ListBucket": ("S3BucketMeta", BUCKETS),
    "s3:GetBucketPolicy": ("S3BucketMeta", BUCKETS),
    "s3:GetEncryptionConfiguration": ("S3BucketMeta", BUCKETS),
    "s3:GetObject": ("S3JobObjectsHead", [f"{ARN}:s3:::<WORKSPACE_BUCKET>/*"]),
    # dcp-agent status peeks at the dead-letter queue (hidden while it pages, given back, never deleted): only there
    "sqs:ReceiveMessage": ("SQSPeekDeadLetters", [f"{ARN}:sqs:<REGION>:<ACCT>:<SQS_DEAD_LETTER_QUEUE>"]),
    "sqs:ChangeMessageVisibility": ("SQSPeekDeadLetters", [f"{ARN}:sqs:<REGION>:<ACCT>:<SQS_DEAD_LETTER_QUEUE>"]),
    "sqs:ListMessageMoveTasks": ("SQSPeekDeadLetters", [f"{ARN}:sqs:<REGION>:<ACCT>:<SQS_DEAD_LETTER_QUEUE>"]),
}
SERVICE_SIDS = {"ec2": "EC2Describe", "iam": "IAMRead", "servicequotas": "Quotas", "s3": "S3ListOwnBuckets",
                "sqs": "SQSRead"}


def actions() -> list[str]:
    """Every action the default checks declare, less the ones no policy needs."""
    from agent.registry import all_checks
    from agent.status.compute import actions as status_actions

    found = {a for c in all_checks() if not c.opt_in for a in c.actions} | set(status_actions())   # + dcp-agent status
    return sorted(found - ALWAYS_ALLOWED)


def build() -> dict[str, Any]:
    statements: dict[str, dict[str, Any]] = {}
    for action in actions():
        if action in SCOPED:
            sid, resources = SCOPED[action]
        else:
            service = action.split(":", 1)[0]
            sid, resources = SERVICE_SIDS.get(service, f"{service.title()}Read"), ["*"]
        st = statements.setdefault(sid, {"Sid": sid, "Effect": "Allow", "Action": [], "Resource": resources})
        st["Action"].append(action)
    return {"Version": "2012-10-17", "Statement": [statements[sid] for sid in sorted(statements)]}


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        from agent.fix import policy as fix_policy

        SHIPPED.write_text(render(), encoding="utf-8")
        fix_policy.SHIPPED.write_text(fix_policy.render(), encoding="utf-8")   # it holds these reads too
    else:
        sys.stdout.write(render())
