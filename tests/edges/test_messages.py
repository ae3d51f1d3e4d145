"""Messages say what is true: a broken file is one finding and what depends on it says it was skipped because of
it; a path that cannot be looked at is not "missing"; a fix never suggests what cannot work; output to a pipe is
whole."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from agent.registry import all_checks
from rig.seed import DcpAccount

AGENT = str(Path(sys.executable).parent / "dcp-agent")


def check_json(account: DcpAccount, *args: str) -> dict[str, dict[str, Any]]:
    p = subprocess.run([AGENT, "check", "--json", *args], capture_output=True, text=True, env=account.env(),
                       timeout=120, check=False)
    assert "Traceback" not in p.stdout + p.stderr and p.returncode in (0, 1, 3), p.stderr
    return {c["code"]: c for c in json.loads(p.stdout)["checks"]}


def test_a_broken_aws_config_is_one_finding(account: DcpAccount) -> None:
    account.aws_config.write_text("[default\nregion = us-east-1\n")   # an unclosed section header
    by = check_json(account, "--only", "C")
    assert by["C01"]["status"] == "fail" and "cannot parse" in by["C01"]["message"]
    for code in ("C03", "C04"):
        assert by[code]["status"] == "skip", by[code]
        assert "(C01)" in by[code]["message"], by[code]   # skipped because of C01, no invented cause
    said = " ".join(c["message"] for c in by.values())
    assert "no [default]" not in said and "cannot copy" not in said


def test_a_key_that_cannot_be_looked_at_is_not_missing(account: DcpAccount) -> None:
    ssh = account.home / ".ssh"
    ssh.mkdir(exist_ok=True)
    key = ssh / "dcp-key.pem"
    key.unlink(missing_ok=True)
    key.symlink_to(key)   # a loop: stat fails with ELOOP, not ENOENT (as root, a mode of 000 stops nothing)
    l10 = check_json(account, "--only", "L10")["L10"]
    assert l10["status"] == "warn" and l10["message"].startswith(f"cannot read {key} ("), l10
    assert "does not exist" not in l10["message"]


def test_an_incomplete_clone_is_not_told_to_clone_again(account: DcpAccount) -> None:
    (account.clone / "run.py").unlink()
    l05 = check_json(account, "--only", "L05")["L05"]
    assert l05["status"] == "fail" and "run.py" in l05["message"]
    assert "git clone" not in l05["fix"] and f"git -C {account.clone} checkout -- run.py" in l05["fix"], l05


def test_list_to_a_pipe_is_whole_lines() -> None:
    p = subprocess.run([AGENT, "list"], capture_output=True, text=True, timeout=60, check=True,
                       env={"PATH": "/usr/bin:/bin", "COLUMNS": "40", "HOME": "/nonexistent"})
    rows = [line.split("\t") for line in p.stdout.splitlines()]
    assert rows[0] == ["code", "id", "severity", "title", "IAM actions"]
    assert len(rows) == len(all_checks()) + 1 and all(len(r) == 5 for r in rows)
    assert {r[1] for r in rows[1:]} == {c.id for c in all_checks()}   # no id cut short
    assert {r[3].removesuffix(" (opt-in)") for r in rows[1:]} == {c.title for c in all_checks()}
