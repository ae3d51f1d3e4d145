"""The registry's contract: checks only judge (no client call, no other check module imported), prerequisites
are references that resolve, the shipped policy is the one the registry generates and covers every fact,
and one selection serves `check`, the login summary and the tests alike."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent import facts, policy
from agent.facts.core import FACTS
from agent.registry import REGISTRY, Check, Gate, all_checks, select
from agent.settings import Settings
from rig.seed import DLQ, DcpAccount

CHECKS_DIR = Path(__file__).resolve().parents[2] / "agent" / "checks"
AGENT = str(Path(sys.executable).parent / "dcp-agent")


def test_checks_only_judge() -> None:
    """No check module calls a client or a session, or imports another check module (shared helpers, the
    modules named _*.py, are not check modules)."""
    offences = []
    for path in sorted(CHECKS_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                    "client", "resource", "Session", "get_credentials"):
                offences.append(f"{path.name}:{node.lineno} calls .{node.func.attr}()")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("agent.checks.") and \
                    not (node.module or "").rsplit(".", 1)[-1].startswith("_"):
                offences.append(f"{path.name}:{node.lineno} imports {node.module}")
            if isinstance(node, ast.Import) and any(a.name.startswith(("boto3", "botocore", "agent.checks."))
                                                    for a in node.names):
                offences.append(f"{path.name}:{node.lineno} imports {[a.name for a in node.names]}")
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("boto3", "botocore"):
                offences.append(f"{path.name}:{node.lineno} imports {node.module}")
    assert offences == []


def test_prerequisites_are_references_that_resolve() -> None:
    checks = all_checks()
    for c in checks:
        assert all(isinstance(n, Check | Gate) for n in c.requires), c.id
        assert all(d in REGISTRY for d in c.needs), c.id
    # Every gate a check names is provided by exactly one check (checked when the registry loads).
    gates = {n for c in checks for n in c.requires if isinstance(n, Gate)}
    providers = [c.provides for c in checks if c.provides is not None]
    assert gates <= set(providers) and len(providers) == len(set(providers))


def test_shipped_policy_is_generated_from_the_registry() -> None:
    assert policy.SHIPPED.read_text(encoding="utf-8") == policy.render(), \
        "agent/data/policy.json is stale: run .venv/bin/python -m agent.policy --write"


def test_every_fact_is_covered_by_the_policy_or_an_opt_in() -> None:
    """Every read is granted by the checks' policy, or (the reads only fix and fleet make) by fix's policy."""
    from agent.fix import policy as fix_policy

    granted = set(policy.actions()) | policy.ALWAYS_ALLOWED | set(fix_policy.actions())
    opt_in = {a for c in all_checks() if c.opt_in for a in c.actions}
    missing = {f.name: sorted(set(f.actions) - granted - opt_in) for f in FACTS if set(f.actions) - granted - opt_in}
    assert missing == {}
    assert facts.ec2.dry_run_launch.actions == ("ec2:RunInstances", "iam:PassRole")   # opt-in only


@pytest.mark.parametrize("name", ["sqs.dead-letter-queue", "Q02", "Q"])
def test_suppressions_by_id_code_or_group_select_the_same(name: str) -> None:
    s = Settings(suppress={name: "we know"}, enable=[])
    sel = select(s)
    assert sel.suppress["sqs.dead-letter-queue"] == "we know"
    if name == "Q":
        assert {c for c in sel.suppress} == {c.id for c in all_checks() if c.code.startswith("Q")}


@pytest.mark.parametrize("name", ["ec2.dry-run-launch", "N10", "N"])
def test_enables_by_id_code_or_group_select_the_same(name: str) -> None:
    assert "ec2.dry-run-launch" in {c.id for c in select(Settings(enable=[name])).checks}
    assert "ec2.dry-run-launch" not in {c.id for c in select(Settings()).checks}


def test_unknown_names_are_a_one_line_error() -> None:
    with pytest.raises(ValueError, match="unknown check 'Q99'"):
        select(Settings(suppress={"Q99": "typo"}))
    with pytest.raises(ValueError, match="unknown check 'X'"):
        select(Settings(enable=["X"]))


@pytest.mark.parametrize("suppress,enable", [("sqs.dead-letter-queue", "ec2.dry-run-launch"), ("Q02", "N10"),
                                             ("Q", "N")])
def test_check_and_login_summary_select_alike(account: DcpAccount, suppress: str, enable: str) -> None:
    """The same settings, the same verdicts: `dcp-agent check` and the login refresh run one selection."""
    sqs = account.client("sqs")
    sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=DLQ)["QueueUrl"])   # Q02 would warn
    account.write_settings(f'enable = ["{enable}"]\n[suppress]\n"{suppress}" = "created by run.py setup"\n')
    env = dict(os.environ)
    check = subprocess.run([AGENT, "check", "--json"], capture_output=True, text=True, env=env, timeout=120,
                           check=False)
    assert check.returncode in (0, 1), check.stderr + check.stdout[-3000:]
    login = subprocess.run([AGENT, "login", "--refresh"], capture_output=True, text=True, env=env, timeout=120,
                           check=False)
    assert login.returncode in (0, 1), login.stderr   # the verdict's status, as check's
    cache = Path(env["XDG_CACHE_HOME"]) / "dcp-agent"
    by_check = {c["code"]: c for c in json.loads(check.stdout)["checks"]}
    by_login = {c["code"]: c for c in json.loads((cache / "last.json").read_text())["checks"]}
    assert by_check["Q02"]["status"] == by_login["Q02"]["status"] == "skip"
    assert by_check["Q02"]["message"] == by_login["Q02"]["message"] == "suppressed: created by run.py setup"
    assert "N10" in by_check and "N10" in by_login            # the opt-in ran in both
    assert set(by_check) == set(by_login)
    assert "Q02" not in (cache / "login.txt").read_text()
