"""Control nodes for tests, the demo and the benchmarks: bootstrap a sandbox with the real command."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import boto3

from rig.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[1]


def run_bootstrap(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """The real command (`python -m bootstrap`, what `invoke bootstrap` runs).

    Sandboxes are throwaway hosts on reused loopback ports (and share their base image's host keys), so unless
    the caller names a ``--known-hosts`` file, each run gets a fresh one and accepts new host keys into it; the
    machine's ~/.ssh/known_hosts is never touched. tests/bootstrap/test_host_keys.py tests the policy itself."""
    extra: list[str] = []
    with tempfile.TemporaryDirectory(prefix="dcp-known-hosts-") as tmp:
        if "--known-hosts" not in args:
            extra = ["--known-hosts", str(Path(tmp) / "known_hosts"), "--accept-new-host-keys"]
        return subprocess.run([sys.executable, "-m", "bootstrap", *args, *extra], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, check=False, cwd=ROOT)


def bootstrap_layer(work: Path, key: Path, repo_url: str) -> Path:
    """Bootstrap a fresh sandbox as root and keep its changes as an overlay layer (``work/layer``)."""
    with Sandbox(work / "box", key) as box:
        p = run_bootstrap(box.target(), "-i", str(key), "--repo-url", repo_url, "--log-dir", str(work / "logs"))
        if p.returncode != 0:
            raise RuntimeError(f"bootstrap failed:\n{p.stdout[-3000:]}{p.stderr[-2000:]}")
        return box.snapshot(work / "layer")


# -- `invoke build-ami` against the emulator: what the tests, the demo and the benchmark share ------------
BUILD_KEY = "dcp-build"
SOURCE_AMI = "ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-*"  # moto's canned Ubuntu; the host is Debian


def emulator_env() -> dict[str, str]:
    """Dummy credentials, no ~/.aws, no instance metadata, no Packer call home: only the emulator is reachable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
               AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE="/nonexistent",
               AWS_SHARED_CREDENTIALS_FILE="/nonexistent", CHECKPOINT_DISABLE="1")
    return env


def import_build_key(endpoint: str, key: Path) -> None:
    """Make the sandbox's key the build's key pair, so Packer's SSH is trusted by the sandbox."""
    boto3.client("ec2", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").import_key_pair(
        KeyName=BUILD_KEY, PublicKeyMaterial=Path(f"{key}.pub").read_bytes())


def build_ami_options(endpoint: str, box: Sandbox, key: Path) -> dict[str, str]:
    """`invoke build-ami` options for a build against ``endpoint`` that provisions ``box`` over 127.0.0.1."""
    return {"--region": "us-east-1", "--endpoint": endpoint, "--ssh-host": "127.0.0.1",
            "--ssh-port": str(box.port), "--ssh-username": "root", "--ssh-keypair-name": BUILD_KEY,
            "--ssh-private-key-file": str(key), "--source-ami-name": SOURCE_AMI}


def run_build_ami(options: dict[str, str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    invoke = str(Path(sys.executable).parent / "invoke")
    args = [x for pair in options.items() for x in pair]
    return subprocess.run([invoke, "build-ami", *args], capture_output=True, text=True, env=env or emulator_env(),
                          cwd=ROOT, timeout=900, check=False)


# -- `invoke launch-node` against the emulator: SSH pinned to a sandbox on 127.0.0.1 -------------------------
NODE_KEY = "dcp-node"


def operator_home(home: Path, key: Path, name: str = NODE_KEY) -> Path:
    """A HOME whose ~/.ssh/<name>(.pub) is the sandbox's key: what launch-node imports as the key pair."""
    ssh = home / ".ssh"
    ssh.mkdir(parents=True, exist_ok=True, mode=0o700)
    for src, dest in ((key, ssh / name), (Path(f"{key}.pub"), ssh / f"{name}.pub")):
        dest.write_bytes(src.read_bytes())
        dest.chmod(0o600)
    return home


def launch_node_options(endpoint: str, port: int, user: str = "root") -> dict[str, str]:
    """`invoke launch-node` options for the emulator: the node's SSH is a sandbox's ``port`` on 127.0.0.1, and
    only loopback may SSH in."""
    return {"--region": "us-east-1", "--endpoint": endpoint, "--key-name": NODE_KEY, "--ssh-cidr": "127.0.0.1/32",
            "--ssh-host": "127.0.0.1", "--ssh-port": str(port), "--ssh-username": user}


def run_invoke(task: str, options: dict[str, str], env: dict[str, str], *args: str,
               timeout: float = 300) -> subprocess.CompletedProcess[str]:
    invoke = str(Path(sys.executable).parent / "invoke")
    """``invoke TASK ARGS… OPTIONS…``; an option whose value is "" is left out."""
    flat = [x for k, v in options.items() if v != "" for x in (k, v)]
    return subprocess.run([invoke, task, *args, *flat], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=timeout, check=False)


def first_boot(box: Sandbox, key: Path, user: str = "root") -> None:
    """What cloud-init does when an instance of a build-ami image boots: new host keys, the key pair's public
    key in the login user's authorized_keys (build-ami's cleanup removed both from the image)."""
    box.run("ssh-keygen", "-A")
    home = box.root / ("root" if user == "root" else f"home/{user}")
    (home / ".ssh").mkdir(mode=0o700, exist_ok=True)
    (home / ".ssh/authorized_keys").write_text(Path(f"{key}.pub").read_text())
