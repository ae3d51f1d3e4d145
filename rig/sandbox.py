"""Throwaway Debian hosts: a cached debootstrap base, an overlay per sandbox, and sshd in its own mount, PID
and UTS namespaces on a free 127.0.0.1 port (test-rig.md §3). Needs root; tests skip without it.

The sandbox shares the machine's loopback, so it reaches moto and the local git daemon, and apt/pip inside
it reach the package registries like the host does.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from rig.orphans import die_with_parent
from rig.ports import free_port

CACHE = Path(os.environ.get("DCP_CACHE_DIR", "/var/cache/dcp-control-node"))
SUITE = "bookworm"
BASE_PACKAGES = "openssh-server,ca-certificates,sudo,rsync"
SUDO_USER = "dcp"

_RUN = """#!/bin/sh
# Runs inside `unshare --mount --pid --uts --fork`: private mounts, then sshd chrooted into the overlay.
set -e
M="$1"
mount --make-rprivate /
mount -t proc proc "$M/proc"
mount --rbind /dev "$M/dev"
mount -t sysfs sys "$M/sys"
mount -t tmpfs tmpfs "$M/run"
mkdir -p "$M/run/sshd"
hostname "$2"
exec chroot "$M" /usr/sbin/sshd -D -e
"""


def can_sandbox() -> str | None:
    """None when sandboxes can start here, else the reason they cannot."""
    if os.geteuid() != 0:
        return "sandbox hosts need root (mount, unshare, chroot)"
    for tool in ("debootstrap", "unshare", "ssh-keygen"):
        if not shutil.which(tool):
            return f"{tool} is not installed (make setup installs it)"
    return None


def ensure_base(suite: str = SUITE) -> Path:
    """The cached base root filesystem (built once per machine, ~25 s; later calls return at once)."""
    tag = hashlib.sha256(f"{BASE_PACKAGES}|{SUDO_USER}|1".encode()).hexdigest()[:8]
    base = CACHE / f"{suite}-base-{tag}"
    if (base / ".complete").exists():
        return base
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{suite}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (base / ".complete").exists():
            return base
        tmp = Path(tempfile.mkdtemp(dir=CACHE, prefix=f".{suite}-"))
        try:
            subprocess.run(["debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", suite, str(tmp)],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            subprocess.run(["chroot", str(tmp), "useradd", "-m", "-s", "/bin/bash", "-p", "*", SUDO_USER], check=True)
            (tmp / "etc/sudoers.d" / SUDO_USER).write_text(f"{SUDO_USER} ALL=(ALL) NOPASSWD:ALL\n")
            os.chmod(tmp / "etc/sudoers.d" / SUDO_USER, 0o440)
            (tmp / "usr/sbin/policy-rc.d").write_text("#!/bin/sh\nexit 101\n")  # apt must not start services
            os.chmod(tmp / "usr/sbin/policy-rc.d", 0o755)  # noqa: S103 - an executable script  # noqa: S103 - an executable script
            subprocess.run(["chroot", str(tmp), "apt-get", "clean"], check=True)
            (tmp / ".complete").write_text(time.strftime("%Y-%m-%d\n"))
            if base.exists():
                shutil.rmtree(base)
            tmp.rename(base)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return base


def keypair(directory: Path) -> Path:
    """An ed25519 key for logging into sandboxes (private key path; .pub beside it)."""
    key = directory / "id_ed25519"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dcp-sandbox", "-f", str(key)],
                       check=True)
    return key


class Sandbox:
    """One throwaway host. ``start()`` then ``target`` (user@127.0.0.1:port); ``stop()`` removes it all."""

    def __init__(self, workdir: Path, key: Path, base: Path | None = None, hostname: str = "testhost",
                 layers: list[Path] | None = None) -> None:
        self.workdir = workdir
        self.layers = layers or []      # extra read-only layers above the base (e.g. a bootstrapped node)
        self.key = key
        self.base = base or ensure_base()
        self.hostname = hostname
        self.port = free_port()
        self.merged = workdir / "merged"
        self.proc: subprocess.Popen[bytes] | None = None
        self._mounted = False

    @property
    def root(self) -> Path:
        """The sandbox's filesystem as seen from the host (for setup and inspection)."""
        return self.merged

    def target(self, user: str = "root") -> str:
        return f"{user}@127.0.0.1:{self.port}"

    def start(self) -> Sandbox:
        for d in ("upper", "work", "merged"):
            (self.workdir / d).mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={':'.join(str(x) for x in [*self.layers, self.base])},upperdir={self.workdir / 'upper'},workdir={self.workdir / 'work'}",
                        str(self.merged)], check=True)
        self._mounted = True
        try:
            self._configure()
            script = self.workdir / "run.sh"
            script.write_text(_RUN)
            script.chmod(0o755)
            log = open(self.workdir / "sshd.log", "wb")  # noqa: SIM115 - kept open for the child
            self.proc = subprocess.Popen(
                ["unshare", "--mount", "--pid", "--uts", "--fork", "--kill-child", str(script), str(self.merged),
                 self.hostname], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
                # the owner killed: unshare dies, and with --kill-child everything in the namespace (rig/orphans.py)
                preexec_fn=die_with_parent)  # noqa: PLW1509
            log.close()
            self._wait_for_sshd()
        except BaseException:
            self.stop()
            raise
        return self

    def _configure(self) -> None:
        m = self.merged
        # A locked account ("!" password) cannot log in with UsePAM no; "*" means key-only.
        subprocess.run(["chroot", str(m), "usermod", "-p", "*", SUDO_USER], check=True)
        pub = Path(f"{self.key}.pub").read_text()
        for home, owner in (("root", "root"), (f"home/{SUDO_USER}", SUDO_USER)):
            ssh = m / home / ".ssh"
            ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
            (ssh / "authorized_keys").write_text(pub)
            os.chmod(ssh / "authorized_keys", 0o600)
            if owner != "root":
                subprocess.run(["chroot", str(m), "chown", "-R", f"{owner}:{owner}", f"/{home}/.ssh"], check=True)
        (m / "etc/ssh/sshd_config.d/sandbox.conf").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nUsePAM no\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
            # Every session in a sandbox keeps boto3 off the instance metadata service (test-rig.md §0).
            "SetEnv AWS_EC2_METADATA_DISABLED=true\n")
        shutil.copy("/etc/ssl/certs/ca-certificates.crt", m / "etc/ssl/certs/ca-certificates.crt")
        (m / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {self.hostname}\n::1 localhost\n")
        resolv = m / "etc/resolv.conf"
        if resolv.is_symlink():
            resolv.unlink()
        resolv.write_text(Path("/etc/resolv.conf").read_text() if Path("/etc/resolv.conf").exists() else "")

    def _wait_for_sshd(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc and self.proc.poll() is not None:
                raise RuntimeError(f"sandbox sshd exited: {(self.workdir / 'sshd.log').read_text()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(64).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.02)
        raise TimeoutError(f"sandbox sshd did not answer on 127.0.0.1:{self.port}")

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command inside the sandbox's filesystem from the host (chroot), for setup and asserts."""
        return subprocess.run(["chroot", str(self.merged), *cmd], check=check, capture_output=True, text=True)

    def snapshot(self, dest: Path) -> Path:
        """Copy this sandbox's changes (its overlay upper dir) to ``dest``, to use later as a layer."""
        subprocess.run(["cp", "-a", str(self.workdir / "upper"), str(dest)], check=True)
        return dest

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)   # SIGTERM is ignored by the namespace's init
            self.proc.wait(timeout=10)
            self.proc = None
        if self._mounted:
            for attempt in range(50):
                if subprocess.run(["umount", str(self.merged)], capture_output=True, check=False).returncode == 0:
                    break
                time.sleep(0.1 if attempt < 49 else 0)
            else:
                subprocess.run(["umount", "-l", str(self.merged)], check=False)
            self._mounted = False
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
