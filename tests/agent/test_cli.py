"""The command-line contract: exit codes, one JSON document, one-line usage errors, no tracebacks, no secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rig.seed import DcpAccount

AGENT = str(Path(sys.executable).parent / "dcp-agent")


def agent(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AGENT, *args], capture_output=True, text=True, env=env or dict(os.environ), check=False,
                          timeout=120, stdin=subprocess.DEVNULL)


def no_traceback(p: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in p.stdout + p.stderr


def test_json_is_one_document_and_exit_zero_when_healthy(account: DcpAccount) -> None:
    p = agent("check", "--json")
    assert p.returncode == 0, p.stdout[-2000:]
    doc = json.loads(p.stdout)               # the whole of stdout is one document
    assert doc["version"] == 2
    assert doc["verdict"] == "ready" and doc["exit_status"] == 0 and doc["cause"] == ""
    assert set(doc["summary"]) == {"pass", "warn", "fail", "skip", "error", "unknown", "duration_ms"}
    assert doc["summary"]["fail"] == doc["summary"]["error"] == 0
    first = doc["checks"][0]
    assert set(first) >= {"id", "code", "title", "status", "severity", "message", "fix", "duration_ms"}
    assert {c["status"] for c in doc["checks"]} <= {"pass", "warn", "fail", "skip", "error", "unknown"}
    assert len({c["id"] for c in doc["checks"]}) == len(doc["checks"])


def test_exit_one_and_grouped_human_output_on_a_problem(account: DcpAccount) -> None:
    account.edit_config(AWS_REGION="us-east-1a")
    p = agent("check")
    assert p.returncode == 1
    assert "AWS config and profile" in p.stdout and "✗ C08" in p.stdout
    assert "fix: set AWS_REGION = 'us-east-1' in config.py" in p.stdout
    assert p.stdout.rstrip().splitlines()[-1].startswith("not ready for DCP: ")
    assert "\x1b[" not in p.stdout          # no colour when stdout is not a terminal


def test_only_and_skip_select_checks(account: DcpAccount) -> None:
    doc = json.loads(agent("check", "--json", "--only", "R04").stdout)
    assert {c["code"] for c in doc["checks"]} == {"R04", "I01", "C01"}   # R04 and what it needs
    doc = json.loads(agent("check", "--json", "--skip", "L", "R").stdout)
    assert not [c for c in doc["checks"] if c["code"][0] in "LR"]


@pytest.mark.parametrize("args, message", [
    (["check", "--bogus"], "unrecognized arguments: --bogus"),
    (["check", "--only", "Z99"], "unknown check 'Z99'"),
    (["check", "--fleet", "/nonexistent/fleet.json"], "fleet file /nonexistent/fleet.json does not exist"),
    (["check", "--config", "/etc"], "config file /etc is a directory, not a file"),
    (["frobnicate"], "invalid choice"),
    ([], "say what to do"),
])
def test_usage_errors_exit_two_with_one_line(args: list[str], message: str) -> None:
    p = agent(*args)
    assert p.returncode == 2
    assert p.stdout == ""
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert message in p.stderr
    no_traceback(p)


def test_broken_settings_file_is_a_usage_error(account: DcpAccount) -> None:
    account.settings.write_text("dcp_clone = [unclosed\n")
    p = agent("check")
    assert p.returncode == 2 and "is not valid TOML" in p.stderr and len(p.stderr.splitlines()) == 1
    account.settings.write_text('fleeet = "x"\n')
    p = agent("check")
    assert p.returncode == 2 and "unknown setting 'fleeet'" in p.stderr


@pytest.mark.parametrize("breakage", ["config-syntax", "fleet-not-json", "fleet-no-specs", "aws-config-garbled",
                                      "unknown-profile", "config-binary"])
def test_malformed_inputs_become_findings_not_tracebacks(account: DcpAccount, breakage: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    if breakage == "config-syntax":
        account.config_py.write_text("APP_NAME = 'x\n")
    elif breakage == "config-binary":
        account.config_py.write_bytes(b"\xff\xfe\x00garbage")
    elif breakage == "fleet-not-json":
        account.fleet.write_text("IamFleetRole: nope")
    elif breakage == "fleet-no-specs":
        account.fleet.write_text('{"IamFleetRole": "arn:aws:iam::1:role/x", "LaunchSpecifications": []}')
    elif breakage == "aws-config-garbled":
        account.aws_config.write_text("region = us-east-1\n[default\n")
    elif breakage == "unknown-profile":
        monkeypatch.setenv("AWS_PROFILE", "does-not-exist")
    p = agent("check", "--json")
    no_traceback(p)
    assert p.returncode == 1
    doc = json.loads(p.stdout)
    assert doc["summary"]["fail"] >= 1
    assert doc["summary"]["error"] == 0, [c for c in doc["checks"] if c["status"] == "error"]


def test_list_and_policy(account: DcpAccount) -> None:
    checks = json.loads(agent("list", "--json").stdout)
    assert len(checks) >= 80
    assert {"id", "code", "title", "severity", "actions"} <= set(checks[0])
    r04 = next(c for c in checks if c["code"] == "R04")
    assert "iam:GetRole" in r04["actions"]
    assert "R04" in agent("list").stdout
    policy = json.loads(agent("policy").stdout)
    allowed = {a for st in policy["Statement"] for a in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]])}
    needed = {a for c in checks if not c["opt_in"] for a in c["actions"] if a != "sts:GetCallerIdentity"}
    assert needed <= allowed, needed - allowed
    assert not any(a.split(":")[1].startswith(("Create", "Put", "Delete", "Run", "Attach")) for a in allowed)


def test_secrets_never_appear_in_any_output(account: DcpAccount) -> None:
    """Canary: the operator's secret key and a session token are nowhere in stdout, stderr or JSON."""
    canary = "CANARYtokenDoNotPrint0123456789abcdefABCDEF"
    account.aws_credentials.write_text(account.aws_credentials.read_text() + f"aws_session_token = {canary}\n")
    account.edit_config(AWS_REGION="us-east-1a")   # a failing run prints the most
    outputs = [agent("check", "-v"), agent("check", "--json"), agent("check", "--only", "C05", "-v")]
    text = "".join(p.stdout + p.stderr for p in outputs)
    assert "aws.no-temporary-keys" in text        # the check about these very keys ran and reported
    assert account.secret_access_key not in text
    assert canary not in text
    assert account.access_key_id not in text      # key ids are shortened (AKIA…XXXX) when shown at all


def test_suppressions_by_id_code_or_group_show_as_skipped_with_the_reason(account: DcpAccount) -> None:
    account.edit_config(AWS_REGION="us-east-1a")
    account.write_settings('[suppress]\nC08 = "we run in one region only"\n"iam.spot-fleet-role" = "accepted"\n')
    p = agent("check", "--json", "--only", "C08", "R04")
    assert p.returncode == 0
    status = {c["code"]: (c["status"], c["message"]) for c in json.loads(p.stdout)["checks"]}
    assert status["C08"] == ("skip", "suppressed: we run in one region only")
    assert status["R04"][0] == "pass"                      # a passing check is shown as it is
    account.write_settings('[suppress]\nZ99 = "typo"\n')
    p = agent("check")
    assert p.returncode == 2 and "unknown check 'Z99'" in p.stderr
