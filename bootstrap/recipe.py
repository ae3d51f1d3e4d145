"""The one recipe that makes a DCP control node: used by ``invoke bootstrap`` (over SSH, step by step) and
by ``invoke build-ami`` (rendered into one shell script that Packer runs). Each step is state-based: a
``check`` that exits 0 when the host is already as wanted, and an ``apply`` that makes it so. Every step
runs as root.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from bootstrap.facts import SUPPORTED, OsInfo

STAGE = "/var/tmp/dcp-stage"  # noqa: S108 - on the target host, root-only (0700): the uploaded files
DCP_VENV = "/opt/dcp/venv"
AGENT_VENV = "/opt/dcp-agent/venv"
MANIFEST = "/etc/dcp-control-node/manifest.json"
DEFAULT_REPO = "https://github.com/DistributedScience/Distributed-CellProfiler.git"


@dataclass(frozen=True)
class Step:
    name: str
    check: str
    apply: str
    why: str = ""


@dataclass(frozen=True)
class Options:
    repo_url: str = DEFAULT_REPO
    ref: str = "master"
    owner: str = "root"                 # who owns the DCP clone (the SSH user on a bootstrapped host)
    owner_home: str = "/root"
    s3fs: bool = True
    wheel: str = ""                     # file name of the agent wheel inside STAGE
    wheel_sha256: str = ""
    files_sha256: dict[str, str] = field(default_factory=dict)   # staged file name -> sha256

    @property
    def clone(self) -> str:
        return f"{self.owner_home}/Distributed-CellProfiler"


def _q(s: str) -> str:
    return shlex.quote(s)


def packages(os_info: OsInfo, opts: Options) -> tuple[list[str], str]:
    """The distribution packages and the Python interpreter the DCP venv uses."""
    if os_info.family == "dnf":
        pkgs = ["git", "python3.11", "python3.11-pip", "tmux", "tar", "bzip2", "awscli-2"]
        return pkgs, "/usr/bin/python3.11"
    pkgs = ["git", "ca-certificates", "tmux", "parallel", "sudo"]
    python = "/usr/bin/python3"
    if os_info.key == ("ubuntu", "22.04"):
        pkgs += ["python3.11", "python3.11-venv"]
        python = "/usr/bin/python3.11"
    else:
        pkgs += ["python3", "python3-venv"]
    if os_info.id == "debian":
        pkgs.append("awscli")                 # Debian 12 and 13 package AWS CLI v2
    else:
        pkgs += ["curl", "unzip"]             # Ubuntu: v1 (22.04) or none (24.04): the official v2 bundle
    if opts.s3fs:
        pkgs.append("s3fs")
    return pkgs, python


def _package_step(os_info: OsInfo, pkgs: list[str]) -> Step:
    if os_info.family == "dnf":
        return Step("packages", f"rpm -q {' '.join(pkgs)} >/dev/null 2>&1",
                    f"dnf install -y -q {' '.join(pkgs)}", "git, Python 3.11, tmux, AWS CLI v2")
    names = " ".join(pkgs)
    check = (f"test \"$(dpkg-query -W -f='${{Status}}\\n' {names} 2>/dev/null | grep -c 'ok installed')\" "
             f"-eq {len(pkgs)}")
    apply = ("export DEBIAN_FRONTEND=noninteractive; "
             "apt-get -o DPkg::Lock::Timeout=120 update -qq && "
             f"apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends {names}")
    return Step("packages", check, apply, "git, Python ≥ 3.11 with venv, GNU parallel, tmux, AWS CLI, s3fs")


def plan(os_info: OsInfo, opts: Options) -> list[Step]:
    pkgs, python = packages(os_info, opts)
    steps = [_package_step(os_info, pkgs)]
    if os_info.id == "ubuntu":
        steps.append(Step(
            "aws-cli-v2", "aws --version 2>&1 | grep -q '^aws-cli/2'",
            "tmp=$(mktemp -d) && curl -fsSL https://awscli.amazonaws.com/awscli-exe-linux-$(uname -m).zip "
            "-o $tmp/awscliv2.zip && unzip -q $tmp/awscliv2.zip -d $tmp && $tmp/aws/install --update && rm -rf $tmp",
            "AWS CLI v2 from the official bundle (Ubuntu packages v1 or none)"))
    if os_info.family == "dnf":
        steps.append(Step(
            "gnu-parallel", "parallel --version 2>/dev/null | grep -q 'GNU parallel'",
            "tmp=$(mktemp -d) && curl -fsSL https://ftp.gnu.org/gnu/parallel/parallel-latest.tar.bz2 | "
            "tar -xj -C $tmp && cd $tmp/parallel-* && ./configure -q && make -s install && rm -rf $tmp",
            "GNU parallel is not in the Amazon Linux 2023 repositories; built from GNU's release"))
    clone, url, ref = _q(opts.clone), _q(opts.repo_url), _q(opts.ref)
    steps.append(Step(
        "dcp-clone",
        f"git -C {clone} rev-parse --git-dir >/dev/null 2>&1 && "
        f"test \"$(git -C {clone} config remote.origin.url)\" = {url} && "
        f"test \"$(git -C {clone} rev-parse HEAD)\" = \"$(git -C {clone} rev-parse -q --verify {ref}^{{commit}})\" && "
        f"test \"$(stat -c %U {clone})\" = {_q(opts.owner)}",
        # Never delete: a broken or foreign folder is moved aside, then a fresh clone is made.
        f"if ! git -C {clone} rev-parse --git-dir >/dev/null 2>&1 || "
        f"[ \"$(git -C {clone} config remote.origin.url)\" != {url} ]; then "
        f"  if [ -e {clone} ]; then mv {clone} {clone}.moved-$(date +%Y%m%d%H%M%S); fi; "
        f"  git clone -q {url} {clone}.partial && mv {clone}.partial {clone}; fi; "
        f"git -C {clone} fetch -q origin && git -C {clone} -c advice.detachedHead=false checkout -q {ref} && "
        f"git -C {clone} merge -q --ff-only @{{u}} 2>/dev/null; "
        f"chown -R {_q(opts.owner)}: {clone}",
        f"Distributed-CellProfiler at {opts.ref}, owned by {opts.owner}"))
    req = f"{opts.clone}/files/requirements.txt"
    marker = f"{DCP_VENV}/.requirements.sha256"
    steps.append(Step(
        "dcp-venv",
        f"{DCP_VENV}/bin/python -c 'import boto3' 2>/dev/null && sha256sum {_q(req)} | cmp -s - {marker}",
        # The marker is written last: an interrupted run leaves no marker and the next run starts over.
        f"rm -rf {DCP_VENV} && {python} -m venv {DCP_VENV} && "
        f"{DCP_VENV}/bin/pip install -q --disable-pip-version-check -r {_q(req)} && "
        f"sha256sum {_q(req)} > {marker}",
        "a virtualenv outside the clone with DCP's files/requirements.txt"))
    amarker = f"{AGENT_VENV}/.wheel.sha256"
    steps.append(Step(
        "agent",
        f"{AGENT_VENV}/bin/dcp-agent --version >/dev/null 2>&1 && test \"$(cat {amarker} 2>/dev/null)\" = "
        f"{_q(opts.wheel_sha256)} && test \"$(readlink /usr/local/bin/dcp-agent)\" = {AGENT_VENV}/bin/dcp-agent",
        # The wheel is installed only if it is the one this run staged (its sha256), checked before anything goes.
        f"if ! echo {_q(opts.wheel_sha256 + '  ' + STAGE + '/' + opts.wheel)} | sha256sum -c --status; then "
        f"echo 'the agent wheel {STAGE}/{opts.wheel} is not the one staged (sha256 differs): not installed' >&2; "
        f"exit 1; fi && "
        f"rm -rf {AGENT_VENV} && {python} -m venv {AGENT_VENV} && "
        f"{AGENT_VENV}/bin/pip install -q --disable-pip-version-check {STAGE}/{_q(opts.wheel)} && "
        f"ln -sfn {AGENT_VENV}/bin/dcp-agent /usr/local/bin/dcp-agent && "
        f"echo {_q(opts.wheel_sha256)} > {amarker}",
        "the dcp-agent from this project's own build"))
    for name, dest, mode in (("config.toml", "/etc/dcp-agent/config.toml", "0644"),
                             ("dcp-agent.sh", "/etc/profile.d/dcp-agent.sh", "0644")):
        sha = opts.files_sha256.get(name, "")
        steps.append(Step(
            f"file:{dest}", f"echo {_q(sha + '  ' + dest)} | sha256sum -c --status 2>/dev/null",
            f"install -D -m {mode} -o root -g root {STAGE}/{name} {dest}",
            "the agent's settings" if name == "config.toml" else "the login hook"))
    manifest_cmd = manifest_script(opts, python)
    steps.append(Step(
        "manifest", f"{manifest_cmd} | cmp -s - {MANIFEST}",
        f"mkdir -p {Path(MANIFEST).parent} && {manifest_cmd} > {MANIFEST}.tmp && mv {MANIFEST}.tmp {MANIFEST}",
        "versions recorded in " + MANIFEST))
    return steps


def manifest_script(opts: Options, python: str) -> str:
    """A command printing the manifest JSON: what is installed, read from the host itself."""
    code = (
        "import json,subprocess as s\n"
        "def v(c):\n"
        " try: return s.run(c,shell=True,capture_output=True,text=True,timeout=30).stdout.strip().splitlines()[0]\n"
        " except Exception: return None\n"
        "print(json.dumps({"
        f"'recipe_sha256':{recipe_hash()!r},"
        f"'python':v('{DCP_VENV}/bin/python --version'),"
        "'aws_cli':v('aws --version 2>&1'),"
        "'git':v('git --version'),"
        "'parallel':v('parallel --version 2>/dev/null'),"
        "'tmux':v('tmux -V'),"
        "'s3fs':v('s3fs --version 2>/dev/null'),"
        f"'boto3':v('{DCP_VENV}/bin/python -c \"import boto3;print(boto3.__version__)\"'),"
        f"'dcp_repo':{opts.repo_url!r},'dcp_ref':{opts.ref!r},"
        f"'dcp_commit':v('git -C {opts.clone} rev-parse HEAD'),"
        f"'dcp_clone':{opts.clone!r},"
        "'dcp_agent':v('/usr/local/bin/dcp-agent --version'),"
        f"'agent_wheel_sha256':{opts.wheel_sha256!r}"
        "},indent=2,sort_keys=True))\n")
    return f"{python} -c {_q(code)}"


def recipe_hash() -> str:
    """Identifies this recipe's code (the steps and the files it installs), for tags and the manifest."""
    h = hashlib.sha256()
    for name in ("recipe.py", "facts.py"):
        h.update(resources.files("bootstrap").joinpath(name).read_bytes())
    h.update(resources.files("agent").joinpath("data/dcp-agent.sh").read_bytes())
    return h.hexdigest()[:16]


def render_script(opts: Options) -> str:
    """The whole recipe as one bash script for every supported OS (what Packer's shell provisioner runs)."""
    out = ["#!/bin/bash", "# Generated by dcp-control-node from bootstrap/recipe.py: do not edit.",
           "set -euo pipefail", 'run_step() {  # name check apply',
           '  if bash -c "$2" >/dev/null 2>&1; then echo "==> $1: ok"; return 0; fi',
           '  echo "==> $1: applying"',
           '  if ! bash -c "set -euo pipefail; $3"; then echo "==> $1: FAILED" >&2; exit 1; fi',
           '  if ! bash -c "$2" >/dev/null 2>&1; then echo "==> $1: FAILED (still not as wanted after apply)" >&2; exit 1; fi',
           '  echo "==> $1: changed"', "}", ". /etc/os-release", 'case "$ID:$VERSION_ID" in']
    for (os_id, version), pretty in SUPPORTED.items():
        out.append(f"{os_id}:{version})")
        for step in plan(OsInfo(os_id, version, pretty), opts):
            out.append(f"  run_step {_q(step.name)} {_q(step.check)} {_q(step.apply)}")
        out.append("  ;;")
    out += ['*) echo "unsupported OS: ${PRETTY_NAME:-unknown}" >&2; exit 2 ;;', "esac"]
    return "\n".join(out) + "\n"
