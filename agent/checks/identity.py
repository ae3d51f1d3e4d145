"""I: are the credentials valid, whose are they, and do they belong to one account."""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from agent import gates, iamsim
from agent.context import Context
from agent.facts import aws, iam
from agent.facts.core import translate
from agent.model import Finding, Severity, Skip, fail, ok, warn
from agent.registry import check

HINTS = {
    "InvalidClientTokenId": "the access key id is unknown to AWS: rotate the keys and run aws configure",
    "SignatureDoesNotMatch": "the secret key does not match the access key id: re-enter it with aws configure",
    "ExpiredToken": "the session token expired: run aws sso login, or assume the role again",
    "ExpiredTokenException": "the session token expired: run aws sso login, or assume the role again",
    "UnrecognizedClientException": "the keys are not recognised: rotate them and run aws configure",
    "RequestExpired": "the request was signed with a wrong clock: synchronise the clock (timedatectl)",
}
ARN_ACCOUNT = re.compile(r"^arn:[a-z-]+:iam::(\d{12}):")


@check("I01", "identity.credentials", "AWS credentials are valid", Severity.BLOCKER,
       needs=(gates.AWS_FILES,), actions=("sts:GetCallerIdentity",), provides=gates.CREDENTIALS)
def credentials(ctx: Context) -> Finding:
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
    fix = "sudo systemctl enable --now systemd-timesyncd   (Amazon Linux: chronyd)"
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
       needs=(credentials,))
def credential_lifetime(ctx: Context) -> Finding:
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


OPERATOR_ACTIONS = [
    "sqs:CreateQueue", "sqs:SendMessage", "sqs:GetQueueAttributes", "ecs:CreateCluster",
    "ecs:RegisterTaskDefinition", "ecs:CreateService", "ecs:UpdateService", "ec2:RequestSpotFleet",
    "ec2:RunInstances", "ec2:CreateTags", "ec2:CancelSpotFleetRequests", "ec2:DescribeSpotFleetInstances",
    "logs:CreateLogGroup", "logs:PutRetentionPolicy", "logs:CreateExportTask", "cloudwatch:PutMetricAlarm",
    "cloudwatch:DeleteAlarms", "cloudwatch:PutDashboard", "sns:CreateTopic",
]


@check("I06", "identity.permissions", "The operator may do what run.py does (approximation)", Severity.HIGH,
       needs=(credentials,), actions=iamsim.ACTIONS)
def permissions(ctx: Context) -> Finding:
    arn = iam.principal_arn(ctx)
    if arn is None:
        raise Skip("the identity is neither an IAM user nor a role; nothing to simulate")
    verdict = iamsim.simulate(ctx, arn, [(a, "*") for a in OPERATOR_ACTIONS])
    denied = [a for (a, _), allowed in verdict.items() if not allowed]
    if denied:
        return warn(f"{arn.split(':', 5)[-1]} may not: {', '.join(denied[:6])}"
                    + (f" and {len(denied) - 6} more" if len(denied) > 6 else "")
                    + " (simulation: resource policies and SCPs not seen)",
                    "attach a policy with these actions (see the DCP docs' external_buckets.md)")
    return ok(f"{len(OPERATOR_ACTIONS)} run.py actions allowed (simulated)")
