"""M: what earlier runs left behind (fleets, a scaled service, alarms, logs), what it costs, and Auto-Monitor
(``dcp-agent check --only M`` runs just these).

Names are DCP's (run.py, setup_AWS.py and lambda_function.py at DCP 17388b3): the service ``<APP_NAME>Service``
in ``ECS_CLUSTER``, the fleet id in ``files/<APP_NAME>SpotFleetRequestId.json``, workers fetching
``s3://<AWS_BUCKET>/ecsconfigs/<APP_NAME>_ecs.config`` in their user data, the trigger alarms
``ApproximateNumberOfMessages[Not]VisibleisZero_<APP_NAME>``, per-worker alarms ``<APP_NAME>_<instance-id>``,
the dashboard ``<APP_NAME>``, the log groups ``LOG_GROUP_NAME`` and ``…_perInstance``, and the Lambda, SNS
topic and invoke permission all named ``Monitor``.
"""

from __future__ import annotations

import ast
import base64
import binascii
import json
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from agent import gates
from agent.checks._common import is_true
from agent.context import Context
from agent.facts import cloudwatch, ec2, ecs, local, monitor
from agent.model import Finding, Severity, Skip, fail, ok, warn
from agent.registry import check

# What the M checks cannot see (docs/checks.md prints each once, at its first check).
DEPLOYED = ("The *deployed* Monitor code is not downloaded (``lambda:GetFunction`` hands out a presigned package "
            "URL): its bucket line and the cleanup defect are read from the clone, so a function deployed from "
            "another copy is not inspected.")
APP_FLEETS = ("A fleet is this app's when it is the one in ``files/<APP_NAME>SpotFleetRequestId.json`` or its user "
              "data fetches ``ecsconfigs/<APP_NAME>_ecs.config`` (DCP tags nothing).")

M = (*gates.AWS, gates.CONFIG)
ALARM_MONTHLY = 0.10          # USD per standard-resolution metric alarm a month (CloudWatch pricing)
JOIN_GRACE_S = 15 * 60        # an instance that has not joined ECS after this long never will
# Lambda's Python runtimes: (deprecated on, creating functions blocked from). AWS's runtime table as of
# 2026-11 (docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html); python3.9's block dates were moved.
RUNTIMES = {"python3.7": ("2023-12-04", "2024-01-09"), "python3.8": ("2024-10-14", "2025-02-28"),
            "python3.9": ("2025-12-15", "2027-02-01"), "python3.10": ("2026-10-31", None),
            "python3.11": ("2027-06-30", "2027-07-31"), "python3.12": ("2028-10-31", None),
            "python3.13": ("2029-06-30", None), "python3.14": ("2029-06-30", None)}


def _app(ctx: Context) -> str:
    app = ctx.config.get("APP_NAME")
    if not isinstance(app, str) or not app:
        raise Skip("APP_NAME is not set (see config.names)")
    return app


def _cluster(ctx: Context) -> str:
    value = ctx.config.get("ECS_CLUSTER")
    return value if isinstance(value, str) and value else "default"


def _monitor_file(ctx: Context) -> dict[str, Any]:
    """The run state run.py's startCluster writes into the clone (empty when there is none)."""
    text = local.text(ctx, ctx.settings.dcp_clone / "files" / f"{_app(ctx)}SpotFleetRequestId.json")
    try:
        doc = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _user_data(spec: dict[str, Any]) -> str:
    try:
        return base64.b64decode(str(spec.get("UserData") or ""), validate=False).decode(errors="replace")
    except (binascii.Error, ValueError):
        return ""


def app_fleets(ctx: Context) -> list[dict[str, Any]]:
    """This app's fleets that can still run instances: the one in the monitor file, and every active fleet
    whose workers fetch this app's ECS config (run.py writes it into each launch specification's user data)."""
    app = _app(ctx)
    marker = f"ecsconfigs/{app}_ecs.config"
    known = _monitor_file(ctx).get("MONITOR_FLEET_ID")
    known = known if isinstance(known, str) and known.startswith("sfr-") else None
    ctx.facts.prefetch(ec2.active_spot_fleets)
    found: dict[str, dict[str, Any]] = {}
    if known:   # the monitor file's fleet, by its id (its own read, side by side with the listing)
        found.update({str(f["SpotFleetRequestId"]): f for f in ec2.spot_fleets(ctx, (known,))
                      if f.get("SpotFleetRequestState") in ec2.LIVE_FLEET_STATES})
    for f in ec2.active_spot_fleets(ctx):
        specs = (f.get("SpotFleetRequestConfig") or {}).get("LaunchSpecifications") or []
        if f.get("SpotFleetRequestId") == known or any(marker in _user_data(s) for s in specs):
            found.setdefault(str(f["SpotFleetRequestId"]), f)
    return list(found.values())


def _since(when: Any) -> str:
    if not isinstance(when, datetime):
        return "?"
    days = (datetime.now(UTC) - when.astimezone(UTC)).total_seconds() / 86400
    return f"since {when.astimezone(UTC):%Y-%m-%d %H:%M} UTC ({days:.1f} days)"


def fleet_cost(ctx: Context, fleet: dict[str, Any]) -> tuple[float, str, list[dict[str, Any]]]:
    """(USD a day, how it was priced, the running instances) for one fleet, at the current spot price of each
    instance's type in its zone; where spot history has no answer, at the fleet's maximum price."""
    fid = str(fleet["SpotFleetRequestId"])
    active = ec2.fleet_instances(ctx, fid)
    described = ec2.instances(ctx, tuple(sorted(i["InstanceId"] for i in active)))
    running = [described.get(i["InstanceId"], {"InstanceId": i["InstanceId"], "InstanceType": i.get("InstanceType")})
               for i in active]
    types = tuple(sorted({str(i.get("InstanceType")) for i in running}))
    zones = tuple(sorted({str((i.get("Placement") or {}).get("AvailabilityZone")) for i in running
                          if (i.get("Placement") or {}).get("AvailabilityZone")}))
    prices = ec2.spot_prices(ctx, types, zones) if types else {}
    try:
        ceiling = float((fleet.get("SpotFleetRequestConfig") or {}).get("SpotPrice") or 0)
    except ValueError:
        ceiling = 0.0
    total, capped = 0.0, 0
    for i in running:
        price = prices.get(f"{i.get('InstanceType')} in {(i.get('Placement') or {}).get('AvailabilityZone')}")
        if price is None:
            price = max((v for k, v in prices.items() if k.startswith(f"{i.get('InstanceType')} in ")), default=None)
        if price is None:
            price, capped = ceiling, capped + 1
        total += price * 24
    how = "at current spot prices" if not capped else (
        f"at most: {capped} instance(s) priced at the fleet's maximum ${ceiling:.2f}/h (no spot price history)")
    return total, how, running


def _lambda_source(ctx: Context) -> tuple[Path, str]:
    """The clone's lambda_function.py (what setup_AWS.py deploys), when Auto-Monitor is on and the file is there."""
    if not is_true(ctx.config.get("AUTO_MONITOR")):
        raise Skip("AUTO_MONITOR is not 'True'")
    path = ctx.settings.dcp_clone / "lambda_function.py"
    source = local.text(ctx, path)
    if source is None:
        raise Skip(f"{path} is not there (see local.dcp-clone)")
    return path, source


@check("M01", "monitor.lambda-bucket", "lambda_function.py in the clone names AWS_BUCKET", Severity.HIGH,
       needs=(gates.CONFIG,),
       blind=(DEPLOYED,))
def lambda_bucket(ctx: Context) -> Finding:
    path, source = _lambda_source(ctx)
    m = re.search(r"""^bucket\s*=\s*["']([^"']*)["']""", source, re.M)
    bucket = ctx.config.get("AWS_BUCKET")
    fix = (f"set bucket = \"{bucket}\" in {path}, then redeploy the Monitor function (setup_AWS.py skips an existing "
           f"one: zip the folder and run aws lambda update-function-code --function-name Monitor --zip-file "
           f"fileb://lambda_function.zip --region {ctx.region})")
    if m is None:
        return warn(f"{path} has no bucket = \"…\" line to check", fix)
    if m.group(1) != bucket:
        return fail(f"{path} says bucket = \"{m.group(1)}\", not AWS_BUCKET {bucket!r}: the deployed Monitor "
                    "cannot read its monitor file and never cleans up", fix)
    return ok(f"bucket = \"{bucket}\"")


@check("M02", "monitor.lambda", "The Monitor Lambda is deployed on a supported runtime", Severity.HIGH,
       needs=M, actions=("lambda:GetFunctionConfiguration",))
def monitor_lambda(ctx: Context) -> Finding:
    """The ``Monitor`` function exists on a runtime Lambda still supports (AWS's runtime table, as of
    2026-11, is in the code)."""
    if not is_true(ctx.config.get("AUTO_MONITOR")):
        raise Skip("AUTO_MONITOR is not 'True'")
    fn = monitor.function(ctx, "Monitor")
    if fn is None:
        return fail(f"there is no Monitor function in {ctx.region}: AUTO_MONITOR's alarms fire into nothing and "
                    "fleets run until someone cancels them", "python setup_AWS.py (in the DCP clone), or set "
                    "AUTO_MONITOR = 'False' and run 'python run.py monitor …' yourself")
    runtime = str(fn.get("Runtime", ""))
    dates = RUNTIMES.get(runtime)
    today = date.today().isoformat()
    if dates and dates[0] <= today:
        blocked = f"; from {dates[1]} setup_AWS.py cannot create it again" if dates[1] else ""
        return warn(f"Monitor runs on {runtime}, deprecated by Lambda since {dates[0]} (no security patches){blocked}",
                    "aws lambda update-function-configuration --function-name Monitor --runtime python3.13 "
                    f"--region {ctx.region}")
    return ok(f"Monitor ({runtime})")


@check("M03", "monitor.sns-wiring", "The Monitor topic feeds the Monitor Lambda", Severity.HIGH,
       needs=(*M, monitor_lambda), actions=("sns:ListSubscriptionsByTopic", "lambda:GetPolicy"))
def sns_wiring(ctx: Context) -> Finding:
    """The ``Monitor`` topic, its ``lambda`` subscription and SNS's invoke permission."""
    fn = monitor.function(ctx, "Monitor")
    if fn is None:
        raise Skip("no Monitor function (see monitor.lambda)")
    setup = "python setup_AWS.py (in the DCP clone) wires topic, subscription and permission"
    arn = str(fn["FunctionArn"]).split(":function:")[0] + ":function:Monitor"
    # The topic run.py's startCluster creates ("Monitor", in AWS_REGION, this account), asked by its ARN: the
    # function's ARN names the partition, region and account. Its subscriptions say whether it exists.
    _, partition, _, region, account = arn.split(":")[:5]
    topic = f"arn:{partition}:sns:{region}:{account}:Monitor"
    ctx.facts.prefetch(monitor.function_policy, "Monitor")
    subs = monitor.subscriptions(ctx, topic)
    if subs is None:
        return fail("there is no SNS topic Monitor: the queue-empty alarms notify nobody", setup)
    if not any(s.get("Protocol") == "lambda" and str(s.get("Endpoint", "")).startswith(arn) for s in subs):
        return fail("the Monitor topic has no subscription for the Monitor function (setup_AWS.py skips it when "
                    "the function already existed)", f"aws sns subscribe --topic-arn {topic} --protocol lambda "
                    f"--notification-endpoint {arn} --region {ctx.region}")
    policy = monitor.function_policy(ctx, "Monitor") or {}
    statements = policy.get("Statement") or []
    def invokes(st: Any) -> bool:
        if not isinstance(st, dict) or not isinstance(st.get("Principal"), dict) or st.get("Effect") != "Allow":
            return False
        raw = st.get("Action")
        actions: list[Any] = raw if isinstance(raw, list) else [raw]
        return st["Principal"].get("Service") == "sns.amazonaws.com" and any(
            a in ("lambda:InvokeFunction", "lambda:*", "*") for a in actions)

    allowed = any(invokes(st) for st in statements)
    if not allowed:
        return fail("SNS may not invoke the Monitor function", "aws lambda add-permission --function-name Monitor "
                    "--statement-id InvokeBySNS --action lambda:InvokeFunction --principal sns.amazonaws.com "
                    f"--source-arn {topic} --region {ctx.region}")
    return ok(f"{topic} → Monitor")


def _arity_defects(source: str) -> list[str]:
    """Calls to this file's own top-level functions with a number of positional arguments they cannot take."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    arity: dict[str, tuple[int, int | None]] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef):
            a = stmt.args
            positional = len(a.posonlyargs) + len(a.args)
            arity[stmt.name] = (positional - len(a.defaults), None if a.vararg else positional)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in arity:
            if any(isinstance(a, ast.Starred) for a in node.args) or node.keywords:
                continue
            low, high = arity[node.func.id]
            if len(node.args) < low or (high is not None and len(node.args) > high):
                found.append(f"line {node.lineno}: {node.func.id}() with {len(node.args)} arguments "
                             f"(it takes {low if low == high else f'{low}–{high}'})")
    return found


@check("M05", "monitor.cleanup-defect", "Auto-Monitor's cleanup runs to the end", Severity.HIGH,
       needs=(gates.CONFIG,),
       blind=(DEPLOYED,))
def cleanup_defect(ctx: Context) -> Finding:
    """The clone's ``lambda_function.py`` calls its own functions with arguments they can take (DCP's HEAD
    calls ``killdeadAlarms`` with three for two: Auto-Monitor scales the service to 0 and stops before
    cancelling the fleet)."""
    path, source = _lambda_source(ctx)
    defects = _arity_defects(source)
    if defects:
        app = ctx.config.get("APP_NAME")
        return warn(f"{path.name} raises TypeError at {defects[0]}: Auto-Monitor scales the service to 0 and stops "
                    "there; the fleet keeps running (Type maintain, valid a year) and the queue, service and "
                    "alarms stay", f"also run 'python run.py monitor files/{app}SpotFleetRequestId.json' (in tmux) "
                    f"for every run, or fix the call in {path} and redeploy Monitor")
    return ok("no call with a wrong number of arguments")


def _stale_alarms(ctx: Context, app: str, running: set[str]) -> list[str]:
    """Per-worker alarms (``<APP_NAME>_<instance-id>``, one per worker per run) whose worker is gone: these pile
    up. The two ``…isZero_<APP_NAME>`` trigger alarms are not counted: run.py's monitor leaves them and the next
    startCluster reuses them by name. CloudWatch is asked only for names starting ``<APP_NAME>_``."""
    per_instance = re.compile(rf"^{re.escape(app)}_(i-[0-9a-f]+)$")
    return [name for name in cloudwatch.alarm_names(ctx, f"{app}_")
            if (m := per_instance.match(name)) and m.group(1) not in running]


def _running_ids(ctx: Context) -> set[str]:
    return {i["InstanceId"] for f in app_fleets(ctx) for i in ec2.fleet_instances(ctx, str(f["SpotFleetRequestId"]))}


@check("M06", "monitor.stale-alarms", "No alarms or dashboards left by earlier runs", Severity.LOW, needs=M,
       actions=("cloudwatch:DescribeAlarms", "cloudwatch:ListDashboards", "ec2:DescribeSpotFleetRequests",
                "ec2:DescribeSpotFleetInstances"),
       blind=(APP_FLEETS,))
def stale_alarms(ctx: Context) -> Finding:
    """Per-worker alarms ``<APP_NAME>_<instance-id>`` whose instance is gone and the ``…isZero_<APP_NAME>``
    trigger alarms with no run behind them ($0.10 an alarm a month), and the app's dashboards."""
    app = _app(ctx)
    ctx.facts.prefetch(cloudwatch.alarm_names, f"{app}_")
    ctx.facts.prefetch(cloudwatch.dashboard_names, app)
    running = _running_ids(ctx)
    stale = _stale_alarms(ctx, app, running)
    cleaned = ctx.config.get("CLEAN_DASHBOARD") != "False"   # monitor deletes them unless told not to
    # run.py names its dashboard APP_NAME (create_dashboard); asked by that prefix.
    dashboards = [d for d in cloudwatch.dashboard_names(ctx, app) if app in d] if cleaned and not running else []
    if stale or dashboards:
        parts = []
        if stale:
            parts.append(f"{len(stale)} alarm(s) of {app} with no run behind them (${len(stale) * ALARM_MONTHLY:.2f}"
                         f"/month): {', '.join(stale[:3])}{' …' if len(stale) > 3 else ''}")
        if dashboards:
            parts.append(f"dashboard(s) {', '.join(dashboards)} (3 are free, then $3/month each)")
        fix = []
        if stale:
            fix.append(f"aws cloudwatch delete-alarms --alarm-names {' '.join(stale[:100])} --region {ctx.region}")
        if dashboards:
            fix.append(f"aws cloudwatch delete-dashboards --dashboard-names {' '.join(dashboards)} --region {ctx.region}")
        return warn("; ".join(parts), " && ".join(fix))
    return ok("none left" if not running else "a run is active; its alarms are in use")


@check("M07", "monitor.logs", "Logs: no export task blocks monitor's, and retention is set", Severity.MEDIUM,
       needs=M, actions=("logs:DescribeExportTasks", "logs:DescribeLogGroups"))
def logs(ctx: Context) -> Finding:
    """An export task still running (one per account: monitor's export would fail) and log groups without
    retention."""
    group = ctx.config.get("LOG_GROUP_NAME") or _app(ctx)
    ctx.facts.prefetch(cloudwatch.log_groups, str(group))
    active = cloudwatch.active_export_tasks(ctx)
    if active:
        t = active[0]
        return warn(f"export task {t.get('taskName') or t.get('taskId')} is still {t.get('status', {}).get('code', 'active')}:"
                    " an account runs one export at a time, so 'run.py monitor' cannot export this run's logs",
                    f"wait for it, or aws logs cancel-export-task --task-id {t.get('taskId')} --region {ctx.region}")
    groups = cloudwatch.log_groups(ctx, str(group))
    forever = [n for n in (str(group), f"{group}_perInstance") if n in groups and not groups[n].get("retentionInDays")]
    if forever:
        return warn(f"{', '.join(forever)} keep logs forever (run.py sets 60 days only when it creates a group)",
                    " && ".join(f"aws logs put-retention-policy --log-group-name {n} --retention-in-days 60 "
                                f"--region {ctx.region}" for n in forever))
    return ok("no export running; retention set" if groups else "no export running; no log groups yet")


@check("M08", "monitor.leftover-service", "The previous run's ECS service is scaled to 0", Severity.HIGH, needs=M,
       actions=("ecs:DescribeServices",))
def leftover_service(ctx: Context) -> Finding:
    """``<APP_NAME>Service`` still scaled above 0 (``run.py setup`` then fails)."""
    app, cluster = _app(ctx), _cluster(ctx)
    svc = ecs.service(ctx, cluster, f"{app}Service")
    if svc is None or not svc.get("desiredCount"):
        return ok(f"{app}Service is {'scaled to 0' if svc else 'not there'}")
    return fail(f"{app}Service in {cluster} is still scaled to {svc['desiredCount']}: 'run.py setup' fails "
                "(InvalidParameterException: The service cannot be stopped while it is scaled above 0); if its run "
                "is over, scale it down", f"aws ecs update-service --cluster {cluster} --service {app}Service "
                f"--desired-count 0 --region {ctx.region}")


@check("M09", "monitor.ecs-cluster", "The ECS cluster is active and the fleet's instances joined it",
       Severity.MEDIUM, needs=M, actions=("ecs:DescribeClusters", "ecs:ListContainerInstances",
                                          "ecs:DescribeContainerInstances", "ec2:DescribeSpotFleetRequests",
                                          "ec2:DescribeSpotFleetInstances", "ec2:DescribeInstances",
                                          "ec2:DescribeSpotPriceHistory"),
       blind=(APP_FLEETS,))
def ecs_cluster(ctx: Context) -> Finding:
    """The cluster, and fleet instances that never joined it after 15 minutes (#126, #200)."""
    name = _cluster(ctx)
    found = ecs.cluster(ctx, name)
    if found is None or found.get("status") != "ACTIVE":
        return ok(f"{name} is {'not there' if found is None else found.get('status')}; run.py setup creates it")
    joined = set(ecs.container_instances(ctx, name))
    now = datetime.now(UTC)
    lost: list[str] = []
    wasted = 0.0
    for fleet in app_fleets(ctx):
        per_day, _, running = fleet_cost(ctx, fleet)
        for i in running:
            launched = i.get("LaunchTime")
            old = isinstance(launched, datetime) and (now - launched.astimezone(UTC)).total_seconds() > JOIN_GRACE_S
            if old and i["InstanceId"] not in joined:
                lost.append(i["InstanceId"])
                wasted += per_day / max(len(running), 1)
    if lost:
        return warn(f"{len(lost)} instance(s) of the fleet never joined {name} ({', '.join(lost[:3])}"
                    f"{' …' if len(lost) > 3 else ''}): they run no job and cost ${wasted:.2f}/day (issues #126, "
                    "#200: no internet path, or the ecsconfig unreadable)",
                    "see ec2.worker-internet-path (N05) and iam.instance-role-policies (R02); then terminate them: "
                    f"aws ec2 terminate-instances --instance-ids {' '.join(lost[:20])} --region {ctx.region}")
    return ok(f"{name} is active; {len(joined)} instance(s) registered")


@check("M10", "monitor.running-fleets", "No fleet of this app is running, or you know what it costs",
       Severity.HIGH, needs=M, actions=("ec2:DescribeSpotFleetRequests", "ec2:DescribeSpotFleetInstances",
                                        "ec2:DescribeInstances", "ec2:DescribeSpotPriceHistory"),
       blind=(APP_FLEETS, "Cost is each running instance's current spot price in its zone (the latest "
              "``DescribeSpotPriceHistory`` entry) × 24; where there is no history, the fleet's maximum price "
              "(``SpotPrice``, an upper bound, and the message says so), not the on-demand price (that needs "
              "the Pricing API, a separate endpoint). EBS volumes, data transfer and CloudWatch charges are not "
              "counted."))
def running_fleets(ctx: Context) -> Finding:
    """This app's active spot fleets, what they run since when, and what they cost a day."""
    fleets = app_fleets(ctx)
    if not fleets:
        return ok(f"no active spot fleet of {_app(ctx)}")
    total, notes, hows = 0.0, [], set()
    for fleet in fleets:
        per_day, how, running = fleet_cost(ctx, fleet)
        total += per_day
        hows.add(how)
        kinds: dict[str, int] = {}
        for i in running:
            kinds[str(i.get("InstanceType"))] = kinds.get(str(i.get("InstanceType")), 0) + 1
        launches = [i["LaunchTime"] for i in running if isinstance(i.get("LaunchTime"), datetime)]
        when = fleet.get("CreateTime") or (min(launches) if launches else None)
        mix = ", ".join(f"{n} × {t}" for t, n in sorted(kinds.items())) or "no instances"
        notes.append(f"{fleet['SpotFleetRequestId']} ({mix}, {_since(when)})")
    ids = " ".join(str(f["SpotFleetRequestId"]) for f in fleets)
    return warn(f"${total:.2f}/day: {len(fleets)} fleet(s) of {_app(ctx)} running: {'; '.join(notes)} "
                f"({'; '.join(sorted(hows))})",
                f"aws ec2 cancel-spot-fleet-requests --spot-fleet-request-ids {ids} --terminate-instances "
                f"--region {ctx.region}   (only if its run is over)", cost_per_day=total)
