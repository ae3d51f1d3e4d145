"""The checks judge each sibling by its own row (agent.flavours), on synthetic clones of ours: a correctly
prepared account gives no fail, and one realistic mistake per rule that differs from DCP's is caught by the
check that owns it. Self-contained: no mirror needed (tests/siblings/test_real.py uses the real projects)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from agent.model import Status
from rig.seed import DcpAccount
from rig.siblings import as_sibling
from tests.agent.harness import run_agent

SIBLINGS = ("something", "fiji", "omezarr")


@pytest.mark.parametrize("key", SIBLINGS)
def test_a_correct_account_gives_no_fail(account: DcpAccount, key: str) -> None:
    sib = as_sibling(account, key)
    results = run_agent(sib, job=sib.job)
    bad = {c: f"{r.status}: {r.message}" for c, r in results.items() if r.status in (Status.FAIL, Status.ERROR)}
    assert bad == {}
    # K01 let everything after it run: the AWS-backed groups passed, by this project's rules.
    for code in ("K01", "C04", "N05", "K06", "Q05", "S09", "F03", "R04", "I06"):
        assert results[code].status == Status.PASS, f"{code}: {results[code].message}"
    # DCP-only rules are not applied: CellProfiler's batch-file and s3fs rules are skipped, naming the project.
    assert results["K08"].status == Status.SKIP


@dataclass
class Mistake:
    key: str
    code: str
    expect: str
    what: str
    mutate: Callable[[DcpAccount], None]
    contains: str = ""


def _edit(**values: object) -> Callable[[DcpAccount], None]:
    return lambda a: a.edit_config(**values)


def _drop(name: str) -> Callable[[DcpAccount], None]:
    def drop(a: DcpAccount) -> None:
        a.config_py.write_text("".join(ln for ln in a.config_py.read_text().splitlines(keepends=True)
                                       if not ln.startswith(f"{name} =")))
    return drop


def _role_profile(a: DcpAccount) -> None:
    a.aws_config.write_text("[default]\nregion = us-east-1\noutput = json\n"
                            f"role_arn = arn:aws:iam::{a.account_id}:role/DCPTask\nsource_profile = base\n")


def _credentials_only(a: DcpAccount) -> None:
    a.aws_config.write_text("[default]\nregion = us-east-1\noutput = json\n")   # keys only in ~/.aws/credentials


def _named_profile_keys(a: DcpAccount) -> None:
    """aws configure --profile lab: keys only in ~/.aws/credentials [lab] (DCP's run.py cannot read it)."""
    a.aws_credentials.write_text(a.aws_credentials.read_text() + "\n[lab]\naws_access_key_id = "
                                 f"{a.access_key_id}\naws_secret_access_key = {a.secret_access_key}\n")
    a.edit_config(AWS_PROFILE="lab")


def _job(doc: str) -> Callable[[DcpAccount], None]:
    def write(a: DcpAccount) -> None:
        a.job.write_text(doc)
    return write


def _run_py(line: str) -> Callable[[DcpAccount], None]:
    """The clone's run.py holding one line (ours) shaped as the one L05 looks for."""
    def write(a: DcpAccount) -> None:
        a.clone.joinpath("run.py").write_text(f"def generate_task_definition():\n    {line}\n")
    return write


MISTAKES = [
    # K01: the names each run.py needs, not DCP's.
    Mistake("fiji", "K01", "fail", "AUTO_MONITOR left out (DCP back-fills it; Fiji's run.py has no default)",
            _drop("AUTO_MONITOR"), "AUTO_MONITOR"),
    Mistake("omezarr", "K01", "fail", "CLEAN_DASHBOARD left out (its default is a bool that crashes)",
            _drop("CLEAN_DASHBOARD"), "TypeError"),
    Mistake("something", "K01", "fail", "NECESSARY_STRING left out", _drop("NECESSARY_STRING"), "NECESSARY_STRING"),
    # N05: Distributed-Something's run.py reads ASSIGN_IP inversely; 'True' (as its docs say for public IPs)
    # turns the public address of launch specification 0 off, and the default VPC has no NAT.
    Mistake("something", "N05", "fail", "ASSIGN_IP = 'True' in Distributed-Something", _edit(ASSIGN_IP="True"),
            "inverse"),
    # C04: the credential layouts each run.py can hand to workers.
    Mistake("omezarr", "C04", "fail", "[default] keys only in ~/.aws/credentials", _credentials_only,
            "cannot read"),
    Mistake("fiji", "C04", "fail", "a role_arn profile (Fiji hands workers key and secret, no token, no task role)",
            _role_profile, "session token"),
    Mistake("fiji", "C04", "pass", "keys only in ~/.aws/credentials [lab] (boto3 finds them; DCP's run.py would not)",
            _named_profile_keys),
    # K06: each project's own image.
    Mistake("fiji", "K06", "warn", "DCP's image in a Fiji config",
            _edit(DOCKERHUB_TAG="cellprofiler/distributed-cellprofiler:2.2.1_4.2.8"), "distributed-fiji"),
    Mistake("something", "K06", "fail", "the template's placeholder image",
            _edit(DOCKERHUB_TAG="user/distributed-something:sometag"), "placeholder"),
    # K02: the placeholders each config.py ships.
    Mistake("something", "K02", "warn", "APP_NAME left at DS's default", _edit(APP_NAME="DistributedSomething"),
            "'DistributedSomething'"),
    Mistake("fiji", "K02", "warn", "APP_NAME left at Fiji's default", _edit(APP_NAME="DistributedFiji"),
            "'DistributedFiji'"),
    Mistake("omezarr", "K02", "warn", "APP_NAME left at OMEZarr's default",
            _edit(APP_NAME="DistributedBioFormats2Raw"), "'DistributedBioFormats2Raw'"),
    # Z03: Fiji's run.py has no CPU_SHARES: each task takes "cpu": 1024.
    Mistake("fiji", "Z03", "pass", "Fiji's tasks fit (1024 CPU units each)", _edit(TASKS_PER_MACHINE=4, MEMORY=2000)),
    Mistake("fiji", "Z03", "fail", "five 1024-unit Fiji tasks on a 4-vCPU machine",
            _edit(TASKS_PER_MACHINE=5, MEMORY=2000), "\"cpu\": 1024"),
    Mistake("fiji", "K02", "fail", "SCRIPT_DOWNLOAD_URL still the example's",
            _edit(SCRIPT_DOWNLOAD_URL="https://some/url/with/a/script.y"), "SCRIPT_DOWNLOAD_URL"),
    # Q01: Distributed-Something does not reduce an ARN to the queue's name.
    Mistake("something", "Q01", "fail", "SQS_DEAD_LETTER_QUEUE as an ARN",
            _edit(SQS_DEAD_LETTER_QUEUE="arn:aws:sqs:us-east-1:123456789012:alice_DeadMessages"), "as it is"),
    # S07: DS and Fiji always mount AWS_BUCKET with s3fs (run-worker.sh); OMEZarr mounts nothing.
    Mistake("fiji", "S07", "fail", "a dotted AWS_BUCKET", _edit(AWS_BUCKET="lab.images.example"), "always mounts"),
    Mistake("something", "S07", "fail", "a dotted AWS_BUCKET", _edit(AWS_BUCKET="lab.images.example"),
            "always mounts"),
    Mistake("omezarr", "S07", "pass", "a dotted AWS_BUCKET (never mounted)", _edit(AWS_BUCKET="lab.images.example")),
    # S09: each job file's shape.
    Mistake("omezarr", "S09", "fail", "a DS-shaped job file (groups, no plates)",
            _job('{"groups": [{"plate": "A"}]}'), "plates"),
    Mistake("omezarr", "S09", "fail", "a job file without the keys B2R-worker.py reads with no default",
            _job("{\"input_bucket\": \"b\", \"input_location\": \"in/\", \"output_bucket\": \"b\", \"output_location\": \"out/\", \"upload_flags\": false, \"plates\": [\"P1\"]}"), "path_to_metadata, resolutions, tile_width"),
    Mistake("omezarr", "S09", "warn", "exampleJob.json's bucket placeholders left in",
            _job("{\"input_bucket\": \"SOURCE_BUCKET\", \"input_location\": \"in/\", \"path_to_metadata\": \"Images/Index.idx.xml\", \"output_bucket\": \"DESTINATION_BUCKET\", \"output_location\": \"out/\", \"upload_flags\": false, \"resolutions\": false, \"tile_width\": false, \"tile_height\": false, \"target-min-size\": false, \"additional_flags\": false, \"plates\": [\"P1\"]}"), "input_bucket is still 'SOURCE_BUCKET'"),
    # L05: a known defect of the project's run.py is said, with its workaround; once repaired it is not.
    Mistake("fiji", "L05", "warn", "run.py with HEAD's one-argument get_queue_url", _run_py(
        "queue_name = get_queue_url(sqs)"), "get_queue_url(sqs, SQS_QUEUE_NAME)"),
    Mistake("fiji", "L05", "pass", "run.py with that call repaired", _run_py(
        "queue_name = get_queue_url(sqs, SQS_QUEUE_NAME)")),
    # Fiji's startCluster never uploads the monitor file its Auto-Monitor Lambda reads from monitors/.
    Mistake("fiji", "L05", "warn", "startCluster's AUTO_MONITOR branch with no upload to monitors/", _run_py(
        "if AUTO_MONITOR.lower()=='true':\n        pass"), "s3://<AWS_BUCKET>/monitors/"),
    Mistake("fiji", "L05", "pass", "startCluster uploading the monitor file", _run_py(
        "if AUTO_MONITOR.lower()=='true':\n        key = f'monitors/{APP_NAME}SpotFleetRequestId.json'")),
]


@pytest.mark.parametrize("m", MISTAKES, ids=lambda m: f"{m.key}-{m.code}-{m.expect}")
def test_each_differing_rule_is_caught_by_its_check(account: DcpAccount, m: Mistake) -> None:
    sib = as_sibling(account, m.key)
    m.mutate(sib)
    r = run_agent(sib, [m.code], job=sib.job if m.code == "S09" else None)[m.code]
    assert r.status == m.expect, f"{m.what}: {m.code} is {r.status}: {r.message}"
    if m.contains:
        assert m.contains in r.message + " " + r.fix, r.message + " | " + r.fix
    if m.expect != "pass":
        assert r.fix


def test_the_login_summary_names_the_project_it_judged_by(account: DcpAccount) -> None:
    """The login hook's cached lines say "ready for Distributed-Fiji", not DCP, on a Fiji control node."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    sib = as_sibling(account, "fiji")
    env = dict(os.environ, **sib.env())
    subprocess.run([str(Path(sys.executable).parent / "dcp-agent"), "login", "--refresh"], env=env,
                   capture_output=True, text=True, timeout=120, check=False)
    summary = (Path(env["XDG_CACHE_HOME"]) / "dcp-agent" / "login.txt").read_text()
    first = summary.splitlines()[0]
    assert "Distributed-Fiji" in first and "DCP" not in first, summary
