"""The least-privilege IAM policy ``dcp-agent fix --apply``, ``dcp-agent fleet`` and ``dcp-agent requeue`` need: the checks' read-only
policy (fix runs the checks first), the few reads of fix and fleet, and each write scoped to the resources
DCP names (its roles, instance profile, AWS_BUCKET, the dead-letter queue, the key pair).

``agent/data/policy-fix.json`` is this module's output, written with the checks' policy by
``python -m agent.policy --write`` (it embeds those reads); a test fails
when the shipped file differs, and another when a planned step calls an action this policy lacks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent import policy as read_policy

SHIPPED: Path = Path(__file__).resolve().parent.parent / "data" / "policy-fix.json"
ARN = read_policy.ARN   # arn:<PARTITION>
ROLES = [f"{ARN}:iam::<ACCT>:role/ecsInstanceRole", f"{ARN}:iam::<ACCT>:role/aws-ec2-spot-fleet-tagging-role",
         f"{ARN}:iam::<ACCT>:role/LambdaFullAccess"]
EC2 = f"{ARN}:ec2:<REGION>:<ACCT>"

WRITES: list[dict[str, Any]] = [
    {"Sid": "FixReads", "Action": ["ec2:DescribeVpcs", "ec2:DescribeSubnets", "ssm:GetParameter",
                                   "servicequotas:ListRequestedServiceQuotaChangeHistoryByQuota"],
     "Resource": ["*"]},
    {"Sid": "FixRoles", "Action": ["iam:CreateRole", "iam:TagRole", "iam:UpdateAssumeRolePolicy",
                                   "iam:AttachRolePolicy", "iam:PutRolePolicy"], "Resource": ROLES},
    {"Sid": "FixPassInstanceRole", "Action": ["iam:PassRole"], "Resource": [ROLES[0]]},
    {"Sid": "FixInstanceProfile", "Action": ["iam:CreateInstanceProfile", "iam:TagInstanceProfile",
                                             "iam:AddRoleToInstanceProfile"],
     "Resource": [f"{ARN}:iam::<ACCT>:instance-profile/ecsInstanceRole"]},
    {"Sid": "FixSpotServiceLinkedRoles", "Action": ["iam:CreateServiceLinkedRole"],
     "Resource": [f"{ARN}:iam::<ACCT>:role/aws-service-role/spotfleet.amazonaws.com/*",
                  f"{ARN}:iam::<ACCT>:role/aws-service-role/spot.amazonaws.com/*"],
     "Condition": {"StringLike": {"iam:AWSServiceName": ["spotfleet.amazonaws.com", "spot.amazonaws.com"]}}},
    {"Sid": "FixBucket", "Action": ["s3:CreateBucket", "s3:PutBucketPublicAccessBlock", "s3:GetBucketTagging",
                                    "s3:PutBucketTagging", "s3:PutBucketPolicy"],
     "Resource": [f"{ARN}:s3:::<AWS_BUCKET>"]},
    {"Sid": "FixDeadLetterQueue", "Action": ["sqs:CreateQueue", "sqs:TagQueue", "sqs:SetQueueAttributes"],
     "Resource": [f"{ARN}:sqs:<REGION>:<ACCT>:<SQS_DEAD_LETTER_QUEUE>"]},
    {"Sid": "FixWorkersGroup", "Action": ["ec2:CreateSecurityGroup", "ec2:AuthorizeSecurityGroupIngress"],
     "Resource": [f"{EC2}:security-group/*", f"{EC2}:security-group-rule/*", f"{EC2}:vpc/*"]},
    # DeleteKeyPair: only the key pair the same step made a moment ago, when its private key could not be saved
    {"Sid": "FixKeyPair", "Action": ["ec2:CreateKeyPair", "ec2:ImportKeyPair", "ec2:DeleteKeyPair"],
     "Resource": [f"{EC2}:key-pair/<KEY_NAME>"]},
    {"Sid": "FixTagOnCreate", "Action": ["ec2:CreateTags"], "Resource": ["*"],
     "Condition": {"StringEquals": {"ec2:CreateAction": ["CreateSecurityGroup", "AuthorizeSecurityGroupIngress",
                                                         "CreateKeyPair", "ImportKeyPair"]}}},
    {"Sid": "FixQuotaRequest", "Action": ["servicequotas:RequestServiceQuotaIncrease"], "Resource": ["*"]},
    # dcp-agent requeue (agent/status/requeue.py): failed jobs from the dead-letter queue back to the job queue,
    # by SQS's redrive (StartMessageMoveTask needs, on the source, ReceiveMessage, DeleteMessage and
    # GetQueueAttributes too, and SendMessage on the destination) or by receive-send-delete.
    {"Sid": "RequeueFromDeadLetterQueue",
     "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes",
                "sqs:StartMessageMoveTask", "sqs:ListMessageMoveTasks"],
     "Resource": [f"{ARN}:sqs:<REGION>:<ACCT>:<SQS_DEAD_LETTER_QUEUE>"]},
    {"Sid": "RequeueToJobQueue", "Action": ["sqs:SendMessage", "sqs:GetQueueAttributes"],
     "Resource": [f"{ARN}:sqs:<REGION>:<ACCT>:<SQS_QUEUE_NAME>"]},
]


def actions() -> list[str]:
    return sorted({a for st in WRITES for a in st["Action"]})


def build() -> dict[str, Any]:
    reads = read_policy.build()["Statement"]
    return {"Version": "2012-10-17", "Statement": [*reads, *({"Effect": "Allow", **st} for st in WRITES)]}


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"
