"""K: DCP's config.py, read statically (never executed)."""

from __future__ import annotations

import re
from typing import Any

from agent import flavours, gates
from agent.checks._common import cfg
from agent.context import Context
from agent.facts import s3
from agent.model import Finding, Severity, Skip, fail, ok, warn
from agent.registry import check

FLAGS = ("DOWNLOAD_FILES", "ASSIGN_IP", "AUTO_MONITOR", "CREATE_DASHBOARD", "CLEAN_DASHBOARD", "CHECK_IF_DONE_BOOL",
         "ALWAYS_CONTINUE", "USE_PLUGINS", "UPDATE_PLUGINS", "INSTALL_REQUIREMENTS")
LOG_RE = re.compile(r"^[.\-_/#A-Za-z0-9]{1,512}$")
TAG_RE = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


# The names every project's run.py needs: missing, they fail whichever project the clone is.
_EVERY_PROJECT = frozenset.intersection(*(frozenset(f.required) for f in flavours.FLAVOURS.values()))


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@check("K01", "config.loads", "config.py reads and defines what run.py needs", Severity.BLOCKER,
       provides=gates.CONFIG)
def loads(ctx: Context) -> Finding:
    """K01 and the bucket roles follow ``run.py`` and ``worker/cp-worker.py`` at DCP 17388b3: ``SSH_KEY_NAME``
    is not required (``run.py`` never reads it); ``PLUGINS_COMMIT``, ``INSTALL_REQUIREMENTS`` and
    ``REQUIREMENTS`` (or a truthy ``REQUIREMENTS_FILE``) are, when ``USE_PLUGINS`` is ``'True'``. A missing or
    ``'False'`` ``SOURCE_BUCKET`` means the workers use ``AWS_BUCKET`` for their images and their results
    (``DESTINATION_BUCKET`` is then never sent: K01 warns when it is set), and a missing or ``'False'``
    ``WORKSPACE_BUCKET`` means the worker's ``SOURCE_BUCKET``; the S checks look at those effective buckets.
    ``config.py`` is never executed: its assignments are evaluated statically (literals, earlier names,
    arithmetic, f-strings); anything else is reported here and left unchecked."""
    c = ctx.config
    if c.error:
        return fail(f"config.py: {c.error}", f"fix {ctx.config_path} (compare with {ctx.flavour.name}'s config.py), "
                    "or pass --config")
    if c.missing and not ctx.sure and not set(c.missing) & _EVERY_PROJECT:
        # Only DCP by default: what DCP's run.py needs and a sibling's does not cannot be told missing.
        return warn(f"{ctx.config_path} does not define {', '.join(c.missing[:5])}"
                    + (f" and {len(c.missing) - 5} more" if len(c.missing) > 5 else "")
                    + f", which DCP's run.py needs; {flavours.unsure(ctx.recognised)}", flavours.UNSURE_FIX)
    if c.missing:
        f = c.flavour
        conditional = {n: flag for flag, names in f.conditional for n in names}
        plugins = [n for n in c.missing if n in conditional]
        crashing = [n for n in c.missing if n in f.crashing_defaults]
        flags = sorted({conditional[n] for n in plugins})
        why = "".join(f" (with {flag} = 'True' run.py reads "
                      f"{', '.join(n for n, fl in conditional.items() if fl == flag)}: NameError without them)"
                      for flag in flags)
        why += "".join(f" ({n}: {f.crashing_defaults[n]})" for n in crashing)
        where = "DCP's config.py and step_1_configuration.md" if f.is_dcp else \
            f"{f.name}'s config.py and {f.docs}/step_1_configuration.md"
        return fail(f"{ctx.config_path} does not define {', '.join(c.missing[:5])}"
                    + (f" and {len(c.missing) - 5} more" if len(c.missing) > 5 else "")
                    + ("" if f.is_dcp else f", which {f.name}'s run.py needs") + why,
                    f"add them (see {where})"
                    + "".join(f", or set {flag} = 'False'" for flag in flags)
                    + (f"; write {', '.join(f'{n} = {chr(39)}False{chr(39)}' for n in crashing)} as strings"
                       if crashing else ""))
    if c.unsent:
        return warn(f"DESTINATION_BUCKET {c.unsent['DESTINATION_BUCKET']!r} is never used: run.py sends it to the "
                    f"workers only with SOURCE_BUCKET, which is unset (or 'False'), so they upload to AWS_BUCKET "
                    f"{c.get('AWS_BUCKET')!r}", "set SOURCE_BUCKET (the bucket your images are in) in config.py")
    if c.problems:
        return warn(f"{len(c.problems)} line(s) not evaluated, so not checked: {c.problems[0]}",
                    "write plain assignments (literals, names defined above, + - * /)")
    return ok(f"{ctx.config_path}")


@check("K02", "config.placeholders", "No placeholder values left in config.py", Severity.HIGH, needs=(loads,))
def placeholders(ctx: Context) -> Finding:
    if ctx.config.get("SSH_KEY_NAME") == "your-key-file.pem":
        return fail("SSH_KEY_NAME is still 'your-key-file.pem'", "set SSH_KEY_NAME to your key file in ~/.ssh")
    for name in ctx.flavour.buckets:
        if ctx.config.get(name) in ("your-bucket-name", "bucket-name"):
            return fail(f"{name} is still the placeholder {ctx.config.get(name)!r}", f"set {name} to your bucket")
    for name, placeholder in ctx.flavour.placeholders.items():
        if ctx.config.get(name) == placeholder:
            return fail(f"{name} is still {ctx.flavour.name}'s placeholder {placeholder!r}",
                        f"set {name} to yours (" + ("the image you built and pushed from worker/"
                                                    if name == "DOCKERHUB_TAG" else "the real value") + ")")
    notes = []
    if ctx.config.get("SQS_DEAD_LETTER_QUEUE") == "user_DeadMessages":
        notes.append("SQS_DEAD_LETTER_QUEUE is the shared default 'user_DeadMessages'")
    defaults = {"DistributedCP"} if ctx.flavour.is_dcp else {ctx.flavour.default_app_name, "DistributedCP"}
    if ctx.config.get("APP_NAME") in defaults:
        notes.append(f"APP_NAME is the default {ctx.config.get('APP_NAME')!r}")
    if notes:
        return warn("; ".join(notes), "give each person and project their own names (e.g. alice_DeadMessages, "
                    "a project-specific APP_NAME)")
    return ok("none")


@check("K03", "config.string-flags", "On/off settings are the strings 'True' or 'False'", Severity.BLOCKER,
       needs=(loads,))
def string_flags(ctx: Context) -> Finding:
    for name in [n for n in FLAGS if n in ctx.flavour.reads]:
        if not ctx.config.has(name):
            continue
        v = ctx.config.get(name)
        if isinstance(v, bool):
            return fail(f"{name} is the Python bool {v}; run.py calls .lower() on it and crashes",
                        f"write {name} = '{v}' (a string)")
        if v not in ("True", "False"):
            return fail(f"{name} is {v!r}; DCP's worker script compares 'True'/'False' exactly",
                        f"write {name} = 'True' or 'False'")
    return ok("all 'True'/'False'")


@check("K04", "config.types", "Numbers, lists and sizes have the right types and ranges", Severity.BLOCKER,
       needs=(loads,))
def types(ctx: Context) -> Finding:
    c = ctx.config
    mt = c.get("MACHINE_TYPE")
    if not isinstance(mt, list) or not mt or not all(isinstance(t, str) for t in mt):
        hint = f"MACHINE_TYPE = [{mt!r}]" if isinstance(mt, str) else "MACHINE_TYPE = ['m5.xlarge']"
        return fail(f"MACHINE_TYPE must be a list of instance types, not {mt!r}", f"write {hint}")
    reads = ctx.flavour.reads
    if not ctx.sure:   # only DCP by default: a name a sibling does not read is judged only when it is set
        reads = frozenset(n for n in reads if c.has(n) or n in _EVERY_PROJECT)
    counts: list[str] = [n for n in ("CLUSTER_MACHINES", "TASKS_PER_MACHINE", "DOCKER_CORES") if n in reads]
    for name in counts:
        v = c.get(name)
        if not _int(v) or v < 1:
            return fail(f"{name} must be a whole number ≥ 1, not {v!r}", f"fix {name} in config.py")
    price = c.get("MACHINE_PRICE")
    if isinstance(price, bool) or not isinstance(price, int | float) or price < 0.01:
        return fail(f"MACHINE_PRICE must be a number ≥ 0.01 (dollars per hour), not {price!r}", "e.g. MACHINE_PRICE = 0.20")
    ebs = c.get("EBS_VOL_SIZE")
    if not _int(ebs) or not 22 <= ebs <= 16384:
        return fail(f"EBS_VOL_SIZE must be a whole number of GB from 22 to 16384, not {ebs!r}", "e.g. EBS_VOL_SIZE = 40")
    for name in [n for n in ("MEMORY", "SECONDS_TO_START") if n in reads]:
        v = c.get(name)
        if not _int(v) or v < 0:
            return fail(f"{name} must be a whole number ≥ 0, not {v!r}", f"fix {name} in config.py")
    for name in ("EXPECTED_NUMBER_FILES", "MIN_FILE_SIZE_BYTES"):
        if c.has(name) and not _int(c.get(name)):
            return fail(f"{name} must be a whole number, not {c.get(name)!r}", f"fix {name} in config.py")
    shares, cores = c.get("CPU_SHARES"), c.get("DOCKER_CORES")
    if "CPU_SHARES" in reads and "CPU_SHARES" in c.values and not c.has("CPU_SHARES"):
        return warn("cannot confirm CPU_SHARES: config.py's expression for it is not evaluated here (see K01)",
                    "write CPU_SHARES as a number, or DOCKER_CORES * 1024")
    if "CPU_SHARES" in reads and c.has("CPU_SHARES") and not _int(shares):
        return fail(f"CPU_SHARES must be a whole number of ECS CPU units, not {shares!r}", "e.g. CPU_SHARES = 1024")
    if _int(shares) and _int(cores) and "DOCKER_CORES" in reads and shares != cores * 1024:
        return warn(f"CPU_SHARES {shares} is not DOCKER_CORES × 1024 ({cores * 1024})",
                    "write CPU_SHARES = DOCKER_CORES * 1024 unless you mean it")
    return ok("types and ranges fine")


@check("K05", "config.names", "APP_NAME and LOG_GROUP_NAME make valid AWS names", Severity.HIGH, needs=(loads,))
def names(ctx: Context) -> Finding:
    app = cfg(ctx, "APP_NAME")
    if not isinstance(app, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", app):
        return fail(f"APP_NAME {app!r} may hold only letters, digits, _ and -", "rename APP_NAME")
    if len(app) + 5 > 80:
        return fail(f"APP_NAME is {len(app)} characters; APP_NAME + 'Queue' must fit SQS's 80", "shorten APP_NAME")
    log = ctx.config.get("LOG_GROUP_NAME")
    if not isinstance(log, str) or not LOG_RE.match(log) or not LOG_RE.match(log + "_perInstance"):
        return fail(f"LOG_GROUP_NAME {log!r} is not a valid log group name (1–512 of A-Z a-z 0-9 . - _ / #)",
                    "set LOG_GROUP_NAME = APP_NAME")
    return ok(f"{app}, log group {log}")


@check("K06", "config.docker-tag", "DOCKERHUB_TAG is repository:tag", Severity.MEDIUM, needs=(loads,),
       blind=("The ``repository:tag`` format only: looking the tag up on Docker Hub would leave the machine "
              "(and the tests may not).",))
def docker_tag(ctx: Context) -> Finding:
    f = ctx.flavour
    tag = cfg(ctx, "DOCKERHUB_TAG")
    if not isinstance(tag, str) or not TAG_RE.match(tag):
        return fail(f"DOCKERHUB_TAG {tag!r} is not repository:tag", f"e.g. DOCKERHUB_TAG = '{f.image_example}'")
    if f.image_is_placeholder:
        if tag.startswith(f"{f.image}:"):
            return fail(f"DOCKERHUB_TAG {tag} is {f.name}'s placeholder image, which does not exist",
                        "build and push your worker (make in worker/, after setting user, project and tag in "
                        "worker/Makefile) and set DOCKERHUB_TAG to it")
        return ok(f"{tag} (your own worker image: {f.name} ships none to compare with)")
    if not tag.startswith(f"{f.image}:"):
        what = ("DCP's own image; make sure it exists and matches your pipeline's CellProfiler" if f.is_dcp else
                f"{f.name}'s own image ({f.image}); make sure it exists and is built from {f.name}'s worker/")
        return warn(f"{tag} is not {what}", f"the published tags are listed on Docker Hub under {f.image}")
    return ok(tag)


@check("K07", "config.disk-size", "EBS_VOL_SIZE leaves room per task", Severity.MEDIUM, needs=(loads,))
def disk_size(ctx: Context) -> Finding:
    ebs, tasks = ctx.config.get("EBS_VOL_SIZE"), ctx.config.get("TASKS_PER_MACHINE")
    if not _int(ebs) or not _int(tasks) or tasks < 1:
        raise Skip("EBS_VOL_SIZE or TASKS_PER_MACHINE is not a number (see config.types)")
    if ebs < 22:
        return fail(f"EBS_VOL_SIZE {ebs} is below DCP's minimum of 22 GB", "set EBS_VOL_SIZE = 40 or more")
    if ebs / tasks - 2 < 10:
        return warn(f"{ebs} GB for {tasks} tasks leaves under 10 GB per container", "raise EBS_VOL_SIZE")
    if "DOWNLOAD_FILES" in ctx.flavour.reads and ctx.config.get("DOWNLOAD_FILES") == "True" and ebs <= 22:
        return warn("DOWNLOAD_FILES is 'True' with the minimum disk; downloads fail silently when it fills",
                    "raise EBS_VOL_SIZE (DCP suggests 200 GB for illumination, 40 GB for analysis)")
    return ok(f"{ebs} GB for {tasks} task(s)")


@check("K08", "config.batch-files", "HDF5 batch files are not downloaded", Severity.MEDIUM, needs=(loads,))
def batch_files(ctx: Context) -> Finding:
    if not ctx.flavour.is_dcp:
        raise Skip(f"CellProfiler's batch files do not apply to {ctx.flavour.name}")
    if ctx.job_path is None:
        raise Skip("no job file given (--job)")
    if ctx.job is None:
        return fail(ctx.job_error or "the job file cannot be read", "fix the job file")
    pipeline = str(ctx.job.get("pipeline", ""))
    if pipeline.endswith(".h5") and ctx.config.get("DOWNLOAD_FILES") != "False":
        return warn("the job uses an .h5 batch file but DOWNLOAD_FILES is not 'False'",
                    "set DOWNLOAD_FILES = 'False' for batch-file jobs")
    return ok("consistent")


@check("K09", "config.public-source-s3fs", "A foreign or public SOURCE_BUCKET is downloaded, not mounted",
       Severity.MEDIUM, needs=(loads, gates.BUCKETS), actions=s3.foreign.actions)
def public_source(ctx: Context) -> Finding:
    if "DOWNLOAD_FILES" not in ctx.flavour.reads:
        raise Skip(f"{ctx.flavour.name}'s run.py has no DOWNLOAD_FILES or SOURCE_BUCKET")
    src = ctx.config.get("SOURCE_BUCKET")
    if ctx.config.get("DOWNLOAD_FILES") != "False" or not isinstance(src, str):
        return ok("DOWNLOAD_FILES is 'True'" if ctx.config.get("DOWNLOAD_FILES") == "True" else "n/a")
    if s3.foreign(ctx, src):
        return warn(f"SOURCE_BUCKET {src} belongs to another account and DOWNLOAD_FILES is 'False': s3fs may not "
                    "mount it", "set DOWNLOAD_FILES = 'True'")
    return ok(f"{src} is yours")
