"""launch-node, list-nodes, stop-node, terminate-node (and bootstrap's options) at the edges: an AWS endpoint
that refuses, never answers, fails or throttles (rig/badnet.py, all on 127.0.0.1), Ctrl-C, a terminal that
waits, numbers typed as users type them, help, and the architecture an instance type must match.

Each task runs as the user runs it (``.venv/bin/invoke TASK …`` in the project folder). launch-node always
gets --ssh-cidr here: its public-address lookup (checkip) is never dialled.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from bootstrap import awsclient
from bootstrap.ami import PROJECT
from bootstrap.node import counterpart
from rig.badnet import KINDS, FailingEndpoint, SilentListener, refusing, stand_in
from rig.moto_server import MotoServer
from rig.nodes import emulator_env, launch_node_options, run_invoke
from rig.ports import free_port
from tests.bootstrap.test_node import NO_SSH, created, ec2, env, make_ami

ROOT = Path(__file__).resolve().parents[2]
INVOKE = str(Path(sys.executable).parent / "invoke")
BOUND = awsclient.CALL_BOUND + 15        # the first unanswered call's bound, start-up and slack


@pytest.fixture(params=KINDS)
def badnet(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(mode, endpoint URL) of a loopback stand-in for an AWS that does not answer usefully."""
    with stand_in(request.param) as url:
        yield request.param, url


@pytest.fixture
def key_home(tmp_path: Path) -> Path:
    """A HOME with ~/.ssh/dcp-node.pub (what launch-node would import), without a sandbox."""
    ssh = tmp_path / "home" / ".ssh"
    ssh.mkdir(parents=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh / "dcp-node")], check=True)
    return tmp_path / "home"


def timed(argv: list[str], environ: dict[str, str], timeout: float = 120) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    p = subprocess.run([INVOKE, *argv], capture_output=True, text=True, cwd=ROOT, env=environ, timeout=timeout,
                       stdin=subprocess.DEVNULL, check=False)
    return p, time.monotonic() - start


CAUSE = {"refusing": "could not connect to {url}", "silent": "no answer from {url} in 5 s",
         "html500": "AWS answered HTTP 500", "slowdown": "AWS kept throttling the requests (SlowDown",
         "throttling": "AWS kept throttling the requests ("}


def test_every_node_task_ends_in_time_and_says_aws_could_not_be_reached(badnet: tuple[str, str],
                                                                       key_home: Path) -> None:
    mode, url = badnet
    where = ["--endpoint", url, "--region", "us-east-1"]
    launch = ["launch-node", *where, "--key-name", "dcp-node", "--ssh-cidr", "127.0.0.1/32", "--ssh-host",
              "127.0.0.1"]
    runs = {"launch-node --dry-run": [*launch, "--dry-run"], "launch-node": launch, "list-nodes": ["list-nodes", *where],
            "stop-node": ["stop-node", "dcp-control-node", *where],
            "terminate-node": ["terminate-node", "dcp-control-node", *where]}
    environ = {**emulator_env(), "HOME": str(key_home)}
    with ThreadPoolExecutor(len(runs)) as pool:
        results = dict(zip(runs, pool.map(lambda argv: timed(argv, environ), runs.values()), strict=True))
    cause = CAUSE[mode].format(url=url)
    for name, (p, seconds) in results.items():
        said = f"{name} against {mode}: exit {p.returncode} in {seconds:.1f} s\n{p.stdout}\n{p.stderr}"
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 3, said
        assert "Traceback" not in p.stdout + p.stderr, said
        assert len(lines) == 1 and lines[0].startswith(f"{name.split()[0]}: could not reach AWS: "), said
        assert cause in lines[0] and "credentials" not in p.stderr, said
        assert seconds < BOUND, said
        assert p.stdout == "", said                   # not a terminal: no waiting lines, nothing half-said


def test_throttled_reads_are_retried_a_bounded_number_of_times() -> None:
    with FailingEndpoint("throttling") as failing:
        p, _ = timed(["list-nodes", "--endpoint", failing.url, "--region", "us-east-1"], emulator_env())
        asked = failing.requests
    assert p.returncode == 3 and "RequestLimitExceeded on DescribeInstances" in p.stderr, p.stderr
    assert asked == awsclient.ATTEMPTS


def on_a_terminal(argv: list[str], environ: dict[str, str], until: float) -> tuple[int, str, str]:
    """Run with stdout on a pseudo-terminal (stderr a pipe); (status, what the terminal showed, stderr)."""
    master, slave = pty.openpty()
    p = subprocess.Popen([INVOKE, *argv], cwd=ROOT, env=environ, stdout=slave, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    os.close(slave)
    shown = b""
    deadline = time.monotonic() + until
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
        elif p.poll() is not None:
            break
    os.close(master)
    err = p.communicate(timeout=until)[1]
    return p.returncode, shown.decode(errors="replace"), err.decode(errors="replace")


def test_on_a_terminal_a_slow_call_says_what_it_waits_for() -> None:
    with SilentListener() as silent:
        code, shown, err = on_a_terminal(["list-nodes", "--endpoint", silent.url, "--region", "us-east-1"],
                                         emulator_env(), BOUND)
    assert code == 3, err
    lines = [ln for ln in shown.splitlines() if ln.strip()]
    assert lines == [f"list-nodes: waiting for EC2 DescribeInstances at {silent.url} (gives up after "
                     f"{awsclient.CALL_BOUND:.0f} s)…"], shown
    assert err.strip() == f"list-nodes: could not reach AWS: no answer from {silent.url} in 5 s (timed out)"


def test_on_a_terminal_a_quick_answer_says_nothing_of_waiting() -> None:
    code, shown, err = on_a_terminal(["list-nodes", "--endpoint", refusing(), "--region", "us-east-1"],
                                     emulator_env(), 30)
    assert code == 3 and "waiting" not in shown, shown + err


@pytest.fixture
def amis(moto: MotoServer) -> dict[str, str]:
    """A clean emulator with this project's newest amd64 AMI and an arm64 one."""
    moto.reset()
    client = ec2(moto.endpoint)
    amd = make_ami(client, "dcp-control-node-20261120-000000", {"dcp:project": PROJECT})
    # An arm64 image as build-ami would make one on Graviton: from an instance of one of moto's arm64 AMIs.
    base = client.describe_images(Filters=[{"Name": "architecture", "Values": ["arm64"]}])["Images"][0]["ImageId"]
    inst = client.run_instances(ImageId=base, MinCount=1, MaxCount=1, InstanceType="t4g.small")["Instances"][0]
    arm = client.create_image(InstanceId=inst["InstanceId"], Name="dcp-control-node-20261121-000000",
                              TagSpecifications=[{"ResourceType": "image",
                                                  "Tags": [{"Key": "dcp:project", "Value": PROJECT}]}])["ImageId"]
    client.terminate_instances(InstanceIds=[inst["InstanceId"]])
    assert client.describe_images(ImageIds=[arm])["Images"][0]["Architecture"] == "arm64"
    return {"amd64": amd, "arm64": str(arm)}


@pytest.mark.parametrize(("image", "instance_type", "suggested"), [
    ("arm64", "t3.small", "t4g.small"),
    ("arm64", "m5.xlarge", "m6g.xlarge"),
    ("amd64", "t4g.small", "t3.small"),
    ("amd64", "c7g.large", "c7i.large"),
])
def test_the_architecture_error_suggests_a_type_of_the_amis_architecture(  # noqa: PLR0917 - fixtures, parameters
        moto: MotoServer, amis: dict[str, str], key_home: Path, image: str, instance_type: str,
        suggested: str) -> None:
    opts = {**launch_node_options(moto.endpoint, NO_SSH), "--ami": amis[image], "--instance-type": instance_type}
    p = run_invoke("launch-node", opts, env(key_home))
    arch = "arm64" if image == "arm64" else "x86_64"
    assert p.returncode == 2, p.stdout + p.stderr
    assert p.stderr.strip().endswith(f"AMI {amis[image]} is {arch}: pick e.g. --instance-type {suggested}"), p.stderr
    assert created(moto.endpoint) == {"instances": [], "keys": [], "groups": []}


def test_counterpart_checks_its_suggestion_with_ec2(moto: MotoServer) -> None:
    client = ec2(moto.endpoint)
    assert counterpart(client, "r5.2xlarge", "arm64") == "r6g.2xlarge"
    assert counterpart(client, "t4g.nano", "x86_64") == "t3.nano"
    assert counterpart(client, "x1e.xlarge", "arm64") == "t4g.small"       # no Graviton twin: the usual one
    assert counterpart(client, "t3.bogus", "arm64") == "t4g.small"         # the twin does not exist: ditto
    assert counterpart(client, "t3.small", "i386") == ""


def test_a_decimal_wait_timeout_is_used_as_given(moto: MotoServer, amis: dict[str, str], key_home: Path) -> None:
    p = run_invoke("launch-node", {**launch_node_options(moto.endpoint, NO_SSH), "--wait-timeout": "1.5",
                                   "--ami": amis["amd64"]}, env(key_home))
    assert p.returncode == 2, p.stdout + p.stderr
    assert "SSH on 127.0.0.1:9 did not answer within 1.5 s" in p.stderr, p.stderr     # nothing listens there


def test_ctrl_c_while_waiting_says_what_exists(moto: MotoServer, amis: dict[str, str], key_home: Path) -> None:
    argv = ["launch-node", *[x for kv in launch_node_options(moto.endpoint, NO_SSH).items() for x in kv],
            "--ami", amis["amd64"]]
    p = subprocess.Popen([INVOKE, *argv], cwd=ROOT, env=env(key_home), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    assert p.stdout is not None
    seen = []
    for line in p.stdout:                                    # until it waits for SSH on a port nobody serves
        seen.append(line)
        if "waiting for SSH" in line:
            break
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    now = created(moto.endpoint)
    assert p.returncode == 130, "".join(seen) + err
    assert len(now["instances"]) == 1 and len(now["groups"]) == 1, now
    assert err.strip() == (f"launch-node: interrupted; imported key pair dcp-node; created security group "
                           f"dcp-control-node-ssh ({now['groups'][0]}); let 127.0.0.1/32 in on SSH in "
                           f"{now['groups'][0]}; launched {now['instances'][0]} (invoke terminate-node "
                           "dcp-control-node removes it)"), err


def test_ctrl_c_before_anything_is_made_says_so(key_home: Path) -> None:
    with SilentListener() as silent:
        argv = ["launch-node", "--endpoint", silent.url, "--region", "us-east-1", "--key-name", "dcp-node",
                "--ssh-cidr", "127.0.0.1/32", "--ssh-host", "127.0.0.1"]
        p = subprocess.Popen([INVOKE, *argv], cwd=ROOT, env={**emulator_env(), "HOME": str(key_home)},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while not silent._held and time.monotonic() < deadline:        # its first request is out, unanswered
            time.sleep(0.05)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
    assert p.returncode == 130 and err.strip() == "launch-node: interrupted; nothing was changed", err


LAUNCH = ["launch-node", "--region", "us-east-1", "--key-name", "k"]


@pytest.mark.parametrize(("argv", "says"), [
    ([*LAUNCH, "--wait-timeout", "abc"], "launch-node: --wait-timeout 'abc' is not a number of seconds"),
    ([*LAUNCH, "--wait-timeout", "0"], "launch-node: --wait-timeout 0: give seconds above 0"),
    ([*LAUNCH, "--ssh-port", "abc"], "launch-node: --ssh-port 'abc' is not a port number"),
    ([*LAUNCH, "--ssh-port", "65536"], "launch-node: ssh port 65536 is not a port number"),
    ([*LAUNCH, "--ssh-cidr", "0.0.0.0/1"], "launch-node: --ssh-cidr 0.0.0.0/1 is wider than /16"),
    ([*LAUNCH, "--endpoint", "not-a-url"], "launch-node: --endpoint 'not-a-url' is not an http:// or https"),
    ([*LAUNCH, "--endpoint", "http://127.0.0.1:5000/x"], "no path, query or user"),
    (["list-nodes", "--endpoint", "ftp://x"], "list-nodes: --endpoint 'ftp://x' is not an http:// or https://"),
    (["stop-node", "n", "--region", "us-east-1b"], "stop-node: --region 'us-east-1b' is an availability zone"),
    (["terminate-node"], "terminate-node: 'terminate-node' did not receive required positional arguments"),
    (["bootstrap", "h", "--connect-timeout", "x"], "bootstrap: --connect-timeout 'x' is not a number of seconds"),
    (["bootstrap", "h", "--connect-timeout", "0"], "bootstrap: --connect-timeout 0: give more than 0 seconds"),
])
def test_junk_options_are_one_line_and_exit_2(argv: list[str], says: str) -> None:
    p, _ = timed(argv, emulator_env())
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and says in lines[0], p.stderr
    assert "Traceback" not in p.stdout + p.stderr


def test_no_region_anywhere_says_how_to_set_one() -> None:
    environ = emulator_env()
    del environ["AWS_DEFAULT_REGION"]
    for argv in (["launch-node", "--key-name", "k"], ["list-nodes"], ["stop-node", "n"], ["terminate-node", "n"]):
        p, _ = timed(argv, environ)
        assert p.returncode == 2 and p.stderr.strip() == (
            f"{argv[0]}: no region configured: pass --region or set one in ~/.aws/config "
            "(aws configure set region us-east-1)"), p.stderr


def test_bootstrap_takes_a_decimal_connect_timeout(tmp_path: Path) -> None:
    port = free_port()
    p, seconds = timed(["bootstrap", f"root@127.0.0.1:{port}", "--connect-timeout", "2.5", "--log-dir",
                        str(tmp_path / "logs"), "--known-hosts", str(tmp_path / "known_hosts")], emulator_env())
    assert p.returncode == 1, p.stdout + p.stderr          # the host refuses; the option itself was fine
    assert "connect-timeout" not in p.stderr and "Traceback" not in p.stdout + p.stderr
    assert seconds < 30


@pytest.mark.parametrize("task", ["launch-node", "list-nodes", "stop-node", "terminate-node", "bootstrap", "demo"])
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_h_is_help_everywhere(task: str, flag: str) -> None:
    p, _ = timed([task, flag], emulator_env())
    assert p.returncode == 0 and p.stdout.startswith(f"Usage: inv[oke] [--core-opts] {task} "), p.stdout + p.stderr
    assert "--=" not in p.stdout and p.stderr == ""
    assert not any(line.lstrip().startswith("-h") for line in p.stdout.splitlines())
    if task == "launch-node":
        assert "--wait-timeout=STRING" in p.stdout and "--ssh-port=INT" in p.stdout
    if task == "bootstrap":
        assert "-i STRING, --identity=STRING" in p.stdout and "--connect-timeout=STRING" in p.stdout


def test_stop_node_help_stops_nothing(moto: MotoServer, amis: dict[str, Any]) -> None:
    """`invoke stop-node --help` is help, not a node named "--help" (invoke would take it as the name)."""
    p, _ = timed(["stop-node", "--help", "--endpoint", moto.endpoint, "--region", "us-east-1"], emulator_env())
    assert p.returncode == 0 and "Usage: inv[oke] [--core-opts] stop-node" in p.stdout, p.stdout + p.stderr
