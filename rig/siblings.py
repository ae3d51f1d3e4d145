"""DCP's siblings on a seeded account: synthetic clones of our own, the real projects from the local mirror,
and their run.py run unmodified against the emulator.

Synthetic clones (``make_worktree``) hold only files we wrote: a config.py with the names each project's
config.py defines (values for the seeded account), a worker file of the project's name, the files a clone has.
The agent's table-driven rules are tested on them, so CI needs no mirror. The real code of each project is only
in ``/work/.mirror`` (``DCP_MIRROR`` overrides it); ``export`` copies one project at HEAD into a temporary
directory (never into this repository), and ``mirror_missing`` says precisely why a test that needs it skips.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from agent.flavours import FLAVOURS, Flavour
from rig.dcprepo import FIXTURES, _git
from rig.seed import APP_NAME, KEY_NAME, DcpAccount, set_config_values

MIRROR = Path(os.environ.get("DCP_MIRROR", "/work/.mirror"))

# What each project's own config.py defines (names, and the shape of their values), written for the seeded
# account. Ours: the names are the interface, the values the account's.
_CONFIGS: dict[str, dict[str, Any]] = {
    "something": {
        "APP_NAME": APP_NAME, "DOCKERHUB_TAG": "mylab/distributed-something-worker:1.0", "AWS_REGION": "",
        "AWS_PROFILE": "default", "SSH_KEY_NAME": f"{KEY_NAME}.pem", "AWS_BUCKET": "", "ECS_CLUSTER": "dcp-cluster",
        "CLUSTER_MACHINES": 2, "TASKS_PER_MACHINE": 1, "MACHINE_TYPE": ["m5.xlarge", "m5a.xlarge"],
        "MACHINE_PRICE": 0.20, "EBS_VOL_SIZE": 30, "ASSIGN_IP": "False", "DOCKER_CORES": 4,
        "CPU_SHARES": "DOCKER_CORES * 1024", "MEMORY": 15000, "SECONDS_TO_START": "3*60",
        "SQS_QUEUE_NAME": "APP_NAME + 'Queue'", "SQS_MESSAGE_VISIBILITY": "10*60", "SQS_DEAD_LETTER_QUEUE": "",
        "LOG_GROUP_NAME": "APP_NAME", "AUTO_MONITOR": "True", "CREATE_DASHBOARD": "True", "CLEAN_DASHBOARD": "True",
        "CHECK_IF_DONE_BOOL": "False", "EXPECTED_NUMBER_FILES": 7, "MIN_FILE_SIZE_BYTES": 1, "NECESSARY_STRING": "",
    },
    "fiji": {
        "APP_NAME": APP_NAME, "LOG_GROUP_NAME": "APP_NAME", "DOCKERHUB_TAG": "cellprofiler/distributed-fiji:latest",
        "AWS_REGION": "", "AWS_PROFILE": "default", "SSH_KEY_NAME": f"{KEY_NAME}.pem", "AWS_BUCKET": "",
        "ECS_CLUSTER": "dcp-cluster", "CLUSTER_MACHINES": 2, "TASKS_PER_MACHINE": 1,
        "MACHINE_TYPE": ["m5.xlarge", "m5a.xlarge"], "MACHINE_PRICE": 0.20, "EBS_VOL_SIZE": 30,
        "DOWNLOAD_FILES": "False", "MEMORY": 4096, "SCRIPT_DOWNLOAD_URL": "https://example.org/lab/stitch.py",
        "SQS_QUEUE_NAME": "APP_NAME + 'Queue'", "SQS_MESSAGE_VISIBILITY": "10*60", "SQS_DEAD_LETTER_QUEUE": "",
        "AUTO_MONITOR": "True", "CREATE_DASHBOARD": "True", "CLEAN_DASHBOARD": "True", "EXPECTED_NUMBER_FILES": 7,
        "MIN_FILE_SIZE_BYTES": 1, "NECESSARY_STRING": "",
    },
    "omezarr": {
        "APP_NAME": APP_NAME, "LOG_GROUP_NAME": "APP_NAME",
        "DOCKERHUB_TAG": "erinweisbart/distributed-bioformats2raw:0.0.19", "AWS_REGION": "", "AWS_PROFILE": "default",
        "SSH_KEY_NAME": f"{KEY_NAME}.pem", "AWS_BUCKET": "", "ECS_CLUSTER": "dcp-cluster", "CLUSTER_MACHINES": 2,
        "TASKS_PER_MACHINE": 1, "MACHINE_TYPE": ["c5.xlarge", "m5.xlarge"], "MACHINE_PRICE": 0.20,
        "EBS_VOL_SIZE": 600, "CPU_SHARES": 1024, "MEMORY": 7500, "SQS_QUEUE_NAME": "APP_NAME + 'Queue'",
        "SQS_MESSAGE_VISIBILITY": "4*60*60", "SQS_DEAD_LETTER_QUEUE": "", "AUTO_MONITOR": "True",
        "CREATE_DASHBOARD": "True", "CLEAN_DASHBOARD": "True", "CHECK_IF_DONE_BOOL": "False",
    },
}
_EXPRESSIONS = {"CPU_SHARES", "SECONDS_TO_START", "SQS_QUEUE_NAME", "SQS_MESSAGE_VISIBILITY", "LOG_GROUP_NAME"}
_JOBS: dict[str, dict[str, Any]] = {
    "something": {"_comment0": "ours", "input_location": "projects/demo/in", "groups": [{"well": "A01"}, {"well": "A02"}]},
    "fiji": {"output_file_location": "projects/demo/out/", "shared_metadata": {"rows": "2"},
             "groups": [{"Well": "A1"}, {"Well": "A2"}]},
    "omezarr": {"input_bucket": "b", "input_location": "in/", "path_to_metadata": "Images/Index.idx.xml",
                "output_bucket": "b", "output_location": "out/", "upload_flags": False, "resolutions": False,
                "tile_width": False, "tile_height": False, "target-min-size": False, "additional_flags": False,
                "plates": ["PLATE1", "PLATE2"]},
}


def config_text(key: str, account: DcpAccount, **overrides: Any) -> str:
    """A synthetic config.py for ``key`` (a project's row key) that names the seeded account's resources."""
    from rig.seed import DLQ, raw

    values = dict(_CONFIGS[key], AWS_REGION=account.region, AWS_BUCKET=account.bucket, SQS_DEAD_LETTER_QUEUE=DLQ)
    values.update(overrides)
    lines = ["# Constants (user configurable): a synthetic config.py for the tests (ours)"]
    text = "\n".join(lines) + "\n"
    return set_config_values(text, **{k: raw(str(v)) if k in _EXPRESSIONS and isinstance(v, str) else v
                                      for k, v in values.items()})


def make_worktree(dest: Path, f: Flavour) -> Path:
    """A synthetic clone of ``f``: the files its clone has, none of them the project's own code."""
    (dest / "files").mkdir(parents=True, exist_ok=True)
    (dest / "worker").mkdir(exist_ok=True)
    for name in f.files:
        path = dest / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"# {f.name} stand-in for tests: {name}\n")
    (dest / f.requirements).write_text((FIXTURES / "requirements.txt").read_text())
    (dest / "lambda_function.py").write_text('bucket = "BUCKET_NAME"\n')
    shutil.copy(FIXTURES / "exampleFleet_us-east-1.json", dest / "files" / "exampleFleet_us-east-1.json")
    if f.key in _JOBS:
        (dest / "files" / "exampleJob.json").write_text(json.dumps(_JOBS[f.key], indent=2))
    return dest


def mirror_dir(f: Flavour) -> Path:
    return MIRROR / f"DistributedScience+{f.name}" / "repo"


def mirror_missing(f: Flavour) -> str | None:
    """Why the real project cannot be used here (None when it can)."""
    d = mirror_dir(f)
    if not d.is_dir():
        return f"{f.name}'s code is not mirrored here ({d} is missing; GitHub is out of reach)"
    try:
        head = _git("--git-dir", str(d), "rev-parse", "HEAD", cwd=Path("/"))
    except subprocess.CalledProcessError:
        return f"{d} is not a git directory with a HEAD"
    if head != f.commit:
        return f"{d} is at {head[:7]}, not at {f.commit[:7]} (the commit agent/flavours.py's row was read at)"
    return None


def export(f: Flavour, dest: Path) -> Path:
    """The project at HEAD, from the mirror, into ``dest`` (a temporary directory: its code is never ours)."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "--git-dir", str(mirror_dir(f)), "archive", "HEAD"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def as_sibling(account: DcpAccount, key: str, *, real: bool = False, **config: Any) -> DcpAccount:
    """The seeded account's control node, with a clone of project ``key`` instead of DCP's (synthetic, or the
    real project at HEAD with ``real``), its config.py naming the account, the account's fleet file copied in,
    and the settings pointing at it. The AWS side is the account's as seeded."""
    f = FLAVOURS[key]
    clone = account.home / f.name
    if clone.exists():
        shutil.rmtree(clone)
    if real:
        export(f, clone)
    else:
        make_worktree(clone, f)
    for args in (("init", "-q", "-b", "master"), ("remote", "add", "origin", f.repo_url), ("add", "-A"),
                 ("commit", "-q", "-m", "clone")):
        _git(*args, cwd=clone)
    if account.clone.exists() and (account.clone / "lambda_function.py").exists():
        shutil.copy(account.clone / "lambda_function.py", clone / "lambda_function.py")   # the seeded Monitor's
    config_py = clone / "config.py"
    fleet = clone / "files" / f"{APP_NAME}Fleet_{account.region}.json"
    if account.fleet.exists():
        shutil.copy(account.fleet, fleet)
    if real:   # the project's own config.py, filled in for the account as its step_1_configuration.md says
        config_py.write_text(set_config_values(config_py.read_text(), **{**_filled(key, account), **config}))
    else:
        config_py.write_text(config_text(key, account, **config))
    if "d" not in f.credential_layouts and "session" not in f.credential_layouts:
        # A run.py that cannot read [default] keys from ~/.aws/credentials: the keys inline in ~/.aws/config.
        with account.aws_config.open("a") as out:
            out.write(f"aws_access_key_id = {account.access_key_id}\n"
                      f"aws_secret_access_key = {account.secret_access_key}\n")
    job = clone / "files" / "exampleJob.json"
    sib = dataclasses.replace(account, clone=clone, config_py=config_py, fleet=fleet, job=job)
    sib.write_settings()
    return sib


def _filled(key: str, account: DcpAccount) -> dict[str, Any]:
    """What a user of project ``key`` changes in its own config.py for the seeded account."""
    from rig.seed import DLQ

    values: dict[str, Any] = {"APP_NAME": APP_NAME, "AWS_REGION": account.region, "AWS_BUCKET": account.bucket,
                              "SSH_KEY_NAME": f"{KEY_NAME}.pem", "ECS_CLUSTER": "dcp-cluster", "CLUSTER_MACHINES": 2,
                              "SQS_DEAD_LETTER_QUEUE": DLQ, "MACHINE_PRICE": 0.20}
    values["MACHINE_TYPE"] = _CONFIGS[key]["MACHINE_TYPE"]
    if key == "something":
        values["DOCKERHUB_TAG"] = _CONFIGS[key]["DOCKERHUB_TAG"]
    if key == "fiji":
        values["SCRIPT_DOWNLOAD_URL"] = _CONFIGS[key]["SCRIPT_DOWNLOAD_URL"]
    return values


RUNNER = """\
import runpy, sys, time
time.sleep = lambda seconds: None          # run.py waits 60 s after each creation; the emulator needs none
sys.path.insert(0, '.')
sys.argv = ['run.py', *sys.argv[1:]]
runpy.run_path('run.py', run_name='__main__')
"""


def run_py(account: DcpAccount, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The clone's own run.py, unmodified, against the emulator (time.sleep patched by the runner, not in
    run.py), as the operator with the account's environment, from the clone as its docs say."""
    runner = account.home / ".run_py_runner.py"
    runner.write_text(RUNNER)
    env = dict(account.env(), AWS_DEFAULT_REGION=account.region, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, str(runner), *args], cwd=account.clone, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
