"""Benchmark: what the login hook adds to an interactive SSH login (needs root; not a timed test).

Median of 20 interactive logins (`ssh -tt`, then `exit`) to a bootstrapped sandbox, with the hook and
without it, in the same run: with a warm cache, and with the AWS endpoint pointed at a loopback port
that accepts connections and never answers (the refresh then hangs in the background).
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench._common import machine, sandbox_ready
from rig.dcprepo import GitDaemon, make_dcp_repo
from rig.nodes import bootstrap_layer
from rig.sandbox import Sandbox, keypair

RUNS = 20
OPTS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
        "-o", "BatchMode=yes"]


def login_ms(box: Sandbox, key: Path) -> float:
    start = time.perf_counter()
    subprocess.run(["ssh", *OPTS, "-i", str(key), "-p", str(box.port), "-tt", "root@127.0.0.1"],
                   input=b"exit\n", capture_output=True, timeout=60, check=True)
    return (time.perf_counter() - start) * 1000


def median_ms(box: Sandbox, key: Path) -> float:
    login_ms(box, key)
    return statistics.median(login_ms(box, key) for _ in range(RUNS))


def main() -> int:
    if not sandbox_ready():
        return 0
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(256)
    held: list[socket.socket] = []

    def accept_forever() -> None:
        while True:
            held.append(silent.accept()[0])

    threading.Thread(target=accept_forever, daemon=True).start()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        key = keypair(work)
        make_dcp_repo(work / "git")
        with GitDaemon(work / "git") as git:
            layer = bootstrap_layer(work / "node", key, git.url())
        with Sandbox(work / "box", key, layers=[layer]) as box:
            hook = box.root / "etc/profile.d/dcp-agent.sh"
            cache = box.root / "root/.cache/dcp-agent"
            cache.mkdir(parents=True, exist_ok=True)
            (box.root / "root/.aws").mkdir(exist_ok=True)
            (box.root / "root/.aws/credentials").write_text("[default]\naws_access_key_id = AKIAEXAMPLEEXAMPLE01\n"
                                                           "aws_secret_access_key = testing\n")
            for label, stale in (("warm cache", False), ("hanging endpoint", True)):
                (box.root / "root/.aws/config").write_text(
                    f"[default]\nregion = us-east-1\nendpoint_url = http://127.0.0.1:{silent.getsockname()[1]}\n")
                (cache / "login.txt").write_text("✓ ready for DCP (83 checks passed)\n")
                (cache / "ttl").write_text("0\n" if stale else "86400\n")   # ttl 0: every login starts a refresh
                with_hook = median_ms(box, key)
                hook.rename(hook.with_suffix(".off"))
                without = median_ms(box, key)
                hook.with_suffix(".off").rename(hook)
                rows.append((label, with_hook, without))
    for c in held:
        c.close()
    print(f"{machine()}; "
          f"median of {RUNS} interactive logins each")
    for label, with_hook, without in rows:
        print(f"{label:17s} with hook {with_hook:6.1f} ms   without {without:6.1f} ms   "
              f"added {with_hook - without:+6.1f} ms   ratio {with_hook / without:5.3f}   (target ≤ +20 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
