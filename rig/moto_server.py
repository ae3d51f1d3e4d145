"""moto server on a free 127.0.0.1 port: a real HTTP endpoint speaking the AWS protocols."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from types import TracebackType

from rig.orphans import die_with_parent
from rig.ports import free_port, wait_for_port


class MotoServer:
    """Starts ``moto_server`` with AWS managed policies loaded; ``reset()`` wipes all state."""

    def __init__(self, extra_env: dict[str, str] | None = None, log: Path | None = None) -> None:
        self.port = free_port()
        self.extra_env = extra_env or {}
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        # moto's own server, with the few AWS behaviours it lacks patched in (rig/moto_main.py says which).
        cmd = [sys.executable, "-m", "rig.moto_main", "-H", "127.0.0.1", "-p", str(self.port)]
        env = {**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true", **self.extra_env}
        env.pop("MOTO_ACCOUNT_ID", None)
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True,
                                     preexec_fn=die_with_parent)  # noqa: PLW1509 - rig/orphans.py
        if self.log:
            out.close()  # type: ignore[union-attr]
        try:
            wait_for_port(self.port, timeout=20)
        except TimeoutError:
            self.stop()
            raise
        return self

    def reset(self) -> None:
        req = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST", data=b"")  # noqa: S310
        with urllib.request.urlopen(req, timeout=120) as resp:  # noqa: S310 - a loopback http URL we built
            resp.read()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)   # werkzeug stops on KeyboardInterrupt; SIGTERM is slow
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
