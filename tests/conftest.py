"""Test rig wiring: the loopback guard, moto server, the Service Quotas stand-in and seeded accounts.

Every test (and every Python subprocess it starts) runs with AWS pointed at a dead loopback port by
default, the instance metadata service disabled, dummy credentials and no ~/.aws of the machine.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

from rig import netguard
from rig.dcprepo import GitDaemon, make_dcp_repo
from rig.moto_server import MotoServer
from rig.nodes import bootstrap_layer
from rig.quota_stub import DEFAULT_QUOTAS, QuotaStub
from rig.sandbox import Sandbox, can_sandbox, ensure_base, keypair
from rig.seed import DcpAccount, seed_empty_account, seed_healthy_account

ROOT = Path(__file__).resolve().parent.parent
RIG = ROOT / "rig"
_GUARD_LOG = Path(tempfile.gettempdir()) / f"dcp-netguard-{os.getpid()}.log"


# CI runs the same examples every time (a failure found locally is kept in .hypothesis/ for replay).
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


def pytest_configure(config: pytest.Config) -> None:
    safe = {
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",   # discard port: a forgotten override fails fast, locally
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/nonexistent/aws-config", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
        "DCP_NETGUARD_LOG": str(_GUARD_LOG),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(RIG / "sitecustomize"), os.environ.get("PYTHONPATH")])),
        "NO_COLOR": "1",
        "CHECKPOINT_DISABLE": "1",                 # Packer's version check would leave the machine
    }
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        os.environ.pop(key, None)
    os.environ.update(safe)
    _GUARD_LOG.write_text("")
    netguard.install()


# Tests that boot sandbox hosts share one worker under pytest-xdist (make test runs two): they are CPU- and
# disk-bound (debootstrap layers, apt inside the host, Packer), and the session's bootstrapped node layer is
# then built once, not once per worker; the other worker takes the tests that mostly wait on moto or timeouts.
HOST_FIXTURES = frozenset({"sandbox_key", "node_layer"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HOST_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group("hosts"))


@pytest.fixture(autouse=True)
def loopback_only() -> Iterator[None]:
    """Fail any test whose process, or a Python subprocess, reached for a non-loopback address."""
    netguard.take()
    start = _GUARD_LOG.stat().st_size if _GUARD_LOG.exists() else 0
    yield
    seen = netguard.take()
    if _GUARD_LOG.exists():
        with _GUARD_LOG.open() as f:
            f.seek(start)
            seen += [line.strip() for line in f if line.strip()]
    if seen:
        pytest.fail("non-loopback network access: " + "; ".join(sorted(set(seen))[:5]), pytrace=False)


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with MotoServer(log=tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server


@pytest.fixture(scope="session")
def quotas() -> Iterator[QuotaStub]:
    with QuotaStub() as stub:
        yield stub


@pytest.fixture(scope="session")
def sandbox_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reason = can_sandbox()
    if reason:
        pytest.skip(reason)
    ensure_base()
    return keypair(tmp_path_factory.mktemp("sandbox-key"))


@pytest.fixture
def sandbox(sandbox_key: Path, tmp_path: Path) -> Iterator[Sandbox]:
    """A fresh Debian 12 host with sshd on 127.0.0.1 (root and a sudo user 'dcp'), removed afterwards."""
    with Sandbox(tmp_path / "sandbox", sandbox_key) as box:
        yield box


@pytest.fixture(scope="session")
def dcp_git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitDaemon]:
    """A git daemon on 127.0.0.1 serving a DCP-shaped repository (GitHub is out of reach)."""
    base = tmp_path_factory.mktemp("git")
    make_dcp_repo(base)
    with GitDaemon(base) as daemon:
        yield daemon


def host_suite(box: Sandbox, key: Path, user: str = "root") -> subprocess.CompletedProcess[str]:
    """The testinfra host suite (tests/host) against a sandbox, as a user would run it against any node."""
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests/host"),
                           f"--hosts=paramiko://{user}@127.0.0.1:{box.port}", f"--ssh-identity-file={key}"],
                          capture_output=True, text=True, timeout=300, check=False, cwd=ROOT)


@pytest.fixture(scope="session")
def node_layer(sandbox_key: Path, dcp_git: GitDaemon, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh Debian 12 sandbox bootstrapped as root by the real command, kept as an overlay layer so
    that later tests start from a control node in ~0.1 s instead of bootstrapping again."""
    return bootstrap_layer(tmp_path_factory.mktemp("node"), sandbox_key, dcp_git.url())


@pytest.fixture
def node(node_layer: Path, sandbox_key: Path, tmp_path: Path) -> Iterator[Sandbox]:
    """A sandbox that starts as a bootstrapped control node (bootstrapped as root)."""
    with Sandbox(tmp_path / "node", sandbox_key, layers=[node_layer]) as box:
        yield box


_accounts = itertools.count(1)
# moto slows down (and stalls concurrent requests) as accounts pile up, so it is reset now and then;
# a new account costs ~0.6 s to seed, a reset ~0.05 s (rig/moto_main.py skips moto's rebuild of what it drops).
ACCOUNTS_BEFORE_RESET = 8


def _fresh(moto: MotoServer, quotas: QuotaStub, monkeypatch: pytest.MonkeyPatch, seed: Any, home: Path) -> DcpAccount:
    n = next(_accounts)
    if n % ACCOUNTS_BEFORE_RESET == 0:
        moto.reset()
    quotas.quotas.clear()
    quotas.quotas.update(DEFAULT_QUOTAS)
    quotas.requests.clear()
    acct: DcpAccount = seed(moto.endpoint, home, account_id=f"{200000000000 + n:012d}")
    acct.extra_env["AWS_ENDPOINT_URL_SERVICE_QUOTAS"] = quotas.endpoint
    for key, value in acct.env().items():
        monkeypatch.setenv(key, value)
    for key in [k for k in os.environ if k.startswith("AWS_") and k not in acct.env()]:
        monkeypatch.delenv(key)
    return acct


@pytest.fixture
def account(moto: MotoServer, quotas: QuotaStub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DcpAccount:
    """A freshly seeded healthy DCP account (a moto account of its own) and a control-node home;
    the test's environment points at it as a DCP user's shell would."""
    return _fresh(moto, quotas, monkeypatch, seed_healthy_account, tmp_path / "home")


@pytest.fixture
def empty_account(moto: MotoServer, quotas: QuotaStub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DcpAccount:
    """A fresh account with only its default VPC and the operator's user, and a control node whose config.py
    is filled in (see rig.seed.seed_empty_account); the environment points at it."""
    return _fresh(moto, quotas, monkeypatch, seed_empty_account, tmp_path / "home")
