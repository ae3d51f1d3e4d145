"""`invoke bootstrap` against real sshd sandboxes: fresh hosts, idempotence, dry run, interruption, many hosts."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from rig.dcprepo import GitDaemon
from rig.nodes import run_bootstrap
from rig.ports import SilentListener, free_port
from rig.sandbox import Sandbox
from tests.conftest import host_suite

pytestmark = pytest.mark.sandbox


def snapshot(box: Sandbox) -> dict[str, tuple[int, int]]:
    """Every path the host changed (its overlay upper dir) with size and mode: what a run touched."""
    upper = box.workdir / "upper"
    out = {}
    for dirpath, _dirs, files in os.walk(upper):
        for name in files:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(upper))] = (st.st_size, st.st_mode)
    return out


def test_root_bootstrap_passes_the_host_suite_and_a_second_run_changes_nothing(
        node: Sandbox, sandbox_key: Path, dcp_git: GitDaemon, tmp_path: Path) -> None:
    suite = host_suite(node, sandbox_key)
    assert suite.returncode == 0, suite.stdout[-3000:]
    assert " passed" in suite.stdout
    start = time.monotonic()
    again = run_bootstrap(node.target(), "-i", str(sandbox_key), "--repo-url", dcp_git.url(),
                          "--log-dir", str(tmp_path / "logs"))
    assert again.returncode == 0, again.stdout[-2000:]
    assert f"{node.target()}: ok" in again.stdout          # zero changes (Molecule-style idempotence)
    assert time.monotonic() - start < 30


def test_three_hosts_in_parallel_one_unreachable(node: Sandbox, sandbox_key: Path, sandbox: Sandbox,
                                                 dcp_git: GitDaemon, tmp_path: Path) -> None:
    """A fresh host as the sudo user, a control node as root, and a port nobody listens on."""
    dead = f"root@127.0.0.1:{free_port()}"
    p = run_bootstrap(sandbox.target("dcp"), node.target(), dead, "-i", str(sandbox_key),
                      "--repo-url", dcp_git.url(), "--log-dir", str(tmp_path / "logs"))
    assert p.returncode == 1
    assert f"{node.target()}: ok" in p.stdout
    assert f"{sandbox.target('dcp')}: changed 7" in p.stdout
    assert f"{dead}: failed: cannot connect to 127.0.0.1:{dead.rsplit(':', 1)[1]}: connection refused" in p.stdout
    # The sudo user's node: clone in its home, owned by it; the host suite passes as that user too.
    assert (sandbox.root / "home/dcp/Distributed-CellProfiler/run.py").exists()
    assert host_suite(sandbox, sandbox_key, user="dcp").returncode == 0
    log = (tmp_path / "logs" / f"dcp_127.0.0.1_{sandbox.port}.log").read_text()
    assert "$ " in log and "[exit 0]" in log and "# result: changed" in log


def test_dry_run_on_a_fresh_host_changes_nothing(sandbox: Sandbox, sandbox_key: Path, dcp_git: GitDaemon,
                                                 tmp_path: Path) -> None:
    before = snapshot(sandbox)
    p = run_bootstrap(sandbox.target(), "-i", str(sandbox_key), "--dry-run", "--repo-url", dcp_git.url(),
                      "--log-dir", str(tmp_path / "logs"))
    assert p.returncode == 0, p.stdout[-2000:]
    assert "would change 7: packages, dcp-clone, dcp-venv, agent" in p.stdout
    after = snapshot(sandbox)
    # sshd's own login records are not ours; everything else must be exactly as it was.
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert {k for k in changed if not k.startswith(("var/log/", "root/.cache/"))} == set()


def test_interrupted_run_converges(sandbox: Sandbox, sandbox_key: Path, dcp_git: GitDaemon, tmp_path: Path) -> None:
    """Ctrl-C in the middle of a remote step (building the DCP venv): the command stops within 2 s, says in one
    line which host was stopped at which step, and a second run converges (the host lock makes it wait for the
    interrupted run's last command, which may still run there)."""
    from tests.bootstrap.test_edges import assert_no_traceback, interrupt_after

    args = [sandbox.target(), "-i", str(sandbox_key), "--repo-url", dcp_git.url(), "--log-dir", str(tmp_path / "logs")]
    code, out, err, took = interrupt_after([*args, "--known-hosts", str(tmp_path / "known_hosts"),
                                            "--accept-new-host-keys"], "dcp-venv (applying)", delay=1.0, patience=600)
    print(f"Ctrl-C to exit in the middle of a remote step: {took:.3f} s")
    assert took < 2 and code == 130, f"exit {code} after {took:.1f} s\n{err}"
    assert_no_traceback(out, err)
    line = err.strip()
    assert "\n" not in line and line.startswith("bootstrap: interrupted"), err
    assert f"stopped {sandbox.target()} (at dcp-venv (applying))" in line, line
    p = run_bootstrap(*args[:-1], str(tmp_path / "logs2"))
    assert p.returncode == 0, p.stdout[-3000:]
    assert f"{sandbox.target()}: changed" in p.stdout and "agent" in p.stdout.split(": changed")[-1]
    assert_no_traceback(p.stdout, p.stderr)
    assert host_suite(sandbox, sandbox_key).returncode == 0


def test_unsupported_os_is_refused_before_any_change(sandbox: Sandbox, sandbox_key: Path, tmp_path: Path) -> None:
    (sandbox.root / "etc/os-release").unlink()
    (sandbox.root / "etc/os-release").write_text('ID=fedora\nVERSION_ID="40"\nPRETTY_NAME="Fedora Linux 40"\n')
    before = snapshot(sandbox)
    p = run_bootstrap(sandbox.target(), "-i", str(sandbox_key), "--log-dir", str(tmp_path / "logs"))
    assert p.returncode == 1
    assert "refused before any change: Fedora Linux 40 is not supported" in p.stdout
    after = snapshot(sandbox)
    assert {k for k in set(before) | set(after) if before.get(k) != after.get(k)
            and not k.startswith(("var/log/", "root/.cache/"))} == set()


def test_silent_host_times_out_with_the_reason(tmp_path: Path, sandbox_key: Path) -> None:
    """A loopback listener that accepts and never answers: the timeout path, on 127.0.0.1 only."""
    with SilentListener() as listener:
        port = listener.port
        start = time.monotonic()
        p = run_bootstrap(f"root@127.0.0.1:{port}", "-i", str(sandbox_key), "--connect-timeout", "2",
                          "--log-dir", str(tmp_path / "logs"))
        took = time.monotonic() - start
    assert p.returncode == 1
    assert f"root@127.0.0.1:{port}: failed: cannot connect to 127.0.0.1:{port}" in p.stdout
    assert "timeout 2 s" in p.stdout
    assert took < 20


@pytest.mark.parametrize("args, message", [
    (["-i", "/nonexistent/key", "root@127.0.0.1:22"], "key /nonexistent/key does not exist"),
    (["root@127.0.0.1:1", "root@127.0.0.1:1"], "a host is named twice"),
    ([], "the following arguments are required: HOST"),
])
def test_bad_input_is_one_line_and_exit_two(args: list[str], message: str) -> None:
    p = run_bootstrap(*args)
    assert p.returncode == 2
    assert message in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert "Traceback" not in p.stderr
