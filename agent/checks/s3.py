"""S: the buckets config.py names: valid, reachable, owned, in the right region, accepting log exports."""

from __future__ import annotations

import re
from typing import Any

from agent import gates, iamsim
from agent.checks._common import is_true
from agent.context import Context
from agent.facts import aws, iam, local, s3
from agent.iamsim import Ask
from agent.model import Finding, Severity, Skip, fail, ok, warn
from agent.registry import check

# How S02 and S04 learn where a bucket is (docs/checks.md prints it once, at S02).
HEAD_REGION = ("Where a bucket is comes from HeadBucket's ``x-amz-bucket-region`` header, which S3 sends whatever "
               "the caller's permissions, with 200, 301, 400 and 403 answers alike (``GetBucketLocation``, which "
               "fails across accounts, is no longer used or in the policy). botocore follows a 301/400 that names "
               "the region itself, so one that reaches S02 means the bucket exists elsewhere: S02 counts it "
               "reachable and S04 reports the region, or that S3 did not name it.")

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
PLACEHOLDERS = {"your-bucket-name", "bucket-name"}
ROLES = ("AWS_BUCKET", "SOURCE_BUCKET", "WORKSPACE_BUCKET", "DESTINATION_BUCKET")


def _valid_buckets(ctx: Context) -> dict[str, str]:
    return {r: b for r, b in ctx.buckets().items() if NAME_RE.match(b) and b not in PLACEHOLDERS}


@check("S01", "s3.bucket-names", "Bucket names are set and valid", Severity.BLOCKER, needs=(gates.CONFIG,))
def bucket_names(ctx: Context) -> Finding:
    for role in [r for r in ROLES if r in ctx.flavour.buckets]:
        value = ctx.config.get(role)
        if not isinstance(value, str) or not value:
            return fail(f"{role} is not set", f"set {role} = '<your bucket>' in config.py")
        if value in PLACEHOLDERS:
            return fail(f"{role} is still the placeholder {value!r}", f"set {role} to your bucket in config.py")
        if not NAME_RE.match(value) or ".." in value:
            return fail(f"{role} {value!r} is not a valid S3 bucket name (3–63 of a-z 0-9 . -)",
                        f"fix {role} in config.py")
    return ok(", ".join(sorted(set(ctx.buckets().values()))))


@check("S02", "s3.buckets-reachable", "The buckets exist and these credentials reach them", Severity.BLOCKER,
       needs=(*gates.AWS, bucket_names), actions=("s3:ListBucket",), provides=gates.BUCKETS,
       cure="Creates ``AWS_BUCKET`` when no one has that name (in ``AWS_REGION``, all public access blocked).",
       blind=(HEAD_REGION,))
def buckets_reachable(ctx: Context) -> Finding:
    notes, elsewhere = [], []
    for role, bucket in _valid_buckets(ctx).items():
        head = s3.head(ctx, bucket)
        status = head.status
        if status == 404:
            return fail(f"{role} {bucket!r} does not exist", f"aws s3 mb s3://{bucket} --region {ctx.region}, "
                        f"or fix {role} in config.py")
        if head.elsewhere:   # it exists; where it is, is s3.bucket-region's to judge
            elsewhere.append(f"{role} {bucket} answers from another region "
                             f"({head.region or f'S3 answered {status} without naming it'})")
            continue
        if status == 403:
            if role == "AWS_BUCKET":
                return fail(f"AWS_BUCKET {bucket!r} exists but these credentials may not use it",
                            "grant s3:ListBucket/GetObject/PutObject on it, or use a bucket of your own")
            if role in ("SOURCE_BUCKET", "WORKSPACE_BUCKET") and s3.public_read(ctx, bucket):
                notes.append(f"{bucket} is readable only anonymously (public)")
                continue
            return fail(f"{role} {bucket!r} refuses these credentials (403)",
                        "ask the bucket's owner to allow your identity in the bucket policy")
    if notes:
        return warn("; ".join(notes + elsewhere), "set DOWNLOAD_FILES = 'True' (s3fs may not mount public buckets)")
    return ok("all reachable" + (f"; {'; '.join(elsewhere)} (see s3.bucket-region)" if elsewhere else ""))


@check("S03", "s3.bucket-ownership", "The buckets belong to this account", Severity.MEDIUM,
       needs=(buckets_reachable,), actions=("s3:ListBucket", "s3:ListAllMyBuckets"))
def ownership(ctx: Context) -> Finding:
    buckets = _valid_buckets(ctx)
    notes = []
    if "AWS_BUCKET" in buckets and s3.foreign(ctx, buckets["AWS_BUCKET"]):
        notes.append(f"AWS_BUCKET {buckets['AWS_BUCKET']} belongs to another account: log export and "
                     "ecsconfigs need cross-account bucket policies")
    dest = buckets.get("DESTINATION_BUCKET")
    flags = ctx.config.get("UPLOAD_FLAGS") or ""
    if dest and s3.foreign(ctx, dest) and "bucket-owner-full-control" not in str(flags):
        notes.append(f"DESTINATION_BUCKET {dest} belongs to another account and UPLOAD_FLAGS lacks "
                     "--acl bucket-owner-full-control")
    if notes:
        return warn("; ".join(notes), "use a bucket you own for AWS_BUCKET; set UPLOAD_FLAGS = "
                    "'--acl bucket-owner-full-control' for a foreign destination")
    return ok("owned by this account")


@check("S04", "s3.bucket-region", "The buckets are in AWS_REGION", Severity.HIGH,
       needs=(buckets_reachable,), actions=("s3:ListBucket",),
       blind=(HEAD_REGION,))
def bucket_region(ctx: Context) -> Finding:
    buckets = _valid_buckets(ctx)
    region = ctx.region
    where: dict[str, str] = {}       # bucket -> its region as S3 named it, or why it is elsewhere
    unknown: list[str] = []
    for bucket in sorted(set(buckets.values())):
        head = s3.head(ctx, bucket)
        if head.region is not None:
            where[bucket] = head.region
        elif head.elsewhere:
            where[bucket] = f"another region: S3 answered {head.status} without naming it"
        else:
            unknown.append(bucket)
    logs = buckets.get("AWS_BUCKET")
    if logs in where and where[logs] != region:
        return fail(f"AWS_BUCKET {logs} is in {where[logs]}, not {region}: CloudWatch Logs cannot "
                    "export to a bucket in another region", f"use a bucket in {region} for AWS_BUCKET")
    away = sorted({f"{b} ({where[b]})" for r, b in buckets.items()
                   if r != "AWS_BUCKET" and b in where and where[b] != region})
    if away:
        return warn(f"{', '.join(away)} outside {region}: cross-region transfer costs, and s3fs trouble",
                    f"keep data buckets in {region}, or run DCP in their region")
    if unknown and not where:
        raise Skip(f"S3 named no region for {', '.join(unknown)} (no x-amz-bucket-region header)")
    return ok(region + (f" (S3 named no region for {', '.join(unknown)})" if unknown else ""))


def _statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    st = policy.get("Statement", [])
    return [s for s in (st if isinstance(st, list) else [st]) if isinstance(s, dict)]


def _as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def _grants(st: dict[str, Any], principal: str, action: str, resource: str) -> bool:
    p = st.get("Principal")
    svc = p.get("Service") if isinstance(p, dict) else None
    if p != "*" and principal not in _as_list(svc):
        return False
    if not any(iamsim.like(str(a), action, case=False) for a in _as_list(st.get("Action", []))):
        return False
    return any(iamsim.like(str(r), resource) for r in _as_list(st.get("Resource", [])))


@check("S05", "s3.log-export-policy", "AWS_BUCKET accepts CloudWatch log exports", Severity.MEDIUM,
       needs=(buckets_reachable,), actions=("s3:GetBucketPolicy",),
       cure="Adds CloudWatch Logs' export statements to the policy of ``AWS_BUCKET``, keeping every "
            "existing statement.")
def log_export_policy(ctx: Context) -> Finding:
    bucket = _valid_buckets(ctx).get("AWS_BUCKET")
    if not bucket:
        raise Skip("AWS_BUCKET is not usable")
    region = ctx.region
    fix = (f"aws s3api put-bucket-policy --bucket {bucket} --policy file://dcp-logs-policy.json "
           f"(the template in DCP's step_0_prep.md, with logs.{region}.amazonaws.com; merge with any existing "
           "policy)")
    policy = s3.policy(ctx, bucket)
    if policy is None:
        return fail(f"{bucket} has no bucket policy: 'run.py monitor' fails exporting logs "
                    "(GetBucketAcl call on the given bucket failed)", fix)
    principal = f"logs.{region}.amazonaws.com"
    group = ctx.config.get("LOG_GROUP_NAME") or ctx.config.get("APP_NAME") or "*"
    needs = [("s3:GetBucketAcl", aws.arn(ctx, "s3", bucket)),
             ("s3:PutObject", aws.arn(ctx, "s3", f"{bucket}/exportedlogs/{group}/x")),
             ("s3:PutObject", aws.arn(ctx, "s3", f"{bucket}/exportedlogs/{group}_perInstance/x"))]
    statements = _statements(policy)
    for action, resource in needs:
        allows = [s for s in statements if s.get("Effect") == "Allow" and _grants(s, principal, action, resource)]
        denies = [s for s in statements if s.get("Effect") == "Deny" and _grants(s, principal, action, resource)]
        if not allows or denies:
            return fail(f"{bucket}'s policy does not let {principal} {action} on "
                        f"{resource.replace('/x', '/…')}", fix)
        for s in allows:
            cond = s.get("Condition") or {}
            acl = (cond.get("StringEquals") or {}).get("s3:x-amz-acl")
            if acl and acl != "bucket-owner-full-control":
                return fail(f"the s3:x-amz-acl condition is {acl!r}; log export sends bucket-owner-full-control", fix)
            src = (cond.get("StringEquals") or {}).get("aws:SourceAccount")
            if src and src != aws.identity(ctx).account:
                return fail(f"the policy only admits exports from account {src}", fix)
    return ok(f"{principal} may write to exportedlogs/")


@check("S06", "s3.encryption", "Bucket encryption does not block workers or log export", Severity.LOW,
       needs=(buckets_reachable,), actions=("s3:GetEncryptionConfiguration",))
def encryption(ctx: Context) -> Finding:
    kms = []
    for bucket in sorted(set(_valid_buckets(ctx).values())):
        for rule in s3.encryption_rules(ctx, bucket):
            default = rule.get("ApplyServerSideEncryptionByDefault", {})
            key = default.get("KMSMasterKeyID", "")
            if default.get("SSEAlgorithm", "").startswith("aws:kms") and key and "alias/aws/s3" not in key:
                kms.append(bucket)
    if kms:
        return warn(f"{', '.join(kms)} use a customer KMS key", "allow logs.<region>.amazonaws.com and the "
                    "workers' identity in the key policy (kms:GenerateDataKey, kms:Decrypt)")
    return ok("SSE-S3 or none")


@check("S07", "s3.dots-with-s3fs", "No dotted SOURCE_BUCKET mounted with s3fs", Severity.HIGH, needs=(gates.CONFIG,))
def dots_with_s3fs(ctx: Context) -> Finding:
    f = ctx.flavour
    if not f.is_dcp:
        if f.s3fs_bucket is None:
            return ok(f"{f.name}'s worker mounts no bucket with s3fs")
        bucket = ctx.config.get(f.s3fs_bucket)
        if isinstance(bucket, str) and "." in bucket:
            return fail(f"{f.s3fs_bucket} {bucket!r} has dots: {f.name}'s worker/run-worker.sh always mounts it "
                        "with s3fs, whose TLS name check fails on dotted bucket names",
                        f"use a bucket without dots as {f.s3fs_bucket}")
        return ok("no dotted bucket mounted")
    src = ctx.config.get("SOURCE_BUCKET")
    if ctx.config.get("DOWNLOAD_FILES") == "False" and isinstance(src, str) and "." in src:
        return fail(f"SOURCE_BUCKET {src!r} has dots and DOWNLOAD_FILES is 'False': s3fs's TLS name check fails",
                    "set DOWNLOAD_FILES = 'True' (and raise EBS_VOL_SIZE)")
    return ok("no dotted bucket mounted")


@check("S08", "s3.bucket-actions", "The operator and workers may use the buckets", Severity.BLOCKER,
       needs=(buckets_reachable, gates.CREDENTIAL_LAYOUT), actions=(*iamsim.ACTIONS, *s3.policy.actions),
       blind=(iamsim.ASKED, iamsim.LOCAL))
def bucket_actions(ctx: Context) -> Finding:
    """run.py's own S3 writes (ecsconfigs/, monitors/) and, when the workers get the operator's keys, theirs;
    on the real bucket and object ARNs, with each bucket's policy (a grant there counts)."""
    arn = iam.principal_arn(ctx)
    if arn is None:
        raise Skip("the identity is neither an IAM user nor a role")
    b = _valid_buckets(ctx)
    pairs: list[tuple[str, str, str]] = []   # action, bucket, key ("" for the bucket itself)
    if "AWS_BUCKET" in b:
        app = ctx.config.get("APP_NAME")
        app = app if isinstance(app, str) else "x"
        pairs += [("s3:PutObject", b["AWS_BUCKET"], f"ecsconfigs/{app}_ecs.config")]
        if is_true(ctx.config.get("AUTO_MONITOR")):
            pairs += [("s3:PutObject", b["AWS_BUCKET"], f"monitors/{app}SpotFleetRequestId.json")]
    layout = local.credential_layout(ctx)
    if layout.section is None:
        raise Skip("no profile section (see aws.profile-section)")
    if layout.kind != "a":  # workers use the operator's own keys
        for role in ("WORKSPACE_BUCKET", "SOURCE_BUCKET"):
            if role in b and not s3.foreign(ctx, b[role]):
                pairs.append(("s3:GetObject", b[role], "x"))
        for role in ("SOURCE_BUCKET", "DESTINATION_BUCKET"):
            if role in b and not s3.foreign(ctx, b[role]):
                pairs.append(("s3:ListBucket", b[role], ""))
        if "DESTINATION_BUCKET" in b and not s3.foreign(ctx, b["DESTINATION_BUCKET"]):
            pairs.append(("s3:PutObject", b["DESTINATION_BUCKET"], "x"))
    policies = {bucket: iamsim.bucket_policy(ctx, bucket) for bucket in dict.fromkeys(p[1] for p in pairs)}
    asks = [Ask(action, aws.arn(ctx, "s3", f"{bucket}/{key}" if key else bucket), iamsim.region_context(ctx),
                policies[bucket][0]) for action, bucket, key in dict.fromkeys(pairs)]
    verdicts = iamsim.simulate(ctx, arn, asks)
    finding = iamsim.judge(verdicts, lambda a: f"{a.action} on {a.resource.split(':::', 1)[-1].replace('/x', '/*')}",
                           "allow these S3 actions for your user or role (or in the bucket policy)",
                           blocker=all(known for _, known in policies.values()))
    if finding:
        return finding
    return ok(f"{len(verdicts)} bucket actions allowed ({iamsim.how(verdicts)})")


@check("S09", "s3.job-objects", "The job file's pipeline, data file and input exist", Severity.MEDIUM,
       needs=(buckets_reachable,), actions=("s3:GetObject", "s3:ListBucket"))
def job_objects(ctx: Context) -> Finding:
    if ctx.job_path is None:
        raise Skip("no job file given (--job)")
    if ctx.job is None:
        return fail(ctx.job_error or "the job file cannot be read", "fix the job file's JSON")
    f = ctx.flavour
    if not f.is_dcp:
        # Its objects are the project's own business; what run.py submitJob reads from the file is not.
        lacking = [k for k in f.job_keys if k not in ctx.job]
        if lacking:
            return fail(f"the job file lacks {', '.join(lacking)}: {f.name}'s run.py submitJob stops with a "
                        "KeyError", f"start from {f.name}'s files/exampleJob.json ({f.job_tasks}: the list of tasks)")
        tasks = ctx.job.get(f.job_tasks)
        if not isinstance(tasks, list) or not tasks:
            return fail(f"the job file's {f.job_tasks} is not a non-empty list: submitJob sends no task",
                        f"list one entry per task under {f.job_tasks}")
        unread = [k for k in f.worker_job_keys if k not in ctx.job]
        if unread:
            return fail(f"the job file lacks {', '.join(unread)}: {f.name}'s worker reads "
                        f"{'it' if len(unread) == 1 else 'them'} from every task without a default, so each "
                        "task stops with a KeyError and goes back to the queue",
                        f"add {', '.join(repr(k) for k in unread)} (false where unused, as "
                        f"{f.name}'s files/exampleJob.json has them)")
        left = [k for k, v in f.job_placeholders.items() if ctx.job.get(k) == v]
        if left:
            return warn(f"the job file's {', '.join(f'{k} is still {f.job_placeholders[k]!r}' for k in left)}, "
                        f"the placeholder of {f.name}'s files/exampleJob.json", "set them to your buckets' names")
        return ok(f"{len(tasks)} task(s) under {f.job_tasks}, as {f.name}'s submitJob reads them")
    b = _valid_buckets(ctx)
    missing = []
    for key, role in (("pipeline", "WORKSPACE_BUCKET"), ("data_file", "WORKSPACE_BUCKET")):
        obj = ctx.job.get(key)
        if isinstance(obj, str) and role in b and not s3.object_exists(ctx, b[role], obj):
            missing.append(f"s3://{b[role]}/{obj}")
    prefix = ctx.job.get("input")
    if isinstance(prefix, str) and "SOURCE_BUCKET" in b and not s3.prefix_has_objects(ctx, b["SOURCE_BUCKET"], prefix):
        missing.append(f"s3://{b['SOURCE_BUCKET']}/{prefix}")
    if missing:
        return warn(f"not found: {', '.join(missing)}", "upload them, or fix the paths in the job file")
    return ok("pipeline, data file and input found")


