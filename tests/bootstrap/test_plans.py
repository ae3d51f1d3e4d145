"""Per-OS plans, at the plan level (facts in, commands out): Ubuntu and Amazon Linux cannot boot here."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bootstrap.facts import UnsupportedHost, parse_os_release
from bootstrap.recipe import (
    AWS_CLI_KEY_FINGERPRINT,
    AWS_CLI_VERSION,
    PARALLEL_SHA256,
    PARALLEL_VERSION,
    Options,
    plan,
    render_script,
)

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


def test_ubuntu_2204_uses_maintained_pythons_and_the_signed_cli_bundle() -> None:
    s = steps("ubuntu2204")
    # Ubuntu's own python3.11 on 22.04 is 3.11.0~rc1: DCP gets python3 (3.10, main), the agent deadsnakes' 3.11.
    assert "python3.11" not in s["packages"] and " awscli" not in s["packages"]
    assert "/usr/bin/python3 -m venv /opt/dcp/venv" in s["dcp-venv"]
    assert "ppa:deadsnakes/ppa" in s["agent-python"] and "releaselevel" in s["agent-python"]
    assert "/usr/bin/python3.11 -m venv /opt/dcp-agent/venv" in s["agent"]
    assert f"awscli.amazonaws.com/awscli-exe-linux-$(uname -m)-{AWS_CLI_VERSION}.zip" in s["aws-cli-v2"]
    assert f"VALIDSIG {AWS_CLI_KEY_FINGERPRINT} " in s["aws-cli-v2"]
    assert "python_path" in s["manifest"] and "agent_python_path" in s["manifest"]     # recorded on the node


def test_aws_cli_version_is_pinned_and_overridable() -> None:
    opts = Options(**{**OPTS.__dict__, "aws_cli_version": "2.30.1"})
    step = next(x for x in plan(parse_os_release(OS_RELEASE["ubuntu2404"]), opts) if x.name == "aws-cli-v2")
    assert "awscli-exe-linux-$(uname -m)-2.30.1.zip" in step.apply and "'^aws-cli/2.30.1 '" in step.check


def test_ubuntu_2404_uses_its_python_312_and_the_official_cli_bundle() -> None:
    s = steps("ubuntu2404")
    assert "python3-venv" in s["packages"] and "aws-cli-v2" in s
    assert "/home/ubuntu/Distributed-CellProfiler" in s["dcp-clone"]


def test_amazon_linux_2023_uses_dnf_python311_and_builds_gnu_parallel() -> None:
    s = steps("al2023")
    assert s["packages"].startswith("rpm -q") and "dnf install" in s["packages"]
    assert "python3.11" in s["packages"] and "awscli-2" in s["packages"]
    assert "/usr/bin/python3.11 -m venv" in s["dcp-venv"]          # /usr/bin/python3 stays 3.9 on AL2023
    assert f"ftp.gnu.org/gnu/parallel/parallel-{PARALLEL_VERSION}.tar.bz2" in s["gnu-parallel"]
    assert f"{PARALLEL_SHA256}  " in s["gnu-parallel"] and "sha256sum -c" in s["gnu-parallel"]
    assert "perl" in s["packages"]
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


def test_shipped_aws_cli_key_is_the_one_aws_publishes(tmp_path: Path) -> None:
    key = Path(__file__).resolve().parents[2] / "bootstrap/files/aws-cli-team.asc"
    out = subprocess.run(["gpg", "--homedir", str(tmp_path), "--batch", "--with-colons", "--show-keys", str(key)],
                         capture_output=True, text=True, check=True).stdout
    assert f"fpr:::::::::{AWS_CLI_KEY_FINGERPRINT}:" in out and "AWS CLI Team <aws-cli@amazon.com>" in out


def _gpg_key(home: Path) -> str:
    home.mkdir(mode=0o700)
    subprocess.run(["gpg", "--homedir", str(home), "--batch", "--passphrase", "", "--quick-gen-key",
                    "signer <signer@example.invalid>", "ed25519", "sign", "never"], check=True, capture_output=True)
    out = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--with-colons", "--list-keys"],
                         capture_output=True, text=True, check=True).stdout
    return next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))


@pytest.mark.parametrize("case", ["good", "other-key", "tampered"])
def test_aws_cli_bundle_installs_only_with_a_valid_signature_by_the_pinned_key(tmp_path: Path, case: str) -> None:
    """The aws-cli-v2 step's apply, run by bash with a stand-in for curl (it copies local files: nothing is
    downloaded) and a test signing key in place of AWS's (fingerprint and key file swapped in the script)."""
    import shutil

    from bootstrap.recipe import AWS_CLI_KEY, STAGE

    trusted, other = tmp_path / "trusted", tmp_path / "other"
    fp, other_fp = _gpg_key(trusted), _gpg_key(other)
    stage = tmp_path / "stage"
    stage.mkdir()
    subprocess.run(["gpg", "--homedir", str(trusted), "--batch", "--armor", "--export", fp],
                   stdout=(stage / AWS_CLI_KEY).open("wb"), check=True)
    # The "bundle": a zip whose aws/install leaves a marker.
    served = tmp_path / "served"
    (served / "aws").mkdir(parents=True)
    marker = tmp_path / "installed"
    (served / "aws/install").write_text(f"#!/bin/sh\ntouch {marker}\n")
    (served / "aws/install").chmod(0o755)
    import platform

    name = f"awscli-exe-linux-{platform.machine()}-{AWS_CLI_VERSION}.zip"
    subprocess.run(["python3", "-m", "zipfile", "-c", str(served / name), str(served / "aws")], check=True)
    signer = other if case == "other-key" else trusted
    subprocess.run(["gpg", "--homedir", str(signer), "--batch", "--detach-sign", "-o", str(served / f"{name}.sig"),
                    str(served / name)], check=True, capture_output=True)
    if case == "tampered":
        with (served / name).open("ab") as f:
            f.write(b"tampered")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "curl").write_text(f'#!/bin/sh\nfor a; do case "$a" in https://*) url=$a;; esac; done\n'
                                  f'while [ "$1" != -o ]; do shift; done\ncp "{served}/$(basename "$url")" "$2"\n')
    (bin_dir / "curl").chmod(0o755)
    step = next(x for x in plan(parse_os_release(OS_RELEASE["ubuntu2404"]), OPTS) if x.name == "aws-cli-v2")
    script = step.apply.replace(STAGE, str(stage)).replace(AWS_CLI_KEY_FINGERPRINT, fp)
    assert shutil.which("unzip"), "unzip is needed for this test"
    p = subprocess.run(["bash", "-c", f"set -euo pipefail; {script}"], capture_output=True, text=True, check=False,
                       env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)})
    if case == "good":
        assert p.returncode == 0, p.stderr
        assert marker.exists()
    else:
        assert p.returncode == 1, p.stderr
        assert "is not signed by the AWS CLI Team key" in p.stderr
        assert not marker.exists()
    assert other_fp != fp
