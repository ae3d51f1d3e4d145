"""I: are the credentials valid, whose are they, and do they belong to one account."""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from agent import gates, iamsim
from agent.checks._common import is_true
from agent.checks._platform import clock_fix
from agent.context import Context
from agent.facts import aws, iam
from agent.facts.core import translate
from agent.iamsim import Ask
from agent.model import Finding, Severity, Skip, fail, ok, warn
from agent.registry import check

HINTS = {
    "InvalidClientTokenId": "the access key id is unknown to AWS: rotate the keys and run aws configure",
    "SignatureDoesNotMatch": "the secret key does not match the access key id: re-enter it with aws configure",
    "ExpiredToken": "the session token expired: run aws sso login, or assume the role again",
    "ExpiredTokenException": "the session token expired: run aws sso login, or assume the role again",
    "UnrecognizedClientException": "the keys are not recognised: rotate them and run aws configure",
    "RequestExpired": "the request was signed with a wrong clock: synchronise the clock with NTP",
}
ARN_ACCOUNT = re.compile(r"^arn:[a-z-]+:iam::(\d{12}):")


def _region_disabled(ctx: Context) -> bool:
    """Whether STS's InvalidClientTokenId means the region, not the keys: a region the account has not opted
    into rejects every signature with that code. EC2's DescribeRegions (asked where the account surely works)
    tells; if that too refuses the keys, they are the problem."""
    try:
        return aws.region_opt_in(ctx, ctx.region) == "not-opted-in"
    except Exception:
        return False


@check("I01", "identity.credentials", "AWS credentials are valid", Severity.BLOCKER,
       needs=(gates.AWS_FILES,), actions=("sts:GetCallerIdentity", *aws.region_opt_in.actions),
       provides=gates.CREDENTIALS)
def credentials(ctx: Context) -> Finding:
    """A region not enabled for the account answers STS with ``InvalidClientTokenId``; I01 then asks
    ``ec2:DescribeRegions(AllRegions=True)`` in the partition's home region and says "region X is not enabled
    for this account" (keys that EC2 also refuses still get the rotate hint)."""
    try:
        ident = aws.identity(ctx)
    except Exception as e:
        err = translate(e)
        if err is None:
            raise
        if err.code == "NoCredentialsError":
            return fail("no AWS credentials found (env, ~/.aws or instance role)", "aws configure")
        if err.code == "ProfileNotFound":
            return fail(err.message, "aws configure --profile <name>, or unset AWS_PROFILE")
        if err.code in ("PartialCredentialsError", "InvalidConfigError", "CredentialRetrievalError",
                        "SSOTokenLoadError", "UnauthorizedSSOTokenError", "TokenRetrievalError"):
            return fail(f"{err.code}: {err.message}", "aws configure, or aws sso login for SSO profiles")
        if err.code in ("InvalidClientTokenId", "UnrecognizedClientException") and _region_disabled(ctx):
            return fail(f"region {ctx.region} is not enabled for this account: AWS rejects every request there "
                        f"({err.code}), the keys are fine", f"enable {ctx.region} (aws account enable-region "
                        f"--region-name {ctx.region}, or the console's Account page), or set AWS_REGION in "
                        "config.py and region in ~/.aws/config to an enabled region")
        if err.code in HINTS:
            return fail(f"AWS rejected the credentials ({err.code})", HINTS[err.code])
        raise
    return ok(f"{ident.arn} (account {ident.account})")


@check("I02", "identity.clock-skew", "The local clock agrees with AWS", Severity.HIGH, needs=(credentials,),
       actions=("sts:GetCallerIdentity",))
def clock_skew(ctx: Context) -> Finding:
    header = aws.identity(ctx).date
    if not header:
        raise Skip("AWS sent no Date header")
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        raise Skip(f"AWS sent an unreadable Date header ({header[:40]!r})") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    skew = abs((datetime.now(UTC) - when).total_seconds())
    fix = clock_fix(ctx)
    if skew >= 15 * 60:
        return fail(f"the clock is {skew / 60:.0f} min off AWS; SigV4 requests are rejected", fix)
    if skew > 5 * 60:
        return warn(f"the clock is {skew / 60:.0f} min off AWS", fix)
    return ok(f"{skew:.0f} s off AWS")


# botocore's credential methods whose credentials it renews itself before they run out (an instance or
# container role, an assumed role, web identity, SSO, `aws login`, a credential_process).
REFRESHED = {"iam-role": "the instance role", "container-role": "the container role",
             "assume-role": "a role_arn profile", "assume-role-with-web-identity": "web identity",
             "sso": "SSO (while the SSO session lasts: aws sso login)", "login": "aws login",
             "custom-process": "credential_process"}
# Where keys are read as they are: a session token there is never renewed.
STATIC = {"env": "the environment", "shared-credentials-file": "~/.aws/credentials",
          "config-file": "~/.aws/config", "boto-config": "the boto config", "ec2-credentials-file": "the EC2 "
          "credentials file", "explicit": "the code"}


@check("I03", "identity.credential-lifetime", "Credentials last through a long monitor run", Severity.MEDIUM,
       needs=(credentials,),
       blind=("That an SSO session itself ends (``aws sso login`` again), and whether an assumed role's "
              "source credentials are themselves temporary.",))
def credential_lifetime(ctx: Context) -> Finding:
    """Decided by how botocore obtains the credentials, not by their expiry: an instance or container role,
    ``role_arn``, web identity, SSO, ``aws login`` and ``credential_process`` are renewed by botocore and pass;
    keys without a token pass as long-term; ``ASIA…`` keys with a session token from the environment or the
    shared files warn."""
    info = aws.credential_info(ctx)
    if info is None:
        raise Skip("no credentials (see identity.credentials)")
    if info.method in REFRESHED:
        return ok(f"refreshed by botocore ({info.method}: {REFRESHED[info.method]})")
    temporary = info.access_key_prefix == "ASIA" or info.has_token
    if not temporary:
        return ok(f"long-term credentials ({info.method or 'unknown source'})")
    left = ""
    if info.expiry is not None:
        hours = (info.expiry - datetime.now(UTC)).total_seconds() / 3600
        left = f" (in {hours:.1f} h)" if hours > 0 else " (already)"
    where = STATIC.get(info.method, info.method or "an unknown source")
    return warn(f"these are session credentials (ASIA… with a session token) from {where}: they expire{left} "
                "and cannot be refreshed (botocore only re-reads them), so 'run.py monitor' stops mid-run",
                "use a profile botocore renews itself: role_arn with source_profile or credential_source, or "
                "an SSO profile (aws configure sso); then drop the session keys")


@check("I04", "identity.type", "Not the account's root user", Severity.MEDIUM, needs=(credentials,))
def identity_type(ctx: Context) -> Finding:
    arn = aws.identity(ctx).arn
    if arn.endswith(":root"):
        return warn("these are the account root user's keys", "create an IAM user or role for DCP and delete "
                    "the root access keys (IAM console → Security credentials)")
    return ok(arn.split(":", 5)[-1])


@check("I05", "identity.single-account", "Profile, fleet file and buckets are in one account", Severity.BLOCKER,
       needs=(credentials,), actions=("sts:GetCallerIdentity",))
def single_account(ctx: Context) -> Finding:
    me = aws.identity(ctx).account
    seen: list[tuple[str, str]] = []
    with contextlib.suppress(Exception):   # a profile that does not work is reported by aws.profile-match
        seen.append(("config.AWS_PROFILE", aws.identity(ctx, "config").account))
    if ctx.fleet and not ctx.fleet.error:
        role = ctx.fleet.doc.get("IamFleetRole")
        for label, arn in [("the fleet's IamFleetRole", role)] + [
                ("the fleet's IamInstanceProfile", (s.get("IamInstanceProfile") or {}).get("Arn"))
                for s in ctx.fleet.specs if isinstance(s.get("IamInstanceProfile"), dict)]:
            m = ARN_ACCOUNT.match(arn) if isinstance(arn, str) else None
            if m:
                seen.append((label, m.group(1)))
    for label, acct in seen:
        if acct != me:
            return fail(f"{label} is in account {acct}, but your credentials are for {me}",
                        f"use ARNs and a profile from account {me} (or switch credentials)")
    return ok(f"everything points at {me}")


def _name(ctx: Context, key: str, default: str) -> str:
    v = ctx.config.get(key)
    return v if isinstance(v, str) and v else default


def run_py_calls(ctx: Context) -> dict[str, list[tuple[str, str]]]:
    """What DCP's run.py calls (as of 17388b3), per subcommand: (IAM action, the resource it acts on). The
    queue, cluster, service, log group, alarm, dashboard and topic ARNs are the ones config.py names; where
    the action has no resource-level permissions (lists, describes, RegisterTaskDefinition, EC2's spot
    calls on a fleet not yet made) it is "*". S3 is S08's, iam:PassRole R06's."""
    acct, region = aws.identity(ctx).account, ctx.region
    app = _name(ctx, "APP_NAME", "DCP")
    queue = _name(ctx, "SQS_QUEUE_NAME", f"{app}Queue")
    dlq = _name(ctx, "SQS_DEAD_LETTER_QUEUE", f"{app}_DeadMessages").rsplit(":", 1)[-1]
    cluster = _name(ctx, "ECS_CLUSTER", "default")
    group = _name(ctx, "LOG_GROUP_NAME", app)

    def arn(service: str, resource: str, *, regional: bool = True) -> str:
        return aws.arn(ctx, service, resource, region=region if regional else "", account=acct)

    sqs_q, sqs_dlq = arn("sqs", queue), arn("sqs", dlq)
    ecs_cluster = arn("ecs", f"cluster/{cluster}")
    ecs_service = arn("ecs", f"service/{cluster}/{app}Service")
    log_groups = [arn("logs", f"log-group:{g}:*") for g in (group, f"{group}_perInstance")]
    calls: dict[str, list[tuple[str, str]]] = {
        "setup": [("sqs:ListQueues", "*"), ("sqs:CreateQueue", sqs_dlq), ("sqs:GetQueueAttributes", sqs_dlq),
                  ("sqs:CreateQueue", sqs_q), ("ecs:ListClusters", "*"), ("ecs:CreateCluster", "*"),
                  ("ecs:RegisterTaskDefinition", "*"), ("ecs:ListServices", "*"), ("ecs:DeleteService", ecs_service),
                  ("ecs:CreateService", ecs_service)],
        "submitJob": [("sqs:GetQueueUrl", sqs_q), ("sqs:SendMessage", sqs_q)],
        "startCluster": [("ec2:RequestSpotFleet", "*"), ("logs:DescribeLogGroups", "*"),
                         *[(a, g) for g in log_groups for a in ("logs:CreateLogGroup", "logs:PutRetentionPolicy")],
                         ("ecs:UpdateService", ecs_service), ("ec2:DescribeSpotFleetInstances", "*"),
                         ("ec2:DescribeSpotFleetRequestHistory", "*"), ("ec2:CancelSpotFleetRequests", "*")],
        "monitor": [("sqs:GetQueueUrl", sqs_q), ("sqs:GetQueueAttributes", sqs_q),
                    ("ec2:DescribeSpotFleetRequestHistory", "*"), ("cloudwatch:DescribeAlarms", "*"),
                    ("cloudwatch:DeleteAlarms", arn("cloudwatch", f"alarm:{app}_*")),
                    ("ec2:DescribeSpotFleetInstances", "*"), ("ec2:ModifySpotFleetRequest", "*"),
                    ("ec2:DescribeSpotFleetRequests", "*"), ("ecs:UpdateService", ecs_service),
                    ("ec2:CancelSpotFleetRequests", "*"), ("sqs:ListQueues", "*"), ("sqs:DeleteQueue", sqs_q),
                    ("ecs:DeleteService", ecs_service), ("ecs:ListTaskDefinitions", "*"),
                    ("ecs:DeregisterTaskDefinition", "*"), ("ecs:DescribeClusters", ecs_cluster),
                    ("ecs:DeleteCluster", ecs_cluster),
                    *[(a, g) for g in log_groups for a in ("logs:CreateExportTask",)],
                    ("logs:DescribeExportTasks", "*")],
    }
    if is_true(ctx.config.get("CREATE_DASHBOARD")):
        calls["startCluster"].append(("cloudwatch:PutDashboard", arn("cloudwatch", f"dashboard/{app}", regional=False)))
        if is_true(ctx.config.get("CLEAN_DASHBOARD")):
            calls["monitor"] += [("cloudwatch:ListDashboards", "*"),
                                 ("cloudwatch:DeleteDashboards", arn("cloudwatch", f"dashboard/{app}", regional=False))]
    if is_true(ctx.config.get("AUTO_MONITOR")):
        calls["startCluster"] += [("sns:CreateTopic", arn("sns", "Monitor"))] + [
            ("cloudwatch:PutMetricAlarm", arn("cloudwatch", f"alarm:{m}isZero_{app}"))
            for m in ("ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesVisible")]
    return calls


@check("I06", "identity.permissions", "The operator may do what run.py does", Severity.HIGH,
       needs=(credentials,), actions=iamsim.ACTIONS,
       blind=(iamsim.ASKED, iamsim.LOCAL))
def permissions(ctx: Context) -> Finding:
    """What ``run.py`` (17388b3) calls per subcommand (setup, submitJob, startCluster, monitor: 48 calls,
    41 distinct questions)."""
    arn = iam.principal_arn(ctx)
    if arn is None:
        raise Skip("the identity is neither an IAM user nor a role; nothing to simulate")
    calls = run_py_calls(ctx)
    where: dict[Ask, list[str]] = {}
    for sub, pairs in calls.items():
        for action, resource in pairs:
            where.setdefault(Ask(action, resource, iamsim.region_context(ctx)), []).append(sub)
    verdicts = iamsim.simulate(ctx, arn, list(where))

    def describe(a: Ask) -> str:
        on = "" if a.resource == "*" else f" on {a.resource.split(':', 5)[-1]}"
        return f"{a.action}{on} (run.py {'/'.join(dict.fromkeys(where[a]))})"

    finding = iamsim.judge(verdicts, describe, "attach a policy with these actions (see the DCP docs' "
                           "external_buckets.md)", blocker=False)
    if finding:
        return finding
    return ok(f"{len(verdicts)} run.py calls allowed ({iamsim.how(verdicts)}; "
              f"{', '.join(f'{k} {len(v)}' for k, v in calls.items())})")
