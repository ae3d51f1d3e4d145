"""A small synthetic repository shaped like Distributed-CellProfiler, and a git daemon serving it.

GitHub is out of reach here, so bootstrap and build tests clone this instead, over git:// on 127.0.0.1.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import TracebackType

from rig.orphans import die_with_parent
from rig.ports import free_port, wait_for_port

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "dcp"   # shared with tests/agent
REPO_NAME = "Distributed-CellProfiler.git"

_STUBS = {
    "run.py": "import config  # noqa\n\nprint('Distributed-CellProfiler stand-in: run.py')\n",
    "setup_AWS.py": "print('Distributed-CellProfiler stand-in: setup_AWS.py')\n",
    "lambda_function.py": 'bucket = "BUCKET_NAME"\n',
    "run_batch_general.py": "print('stand-in')\n",
    "README.md": "# Distributed-CellProfiler (synthetic stand-in for tests)\n",
}

GIT_ENV = {
    "GIT_AUTHOR_NAME": "dcp-test", "GIT_AUTHOR_EMAIL": "dcp-test@localhost",
    "GIT_COMMITTER_NAME": "dcp-test", "GIT_COMMITTER_EMAIL": "dcp-test@localhost",
    "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent",
}


def _git(*args: str, cwd: Path) -> str:
    import os

    env = dict(os.environ, **GIT_ENV)
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def make_dcp_worktree(dest: Path) -> Path:
    """Write DCP's files into ``dest`` (no git): run.py, config.py, files/… ."""
    (dest / "files").mkdir(parents=True, exist_ok=True)
    for name, text in _STUBS.items():
        (dest / name).write_text(text)
    shutil.copy(FIXTURES / "config.py", dest / "config.py")
    for name in ("requirements.txt", "exampleFleet_us-east-1.json", "exampleFleet_us-west-2.json",
                 "exampleJob.json"):
        shutil.copy(FIXTURES / name, dest / "files" / name)
    return dest


def make_dcp_repo(base: Path) -> Path:
    """A bare repository ``base/Distributed-CellProfiler.git`` with one commit on ``master``."""
    work = base / "work"
    make_dcp_worktree(work)
    _git("init", "-q", "-b", "master", cwd=work)
    _git("add", "-A", cwd=work)
    _git("commit", "-q", "-m", "Synthetic Distributed-CellProfiler", cwd=work)
    bare = base / REPO_NAME
    _git("clone", "-q", "--bare", str(work), str(bare), cwd=base)
    shutil.rmtree(work)
    return bare


def head_commit(bare: Path) -> str:
    return _git("rev-parse", "HEAD", cwd=bare)


class GitDaemon:
    """``git daemon`` on 127.0.0.1 exporting every repository under ``base``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, name: str = REPO_NAME) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def start(self) -> GitDaemon:
        self.proc = subprocess.Popen(
            ["git", "daemon", "--reuseaddr", "--export-all", f"--base-path={self.base}",
             "--listen=127.0.0.1", f"--port={self.port}", str(self.base)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent)  # noqa: PLW1509 - the rig's servers die with their owner (rig/orphans.py)
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=5)

    def __enter__(self) -> GitDaemon:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
