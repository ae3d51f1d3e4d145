"""`invoke bootstrap`'s host-key policy on a real sshd sandbox, as OpenSSH's: the user's known_hosts is read;
an unknown host is refused unless --accept-new-host-keys (then it is added); a changed key is always refused.

Each run is a --dry-run (connect, read, change nothing) with its own --known-hosts file.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from rig.nodes import run_bootstrap
from rig.sandbox import Sandbox

pytestmark = pytest.mark.sandbox


def dry(box: Sandbox, key: Path, known: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_bootstrap(box.target(), "-i", str(key), "--dry-run", "--known-hosts", str(known),
                         "--log-dir", str(known.parent / "logs"), *extra)


def host_keys(box: Sandbox) -> set[str]:
    """The sandbox's host public keys as 'type base64'."""
    return {" ".join(p.read_text().split()[:2]) for p in (box.root / "etc/ssh").glob("ssh_host_*_key.pub")}


def test_unknown_host_refused_then_accepted_with_the_flag_then_known(sandbox: Sandbox, sandbox_key: Path,
                                                                      tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    p = dry(sandbox, sandbox_key, known)
    assert p.returncode == 1, p.stdout + p.stderr
    name = f"[127.0.0.1]:{sandbox.port}"
    assert f"failed: host key of {name} is unknown (ssh-" in p.stdout and "--accept-new-host-keys" in p.stdout
    assert "Traceback" not in p.stdout + p.stderr
    assert not known.exists()                                      # nothing written without the flag

    p = dry(sandbox, sandbox_key, known, "--accept-new-host-keys")
    assert p.returncode == 0, p.stdout + p.stderr
    lines = known.read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith(name + " ")
    assert lines[0].split(" ", 1)[1] in host_keys(sandbox)        # the key the host really has

    p = dry(sandbox, sandbox_key, known)                           # known now: no flag needed, nothing added
    assert p.returncode == 0, p.stdout + p.stderr
    assert known.read_text().splitlines() == lines


def test_changed_host_key_is_refused_even_with_the_flag(sandbox: Sandbox, sandbox_key: Path, tmp_path: Path) -> None:
    # known_hosts holds another key for this host:port (what a rebuilt host, or a man in the middle, looks like).
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    known = tmp_path / "known_hosts"
    name = f"[127.0.0.1]:{sandbox.port}"
    known.write_text(f"{name} {' '.join(Path(f'{other}.pub').read_text().split()[:2])}\n")
    before = known.read_text()
    for extra in ((), ("--accept-new-host-keys",)):
        p = dry(sandbox, sandbox_key, known, *extra)
        assert p.returncode == 1, p.stdout + p.stderr
        assert f"failed: host key of {name} has CHANGED" in p.stdout, p.stdout
        assert "Traceback" not in p.stdout + p.stderr
        assert known.read_text() == before
