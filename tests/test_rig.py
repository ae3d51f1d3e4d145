"""The test rig itself: each stand-in works, resets and stays on loopback."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from rig import netguard
from rig.dcprepo import GitDaemon, head_commit, make_dcp_repo
from rig.moto_server import MotoServer
from rig.proxy import LatencyProxy
from rig.quota_stub import QuotaStub
from rig.sandbox import Sandbox
from rig.seed import DcpAccount

SSH_OPTS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"]


def client(endpoint: str, service: str) -> object:
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def test_moto_answers_and_resets(moto: MotoServer) -> None:
    s3 = client(moto.endpoint, "s3")
    assert client(moto.endpoint, "sts").get_caller_identity()["Account"] == "123456789012"  # type: ignore[attr-defined]
    s3.create_bucket(Bucket="rig-reset-probe")  # type: ignore[attr-defined]
    assert "rig-reset-probe" in [b["Name"] for b in s3.list_buckets()["Buckets"]]  # type: ignore[attr-defined]
    moto.reset()
    assert "rig-reset-probe" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]  # type: ignore[attr-defined]


def test_managed_policies_are_loaded(moto: MotoServer) -> None:
    iam = client(moto.endpoint, "iam")
    policy = iam.get_policy(PolicyArn="arn:aws:iam::aws:policy/service-role/AmazonEC2SpotFleetTaggingRole")  # type: ignore[attr-defined]
    assert policy["Policy"]["PolicyName"] == "AmazonEC2SpotFleetTaggingRole"


def test_seeded_account_is_isolated_and_healthy(account: DcpAccount) -> None:
    iam = account.client("iam")
    role = iam.get_role(RoleName="aws-ec2-spot-fleet-tagging-role")["Role"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"] == "spotfleet.amazonaws.com"
    ident = boto3.client("sts", endpoint_url=account.endpoint, region_name="us-east-1",
                         aws_access_key_id=account.access_key_id,
                         aws_secret_access_key=account.secret_access_key).get_caller_identity()
    assert ident["Account"] == account.account_id != "123456789012"
    assert json.loads(account.fleet.read_text())["IamFleetRole"].startswith(f"arn:aws:iam::{account.account_id}:")


def test_proxy_adds_latency_and_records(moto: MotoServer) -> None:
    with LatencyProxy(moto.endpoint, latency_s=0.05) as proxy:
        sts = client(proxy.endpoint, "sts")
        start = time.monotonic()
        sts.get_caller_identity()  # type: ignore[attr-defined]
        assert time.monotonic() - start >= 0.05
        assert proxy.actions() == ["GetCallerIdentity"]


_OWNER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from rig.moto_server import MotoServer
m = MotoServer().start()
print(m.proc.pid, m.port, flush=True)
time.sleep(120)
"""


def test_a_killed_owner_takes_its_moto_server_with_it() -> None:
    """SIGKILL runs no finally: the server dies with its owner anyway (rig/orphans.py)."""
    owner = subprocess.Popen([sys.executable, "-c", _OWNER, str(Path(__file__).resolve().parent.parent)],
                             stdout=subprocess.PIPE, text=True)
    assert owner.stdout is not None
    pid, _port = map(int, owner.stdout.readline().split())
    owner.kill()
    owner.wait(timeout=5)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except FileNotFoundError:
            state = "gone"
        if state in ("gone", "Z"):    # exited (a zombie until init reaps it)
            break
        time.sleep(0.05)
    assert state in ("gone", "Z"), f"moto server {pid} still running ({state}) after its owner was killed"
    # (a dead process holds no socket; a connect to its port is no proof either way while other runs on this
    # machine open and close loopback ports all the time)


def test_quota_stub_speaks_service_quotas(quotas: QuotaStub) -> None:
    sq = client(quotas.endpoint, "service-quotas")
    assert sq.get_service_quota(ServiceCode="ec2", QuotaCode="L-34B43A08")["Quota"]["Value"] > 0  # type: ignore[attr-defined]
    with pytest.raises(Exception, match="NoSuchResource"):
        sq.get_service_quota(ServiceCode="ec2", QuotaCode="L-00000000")  # type: ignore[attr-defined]


def test_netguard_blocks_non_loopback_and_allows_loopback(moto: MotoServer, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DCP_NETGUARD_LOG", str(tmp_path / "deliberate.log"))  # keep these out of the run's log
    with socket.create_connection(("127.0.0.1", moto.port), timeout=2):
        pass
    assert netguard.take() == []
    # The hook decides before any packet exists: call it as the interpreter would for a connect.
    with socket.socket() as s, pytest.raises(PermissionError):
        netguard._hook("socket.connect", (s, ("192.0.2.10", 443)))
    with pytest.raises(PermissionError):
        netguard._hook("socket.getaddrinfo", ("sts.amazonaws.com", 443, 0, 0, 0))
    with pytest.raises(PermissionError):
        netguard._hook("socket.connect", (socket.socket(), ("169.254.169.254", 80)))
    assert len(netguard.take()) == 3
    assert len((tmp_path / "deliberate.log").read_text().splitlines()) == 3


def test_python_subprocesses_carry_the_guard() -> None:
    out = subprocess.run([sys.executable, "-c", "import sys; print('netguard' in sys.modules)"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"


def test_git_daemon_serves_a_dcp_shaped_repo(tmp_path: Path) -> None:
    bare = make_dcp_repo(tmp_path / "srv")
    with GitDaemon(tmp_path / "srv") as daemon:
        subprocess.run(["git", "clone", "-q", daemon.url(), str(tmp_path / "clone")], check=True)
    for name in ("run.py", "config.py", "files/requirements.txt", "files/exampleFleet_us-east-1.json"):
        assert (tmp_path / "clone" / name).exists(), name
    assert head_commit(bare) == subprocess.run(["git", "-C", str(tmp_path / "clone"), "rev-parse", "HEAD"],
                                               capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.sandbox
def test_sandbox_accepts_ssh_and_is_isolated(sandbox: Sandbox, sandbox_key: Path) -> None:
    def ssh(user: str, cmd: str) -> str:
        return subprocess.run(["ssh", *SSH_OPTS, "-i", str(sandbox_key), "-p", str(sandbox.port),
                               f"{user}@127.0.0.1", cmd], capture_output=True, text=True, check=True).stdout

    assert ssh("root", "hostname").strip() == "testhost"
    assert ssh("dcp", "sudo -n id -u").strip() == "0"
    # Own PID namespace: the host's processes are not visible; own filesystem: writes stay inside.
    assert int(ssh("root", "ls /proc | grep -c '^[0-9]'").strip()) < 10
    ssh("root", "touch /etc/written-in-sandbox")
    assert (sandbox.root / "etc/written-in-sandbox").exists()
    assert not Path("/etc/written-in-sandbox").exists()
    assert not (sandbox.base / "etc/written-in-sandbox").exists()


@pytest.mark.sandbox
def test_sandbox_teardown_leaves_nothing(sandbox_key: Path, tmp_path: Path) -> None:
    box = Sandbox(tmp_path / "box", sandbox_key).start()
    port = box.port
    box.stop()
    assert not (tmp_path / "box").exists()
    assert str(tmp_path / "box") not in Path("/proc/mounts").read_text()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
