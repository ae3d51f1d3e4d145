"""The login hook on a real sshd (a bootstrapped sandbox): shown at interactive logins only, never slow,
never holding the session, one refresh at a time, and easy to turn off."""

from __future__ import annotations

import hashlib
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rig.moto_server import MotoServer
from rig.ports import SilentListener
from rig.quota_stub import QuotaStub
from rig.sandbox import Sandbox

pytestmark = pytest.mark.sandbox
FIRST = "dcp-agent: checking this node and your AWS account in the background"
OPTS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
        "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"]


def ssh(node: Sandbox, key: Path, *cmd: str, tty: bool = False, stdin: str = "") -> tuple[float, str, str]:
    args = ["ssh", *OPTS, "-i", str(key), "-p", str(node.port), *(["-tt"] if tty else []), "root@127.0.0.1", *cmd]
    start = time.monotonic()
    p = subprocess.run(args, input=stdin, capture_output=True, text=True, errors="replace", timeout=60, check=False)
    return time.monotonic() - start, p.stdout, p.stderr


def login(node: Sandbox, key: Path) -> tuple[float, str]:
    took, out, _ = ssh(node, key, tty=True, stdin="exit\n")
    return took, out


def refreshers(node: Sandbox, key: Path) -> int:
    out = ssh(node, key, "pgrep -fc '^/opt/dcp-agent/venv/bin/python.* login --refresh' || true")[1]
    return int(out.strip() or 0)


def aws_files(node: Sandbox, endpoint: str, quotas: str = "") -> None:
    """The node's ~/.aws: every service at ``endpoint``; Service Quotas at ``quotas`` (the stand-in for what
    moto lacks, which it answers with HTTP 500: a run without it could not check the quota checks)."""
    aws = node.root / "root/.aws"
    aws.mkdir(exist_ok=True)
    services = f"services = local\n\n[services local]\nservice_quotas =\n  endpoint_url = {quotas}\n" if quotas else ""
    (aws / "config").write_text(f"[default]\nregion = us-east-1\noutput = json\nendpoint_url = {endpoint}\n{services}")
    (aws / "credentials").write_text("[default]\naws_access_key_id = AKIAEXAMPLEEXAMPLE01\n"
                                     "aws_secret_access_key = testing\n")


def cache(node: Sandbox) -> Path:
    return node.root / "root/.cache/dcp-agent/login.txt"


def wait_for(cond: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def hanging() -> Iterator[str]:
    """An AWS endpoint on loopback that accepts connections and never answers."""
    with SilentListener() as listener:
        yield listener.url


def test_first_login_says_checking_then_later_logins_show_the_summary(node: Sandbox, sandbox_key: Path,
                                                                     moto: MotoServer, quotas: QuotaStub) -> None:
    aws_files(node, moto.endpoint, quotas.endpoint)
    took, out = login(node, sandbox_key)
    assert FIRST in out
    assert took < 5
    assert wait_for(lambda: cache(node).exists(), 90), "the background refresh never wrote the cache"
    assert cache(node).stat().st_mode & 0o777 == 0o600
    assert (node.root / "root/.cache/dcp-agent").stat().st_mode & 0o077 == 0
    summary = cache(node).read_text()
    assert summary.splitlines()[0].startswith(("✓ ready for DCP", "✗ DCP is not ready", "! ready for DCP"))
    assert "dcp-agent check" in summary and len(summary.splitlines()) <= 8
    took, out = login(node, sandbox_key)
    assert summary.splitlines()[0] in out and FIRST not in out
    assert "min old" not in out                                  # fresh: no age note, no new refresh
    # A stale result says how old it is.
    old = time.time() - 3600
    import os

    os.utime(cache(node), (old, old))
    took, out = login(node, sandbox_key)
    assert "this result is 60 min old" in out


def test_non_interactive_sessions_get_no_byte_from_the_hook(node: Sandbox, sandbox_key: Path, moto: MotoServer,
                                                           tmp_path: Path) -> None:
    aws_files(node, moto.endpoint)
    cache(node).parent.mkdir(parents=True, exist_ok=True)
    cache(node).write_text("✓ ready for DCP (cached)\n")
    old = time.time() - 3600
    import os

    os.utime(cache(node), (old, old))                            # stale: the hook would print and refresh
    _, out, err = ssh(node, sandbox_key, "true")
    assert (out, err) == ("", "")
    _, out, err = ssh(node, sandbox_key, "bash -lc 'echo -n ok'")   # even a login shell, without a terminal
    assert (out, err) == ("ok", "")
    blob = tmp_path / "blob.bin"
    blob.write_bytes(os.urandom(300_000))
    digest = hashlib.sha256(blob.read_bytes()).hexdigest()
    base = ["-i", str(sandbox_key), *OPTS]
    up = subprocess.run(["scp", *base, "-P", str(node.port), str(blob), "root@127.0.0.1:/tmp/up.bin"],
                        capture_output=True, text=True, check=False)
    assert up.returncode == 0 and up.stdout == up.stderr == ""
    down = subprocess.run(["scp", *base, "-P", str(node.port), "root@127.0.0.1:/tmp/up.bin", str(tmp_path / "down.bin")],
                          capture_output=True, text=True, check=False)
    assert down.returncode == 0 and hashlib.sha256((tmp_path / "down.bin").read_bytes()).hexdigest() == digest
    sftp = subprocess.run(["sftp", *base, "-P", str(node.port), "-b", "-", "root@127.0.0.1"],
                          input=f"put {blob} /tmp/sftp.bin\nget /tmp/sftp.bin {tmp_path / 'sftp.bin'}\n",
                          capture_output=True, text=True, check=False)
    assert sftp.returncode == 0, sftp.stderr
    assert hashlib.sha256((tmp_path / "sftp.bin").read_bytes()).hexdigest() == digest
    rsh = f"ssh {' '.join(base)} -p {node.port}"
    for src, dst in ((str(blob), "root@127.0.0.1:/tmp/rsync.bin"), ("root@127.0.0.1:/tmp/rsync.bin", str(tmp_path / "rs.bin"))):
        r = subprocess.run(["rsync", "-e", rsh, src, dst], capture_output=True, text=True, check=False)
        assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r.stderr
    assert hashlib.sha256((tmp_path / "rs.bin").read_bytes()).hexdigest() == digest


def test_hanging_endpoint_never_slows_or_holds_a_login(node: Sandbox, sandbox_key: Path, hanging: str) -> None:
    aws_files(node, hanging)
    # The hard limit (9 s) comes before the checks' own timeouts (10 s each) would end the run by itself.
    (node.root / "etc/dcp-agent/login.conf").write_text("DCP_AGENT_LOGIN_TIMEOUT=9\n")
    took, out = login(node, sandbox_key)             # the refresh starts and hangs on the endpoint …
    assert FIRST in out
    assert took < 5                                  # … yet the session ends at once: it holds nothing open
    assert refreshers(node, sandbox_key) == 1
    assert wait_for(lambda: refreshers(node, sandbox_key) == 0, 9 + 5 + 5), "refresh outlived its hard timeout"


def test_two_logins_at_once_run_one_refresh_and_leave_one_valid_cache(node: Sandbox, sandbox_key: Path,
                                                                      hanging: str) -> None:
    aws_files(node, hanging)
    (node.root / "etc/dcp-agent/login.conf").write_text("DCP_AGENT_LOGIN_TIMEOUT=40\n")
    settings = node.root / "root/.config/dcp-agent/config.toml"
    settings.parent.mkdir(parents=True, exist_ok=True)
    # Every check starts at once and gives up after check_timeout: long enough to still run when we look.
    settings.write_text("check_timeout = 8\nbudget = 10\n")
    threads = [threading.Thread(target=login, args=(node, sandbox_key)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(1.5)
    assert refreshers(node, sandbox_key) == 1
    assert wait_for(lambda: cache(node).exists() and refreshers(node, sandbox_key) == 0, 40)
    text = cache(node).read_text()
    # Nothing answered: the summary says so (never a verdict on what was not seen), naming the endpoint once.
    assert text.startswith("? could not reach AWS: no answer from http://127.0.0.1:"), text
    assert not list(cache(node).parent.glob(".login.txt.*"))     # no half-written temporaries left


def test_turning_it_off_per_user_and_for_everyone(node: Sandbox, sandbox_key: Path, moto: MotoServer) -> None:
    aws_files(node, moto.endpoint)
    user_off = node.root / "root/.config/dcp-agent/no-login"
    user_off.parent.mkdir(parents=True, exist_ok=True)
    user_off.touch()
    _, out = login(node, sandbox_key)
    assert "dcp-agent" not in out
    user_off.unlink()
    (node.root / "etc/dcp-agent/no-login").touch()
    _, out = login(node, sandbox_key)
    assert "dcp-agent" not in out
    (node.root / "etc/dcp-agent/no-login").unlink()
    _, out = login(node, sandbox_key)
    assert FIRST in out


def test_broken_cache_or_missing_agent_never_breaks_the_shell(node: Sandbox, sandbox_key: Path) -> None:
    cache(node).parent.mkdir(parents=True, exist_ok=True)
    cache(node).write_bytes(b"\xff\xfe garbage")
    (cache(node).parent / "ttl").write_text("not-a-number\n")
    _, out = login(node, sandbox_key)
    assert "Traceback" not in out
    (node.root / "usr/local/bin/dcp-agent").unlink()
    _, out, _ = ssh(node, sandbox_key, "bash -lic 'echo alive' 2>&1", tty=True)
    assert "alive" in out and "Traceback" not in out


def test_a_leftover_fleet_comes_first_with_its_cost(node: Sandbox, sandbox_key: Path, moto: MotoServer,
                                                    quotas: QuotaStub) -> None:
    """What costs money right now leads the banner: a fleet of the node's app (DCP's default APP_NAME) left
    running, with its cost a day and the command that stops it (the fleet as run.py's startCluster asks)."""
    import base64

    import boto3

    aws_files(node, moto.endpoint, quotas.endpoint)
    ec2 = boto3.client("ec2", endpoint_url=moto.endpoint, region_name="us-east-1",
                       aws_access_key_id="AKIAEXAMPLEEXAMPLE01", aws_secret_access_key="testing")
    user_data = base64.b64encode(b"aws s3 cp s3://b/ecsconfigs/DistributedCP_ecs.config /etc/ecs/ecs.config").decode()
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    fleet = ec2.request_spot_fleet(SpotFleetRequestConfig={
        "IamFleetRole": "arn:aws:iam::123456789012:role/aws-ec2-spot-fleet-tagging-role", "TargetCapacity": 2,
        "SpotPrice": "0.20", "Type": "maintain", "AllocationStrategy": "lowestPrice", "LaunchSpecifications": [
            {"ImageId": image, "InstanceType": "m5.xlarge", "SubnetId": subnet, "UserData": user_data}]})
    fid = fleet["SpotFleetRequestId"]
    try:
        login(node, sandbox_key)
        assert wait_for(lambda: cache(node).exists(), 90), "the background refresh never wrote the cache"
        _, out = login(node, sandbox_key)
        lines = [line for line in out.splitlines() if line.strip()]
        head = next(i for i, line in enumerate(lines) if line.startswith(("✗ DCP", "! ready", "✓ ready")))
        assert "/day now" in lines[head]
        cost = lines[head + 1]
        assert cost.lstrip().startswith("$ M10") and fid in cost and "2 × m5.xlarge" in cost
        assert f"stop: aws ec2 cancel-spot-fleet-requests --spot-fleet-request-ids {fid} --terminate-instances" in cost
    finally:
        ec2.cancel_spot_fleet_requests(SpotFleetRequestIds=[fid], TerminateInstances=True)


def test_banner_reflects_the_profile_bashrc_exports(node: Sandbox, sandbox_key: Path, moto: MotoServer) -> None:
    """The hook runs from /etc/profile.d, before ~/.profile and ~/.bashrc: a user who exports AWS_PROFILE in
    ~/.bashrc (as C02 advises) must get the banner of that profile, not [default]'s."""
    import json

    import boto3

    iam = boto3.client("iam", endpoint_url=moto.endpoint, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    iam.create_user(UserName="dcp-lab")
    key = iam.create_access_key(UserName="dcp-lab")["AccessKey"]
    aws_files(node, moto.endpoint)          # [default]: keys moto knows as user/moto
    aws = node.root / "root/.aws"
    with (aws / "config").open("a") as f:
        f.write(f"[profile lab]\nregion = us-east-1\noutput = json\nendpoint_url = {moto.endpoint}\n")
    with (aws / "credentials").open("a") as f:
        f.write(f"[lab]\naws_access_key_id = {key['AccessKeyId']}\naws_secret_access_key = {key['SecretAccessKey']}\n")
    bashrc = node.root / "root/.bashrc"
    bashrc.write_text((bashrc.read_text() if bashrc.exists() else "") + "\nexport AWS_PROFILE=lab\n"
                      "echo 'hello from bashrc'\n")
    _, out = login(node, sandbox_key)
    assert FIRST in out and "hello from bashrc" in out
    assert wait_for(lambda: cache(node).exists(), 90), "the background refresh never wrote the cache"
    results = {c["code"]: c for c in json.loads((cache(node).parent / "last.json").read_text())["checks"]}
    assert "user/dcp-lab" in results["I01"]["message"], results["I01"]["message"]    # not [default]'s user/moto
    assert "AWS_PROFILE" in results["C02"]["message"] and "'lab'" in results["C02"]["message"], results["C02"]
