"""What the current DCP run is doing: phase, jobs, workers, spend and problems, judged from facts only.

Names are DCP's (run.py and worker/cp-worker.py at 17388b3): the queue ``SQS_QUEUE_NAME`` with its redrive
policy to ``SQS_DEAD_LETTER_QUEUE`` (``maxReceiveCount`` = ``JOB_RETRIES``), the monitor file
``files/<APP_NAME>SpotFleetRequestId.json`` startCluster writes (fleet id, queue, cluster, log group and start
time of the run), the service ``<APP_NAME>Service`` running task definition family ``<APP_NAME>Task`` in
``ECS_CLUSTER``, and the log group ``LOG_GROUP_NAME`` in which cp-worker.py gives every job a stream named by
its Metadata. Every read is a fact (agent/facts): independent reads start together (three round trips deep).

A read that fails is never taken for an answer: the queue's and the fleet's raise (nothing can be said), the
others are listed in ``unchecked`` and make the verdict "could not check" (exit 3).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from agent.boundary import UserError
from agent.context import Context
from agent.facts import ec2, ecs, local, run, sqs
from agent.facts.core import translate
from agent.status import causes
from agent.status.samples import History, Sample

T = TypeVar("T")

PHASES = ("not started", "jobs queued", "fleet starting", "running", "draining", "finished", "stalled")
STALL_S = 15 * 60          # no job done (or fewer in flight than tasks) for this long, with jobs left: stalled
STALE_SLACK_MS = 60_000    # clock skew allowed between run.py's MONITOR_START_TIME and SQS's CreatedTimestamp
RATE_WINDOW_S = 30 * 60    # the rate is measured over the samples of the last half hour
JOIN_GRACE_S = 15 * 60     # as M09: an instance that has not joined ECS after this long never will
# A fleet cancelled without terminating its instances keeps them running (and billed): status costs them too,
# and says so. Status-only: group M's LIVE_FLEET_STATES (ec2.py) is unchanged.
STILL_RUNNING = ("cancelled_running", "cancelled_terminating")
TAIL_JOBS = 4              # failed jobs whose stream's tail is read (GetLogEvents, one request each) a refresh
LIVE = ec2.LIVE_FLEET_STATES
BILLED = (*LIVE, *STILL_RUNNING)
NO_EVENTS: tuple[run.Event, ...] = ()
NO_DICTS: tuple[dict[str, Any], ...] = ()
NO_LETTERS: tuple[run.Letter, ...] = ()
NO_IDS: tuple[str, ...] = ()


def facts_used() -> tuple[Any, ...]:
    """Every fact status and requeue's plan read (their actions join the read-only policy, agent/policy.py)."""
    from agent.checks import monitor as m  # noqa: F401 - app_fleets and fleet_cost read the facts below

    return (sqs.queue, ecs.service, ecs.container_instances, ec2.spot_fleets, ec2.active_spot_fleets,
            ec2.fleet_instances, ec2.instances, ec2.spot_prices, local.text, run.dead_letters, run.move_tasks,
            run.fleet_errors, run.stopped_tasks, run.log_events, run.stream_tail, run.queue_sums)


def actions() -> list[str]:
    return sorted({a for f in facts_used() for a in f.actions})


@dataclass
class Problem:
    code: str
    message: str
    fix: str

    def as_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "fix": self.fix}


@dataclass
class FailedJob:
    metadata: str
    stream: str
    cause: str
    line: str
    receive_count: int


@dataclass
class RunStatus:
    app: str
    phase: str
    total: int | None
    total_from: str
    waiting: int
    in_progress: int
    done: int | None
    failed: int
    target: int
    fulfilled: float
    running: int
    registered: int
    tasks_running: int
    tasks_desired: int
    per_hour: float
    so_far: float
    projected: float | None
    eta: datetime | None
    rate_per_hour: float | None
    problems: list[Problem] = field(default_factory=list)
    failed_jobs: list[FailedJob] = field(default_factory=list)
    fleets: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def in_progress_phase(self) -> bool:
        return self.phase not in ("not started", "finished")

    def as_json(self) -> dict[str, Any]:
        return {
            "app": self.app, "phase": self.phase,
            "jobs": {"total": self.total, "waiting": self.waiting, "in_progress": self.in_progress,
                     "done": self.done, "failed": self.failed},
            "workers": {"target": self.target, "fulfilled": self.fulfilled, "running": self.running,
                        "registered": self.registered,
                        "tasks": {"running": self.tasks_running, "desired": self.tasks_desired}},
            "cost": {"per_hour": round(self.per_hour, 4), "so_far": round(self.so_far, 4),
                     "projected": None if self.projected is None else round(self.projected, 4)},
            "eta": self.eta.astimezone(UTC).isoformat(timespec="seconds") if self.eta else None,
            "problems": [p.as_json() for p in self.problems],
            # beyond the stable keys above: the failed jobs by name, and where the numbers came from
            "failed_jobs": [{"metadata": j.metadata, "stream": j.stream, "cause": j.cause, "line": j.line,
                             "receive_count": j.receive_count} for j in self.failed_jobs],
            "fleets": self.fleets, "total_from": self.total_from,
            "rate_per_hour": None if self.rate_per_hour is None else round(self.rate_per_hour, 2),
            "unchecked": self.unchecked, "at": self.at.isoformat(timespec="seconds"),
        }


# -- what config.py and the monitor file say (no AWS) -------------------------------------------------

@dataclass(frozen=True)
class RunNames:
    app: str
    queue: str
    dlq: str
    cluster: str
    log_group: str
    fleet_id: str | None
    start_ms: int | None
    visibility: int | None


def _str(value: Any, default: str) -> str:
    return value if isinstance(value, str) and value else default


def names(ctx: Context) -> RunNames:
    app = ctx.config.get("APP_NAME")
    if not isinstance(app, str) or not app:
        raise UserError(f"APP_NAME is not set in {ctx.config_path} (dcp-agent status follows config.py's run)")
    text = local.text(ctx, ctx.settings.dcp_clone / "files" / f"{app}SpotFleetRequestId.json")
    try:
        mon = json.loads(text) if text else {}
    except ValueError:
        mon = {}
    mon = mon if isinstance(mon, dict) else {}
    dlq = _str(ctx.config.get("SQS_DEAD_LETTER_QUEUE"), f"{app}_DeadMessages")
    dlq = dlq.rsplit(":", 1)[-1]          # run.py takes an ARN's last part
    fleet = mon.get("MONITOR_FLEET_ID")
    try:
        start: int | None = int(str(mon.get("MONITOR_START_TIME")))
    except ValueError:
        start = None
    vis = ctx.config.get("SQS_MESSAGE_VISIBILITY")
    return RunNames(
        app=app, queue=_str(mon.get("MONITOR_QUEUE_NAME"), _str(ctx.config.get("SQS_QUEUE_NAME"), f"{app}Queue")),
        dlq=dlq, cluster=_str(mon.get("MONITOR_ECS_CLUSTER"), _str(ctx.config.get("ECS_CLUSTER"), "default")),
        log_group=_str(mon.get("MONITOR_LOG_GROUP_NAME"), _str(ctx.config.get("LOG_GROUP_NAME"), app)),
        fleet_id=fleet if isinstance(fleet, str) and fleet.startswith("sfr-") else None, start_ms=start,
        visibility=vis if isinstance(vis, int) else None)


def stream_name(job: dict[str, Any]) -> str:
    """The log stream cp-worker.py writes a job's lines to: its Metadata values joined by '-', or, with an
    output_structure, that structure with each Metadata key replaced by its value; dict Metadata without one goes
    to ``str(Metadata.values())`` (cp-worker.py's INPUT_PROBLEM stream, "dict_values(['…'])")."""
    meta = job.get("Metadata")
    structure = str(job.get("output_structure") or "")
    pairs: list[tuple[str, str]] = []
    if isinstance(meta, dict):
        if not structure:   # cp-worker.py logs "You must specify an output structure …" to str(dict.values())
            return str(meta.values())
        pairs = [(str(k), str(v)) for k, v in meta.items()]
    elif isinstance(meta, str):
        pairs = [(p.split("=", 1)[0], p.split("=", 1)[1] if "=" in p else "") for p in meta.split(",")]
    if structure:
        for key, value in pairs:
            if key in structure:
                structure = structure.replace(key, value)
        return structure
    return "-".join(v for _, v in pairs)


def metadata_of(job: dict[str, Any]) -> str:
    meta = job.get("Metadata")
    if isinstance(meta, dict):
        return ",".join(f"{k}={v}" for k, v in meta.items())
    return str(meta or "?")


# -- the computation -------------------------------------------------------------------------------

class _Reads:
    """Runs a read; a failed read is recorded (what, why) and answered with ``default``."""

    def __init__(self) -> None:
        self.unchecked: list[str] = []

    def soft(self, what: str, fn: Callable[[], T], default: T) -> T:
        try:
            return fn()
        except Exception as e:
            err = translate(e)
            if err is None:
                raise
            from agent.netcause import cause_of

            cause = cause_of(e, read_timeout=5) or f"{err.code}{': ' + err.message if err.message else ''}"
            self.unchecked.append(f"{what}: {cause}")
            return default


def _int(attrs: dict[str, Any] | None, name: str) -> int:
    try:
        return int((attrs or {}).get(name) or 0)
    except ValueError:
        return 0


def _epoch_ms(queue: dict[str, Any] | None) -> int:
    """The queue's CreatedTimestamp (epoch seconds; moto sends a fraction) in ms; 0 when unknown."""
    try:
        return int(float((queue or {}).get("CreatedTimestamp") or 0) * 1000)
    except ValueError:
        return 0


def _hours(seconds: float) -> float:
    return max(seconds, 0.0) / 3600


def compute(ctx: Context, history: History | None = None, now: float | None = None) -> RunStatus:
    """The run's status now; ``history`` (the cached samples) gets this refresh's sample appended."""
    from agent.checks.monitor import app_fleets, fleet_cost

    now = time.time() if now is None else now
    n = names(ctx)
    reads = _Reads()
    facts = ctx.facts
    # Round 1: everything that needs only names, side by side.
    facts.prefetch(sqs.queue, n.queue)
    facts.prefetch(sqs.queue, n.dlq)
    facts.prefetch(ecs.service, n.cluster, f"{n.app}Service")
    facts.prefetch(ecs.container_instances, n.cluster)
    facts.prefetch(run.stopped_tasks, n.cluster, f"{n.app}Task")
    start_ms = n.start_ms or int((now - 86400) * 1000)
    for pattern in ('"SlowDown"', '"Transport endpoint is not connected"', f'"{causes.START_LINE}"'):
        facts.prefetch(run.log_events, n.log_group, pattern, start_ms, ())
    if n.fleet_id:
        facts.prefetch(ec2.fleet_instances, n.fleet_id)
        facts.prefetch(run.fleet_errors, n.fleet_id, _history_start(now))

    queue = sqs.queue(ctx, n.queue)
    dlq = sqs.queue(ctx, n.dlq)
    created_ms = _epoch_ms(queue)
    if n.start_ms and created_ms and n.start_ms < created_ms - STALE_SLACK_MS:
        # DCP never deletes the monitor file: one started before this queue existed is an earlier run's.
        n = dataclasses.replace(n, fleet_id=None, start_ms=None)
        start_ms = created_ms
    fleets = app_fleets(ctx)
    known = ec2.spot_fleets(ctx, (n.fleet_id,)) if n.fleet_id else ()
    ever = {str(f["SpotFleetRequestId"]): f for f in (*known, *fleets)}

    # Round 2: what needs the queue's URL or the fleets' instances.
    if dlq is not None:
        facts.prefetch(run.dead_letters, str(dlq["url"]))
    costs = {fid: fleet_cost(ctx, f) for fid, f in ever.items() if f.get("SpotFleetRequestState") in BILLED}
    service = reads.soft("the ECS service", lambda: ecs.service(ctx, n.cluster, f"{n.app}Service"), None)
    joined = set(reads.soft("the cluster's container instances", lambda: ecs.container_instances(ctx, n.cluster), NO_IDS))

    waiting = _int(queue, "ApproximateNumberOfMessages") + _int(queue, "ApproximateNumberOfMessagesDelayed")
    in_progress = _int(queue, "ApproximateNumberOfMessagesNotVisible")
    failed = _int(dlq, "ApproximateNumberOfMessages") + _int(dlq, "ApproximateNumberOfMessagesNotVisible")
    letters = reads.soft("the dead-letter queue's messages", lambda: run.dead_letters(ctx, str(dlq["url"])),
                         NO_LETTERS) if dlq is not None and failed else ()
    # A job that failed in an earlier run was sent before this run's queue existed (SQS keeps SentTimestamp
    # when it moves a message to the dead-letter queue): not this run's failure.
    # Both times are SQS's own clock: no slack.
    earlier = [lt for lt in letters if created_ms and 0 < lt.sent_ms < created_ms]
    if earlier:
        letters = tuple(lt for lt in letters if lt not in earlier)
        failed = max(failed - len(earlier), 0)

    instances = [i for _, _, running in costs.values() for i in running]
    live = [i for i in instances if (i.get("State") or {}).get("Name", "running") == "running"]
    target = sum(int((f.get("SpotFleetRequestConfig") or {}).get("TargetCapacity") or 0)
                 for fid, f in ever.items() if fid in costs)
    fulfilled = sum(float((f.get("SpotFleetRequestConfig") or {}).get("FulfilledCapacity") or 0)
                    for fid, f in ever.items() if fid in costs)
    registered = sum(1 for i in live if i.get("InstanceId") in joined)
    tasks_running = int((service or {}).get("runningCount") or 0)
    tasks_desired = int((service or {}).get("desiredCount") or 0)

    # Spend: now, and so far (the samples' integral, at least what the running instances cost since launch).
    per_hour = sum(per_day for per_day, _, _ in costs.values()) / 24
    by_launch = 0.0
    for per_day, _, running in costs.values():
        each = per_day / 24 / max(len(running), 1)
        for i in running:
            launched = i.get("LaunchTime")
            if isinstance(launched, datetime):
                by_launch += each * _hours(now - launched.timestamp())
    history = history if history is not None else History()
    run_key = f"{n.fleet_id or ''}@{(queue or {}).get('CreatedTimestamp') or ''}"   # a fleet and a queue: one run
    if history.run != run_key:
        history.run, history.total, history.samples = run_key, 0, []
    prev = history.samples[-1] if history.samples else None
    so_far = max(by_launch, (prev.so_far + prev.per_hour * _hours(now - prev.at)) if prev else 0.0)

    # Jobs: the total from the job file, else the queue's CloudWatch sums, else the most seen at once.
    total: int | None
    done: int | None
    groups = (ctx.job or {}).get("groups")
    sums = None
    if not isinstance(groups, list) and queue is not None:
        created = datetime.fromtimestamp(created_ms / 1000 or now - 86400, UTC)
        sums = reads.soft("the queue's CloudWatch metrics",
                          lambda: run.queue_sums(ctx, n.queue, created.replace(microsecond=0),
                                                 datetime.fromtimestamp(now, UTC).replace(microsecond=0)), None)
    seen = waiting + in_progress + failed
    history.total = max(history.total, seen)
    # done = total - seen only once the queue has held this run's jobs: before submitJob nothing is done.
    held = seen > 0 or any(s.waiting + s.in_progress + s.failed > 0 for s in history.samples) or bool(sums and sums[0] > 0)
    if isinstance(groups, list):
        total, total_from = len(groups), "job file"
        done = max(total - seen, 0) if held else None
    elif sums is not None:
        total, total_from, done = sums[0], "CloudWatch (messages sent)", sums[1]
    elif history.total:
        total, total_from = history.total, "samples (the most jobs seen at once)"
        done = max(total - seen, 0)
    else:
        total, total_from, done = None, "unknown", None

    sample = Sample(now, waiting, in_progress, failed, done or 0, tasks_running, per_hour, so_far)
    window = [s for s in history.samples if now - s.at <= RATE_WINDOW_S and s.waiting + s.in_progress + s.failed]
    rate = None
    if window and now - window[0].at >= 1 and done is not None:
        rate = (done - window[0].done) / _hours(now - window[0].at)
    elif done and n.start_ms and now * 1000 > n.start_ms:
        rate = done / _hours(now - n.start_ms / 1000)
    remaining = waiting + in_progress
    eta = (datetime.fromtimestamp(now + remaining / rate * 3600, UTC)
           if rate and rate > 0 and remaining else None)
    projected = so_far + per_hour * _hours(eta.timestamp() - now) if eta else (so_far if not remaining else None)

    # Phase.
    live_fleets = [fid for fid, f in ever.items() if f.get("SpotFleetRequestState") in LIVE]
    a_run = bool(failed or done)
    # A CellProfiler job may run long: no job done for 15 min is a stall only when that is also more than twice
    # the visibility timeout (which run.py's config sizes above the longest job).
    stall_s = max(STALL_S, 2 * (_int(queue, "VisibilityTimeout") or n.visibility or 0))
    history_stall = _stalled([*history.samples, sample], now, stall_s)
    mon_state = str((ever.get(n.fleet_id or "") or {}).get("SpotFleetRequestState") or "")
    fleet_gone = bool(n.fleet_id) and mon_state not in LIVE and not live_fleets
    if not remaining:
        phase = "finished" if a_run else "not started"
    elif fleet_gone:
        phase = "stalled"              # the run's fleet is cancelled or gone, and jobs are left
    elif not live_fleets:
        phase = "jobs queued"
    elif history_stall:
        phase = "stalled"
    elif in_progress == 0 and not done and not failed:
        phase = "fleet starting"       # a fleet, and no job taken yet
    elif waiting == 0:
        phase = "draining"
    else:
        phase = "running"

    problems: list[Problem] = []
    # The fleet's own history (also of a fleet already cancelled for its errors).
    for fid in sorted(ever):
        if fid == n.fleet_id or fid in live_fleets:
            errors = reads.soft(f"the history of {fid}", lambda fid=fid: run.fleet_errors(  # type: ignore[misc]
                ctx, fid, _history_start(now)), NO_DICTS)
            by_kind: dict[str, tuple[causes.FleetCause, int]] = {}
            for rec in errors:
                info = rec.get("EventInformation") or {}
                fc = causes.fleet_cause(str(info.get("EventSubType") or ""), str(info.get("EventDescription") or ""))
                by_kind[fc.code] = (by_kind[fc.code][0], by_kind[fc.code][1] + 1) if fc.code in by_kind else (fc, 1)
            for fc, count in by_kind.values():
                state = ever[fid].get("SpotFleetRequestState")
                problems.append(Problem(fc.code, f"{fid} ({state}): {fc.problem}"
                                        + (f" ({count} events)" if count > 1 else ""), fc.fix))
    # Instances that never joined the cluster.
    lost = [i["InstanceId"] for i in live if i.get("InstanceId") not in joined and isinstance(i.get("LaunchTime"),
            datetime) and now - i["LaunchTime"].timestamp() > JOIN_GRACE_S]
    if lost and not any(u.startswith("the cluster") for u in reads.unchecked):
        problems.append(Problem(causes.NAMELESS.code, f"{len(lost)} of {len(live)} instance(s) never registered "
                                f"with {n.cluster} ({', '.join(lost[:3])}{' …' if len(lost) > 3 else ''}): "
                                + causes.NAMELESS.problem, causes.NAMELESS.fix))
    # Tasks that keep failing. A normal run end stops tasks too (cp-worker.py exits 0 after "No messages in the
    # queue": "Essential container in task exited", exit code 0; scaling the service to 0 stops them): only a
    # non-zero exit code or a failure reason counts.
    stopped = [t for t in reads.soft("the stopped tasks", lambda: run.stopped_tasks(ctx, n.cluster, f"{n.app}Task"),
                                     NO_DICTS) if _task_failed(t)]
    reasons: dict[str, int] = {}
    for t in stopped:
        why = str(t.get("stoppedReason") or "")
        detail = "; ".join(str(c.get("reason")) for c in t.get("containers", []) if c.get("reason"))
        exit_codes = [str(c["exitCode"]) for c in t.get("containers", []) if c.get("exitCode") not in (None, 0)]
        key = why + (f" ({detail})" if detail else "") + (f" (exit code {', '.join(exit_codes)})" if exit_codes else "")
        reasons[key or "no reason given"] = reasons.get(key or "no reason given", 0) + 1
    if len(stopped) >= 2:
        top = sorted(reasons.items(), key=lambda kv: -kv[1])
        problems.append(Problem("tasks-stopping", f"{len(stopped)} task(s) of {n.app}Task stopped: "
                                + "; ".join(f"{c} × {r}" for r, c in top[:3]),
                                "read the stopped task's reason in ECS and its _perInstance log stream; "
                                "'OutOfMemory' or 'exit code 137': raise MEMORY or choose a larger MACHINE_TYPE; "
                                "'CannotPullContainerError': check DOCKERHUB_TAG"))

    # Round 3: the log lines of the failed jobs and of the jobs started more than once.
    starts = reads.soft("the job logs", lambda: run.log_events(ctx, n.log_group, f'"{causes.START_LINE}"',
                                                               start_ms, ()), NO_EVENTS)
    per_stream: dict[str, list[int]] = {}
    for ev in starts:
        per_stream.setdefault(ev.stream, []).append(ev.at_ms)
    jobs = [(lt, lt.job()) for lt in letters]
    failed_streams = {stream_name(job) for _, job in jobs}
    twice = sorted(s for s, at in per_stream.items() if len(at) > 1 and s not in failed_streams)
    # The cause lines are at the end of a failed job's stream: its tail (one request) for the first TAIL_JOBS;
    # the rest, and the jobs started twice, by one FilterLogEvents (oldest first: on long logs it may stop short).
    tailed = tuple(sorted(failed_streams - {""}))[:TAIL_JOBS]
    for stream in tailed:
        facts.prefetch(run.stream_tail, n.log_group, stream)
    rest = tuple(sorted(failed_streams - {""} - set(tailed)))
    wanted = rest[:100 - min(len(twice), 50)] + tuple(twice[:50])
    lines = reads.soft("the failed jobs' log streams", lambda: run.log_events(ctx, n.log_group, "", start_ms,
                                                                              wanted), NO_EVENTS) if wanted else NO_EVENTS
    for stream in tailed:
        lines += reads.soft(f"the log stream {stream}", lambda stream=stream: run.stream_tail(  # type: ignore[misc]
            ctx, n.log_group, stream), NO_EVENTS)
    by_stream: dict[str, list[str]] = {}
    for ev in sorted(lines, key=lambda e: e.at_ms):
        by_stream.setdefault(ev.stream, []).append(ev.message)
    failed_jobs: list[FailedJob] = []
    for letter, job in jobs:
        stream = stream_name(job)
        cause, line = _cause(by_stream.get(stream, []))
        failed_jobs.append(FailedJob(metadata_of(job), stream, cause.code, line, letter.receive_count))
    grouped: dict[str, list[FailedJob]] = {}
    for fj in failed_jobs:
        grouped.setdefault(fj.cause, []).append(fj)
    table = {c.code: c for c in (*causes.JOB_CAUSES, causes.UNKNOWN_JOB)}
    for code, fjs in sorted(grouped.items(), key=lambda kv: -len(kv[1])):
        c = table[code]
        names_ = ", ".join(j.metadata for j in fjs[:3]) + (" …" if len(fjs) > 3 else "")
        seen_line = f' ("{fjs[0].line.strip()[:120]}")' if fjs[0].line else ""
        problems.append(Problem(f"failed-{code}", f"{len(fjs)} job(s) in the dead-letter queue {n.dlq}: "
                                f"{c.problem}{seen_line}: {names_}", c.fix + "; then 'dcp-agent requeue'"))
    if failed > len(failed_jobs) and failed_jobs:
        problems.append(Problem("failed-more", f"{failed - len(failed_jobs)} more job(s) in {n.dlq} than were read "
                                f"by name (at most {run.PEEK_CALLS * 10} a refresh)", "dcp-agent requeue lists them all"))
    elif failed and not failed_jobs and not any(u.startswith("the dead-letter") for u in reads.unchecked):
        problems.append(Problem("failed-unlisted", f"{failed} job(s) in {n.dlq}, none visible to read right now "
                                "(another reader holds them)", "look again in a minute"))
    dup = [s for s in twice if not any(m in line for line in by_stream.get(s, []) for m in causes.FAILURE_MARKS)]
    if dup:
        vis = _int(queue, "VisibilityTimeout") or n.visibility
        problems.append(Problem("received-twice", f"{len(dup)} job(s) ran more than once without failing "
                                f"({', '.join(dup[:3])}{' …' if len(dup) > 3 else ''}): a message came back while "
                                f"its job was still running, so the visibility timeout ({vis} s) is shorter than "
                                "a job", "raise SQS_MESSAGE_VISIBILITY in config.py above the longest job (DCP's "
                                "SQS_QUEUE_information.md); it applies when run.py setup creates the queue"))
    for cause in (causes.SLOWDOWN, causes.S3FS):
        hits = reads.soft(f"the logs ({cause.lines[0]})", lambda cause=cause: run.log_events(  # type: ignore[misc]
            ctx, n.log_group, f'"{cause.lines[0]}"', start_ms, ()), NO_EVENTS)
        if hits:
            streams = sorted({h.stream for h in hits})
            problems.append(Problem(cause.code, f"{len(hits)} log line(s) in {len(streams)} job(s) "
                                    f"({', '.join(streams[:3])}{' …' if len(streams) > 3 else ''}): {cause.problem}",
                                    cause.fix))
    for fid, f in sorted(ever.items()):
        if f.get("SpotFleetRequestState") in STILL_RUNNING and fid in costs:
            ids = [str(i.get("InstanceId")) for i in costs[fid][2]]
            if ids:
                problems.append(Problem("fleet-cancelled", f"{fid} was cancelled ({f['SpotFleetRequestState']}) but "
                                        f"still runs {len(ids)} instance(s) at ${costs[fid][0] / 24:.2f}/h, "
                                        "which take no replacements", f"aws ec2 terminate-instances --instance-ids "
                                        f"{' '.join(ids)} --region {ctx.region}"))
    if fleet_gone and remaining:
        problems.append(Problem("fleet-not-running", f"{remaining} job(s) are left but the run's fleet {n.fleet_id} "
                                f"is {mon_state or 'gone'} (no workers will take them)",
                                "python run.py startCluster <fleet file> in the DCP clone starts a new fleet"))
    elif phase == "stalled":
        problems.append(Problem(causes.STALLED.code, causes.STALLED.problem + f" (no job done for {int(stall_s) // 60} "
                                f"min; {in_progress} in flight, {tasks_running} task(s) running)", causes.STALLED.fix))
    if phase == "finished" and live_fleets:
        problems.append(Problem("fleet-still-running", f"no job is left, but {', '.join(live_fleets)} still runs "
                                f"{len(live)} instance(s) at ${per_hour:.2f}/h",
                                f"python run.py monitor files/{n.app}SpotFleetRequestId.json (in the DCP clone), or "
                                f"aws ec2 cancel-spot-fleet-requests --spot-fleet-request-ids {' '.join(live_fleets)} "
                                f"--terminate-instances --region {ctx.region}"))
    if reads.unchecked:
        problems.append(Problem("unchecked", "could not read " + "; ".join(reads.unchecked),
                                "run dcp-agent status again when AWS answers (dcp-agent check says what is missing)"))

    history.add(sample)
    return RunStatus(
        app=n.app, phase=phase, total=total, total_from=total_from, waiting=waiting, in_progress=in_progress,
        done=done, failed=failed, target=target, fulfilled=fulfilled, running=len(live), registered=registered,
        tasks_running=tasks_running, tasks_desired=tasks_desired, per_hour=per_hour, so_far=so_far,
        projected=projected, eta=eta, rate_per_hour=rate, problems=problems, failed_jobs=failed_jobs,
        fleets=sorted(live_fleets), unchecked=reads.unchecked, at=datetime.fromtimestamp(now, UTC))


FAILED_STOP_CODES = ("TaskFailedToStart",)
FAILED_REASONS = ("OutOfMemory", "CannotPull", "CannotStart", "CannotCreate", "CannotInspect",
                  "ResourceInitializationError", "Timeout", "DockerTimeoutError")


def _task_failed(task: dict[str, Any]) -> bool:
    """A stopped task that failed: a container's non-zero exit code, or ECS's failure stop code or reason."""
    containers = task.get("containers") or []
    if any(c.get("exitCode") not in (None, 0) for c in containers):
        return True
    if task.get("stopCode") in FAILED_STOP_CODES:
        return True
    text = " ".join([str(task.get("stoppedReason") or ""), *(str(c.get("reason") or "") for c in containers)])
    return any(mark in text for mark in FAILED_REASONS)


def _history_start(now: float) -> datetime:
    """AWS keeps a fleet's events 48 hours; asked from then, at whole minutes (one cached read a minute)."""
    return datetime.fromtimestamp((now - 47 * 3600) // 60 * 60, UTC)


def _cause(lines: list[str]) -> tuple[causes.Cause, str]:
    for cause in causes.JOB_CAUSES:
        for line in lines:
            if any(mark in line for mark in cause.lines):
                return cause, line
    return causes.UNKNOWN_JOB, ""


def _stalled(samples: list[Sample], now: float, stall_s: float = STALL_S) -> bool:
    """Jobs left, tasks running, and for ``stall_s`` either no job done or fewer in flight than tasks running."""
    recent = [s for s in samples if now - s.at <= stall_s + 60]
    if not recent or now - recent[0].at < stall_s:
        return False
    if any(s.waiting + s.in_progress == 0 or s.tasks == 0 for s in recent):
        return False
    no_progress = recent[-1].done == recent[0].done
    starved = all(s.in_progress < s.tasks and s.waiting > 0 for s in recent)
    return no_progress or starved


def since_words(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def one_line(st: RunStatus, now: float | None = None) -> str:
    """"CellPaintingRun: 3,412 / 10,000 jobs (34 %), 12 failed, 40 workers, $3.10/h, ETA 14:20 (2 h 10 min)"."""
    now = time.time() if now is None else now
    if st.total:
        pct = int(100 * (st.done or 0) / st.total) if st.total else 0
        jobs = f"{st.done or 0:,} / {st.total:,} jobs ({pct} %)"
    else:
        jobs = f"{st.waiting + st.in_progress:,} jobs left"
    parts = [jobs, f"{st.failed:,} failed", f"{st.running} worker{'s' * (st.running != 1)}",
             f"${st.per_hour:.2f}/h"]
    if st.eta:
        parts.append(f"ETA {st.eta.astimezone():%H:%M} ({since_words(st.eta.timestamp() - now)})")
    elif st.phase not in ("finished",):
        parts.append("ETA unknown")
    head = f"{st.app}: " + ", ".join(parts)
    return head if st.phase in ("running", "draining") else f"{head} [{st.phase}]"
