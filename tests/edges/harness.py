"""The edge-case table's shape and its runner: one row is one user-facing command on one bad or awkward input.

For every row the runner asserts what the issue "Trustworthy at the edges" asks of every command:
no "Traceback" anywhere, the expected exit status, exactly one line on stderr naming the problem (for
usage errors), a bounded time, and that nothing outside the intended target changed: the files under
HOME, the git work tree, and (when the row runs against the emulated account) the account's resources.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Case:
    """``argv[0]`` is ``dcp-agent``, ``invoke`` or ``python`` (this interpreter); ``{tmp}`` in an argument, an
    environment value or a file's content is a fresh directory; ``files`` are created under it first (bytes,
    or None for a directory), then ``links`` (relative path -> target) and ``modes``; ``env`` values of None
    delete the variable. ``expect_exit`` may be a tuple of allowed statuses. ``may_change`` names paths under
    HOME the command is meant to write (its error logs always may be written)."""

    name: str
    argv: list[str]
    expect_exit: int | tuple[int, ...] = 2
    stderr_has: str = ""
    env: dict[str, str | None] = field(default_factory=dict)
    files: dict[str, bytes | None] = field(default_factory=dict)
    max_seconds: float = 20.0
    one_line: bool = True
    modes: dict[str, int] = field(default_factory=dict)       # relative path under {tmp} -> chmod mode
    stdout: str = "pipe"                                      # "pipe", "closed" (read end closed), "devnull"
    stdout_has: str = ""
    links: dict[str, str] = field(default_factory=dict)
    may_change: tuple[str, ...] = ()


def tree_state(root: Path) -> dict[str, tuple[int, str]]:
    """Every entry under ``root``: its mode and a digest of its content (a symlink's target)."""
    out: dict[str, tuple[int, str]] = {}
    if not root.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            rel = str(p.relative_to(root))
            try:
                st = p.lstat()
            except OSError:
                continue
            if p.is_symlink():
                out[rel] = (st.st_mode, "->" + os.readlink(p))
            elif p.is_file():
                try:
                    out[rel] = (st.st_mode, hashlib.sha256(p.read_bytes()).hexdigest())
                except OSError:
                    out[rel] = (st.st_mode, "unreadable")
            else:
                out[rel] = (st.st_mode, "")
    return out


def work_tree_state() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--ignored=no"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout


def _fill(text: str, tmp: Path) -> str:
    return text.replace("{tmp}", str(tmp))


def prepare(case: Case, tmp: Path) -> tuple[list[str], dict[str, str]]:
    for rel, content in case.files.items():
        p = tmp / _fill(rel, tmp)
        if content is None:
            p.mkdir(parents=True, exist_ok=True)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(_fill(content.decode("latin-1"), tmp).encode("latin-1"))
    for rel, target in case.links.items():
        (tmp / rel).symlink_to(_fill(target, tmp))
    argv = [_fill(a, tmp) for a in case.argv]
    head = {"dcp-agent": [str(BIN / "dcp-agent")], "invoke": [str(BIN / "invoke")], "python": [sys.executable]}
    argv = head[argv[0]] + argv[1:] if argv[0] in head else argv
    return argv, {k: (None if v is None else _fill(v, tmp)) for k, v in case.env.items()}  # type: ignore[misc]


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str
    seconds: float


def run_case(case: Case, tmp: Path, base_env: dict[str, str]) -> Ran:
    argv, overrides = prepare(case, tmp)
    env = dict(base_env)
    for k, v in overrides.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    for rel, mode in case.modes.items():
        (tmp / rel).chmod(mode)
    start = time.monotonic()
    try:
        if case.stdout == "closed":
            r, w = os.pipe()
            os.close(r)                 # the reader has gone: the first write gets EPIPE
            try:
                p = subprocess.run(argv, stdout=w, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env,
                                   cwd=ROOT, timeout=case.max_seconds + 30, check=False)
            finally:
                os.close(w)
            out, err = "", p.stderr.decode(errors="replace")
        else:
            p = subprocess.run(argv, capture_output=case.stdout == "pipe", stdin=subprocess.DEVNULL, env=env,
                               cwd=ROOT, timeout=case.max_seconds + 30, check=False,
                               stdout=subprocess.DEVNULL if case.stdout == "devnull" else None)
            out = (p.stdout or b"").decode(errors="replace") if case.stdout == "pipe" else ""
            err = (p.stderr or b"").decode(errors="replace") if case.stdout == "pipe" else ""
    finally:
        for rel in case.modes:
            (tmp / rel).chmod(0o700)
    return Ran(p.returncode, out, err, time.monotonic() - start)


def check_ran(case: Case, ran: Ran) -> list[str]:
    """What is wrong with how the command answered (empty: all is well)."""
    problems = []
    both = ran.stdout + ran.stderr
    if "Traceback" in both:
        problems.append("a traceback was printed")
    allowed = case.expect_exit if isinstance(case.expect_exit, tuple) else (case.expect_exit,)
    if ran.code not in allowed:
        problems.append(f"exit {ran.code}, expected {allowed}")
    lines = [line for line in ran.stderr.splitlines() if line.strip()]
    if case.one_line and len(lines) != 1:
        problems.append(f"{len(lines)} lines on stderr, expected exactly one")
    if case.stderr_has and case.stderr_has.lower() not in ran.stderr.lower():
        problems.append(f"stderr does not say {case.stderr_has!r}")
    if case.stdout_has and case.stdout_has not in ran.stdout:
        problems.append(f"stdout does not say {case.stdout_has!r}")
    if ran.seconds > case.max_seconds:
        problems.append(f"took {ran.seconds:.1f} s (bound {case.max_seconds} s)")
    for line in lines:
        if len(line) > 1200:
            problems.append(f"a stderr line of {len(line)} characters")
    return problems


def account_state(client: Any) -> dict[str, Any]:
    """What a write could have changed in the emulated account (cheap reads, sorted)."""
    iam, ec2, s3, sqs = (client(s) for s in ("iam", "ec2", "s3", "sqs"))
    return {
        "roles": sorted(r["RoleName"] for r in iam.list_roles()["Roles"]),
        "profiles": sorted(p["InstanceProfileName"] for p in iam.list_instance_profiles()["InstanceProfiles"]),
        "buckets": sorted(b["Name"] for b in s3.list_buckets()["Buckets"]),
        "queues": sorted(sqs.list_queues().get("QueueUrls", [])),
        "groups": sorted((g["GroupName"], len(g["IpPermissions"])) for g in ec2.describe_security_groups()["SecurityGroups"]),
        "keys": sorted(k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]),
        "instances": sorted(i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]),
    }
