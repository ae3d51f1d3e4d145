"""build-ami and cleanup-build at the edges: an AWS endpoint that refuses, never answers, fails or throttles
(rig/badnet.py, all on 127.0.0.1), bad numbers and networks, and their help.

Each task runs as the user runs it (``.venv/bin/invoke TASK …`` in the project folder); build-ami runs the
real Packer, and must stop in its preflight, before any Packer build starts.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from bootstrap import ami, awsclient
from bootstrap.ami import BuildError, parse_cidrs
from rig.badnet import KINDS, FailingEndpoint, SilentListener, stand_in
from rig.moto_server import MotoServer
from rig.nodes import emulator_env

ROOT = Path(__file__).resolve().parents[2]
INVOKE = str(Path(sys.executable).parent / "invoke")
# A task stops at its first call that AWS does not answer: that call's bound, plus the interpreter's start-up
# and some slack for a loaded 2-core machine.
BOUND = awsclient.CALL_BOUND + 15


@dataclass
class Ran:
    argv: list[str]
    code: int
    stdout: str
    stderr: str
    seconds: float


def invoke(*argv: str, env: dict[str, str] | None = None, timeout: float = 120) -> Ran:
    start = time.monotonic()
    p = subprocess.run([INVOKE, *argv], capture_output=True, text=True, cwd=ROOT, env=env or emulator_env(),
                       timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    return Ran(list(argv), p.returncode, p.stdout, p.stderr, time.monotonic() - start)


@pytest.fixture(params=KINDS)
def badnet(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(mode, endpoint URL) of a loopback stand-in for an AWS that does not answer usefully."""
    with stand_in(request.param) as url:
        yield request.param, url


def expected_cause(mode: str, url: str) -> str:
    return {"refusing": f"could not connect to {url}",
            "silent": f"no answer from {url} in {awsclient.READ_TIMEOUT:g} s",
            "html500": "AWS answered HTTP 500",
            "slowdown": "AWS kept throttling the requests (SlowDown",
            "throttling": "AWS kept throttling the requests ("}[mode]


def build_dirs() -> set[str]:
    d = ROOT / "packer" / "build"
    return {p.name for p in d.iterdir()} if d.is_dir() else set()


def test_every_ami_task_ends_in_time_and_says_aws_could_not_be_reached(badnet: tuple[str, str]) -> None:
    mode, url = badnet
    where = ["--endpoint", url, "--region", "us-east-1"]
    runs = {
        # SSH pinned to loopback: Packer 1.6.6 needs no --ssh-cidr, so build-ami goes as far as its preflight.
        "build-ami": ["build-ami", *where, "--ssh-host", "127.0.0.1", "--ssh-port", "2222"],
        "cleanup-build": ["cleanup-build", *where],
        "cleanup-build --delete": ["cleanup-build", "--delete", *where],
    }
    before = build_dirs()
    with ThreadPoolExecutor(len(runs)) as pool:
        results = dict(zip(runs, pool.map(lambda argv: invoke(*argv), runs.values()), strict=True))
    for name, r in results.items():
        lines = r.stderr.strip().splitlines()
        said = f"{name} against {mode}: exit {r.code} in {r.seconds:.1f} s\n{r.stdout}\n{r.stderr}"
        assert r.code == 3, said
        assert "Traceback" not in r.stdout + r.stderr, said
        assert len(lines) == 1 and lines[0].startswith(f"{name.split()[0]}: could not reach AWS: "), said
        assert expected_cause(mode, url) in lines[0], said
        assert "credentials" not in r.stderr, said              # no answer is never "bad credentials"
        assert r.seconds < BOUND, said
        assert "waiting for" not in r.stdout, said               # not a terminal: no waiting lines
    build = results["build-ami"]
    assert "preflight" in build.stdout and "packer validate" not in build.stdout, build.stdout
    assert "packer build" not in build.stdout and "work folder" not in build.stdout, build.stdout
    # No build folder of this run's: Packer never started a build. (Another worker's build-ami test may make
    # folders meanwhile, in the same packer/build; none of theirs names this run's endpoint.)
    ours = [d for d in build_dirs() - before
            if any(url in f.read_text(errors="replace") for f in (ROOT / "packer" / "build" / d).rglob("*") if f.is_file())]
    assert ours == [], ours


def test_throttling_is_retried_a_bounded_number_of_times() -> None:
    with FailingEndpoint("throttling") as failing:
        r = invoke("cleanup-build", "--endpoint", failing.url, "--region", "us-east-1")
        asked = failing.requests
    assert r.code == 3 and "RequestLimitExceeded on DescribeInstances" in r.stderr, r.stderr
    assert asked == awsclient.ATTEMPTS       # botocore's standard mode retried, and then stopped


def test_no_credentials_is_still_said_as_such() -> None:
    env = emulator_env()
    del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    with FailingEndpoint("html500") as failing:
        r = invoke("cleanup-build", "--endpoint", failing.url, "--region", "us-east-1", env=env)
        assert failing.requests == 0             # found out before any request
    assert r.code == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().startswith("cleanup-build: no usable AWS credentials"), r.stderr


@pytest.mark.parametrize(("text", "refused"), [
    ("0.0.0.0/1", "is wider than /16"),
    ("128.0.0.0/2", "is wider than /16"),
    ("10.0.0.0/8", "is wider than /16"),
    ("172.16.0.0/15", "is wider than /16"),
    ("0.0.0.0/0", "(the whole internet) is wider than /16"),
    ("203.0.113.7/32, 0.0.0.0/1", "0.0.0.0/1 is wider than /16"),
    ("2001:db8::/48", "IPv4 networks only"),
    ("10.1.2.3/8", "host bits are set"),
    ("laptop", "not an IP address or network"),
])
def test_broad_networks_are_refused(text: str, refused: str) -> None:
    with pytest.raises(BuildError, match=re.escape(refused)) as e:
        parse_cidrs(text)
    assert e.value.code == 2


def test_networks_up_to_a_site_are_accepted() -> None:
    assert parse_cidrs("203.0.113.7, 172.16.0.0/16,198.51.100.0/24") == (
        "203.0.113.7/32", "172.16.0.0/16", "198.51.100.0/24")
    assert parse_cidrs("") == ()


def test_a_build_error_keeps_its_exit_status() -> None:
    assert BuildError("x").code == 2 and BuildError("packer build failed", code=1).code == 1


@pytest.mark.parametrize(("argv", "says"), [
    (["cleanup-build", "--keep", "abc"], "cleanup-build: --keep 'abc' is not a whole number (e.g. --keep 3)"),
    (["cleanup-build", "--keep", "2.5"], "cleanup-build: --keep '2.5' is not a whole number"),
    (["cleanup-build", "--older-than", "x"], "cleanup-build: --older-than 'x' is not a number of minutes"),
    (["cleanup-build", "--older-than", "nan"], "cleanup-build: --older-than 'nan' is not a number of minutes"),
    (["build-ami", "--ssh-port", "abc"], "build-ami: --ssh-port 'abc' is not a port number"),
    (["build-ami", "--ssh-port", "22.0"], "build-ami: --ssh-port '22.0' is not a port number"),
    (["build-ami", "--endpoint", "not-a-url"], "build-ami: --endpoint 'not-a-url' is not an http:// or https:// URL"),
    (["build-ami", "--endpoint", "ftp://x"], "build-ami: --endpoint 'ftp://x' is not an http:// or https:// URL"),
    (["build-ami", "--endpoint", "http://127.0.0.1:5000/ec2"], "no path, query or user"),
    (["build-ami", "--ssh-cidr", "0.0.0.0/1"], "build-ami: --ssh-cidr 0.0.0.0/1 is wider than /16"),
    (["cleanup-build", "--bogus"], "cleanup-build: No idea what '--bogus' is!"),
])
def test_junk_options_are_one_line_and_exit_2(argv: list[str], says: str) -> None:
    r = invoke(*argv, "--region", "us-east-1")
    assert r.code == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], r.stderr
    assert "Traceback" not in r.stdout + r.stderr


def test_no_region_anywhere_says_how_to_set_one() -> None:
    env = emulator_env()
    del env["AWS_DEFAULT_REGION"]
    for task in ("build-ami", "cleanup-build"):
        r = invoke(task, env=env)
        assert r.code == 2 and r.stderr.strip() == (
            f"{task}: no region configured: pass --region or set one in ~/.aws/config "
            "(aws configure set region us-east-1)"), r.stderr


def test_decimal_minutes_are_accepted(moto: MotoServer) -> None:
    moto.reset()
    r = invoke("cleanup-build", "--older-than", "2.5", "--keep", "0", "--endpoint", moto.endpoint,
               "--region", "us-east-1")
    assert r.code == 0 and "cleanup-build: nothing to clean up" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("task", ["build-ami", "cleanup-build", "validate"])
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_h_is_help_and_every_flag_is_well_formed(task: str, flag: str) -> None:
    r = invoke(task, flag)
    assert r.code == 0 and r.stdout.startswith(f"Usage: inv[oke] [--core-opts] {task} "), r.stdout + r.stderr
    assert "--=" not in r.stdout and not any(line.lstrip().startswith("-h") for line in r.stdout.splitlines())
    if task == "build-ami":
        assert "--ssh-host=STRING" in r.stdout and "--ssh-port=INT" in r.stdout
    if task == "cleanup-build":
        assert "--keep=INT" in r.stdout and "--older-than=STRING" in r.stdout   # a value, not a switch


def test_help_into_a_closed_pipe_prints_no_traceback() -> None:
    p = subprocess.run(f"{INVOKE} build-ami --help | head -1", shell=True, capture_output=True, text=True,  # noqa: S602
                       cwd=ROOT, env=emulator_env(), timeout=60, check=False)
    assert p.stdout.startswith("Usage: inv[oke]") and p.stdout.count("\n") == 1
    assert p.stderr == "", p.stderr


def test_an_internal_error_names_its_log_and_exits_70(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug of ours (here: an endpoint that is not a string, which no command line can produce) is one line
    with the traceback kept in a private log file."""
    from invoke import Context
    from invoke.exceptions import Exit

    before = signal.getsignal(signal.SIGPIPE)
    import tasks  # sets SIGPIPE to the default action, as it does for the invoke command

    signal.signal(signal.SIGPIPE, before)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(Exit) as e:
        tasks.cleanup_build.body(Context(), region="us-east-1", endpoint=None)
    assert e.value.code == 70
    message = str(e.value.message)
    assert message.startswith("cleanup-build: internal error: AttributeError") and "please report it" in message
    log = Path(message.split("the traceback is in ")[1].split(";", maxsplit=1)[0])
    assert log.parent == tmp_path / "dcp-agent" / "errors" and (log.stat().st_mode & 0o777) == 0o600
    assert "Traceback" in log.read_text()


def test_ctrl_c_during_a_call_is_interrupted_and_130() -> None:
    with SilentListener() as silent:
        p = subprocess.Popen([INVOKE, "cleanup-build", "--delete", "--endpoint", silent.url, "--region", "us-east-1"],
                             cwd=ROOT, env=emulator_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while not silent._held and time.monotonic() < deadline:       # the request is out, unanswered
            time.sleep(0.05)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
    assert p.returncode == 130, err
    assert err.strip() == "cleanup-build: interrupted; nothing was changed", err


def test_the_build_checks_inputs_before_it_asks_aws() -> None:
    with FailingEndpoint("html500") as failing:
        r = invoke("build-ami", "--endpoint", failing.url, "--region", "us-east-1", "--ssh-host", "127.0.0.1",
                   "--ssh-cidr", "0.0.0.0/1")
        assert failing.requests == 0
    assert r.code == 2 and "is wider than /16" in r.stderr
    with pytest.raises(BuildError, match="availability zone; use its region 'eu-west-1'"):
        ami.check_region("eu-west-1c")
