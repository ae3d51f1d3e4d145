"""The control node can be the user's own machine (DCP's Step 0): the agent installs alone, from its wheel,
with only its own dependencies, and the local checks are honest where Debian's tools are missing.

macOS does not run here: its answers are the ``host_os`` fact injected (what ``sys.platform == "darwin"``
gives), and its missing tools are a PATH without them, which is what a fresh Mac has."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from agent.facts import local
from agent.facts.local import HostOS, parse_os_release
from agent.model import Result
from bootstrap.stage import build_wheel
from rig.seed import DcpAccount
from tests.agent.cases import set_setting
from tests.agent.harness import Overrides, run_agent, set_path, tool_path

GUARD = Path(__file__).resolve().parents[2] / "rig" / "sitecustomize"
LOCAL_TOOLS = ["L04", "L06", "L07", "L08", "L09", "L11"]


@pytest.mark.parametrize("text, family", [
    ('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n', "debian"),
    ('NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\nPRETTY_NAME="Ubuntu 22.04.4 LTS"\n', "debian"),
    ('ID=linuxmint\nID_LIKE="ubuntu debian"\n', "debian"),
    ('NAME="Amazon Linux"\nID="amzn"\nID_LIKE="fedora"\nVERSION_ID="2023"\n', "amazon"),
    ('ID="rocky"\nID_LIKE="rhel centos fedora"\n', "rhel"),
    ('ID=fedora\n', "rhel"),
    ('ID=arch\nPRETTY_NAME="Arch Linux"\n', "linux"),
    ('NAME="Amazon Linux"\nID="amzn"\nVERSION_ID="2"\n', "linux"),      # yum, not dnf: the generic fixes
    ("", "linux"),
])
def test_os_release_decides_the_package_manager(text: str, family: str) -> None:
    assert parse_os_release(text).family == family


def test_the_real_host_is_read(account: DcpAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite runs on Debian or Ubuntu (the Makefile installs with apt-get): the fact, not injected, must
    say so, and a fix must say apt-get."""
    if parse_os_release(Path("/etc/os-release").read_text()).family != "debian":
        pytest.skip("this host is not Debian or Ubuntu")
    set_path(monkeypatch, tool_path(tmp_path))
    r = run_agent(account, ["L09"])["L09"]
    assert r.status == "warn" and r.fix == "sudo apt-get install -y tmux"


def _bare(account: DcpAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, family: str,
          **fakes: str) -> dict[str, Result]:
    set_path(monkeypatch, tool_path(tmp_path, fakes))
    results = run_agent(account, LOCAL_TOOLS, inject={local.host_os: lambda ctx: HostOS(family, family)})
    assert not [r for r in results.values() if r.status == "error"], results
    return results


def test_a_mac_without_the_tools_gets_homebrew_fixes(account: DcpAccount, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    results = _bare(account, tmp_path, monkeypatch, "macos", brew="exit 0")
    fixes = {code: r.fix for code, r in results.items()}
    assert "xcode-select --install" in fixes["L04"] and "brew install git" in fixes["L04"]
    assert "brew install awscli" in fixes["L06"]
    assert "brew install --cask macfuse && brew install gromgit/fuse/s3fs-mac" in fixes["L07"]
    assert fixes["L08"] == "brew install parallel"
    assert fixes["L09"] == "brew install tmux"
    assert not any("apt-get" in f or "dnf" in f for f in fixes.values()), fixes
    assert "Homebrew first" not in "".join(fixes.values())        # brew is there
    clock = results["L11"]
    assert clock.status == "skip" and "macOS" in clock.message


def test_a_mac_without_homebrew_is_told_to_get_it(account: DcpAccount, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    results = _bare(account, tmp_path, monkeypatch, "macos")
    assert "install Homebrew first: https://brew.sh" in results["L09"].fix


def test_moreutils_parallel_on_a_mac(account: DcpAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results = _bare(account, tmp_path, monkeypatch, "macos", brew="exit 0",
                    parallel='echo "parallel: invalid option"; exit 1')
    r = results["L08"]
    assert r.status == "warn" and "brew uninstall moreutils" in r.fix


@pytest.mark.parametrize("family, expect", [
    ("debian", ("sudo apt-get install -y tmux", ("dnf", "brew"))),
    ("amazon", ("sudo dnf install -y tmux", ("apt-get", "brew"))),
    ("linux", ("Debian/Ubuntu: sudo apt-get install -y tmux;  Amazon Linux: sudo dnf install -y tmux;  "
               "macOS: brew install tmux", ())),
])
def test_linux_fixes_name_the_platform_s_own_way(account: DcpAccount, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch, family: str,
                                                 expect: tuple[str, tuple[str, ...]]) -> None:
    says, never = expect
    results = _bare(account, tmp_path, monkeypatch, family)
    assert results["L09"].fix == says
    assert not any(n in results["L04"].fix for n in never)


def test_no_timedatectl_says_what_it_could_not_see(account: DcpAccount, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A Linux without systemd (a container, WSL 1): the state is unknown, which is not a failure."""
    r = _bare(account, tmp_path, monkeypatch, "debian")["L11"]
    assert r.status == "skip" and "could not be read" in r.message and "I02" in r.message


def test_homebrew_aws_cli_is_read_from_its_path_without_starting_it(account: DcpAccount, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Homebrew links bin/aws to ../Cellar/awscli/<version>[_<revision>]/bin/aws; starting it costs ~0.5 s."""
    cellar = tmp_path / "Cellar" / "awscli" / "2.22.4_1" / "bin"
    cellar.mkdir(parents=True)
    (cellar / "aws").write_text("#!/bin/sh\necho started >&2; exit 3\n")
    (cellar / "aws").chmod(0o755)
    path = tool_path(tmp_path)
    (Path(path) / "aws").symlink_to(cellar / "aws")
    set_path(monkeypatch, path)
    r = run_agent(account, ["L06"])["L06"]
    assert r.status == "pass" and r.message == "aws-cli/2.22.4"


# -- installed alone ---------------------------------------------------------------------------------

def _runtime_requirements(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode().splitlines()
    reqs = [Requirement(line.split(":", 1)[1].strip()) for line in lines if line.startswith("Requires-Dist:")]
    return [r for r in reqs if r.marker is None or r.marker.evaluate({"extra": ""})]


def _closure(names: list[str]) -> set[str]:
    """The distributions pip would install for these requirements, from this environment's metadata."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        dist = metadata.distribution(todo.pop())
        name = dist.metadata["Name"].lower()
        if name in seen:
            continue
        seen.add(name)
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def _link_dist(name: str, site: Path) -> None:
    """Make an installed distribution (and nothing else) importable in another venv."""
    dist = metadata.distribution(name)
    base = Path(str(dist.locate_file("")))
    tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
    for top in tops:
        src, dst = base / top, site / top
        if (src.exists() or top.endswith(".py")) and not dst.exists() and top != "__pycache__":
            dst.symlink_to(src)


def test_the_agent_installs_alone_and_runs_with_only_its_own_dependencies(account: DcpAccount,
                                                                          tmp_path: Path) -> None:
    """What ``pipx install <wheel>`` does: a venv of its own, the wheel, and its runtime requirements. pipx
    would fetch those from PyPI; here the same distributions come from this environment (loopback only)."""
    wheel = build_wheel()
    requirements = _runtime_requirements(wheel)
    assert sorted(r.name for r in requirements) == ["boto3", "rich"]     # not fabric, invoke, packer.py
    venv = tmp_path / "pipx-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                    "--no-deps", "--no-index", "--disable-pip-version-check", str(wheel)], check=True,
                   capture_output=True)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    for name in _closure([r.name for r in requirements]):
        _link_dist(name, site)
    py = str(venv / "bin" / "python")
    for absent in ("fabric", "invoke", "moto", "pytest", "rig"):
        p = subprocess.run([py, "-c", f"import {absent}"], capture_output=True, text=True, cwd=tmp_path, check=False,
                           env={**os.environ, "PYTHONPATH": str(GUARD)})
        assert p.returncode != 0, f"{absent} is importable in the agent's own venv"

    # No git, aws, parallel or timedatectl on PATH; PYTHONPATH holds only the loopback guard (rig/sitecustomize,
    # which the conftest puts there for every subprocess), none of the checkout's packages.
    env = {**os.environ, "PATH": tool_path(tmp_path), "PYTHONPATH": str(GUARD)}
    guarded = subprocess.run([py, "-c", "import sys; assert 'netguard' in sys.modules"], env=env, check=False)
    assert guarded.returncode == 0, "the loopback guard is not loaded in the agent's own venv"
    p = subprocess.run([str(venv / "bin" / "dcp-agent"), "check", "--json"], capture_output=True, text=True,
                       env=env, cwd=tmp_path, timeout=120, check=False)
    assert "Traceback" not in p.stdout + p.stderr, p.stderr[-2000:]
    doc = json.loads(p.stdout)
    by_code = {c["code"]: c for c in doc["checks"]}
    assert doc["summary"]["error"] == 0, [c for c in doc["checks"] if c["status"] == "error"]
    assert by_code["I01"]["status"] == "pass"                    # it reached the (emulated) account
    assert by_code["L04"]["status"] == "fail"                    # git really is missing on that PATH
    assert by_code["L11"]["status"] == "skip"                    # not "fail": it could not see


def test_apple_placeholders_are_not_run(account: DcpAccount, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """On a Mac without the Command Line Tools, /usr/bin/git and /usr/bin/python3 open an install dialog when
    run. ``xcode-select -p`` (exit 2 then) tells without running them; the placeholders must not be started."""
    ran = tmp_path / "ran"
    set_path(monkeypatch, tool_path(tmp_path, {"git": f"touch {ran}; exit 1"}))
    xcode_select(monkeypatch, tmp_path, "exit 2")
    results = run_agent(account, ["L01", "L04", "L05"], inject=MAC_WITH_APPLE_GIT)
    assert results["L04"].status == "fail" and "placeholder" in results["L04"].message
    assert results["L05"].status == "pass" and "origin was not read" in results["L05"].message
    assert not ran.exists()
    # DCP's interpreter set to Apple's python3 (a real Python on this Debian machine: a pass would mean it ran)
    set_setting(account, "python", "/usr/bin/python3")
    results = run_agent(account, ["L01"], inject=MAC_WITH_APPLE_GIT)
    assert results["L01"].status == "fail" and "python@3.12" in results["L01"].fix


MAC_WITH_APPLE_GIT: Overrides = {local.host_os: lambda ctx: HostOS("macos", "macOS 15.1"),
                      local.which: lambda ctx, tool: {"git": "/usr/bin/git"}.get(tool)}


def xcode_select(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, body: str) -> None:
    fake = tmp_path / "xcode-select"
    fake.write_text(f"#!/bin/sh\n{body}\n")
    fake.chmod(0o755)
    monkeypatch.setattr(local, "XCODE_SELECT", str(fake))


@pytest.mark.parametrize("answer, placeholder", [
    ("exit 2", True),                                        # no developer directory set
    ("echo /nonexistent/CommandLineTools", True),            # set, but the tools were removed (rm -rf)
    ("echo /", False),                                       # installed: the directory exists
    ("exit 1", False),                                       # an answer that proves nothing
])
def test_only_xcode_select_s_own_answers_make_a_placeholder(account: DcpAccount, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch, answer: str,
                                                            placeholder: bool) -> None:
    set_path(monkeypatch, tool_path(tmp_path, {"git": "echo git version 2.39.5"}))
    xcode_select(monkeypatch, tmp_path, answer)
    r = run_agent(account, ["L04"], inject=MAC_WITH_APPLE_GIT)["L04"]
    assert (r.status, "placeholder" in r.message) == (("fail", True) if placeholder else ("pass", False))


def test_a_clone_is_not_faulted_for_a_missing_git(account: DcpAccount, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Without git the origin cannot be read: L04 says git is missing, and L05 keeps its verdict on the clone."""
    set_path(monkeypatch, tool_path(tmp_path))
    results = run_agent(account, ["L04", "L05"])
    assert results["L04"].status == "fail"
    assert results["L05"].status == "pass" and "git is not installed" in results["L05"].message
