"""pytest-testinfra suite for any DCP control node: a bootstrapped host, a sandbox, an instance from the AMI."""

from __future__ import annotations

import json
from typing import Any

import pytest

MANIFEST = "/etc/dcp-control-node/manifest.json"


@pytest.fixture(scope="module")
def manifest(host: Any) -> dict[str, Any]:
    f = host.file(MANIFEST)
    assert f.exists, f"{MANIFEST} is missing"
    return dict(json.loads(f.content_string))


def test_os_packages(host: Any) -> None:
    for tool in ("git", "tmux", "parallel"):
        assert host.exists(tool), tool
    assert "GNU parallel" in host.check_output("parallel --version | head -1")
    assert host.check_output("aws --version 2>&1").startswith("aws-cli/2.")


def test_dcp_venv_has_a_maintained_python_and_requirements(host: Any, manifest: dict[str, Any]) -> None:
    py = host.file("/opt/dcp/venv/bin/python")
    assert py.exists
    # DCP needs >= 3.10 (Ubuntu 22.04's python3); the agent >= 3.11. Both final releases, both in the manifest.
    for venv, least, key in (("/opt/dcp/venv", (3, 10), "python"), ("/opt/dcp-agent/venv", (3, 11), "agent_python")):
        info = host.check_output(f"{venv}/bin/python -c 'import sys; print(*sys.version_info[:2], sys.version_info.releaselevel)'")
        major, minor, level = info.split()
        assert (int(major), int(minor)) >= least and level == "final", (venv, info)
        assert manifest[key] == host.check_output(f"{venv}/bin/python --version")
        assert manifest[f"{key}_path"].startswith("/usr/bin/python3")
    host.run_test("/opt/dcp/venv/bin/python -c 'import boto3'")
    clone = manifest["dcp_clone"]
    assert host.run(f"sha256sum {clone}/files/requirements.txt | cmp -s - /opt/dcp/venv/.requirements.sha256").rc == 0
    assert not clone.startswith("/opt/dcp/venv") and not host.file(f"{clone}/.venv").exists  # venv outside the clone


def test_dcp_clone(host: Any, manifest: dict[str, Any]) -> None:
    clone = manifest["dcp_clone"]
    for name in ("run.py", "config.py", "files/requirements.txt"):
        assert host.file(f"{clone}/{name}").exists, name
    assert host.check_output(f"git -C {clone} config remote.origin.url") == manifest["dcp_repo"]
    assert host.check_output(f"git -C {clone} rev-parse HEAD") == manifest["dcp_commit"]
    owner = host.file(clone).user
    assert host.file(f"{clone}/files").user == owner


def test_agent_installed_and_runnable(host: Any, manifest: dict[str, Any]) -> None:
    assert host.file("/usr/local/bin/dcp-agent").linked_to == "/opt/dcp-agent/venv/bin/dcp-agent"
    assert host.check_output("dcp-agent --version") == manifest["dcp_agent"]
    checks = json.loads(host.check_output("dcp-agent list --json"))
    assert len(checks) >= 80
    run = host.run("dcp-agent check --only L --json")
    assert run.rc in (0, 1), run.stderr
    doc = json.loads(run.stdout)
    assert {c["code"] for c in doc["checks"]} >= {"L01", "L04", "L05"}
    statuses = {c["code"]: c["status"] for c in doc["checks"]}
    assert statuses["L01"] == statuses["L04"] == "pass"


def test_agent_settings_and_login_hook(host: Any, manifest: dict[str, Any]) -> None:
    settings = host.file("/etc/dcp-agent/config.toml")
    assert settings.exists and settings.mode == 0o644
    assert manifest["dcp_clone"] in settings.content_string
    hook = host.file("/etc/profile.d/dcp-agent.sh")
    assert hook.exists and hook.user == "root" and hook.mode == 0o644
    host.run_test("sh -n /etc/profile.d/dcp-agent.sh")
    assert host.run("sh -c '. /etc/profile.d/dcp-agent.sh; echo $?'").stdout == "0\n"   # silent when not interactive


def test_manifest_records_versions(manifest: dict[str, Any]) -> None:
    for key in ("recipe_sha256", "python", "aws_cli", "git", "dcp_commit", "dcp_agent", "boto3"):
        assert manifest.get(key), key


def test_no_secrets_on_disk(host: Any) -> None:
    """Nothing the recipe wrote holds a credential value or a private key."""
    places = "/etc /root /home /var/tmp/dcp-stage /opt/dcp/venv/.requirements.sha256"
    values = host.run(f"grep -rlsIE '^[[:space:]]*(aws_secret_access_key|aws_session_token)[[:space:]]*=[[:space:]]*[^[:space:]]+' "
                      f"{places} 2>/dev/null || true")
    assert values.stdout.strip() == ""
    keys = host.run(f"grep -rlsI 'PRIVATE KEY-----' {places} 2>/dev/null | grep -v '^/etc/ssh/ssh_host_' || true")
    assert keys.stdout.strip() == ""
    assert host.run("ls /root/.aws/credentials /home/*/.aws/credentials 2>/dev/null || true").stdout.strip() == ""
