"""The S3 and SQS part of a fix: AWS_BUCKET (created only when no one has it), its log-export policy (merged
into an existing policy, every existing statement kept), and the dead-letter queue."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from agent.checks.s3 import NAME_RE, PLACEHOLDERS
from agent.checks.sqs import FOURTEEN_DAYS, dlq_name
from agent.facts import aws, s3, sqs
from agent.fix.plan import Kind, Step
from agent.fix.writes import exists_ok, iam_tags, partition, sqs_tags

if TYPE_CHECKING:
    from agent.context import Context

SIDS = ("DCPAgentLogsAclCheck", "DCPAgentLogsWrite")


def log_export_statements(ctx: Context, bucket: str) -> list[dict[str, Any]]:
    """The statements CloudWatch Logs needs to export into s3://bucket/exportedlogs/ (DCP's step 0 template,
    limited to this account's exports)."""
    part = partition(ctx)
    principal = {"Service": f"logs.{ctx.region}.amazonaws.com"}
    account = aws.identity(ctx).account
    return [
        {"Sid": SIDS[0], "Effect": "Allow", "Principal": principal, "Action": "s3:GetBucketAcl",
         "Resource": f"arn:{part}:s3:::{bucket}", "Condition": {"StringEquals": {"aws:SourceAccount": account}}},
        {"Sid": SIDS[1], "Effect": "Allow", "Principal": principal, "Action": "s3:PutObject",
         "Resource": f"arn:{part}:s3:::{bucket}/exportedlogs/*",
         "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control", "aws:SourceAccount": account}}},
    ]


def _bucket_steps(ctx: Context, bucket: str) -> list[Step]:
    region = ctx.region

    def create(ctx: Context) -> None:
        s3c = ctx.client("s3")
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        with exists_ok():
            s3c.create_bucket(**kwargs)

    def lock(ctx: Context) -> None:
        ctx.client("s3").put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True})

    def tag(ctx: Context) -> None:
        s3c = ctx.client("s3")
        try:
            current = s3c.get_bucket_tagging(Bucket=bucket).get("TagSet", [])
        except Exception:
            current = []
        if not any(t["Key"] == iam_tags()[0]["Key"] for t in current):
            s3c.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [*current, *iam_tags()]})

    res = f"s3 bucket {bucket}"
    return [Step(("S02",), res, Kind.CREATE, f"in {region}", ("s3:CreateBucket",), create),
            Step(("S02",), res, Kind.MODIFY, "block all public access", ("s3:PutBucketPublicAccessBlock",), lock,
                 after=res),
            Step(("S02",), res, Kind.MODIFY, "tag it as created by dcp-agent",
                 ("s3:GetBucketTagging", "s3:PutBucketTagging"), tag, after=res)]


def _policy_step(ctx: Context, bucket: str, existing: dict[str, Any] | None) -> Step | None:
    ours = log_export_statements(ctx, bucket)
    if existing is None:
        doc: dict[str, Any] = {"Version": "2012-10-17", "Statement": ours}
        change = f"new bucket policy: {json.dumps(doc)}"
    else:
        statements = existing.get("Statement", [])
        statements = statements if isinstance(statements, list) else [statements]
        if any(isinstance(s, dict) and s.get("Sid") in SIDS for s in statements):
            return None   # ours are there already; whatever still blocks export is for a person (S05 says what)
        doc = dict(existing, Statement=[*statements, *ours])
        change = (f"append {len(ours)} statements to the existing policy, keeping all {len(statements)}: "
                  f"{json.dumps(ours)}")
    text = json.dumps(doc)

    def run(ctx: Context) -> None:
        ctx.client("s3").put_bucket_policy(Bucket=bucket, Policy=text)

    return Step(("S05",), f"s3 bucket {bucket}", Kind.MODIFY, change, ("s3:PutBucketPolicy",), run,
                after=f"s3 bucket {bucket}")


def plan_bucket(ctx: Context, failing: set[str]) -> list[Step]:
    """AWS_BUCKET when S3 says no such bucket (404); its log-export policy when S05 did not pass."""
    bucket = ctx.config.get("AWS_BUCKET")
    if not (isinstance(bucket, str) and NAME_RE.match(bucket) and bucket not in PLACEHOLDERS):
        return []
    head = s3.head(ctx, bucket)
    if head.status == 404:
        return [*_bucket_steps(ctx, bucket), *filter(None, [_policy_step(ctx, bucket, None)])]
    if head.status == 200 and "S05" in failing:
        step = _policy_step(ctx, bucket, s3.policy(ctx, bucket))
        return [step] if step else []
    return []


def plan_queue(ctx: Context, failing: set[str]) -> list[Step]:
    """The dead-letter queue: created with a 14-day retention, or its retention raised to 14 days."""
    raw = ctx.config.get("SQS_DEAD_LETTER_QUEUE")
    name = dlq_name(ctx)
    if not name or "Q01" in failing or (isinstance(raw, str) and raw.startswith("arn:")):
        return []   # an ARN elsewhere is for a person to decide (Q02 says which way)
    q = sqs.queue(ctx, name)
    res = f"sqs queue {name}"
    if q is None:
        def create(ctx: Context) -> None:
            with exists_ok():
                ctx.client("sqs").create_queue(QueueName=name, tags=sqs_tags(),
                                                Attributes={"MessageRetentionPeriod": str(FOURTEEN_DAYS)})

        return [Step(("Q02", "Q03"), res, Kind.CREATE, "standard queue, 14-day retention",
                     ("sqs:CreateQueue", "sqs:TagQueue"), create)]
    retention = int(q.get("MessageRetentionPeriod", FOURTEEN_DAYS))
    if q.get("FifoQueue") != "true" and retention < FOURTEEN_DAYS:
        url = q["url"]

        def raise_retention(ctx: Context) -> None:
            ctx.client("sqs").set_queue_attributes(QueueUrl=url, Attributes={
                "MessageRetentionPeriod": str(FOURTEEN_DAYS)})

        return [Step(("Q03",), res, Kind.MODIFY, f"MessageRetentionPeriod {retention} → {FOURTEEN_DAYS} (14 days)",
                     ("sqs:SetQueueAttributes",), raise_retention)]
    return []
