"""S3 reads: whether the buckets answer, whose they are, where they are, and their policies."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent.facts import aws
from agent.facts.core import code_of, fact
from agent.netcause import cause_of

if TYPE_CHECKING:
    from agent.context import Context


def _status(e: BaseException) -> int | None:
    status = getattr(e, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if isinstance(status, int) else None


@dataclass(frozen=True)
class Head:
    status: int                                   # 200, or the refusal: 301, 400, 403, 404
    headers: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def region(self) -> str | None:
        """The bucket's region, from the x-amz-bucket-region header: S3 sends it with 200, 301, 400 and 403
        answers, to any caller (GetBucketLocation answers only the owner); None when the answer had none."""
        value = next((v for k, v in self.headers.items() if k.lower() == "x-amz-bucket-region"), None)
        return value or None

    @property
    def elsewhere(self) -> bool:
        """S3 answered 301 (or 400 to a signed HEAD): the bucket exists, in another region than the request's."""
        return self.status in (301, 400)


@fact("s3:ListBucket")
def head(ctx: Context, bucket: str) -> Head:
    """HeadBucket with these credentials (a refusal is an answer, not an error). botocore follows a 301/400
    that names the bucket's region itself, so those reach us only when it could not."""
    try:
        resp = ctx.client("s3").head_bucket(Bucket=bucket)
        return Head(200, dict(resp["ResponseMetadata"].get("HTTPHeaders", {})))
    except Exception as e:
        status = _status(e)
        if status in (301, 400, 403, 404):
            return Head(status, dict(getattr(e, "response", {}).get("ResponseMetadata", {}).get("HTTPHeaders", {})))
        raise


@fact("s3:ListAllMyBuckets")
def owned_bucket(ctx: Context, bucket: str) -> bool | None:
    """Whether this account owns ``bucket``: ListBuckets narrowed by S3 to the names starting with it
    (``Prefix``, every page), never the account's whole list; None when ListBuckets is denied.

    HeadBucket with ExpectedBucketOwner (``answers_for_owner``) is AWS's own answer to the same question; this
    second witness stays because moto 5.2.5 ignores ExpectedBucketOwner (its HeadBucket answers 200 for any
    account's bucket), so against moto a foreign bucket is seen only here."""
    try:
        pages = ctx.client("s3").get_paginator("list_buckets").paginate(Prefix=bucket)
        return any(b.get("Name") == bucket for page in pages for b in page.get("Buckets", []))
    except Exception as e:
        if code_of(e) in ("AccessDenied", "403"):
            return None
        raise


@fact("s3:ListBucket")
def answers_for_owner(ctx: Context, bucket: str, owner: str) -> bool:
    """HeadBucket with ExpectedBucketOwner: False when S3 says the bucket belongs to someone else."""
    try:
        ctx.client("s3").head_bucket(Bucket=bucket, ExpectedBucketOwner=owner)
    except Exception as e:
        if _status(e) == 403:
            return False
    return True


@fact("s3:ListBucket", "s3:ListAllMyBuckets", "sts:GetCallerIdentity")
def foreign(ctx: Context, bucket: str) -> bool:
    """True when the bucket answers but belongs to another account."""
    ctx.facts.prefetch(owned_bucket, bucket)
    if not answers_for_owner(ctx, bucket, aws.identity(ctx).account):
        return True
    return owned_bucket(ctx, bucket) is False


@fact("s3:GetBucketPolicy")
def policy(ctx: Context, bucket: str) -> dict[str, Any] | None:
    """The bucket policy, or None when there is none."""
    try:
        return dict(json.loads(ctx.client("s3").get_bucket_policy(Bucket=bucket)["Policy"]))
    except Exception as e:
        if code_of(e) == "NoSuchBucketPolicy":
            return None
        raise


@fact("s3:GetEncryptionConfiguration")
def encryption_rules(ctx: Context, bucket: str) -> tuple[dict[str, Any], ...]:
    """Default-encryption rules (empty when none is configured)."""
    try:
        return tuple(ctx.client("s3").get_bucket_encryption(Bucket=bucket)[
            "ServerSideEncryptionConfiguration"]["Rules"])
    except Exception as e:
        if code_of(e) == "ServerSideEncryptionConfigurationNotFoundError":
            return ()
        raise


@fact()
def public_read(ctx: Context, bucket: str) -> bool:
    """Whether anyone may list the bucket (an unsigned request)."""
    try:
        ctx.client("s3", unsigned=True).list_objects_v2(Bucket=bucket, MaxKeys=1)
        return True
    except Exception as e:
        if cause_of(e) is not None:
            raise   # no answer is not "not public"
        return False


@fact("s3:GetObject")
def object_exists(ctx: Context, bucket: str, key: str) -> bool:
    try:
        ctx.client("s3").head_object(Bucket=bucket, Key=key)
    except Exception as e:
        if _status(e) != 404:
            raise
        return False
    return True


@fact("s3:ListBucket")
def prefix_has_objects(ctx: Context, bucket: str, prefix: str) -> bool:
    return bool(ctx.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1).get("KeyCount"))
