"""Per-OS plans, at the plan level (facts in, commands out): Ubuntu and Amazon Linux cannot boot here."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bootstrap.facts import UnsupportedHost, parse_os_release
from bootstrap.recipe import Options, plan, render_script

OS_RELEASE = {
    "debian12": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n',
    "debian13": 'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nID=debian\nVERSION_ID="13"\n',
    "ubuntu2204": 'PRETTY_NAME="Ubuntu 22.04.4 LTS"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="22.04"\n',
    "ubuntu2404": 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n',
    "al2023": 'NAME="Amazon Linux"\nVERSION="2023"\nID="amzn"\nID_LIKE="fedora"\nVERSION_ID="2023"\n'
              'PRETTY_NAME="Amazon Linux 2023.6.20241212"\n',
}
OPTS = Options(owner="ubuntu", owner_home="/home/ubuntu", wheel="dcp_control_node-0.1.0-py3-none-any.whl",
               wheel_sha256="ab" * 32, files_sha256={"config.toml": "cd" * 32, "dcp-agent.sh": "ef" * 32})


def steps(name: str) -> dict[str, str]:
    return {s.name: s.check + "\n" + s.apply for s in plan(parse_os_release(OS_RELEASE[name]), OPTS)}


def test_debian_uses_distribution_awscli_v2_and_python3() -> None:
    s = steps("debian12")
    assert "awscli" in s["packages"] and "python3-venv" in s["packages"] and "parallel" in s["packages"]
    assert "aws-cli-v2" not in s
    assert "/usr/bin/python3 -m venv /opt/dcp/venv" in s["dcp-venv"]
    assert "awscli" in steps("debian13")["packages"]


def test_ubuntu_2204_gets_python311_and_the_official_cli_bundle() -> None:
    s = steps("ubuntu2204")
    assert "python3.11-venv" in s["packages"] and " awscli" not in s["packages"]
    assert "/usr/bin/python3.11 -m venv /opt/dcp/venv" in s["dcp-venv"]
    assert "awscli.amazonaws.com/awscli-exe-linux-$(uname -m).zip" in s["aws-cli-v2"]


def test_ubuntu_2404_uses_its_python_312_and_the_official_cli_bundle() -> None:
    s = steps("ubuntu2404")
    assert "python3-venv" in s["packages"] and "aws-cli-v2" in s
    assert "/home/ubuntu/Distributed-CellProfiler" in s["dcp-clone"]


def test_amazon_linux_2023_uses_dnf_python311_and_builds_gnu_parallel() -> None:
    s = steps("al2023")
    assert s["packages"].startswith("rpm -q") and "dnf install" in s["packages"]
    assert "python3.11" in s["packages"] and "awscli-2" in s["packages"]
    assert "/usr/bin/python3.11 -m venv" in s["dcp-venv"]          # /usr/bin/python3 stays 3.9 on AL2023
    assert "ftp.gnu.org/gnu/parallel" in s["gnu-parallel"]
    assert "s3fs" not in s["packages"]                               # not in AL2023's repositories


@pytest.mark.parametrize("text", ['ID=centos\nVERSION_ID="7"\nPRETTY_NAME="CentOS Linux 7"\n',
                                  'ID=ubuntu\nVERSION_ID="20.04"\nPRETTY_NAME="Ubuntu 20.04"\n', ""])
def test_other_systems_are_refused(text: str) -> None:
    with pytest.raises(UnsupportedHost, match="is not supported"):
        parse_os_release(text)


def test_without_s3fs() -> None:
    opts = Options(**{**OPTS.__dict__, "s3fs": False})
    assert "s3fs" not in plan(parse_os_release(OS_RELEASE["debian12"]), opts)[0].apply


def test_rendered_script_is_valid_bash_and_covers_every_os() -> None:
    script = render_script(OPTS)
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    for case in ("debian:12)", "debian:13)", "ubuntu:22.04)", "ubuntu:24.04)", "amzn:2023)"):
        assert case in script
    assert script.count("run_step dcp-clone ") == 5


def test_agent_wheel_is_checked_against_its_sha256_before_anything_is_installed(tmp_path: Path) -> None:
    """The agent step's apply, run by bash on a staged wheel: a wheel whose sha256 differs is refused before the
    old venv is removed or pip runs (STAGE and AGENT_VENV pointed into tmp_path)."""
    from bootstrap.recipe import AGENT_VENV, STAGE

    wheel = tmp_path / "stage" / OPTS.wheel
    wheel.parent.mkdir()
    wheel.write_bytes(b"not the staged wheel")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    agent = next(s for s in plan(parse_os_release(OS_RELEASE["debian12"]), OPTS) if s.name == "agent")
    script = agent.apply.replace(STAGE, str(wheel.parent)).replace(AGENT_VENV, str(venv))
    p = subprocess.run(["bash", "-c", f"set -euo pipefail; {script}"], capture_output=True, text=True, check=False)
    assert p.returncode == 1
    assert p.stderr.strip() == f"the agent wheel {wheel} is not the one staged (sha256 differs): not installed"
    assert (venv / "bin").is_dir()                          # the installed agent was left as it was
