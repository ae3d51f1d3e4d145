"""C: the AWS CLI configuration and profile, as boto3 and DCP's run.py read them."""

from __future__ import annotations

from agent import flavours, gates
from agent.context import REGION_RE, Context
from agent.facts import aws, local
from agent.facts.core import code_of
from agent.flavours import LAYOUT_NAMES
from agent.model import Finding, Severity, Skip, fail, ok, warn
from agent.registry import check

# What dcp-agent fix does for C07-C10 (agent/fix/awsconfig.py): one step.
AWS_CONFIG_CURE = ("Sets ``region`` (= ``AWS_REGION``) and ``output = json`` in the profile's section of "
                   "``~/.aws/config``, line by line, after a backup copy (``config.dcp-agent-backup-<time>``).")

CONFIGURE = "aws configure{p}   (sets keys, region and output in ~/.aws)"


def _pflag(profile: str) -> str:
    return "" if profile == "default" else f" --profile {profile}"


@check("C01", "aws.config-files", "~/.aws/config and credentials parse", Severity.HIGH, provides=gates.AWS_FILES)
def config_files(ctx: Context) -> Finding:
    files = local.aws_files(ctx)
    if files.errors:
        return fail(f"cannot parse {files.errors[0]}", "fix the file by hand or re-run aws configure")
    creds = files.credentials_file
    info = local.file_info(ctx, creds)
    if info.exists and info.mode & 0o077:
        return warn(f"{creds} is readable by others (mode {info.mode:o})", f"chmod 600 {creds}")
    if not local.file_info(ctx, files.config_file).exists and not info.exists:
        return warn("there is no ~/.aws/config or ~/.aws/credentials", CONFIGURE.format(p=""))
    return ok(", ".join(str(p) for p in (files.config_file, creds) if p.exists()))


def _profile_fix(env: tuple[tuple[str, str], ...], wanted: str) -> str:
    """How to make boto3.Session() use profile ``wanted``, given the profile variables in effect."""
    if env and env[0][0] != "AWS_PROFILE":   # AWS_DEFAULT_PROFILE, which boto3 prefers to AWS_PROFILE
        return (f"unset {env[0][0]} (boto3 takes it before AWS_PROFILE; drop it from ~/.bashrc too) and "
                f"export AWS_PROFILE={wanted}")
    return f"export AWS_PROFILE={wanted} (persist it in ~/.bashrc)"


def _shell_profile(env: tuple[tuple[str, str], ...]) -> str:
    """Where the shell's profile comes from, naming the variable that wins and the ones it overrides."""
    if not env:
        return "no AWS_PROFILE set: [default]"
    (name, value), rest = env[0], env[1:]
    return f"{name}={value}" + "".join(f", which overrides {n}={v}" for n, v in rest if v != value)


@check("C02", "aws.profile-match", "The shell's AWS profile is config.AWS_PROFILE", Severity.BLOCKER,
       needs=(gates.CONFIG, gates.AWS_FILES), actions=("sts:GetCallerIdentity",),
       blind=("It sees the environment the agent runs in.",))
def profile_match(ctx: Context) -> Finding:
    """Names the variable ``boto3.Session()`` takes its profile from, in botocore's order:
    ``AWS_DEFAULT_PROFILE`` before ``AWS_PROFILE``, and which one it overrides."""
    wanted = ctx.config_profile()
    env = aws.profile_env(ctx)
    try:
        current = aws.session_profile(ctx)
    except Exception as e:
        if code_of(e) == "ProfileNotFound":
            name, value = env[0] if env else ("AWS_PROFILE", "")
            return fail(f"{_shell_profile(env)}: {name}={value} names a profile that does not exist",
                        _profile_fix(env, wanted) + f", or aws configure --profile {value}")
        raise
    source = f" ({env[0][0]})" if env else ""
    if current == wanted:
        return ok(f"both use profile {wanted!r}{source}")
    try:
        other = aws.identity(ctx, "config")
    except Exception as e:
        if code_of(e) == "ProfileNotFound":
            return fail(f"config.py names AWS_PROFILE={wanted!r}, which does not exist",
                        f"aws configure --profile {wanted}, or set AWS_PROFILE = '{current}' in config.py")
        raise
    mine = aws.identity(ctx)
    fix = f"{_profile_fix(env, wanted)}, or set AWS_PROFILE = '{current}' in config.py"
    if other.account != mine.account:
        return fail(f"run.py would create queues and fleets as account {mine.account} (profile {current!r}: "
                    f"{_shell_profile(env)}) but hand workers the keys of account {other.account} "
                    f"(profile {wanted!r})", fix)
    return warn(f"the shell uses profile {current!r} ({_shell_profile(env)}) and config.py {wanted!r} "
                "(same account)", fix)


@check("C03", "aws.profile-section", "config.AWS_PROFILE has a section DCP can find", Severity.BLOCKER,
       needs=(gates.CONFIG, gates.AWS_FILES))
def profile_section(ctx: Context) -> Finding:
    profile = ctx.config_profile()
    files = local.aws_files(ctx)
    section = files.profile_section(profile)
    if "session" in ctx.flavour.credential_layouts:
        # boto3.Session(profile_name=AWS_PROFILE) finds the profile in either file; run.py parses neither.
        if section is not None:
            return ok(f"[{section}] in {files.config_file}")
        if files.credentials.has_section(profile):
            return ok(f"[{profile}] in {files.credentials_file}")
        return fail(f"neither {files.config_file} nor {files.credentials_file} has a [{profile}] profile: "
                    f"{ctx.flavour.name}'s run.py stops with ProfileNotFound", CONFIGURE.format(p=_pflag(profile)))
    if section is None:
        return fail(f"{files.config_file} has no [{profile}] or [profile {profile}] section; run.py stops "
                    "with 'Problem handling profile'", CONFIGURE.format(p=_pflag(profile)))
    return ok(f"[{section}] in {files.config_file}")


TEMPORARY_SOURCES = ("role_arn", "credential_process", "sso_session", "sso_start_url", "web_identity_token_file")


def _session_layout(ctx: Context) -> local.Layout:
    """What boto3.Session(profile_name=AWS_PROFILE).get_credentials() hands on as key and secret (no token): the
    profile's own keys (config section first, as botocore reads them), else 'temporary' when the profile gets
    its credentials some other way (a role, SSO, a process), else 'none'."""
    profile = ctx.config_profile()
    files = local.aws_files(ctx)
    section = files.profile_section(profile)
    conf = dict(files.config.items(section)) if section else {}
    if any(k in conf for k in TEMPORARY_SOURCES):
        return local.Layout("temporary", {}, section)
    if "aws_access_key_id" in conf and "aws_secret_access_key" in conf:
        return local.Layout("session", conf, section)
    if files.credentials.has_section(profile):
        keys = dict(files.credentials.items(profile))
        if "aws_access_key_id" in keys and "aws_secret_access_key" in keys:
            return local.Layout("session", keys, section or profile)
    return local.Layout("none", {}, section or (profile if files.credentials.has_section(profile) else None))


def _layout(ctx: Context) -> local.Layout:
    """The credential layout of config.AWS_PROFILE as this project's run.py reads it."""
    session = "session" in ctx.flavour.credential_layouts
    layout = _session_layout(ctx) if session else local.credential_layout(ctx)
    if layout.section is None:
        raise Skip("no profile section (see aws.profile-section)")
    if not session and layout.kind not in ctx.flavour.credential_layouts:
        return local.Layout("none", {}, layout.section)
    return layout


@check("C04", "aws.credential-layout", "DCP can hand these credentials to its workers", Severity.BLOCKER,
       needs=(profile_section,), provides=gates.CREDENTIAL_LAYOUT)
def credential_layout(ctx: Context) -> Finding:
    found = _layout(ctx)
    layout = found.kind
    profile = ctx.config_profile()
    f = ctx.flavour
    if layout == "temporary":
        return fail(f"profile {profile!r} gets temporary credentials (a role, SSO or a process): {f.name}'s run.py "
                    "hands the workers only boto3's access key and secret, without the session token (and no task "
                    "role), so every worker call fails", f"give profile {profile!r} long-term IAM user keys "
                    f"(aws configure{_pflag(profile)}) for {f.name}")
    if layout == "none" and "session" in f.credential_layouts:
        return fail(f"profile {profile!r} has no keys boto3 can read: {f.name}'s run.py hands workers nothing",
                    f"aws configure{_pflag(profile)}  (long-term IAM user keys)")
    kind = local.credential_layout(ctx).kind   # the layout by DCP's reading of the files
    if layout == "none" and not f.is_dcp and kind in "abcd" and kind not in f.credential_layouts:
        return fail(f"profile {profile!r} uses {LAYOUT_NAMES[kind]}, which {f.name}'s run.py cannot read (it stops "
                    "with 'Problem getting credentials' and then an UnboundLocalError)",
                    f"move the keys inline into ~/.aws/config: [{found.section}] aws_access_key_id=… "
                    f"aws_secret_access_key=…, or use a role_arn profile"
                    if "a" in f.credential_layouts else "use one of: "
                    + "; ".join(LAYOUT_NAMES[k] for k in f.credential_layouts))
    if layout == "none" and not ctx.sure and _session_layout(ctx).kind == "session":
        return warn(f"profile {profile!r} uses a layout DCP's run.py cannot copy to workers (a sibling's may: "
                    f"Distributed-Fiji's takes the profile's own keys); {flavours.unsure(ctx.recognised)}",
                    flavours.UNSURE_FIX)
    if layout == "none":
        return fail(f"profile {profile!r} uses a layout run.py cannot copy to workers (keys only in "
                    "~/.aws/credentials under a non-default profile, SSO, credential_process or instance role)",
                    f"add to ~/.aws/config: [profile {profile}] role_arn=arn:{aws.partition(ctx, ctx.region)}:iam::<acct>:role/<DCPRole> "
                    "credential_source=Ec2InstanceMetadata region=<region> output=json; "
                    "or put long-term keys under [default]")
    return ok(LAYOUT_NAMES[layout])


@check("C05", "aws.no-temporary-keys", "Workers are not handed temporary keys", Severity.BLOCKER,
       needs=(credential_layout,))
def no_temporary_keys(ctx: Context) -> Finding:
    found = _layout(ctx)
    layout, keys = found.kind, found.keys
    if layout in ("a", "none"):
        raise Skip("no static keys are copied to workers with this layout")
    if keys.get("aws_access_key_id", "").startswith("ASIA") or "aws_session_token" in keys:
        return fail("the keys DCP copies to workers are temporary (ASIA… with a session token); run.py drops "
                    "the token, so every worker call fails",
                    "use a role_arn profile, or long-term IAM user keys (AKIA…)")
    return ok("long-term keys")


@check("C06", "aws.secrets-exposure", "Worker credentials are not stored in plain text", Severity.LOW,
       needs=(credential_layout,))
def secrets_exposure(ctx: Context) -> Finding:
    layout = _layout(ctx).kind
    if layout in ("b", "c", "d", "session"):
        return warn("run.py writes these access keys in plain text into the ECS task definition and the "
                    "workers' /credentials.txt", "prefer a role_arn profile (workers then use a task role)")
    return ok("workers use a task role" if layout == "a" else "no static keys")


@check("C07", "aws.region-set", "A default region is set", Severity.BLOCKER, needs=(config_files,),
       cure=AWS_CONFIG_CURE)
def region_set(ctx: Context) -> Finding:
    try:
        region = aws.session_region(ctx)
    except Exception as e:
        if code_of(e) == "ProfileNotFound":
            raise Skip("the profile does not exist (see aws.profile-match)") from None
        raise
    if not region:
        profile = aws.session_profile(ctx)
        return fail("no default region: boto3 raises NoRegionError", f"aws configure set region us-east-1{_pflag(profile)}")
    return ok(region)


def _az_like(value: str) -> bool:
    return bool(REGION_RE.match(value[:-1])) and value[-1].isalpha()


@check("C08", "aws.region-format", "The region is a region, not an availability zone", Severity.BLOCKER,
       needs=(config_files,), provides=gates.REGION,
       cure=AWS_CONFIG_CURE,
       blind=("A region not enabled for the account shows up on the first regional call (see I01).",))
def region_format(ctx: Context) -> Finding:
    """Checked offline against botocore's partitions file (so the regional checks do not wait for it)."""
    try:
        session_region = aws.session_region(ctx)
        known = aws.known_regions(ctx)
    except Exception as e:
        if code_of(e) == "ProfileNotFound":
            raise Skip("the profile does not exist (see aws.profile-match)") from None
        raise
    checks = [("the AWS CLI region", session_region)]
    if ctx.config.has("AWS_REGION"):
        checks.append(("config.AWS_REGION", ctx.config.get("AWS_REGION")))
    for label, value in checks:
        if value is None:
            continue
        if not isinstance(value, str):
            return fail(f"{label} is not a string", "set AWS_REGION = 'us-east-1' (your region) in config.py")
        if _az_like(value):
            fix = (f"aws configure set region {value[:-1]}" if label.startswith("the AWS") else
                   f"set AWS_REGION = '{value[:-1]}' in config.py")
            return fail(f"{label} is {value!r}, an availability zone; use the region {value[:-1]!r}", fix)
        if value not in known and not REGION_RE.match(value):
            return fail(f"{label} {value!r} is not an AWS region", "use a region such as us-east-1 or eu-west-2")
        if value not in known:
            return warn(f"{label} {value!r} is not a region this botocore knows", "update boto3, or check the name")
    # Kept local (no API call): every regional check waits for this one. A region that is not enabled
    # for the account shows up as OptInRequired on the first regional call (see the runner).
    return ok(ctx.region)


@check("C09", "aws.region-match", "The AWS CLI region is config.AWS_REGION", Severity.BLOCKER,
       needs=(gates.CONFIG, region_set, region_format),
       cure=AWS_CONFIG_CURE)
def region_match(ctx: Context) -> Finding:
    wanted = ctx.config.get("AWS_REGION")
    current = aws.session_region(ctx)
    if not isinstance(wanted, str):
        raise Skip("AWS_REGION is not set in config.py")
    if current != wanted:
        profile = aws.session_profile(ctx)
        return fail(f"run.py's API calls go to {current} (your AWS CLI region) but the task definition, "
                    f"logs and dashboard use {wanted} (config.py): a run split across regions",
                    f"aws configure set region {wanted}{_pflag(profile)}")
    return ok(wanted)


@check("C10", "aws.output-json", "The AWS CLI outputs JSON", Severity.LOW, needs=(profile_section,),
       cure=AWS_CONFIG_CURE)
def output_json(ctx: Context) -> Finding:
    profile = ctx.config_profile()
    files = local.aws_files(ctx)
    section = files.profile_section(profile)
    if section is None:
        raise Skip("no profile section")
    output = files.config.get(section, "output", fallback=None)
    if output != "json":
        return warn(f"output is {output or 'unset'}; DCP's hygiene scripts pipe the CLI's JSON into in2csv",
                    f"aws configure set output json{_pflag(profile)}")
    return ok("json")


