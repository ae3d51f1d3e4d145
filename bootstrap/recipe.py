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

from agent import flavours
from bootstrap.facts import SUPPORTED, OsInfo

STAGE = "/var/tmp/dcp-stage"  # noqa: S108 - on the target host, root-only (0700): the uploaded files
DCP_VENV = "/opt/dcp/venv"
AGENT_VENV = "/opt/dcp-agent/venv"
MANIFEST = "/etc/dcp-control-node/manifest.json"
DEFAULT_REPO = "https://github.com/DistributedScience/Distributed-CellProfiler.git"

# AWS CLI v2 on Ubuntu: the official bundle at a pinned version (overridable), installed only when its
# signature is a valid one by the AWS CLI Team's key (shipped in bootstrap/files, as AWS publishes it in
# the CLI user guide; its fingerprint pinned here). The key's self-signature expired on 2026-07-07 while AWS
# keeps signing with it, so gpg's exit status is not the test: its VALIDSIG line naming this fingerprint is.
AWS_CLI_VERSION = "2.36.40"
AWS_CLI_KEY = "aws-cli-team.asc"
AWS_CLI_KEY_FINGERPRINT = "FB5DB77FD5C118B80511ADA8A6310ACC4672475C"
# GNU parallel on Amazon Linux 2023 (not in its repositories): a pinned GNU release checked by sha256 (the
# value Homebrew's formula pins for this release) before anything in it is used; its one script installed.
PARALLEL_VERSION = "20260122"
PARALLEL_SHA256 = "3a62cf79ac2488b41e7781d54ff1fdaa1c526b72e097dd1e7d62ef7abb9d6c3b"


@dataclass(frozen=True)
class Step:
    name: str
    check: str
    apply: str
    why: str = ""


@dataclass(frozen=True)
class Options:
    repo_url: str = DEFAULT_REPO        # the project's own (agent.flavours) unless given
    project: str = "cellprofiler"       # which Distributed-* project the node is for (a row of agent.flavours)
    ref: str = ""                       # "" is the project's default branch (Flavour.default_branch)
    owner: str = "root"                 # who owns the DCP clone (the SSH user on a bootstrapped host)
    owner_home: str = "/root"
    s3fs: bool = True
    aws_cli_version: str = AWS_CLI_VERSION   # the official bundle's version (Ubuntu)
    wheel: str = ""                     # file name of the agent wheel inside STAGE
    wheel_sha256: str = ""
    files_sha256: dict[str, str] = field(default_factory=dict)   # staged file name -> sha256

    def __post_init__(self) -> None:
        if not self.ref:   # DS and OMEZarr's default branch is main, DCP and Fiji's master
            object.__setattr__(self, "ref", self.flavour.default_branch)

    @property
    def flavour(self) -> flavours.Flavour:
        return flavours.by_key(self.project)

    @property
    def clone(self) -> str:
        return f"{self.owner_home}/{self.flavour.name}"


def _q(s: str) -> str:
    return shlex.quote(s)


@dataclass(frozen=True)
class Pythons:
    """The interpreters a node gets, each one its OS maintains: ``dcp`` for DCP's venv (DCP needs >= 3.10),
    ``agent`` for the agent's (>= 3.11). Recorded in the manifest."""
    dcp: str
    agent: str


def pythons(os_info: OsInfo) -> Pythons:
    """Debian 12/13 and Ubuntu 24.04: the distribution's python3 (3.11, 3.13, 3.12). Amazon Linux 2023: its
    python3.11 package (python3 there is 3.9). Ubuntu 22.04: python3 (3.10, maintained in main) for DCP; its
    python3.11 package is a 2022 release candidate (3.11.0~rc1) in universe, so the agent's 3.11 comes from
    the deadsnakes PPA, which carries current 3.11 releases for 22.04."""
    if os_info.family == "dnf":
        return Pythons("/usr/bin/python3.11", "/usr/bin/python3.11")
    if os_info.key == ("ubuntu", "22.04"):
        return Pythons("/usr/bin/python3", "/usr/bin/python3.11")
    return Pythons("/usr/bin/python3", "/usr/bin/python3")


def packages(os_info: OsInfo, opts: Options) -> tuple[list[str], str]:
    """The distribution packages and the Python interpreter the DCP venv uses."""
    if os_info.family == "dnf":
        # No s3fs: Amazon Linux 2023 has no s3fs-fuse package (and no EPEL). perl runs GNU parallel.
        pkgs = ["git", "python3.11", "python3.11-pip", "tmux", "tar", "bzip2", "awscli-2", "perl"]
        return pkgs, pythons(os_info).dcp
    pkgs = ["git", "ca-certificates", "tmux", "parallel", "sudo", "python3", "python3-venv"]
    if os_info.id == "debian":
        pkgs.append("awscli")                 # Debian 12 and 13 package AWS CLI v2
    else:
        pkgs += ["curl", "unzip", "gpg"]      # Ubuntu: v1 (22.04) or none (24.04): the official v2 bundle
    if os_info.key == ("ubuntu", "22.04"):
        pkgs.append("software-properties-common")   # add-apt-repository, for the agent's Python 3.11
    if opts.s3fs:
        pkgs.append("s3fs")
    return pkgs, pythons(os_info).dcp


def _package_step(os_info: OsInfo, pkgs: list[str]) -> Step:
    if os_info.family == "dnf":
        return Step("packages", f"rpm -q {' '.join(pkgs)} >/dev/null 2>&1",
                    f"dnf install -y -q {' '.join(pkgs)}", "git, Python 3.11, tmux, AWS CLI v2 (no s3fs on AL2023)")
    names = " ".join(pkgs)
    check = (f"test \"$(dpkg-query -W -f='${{Status}}\\n' {names} 2>/dev/null | grep -c 'ok installed')\" "
             f"-eq {len(pkgs)}")
    apply = ("export DEBIAN_FRONTEND=noninteractive; "
             "apt-get -o DPkg::Lock::Timeout=120 update -qq && "
             f"apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends {names}")
    return Step("packages", check, apply, "git, Python ≥ 3.11 with venv, GNU parallel, tmux, AWS CLI, s3fs")


def _aws_cli_step(opts: Options) -> Step:
    ver = opts.aws_cli_version
    fp = AWS_CLI_KEY_FINGERPRINT
    url = f"https://awscli.amazonaws.com/awscli-exe-linux-$(uname -m)-{ver}.zip"
    apply = (
        'tmp=$(mktemp -d) && trap \'rm -rf "$tmp"\' EXIT && '
        f"curl -fsSL --proto =https {url} -o $tmp/awscliv2.zip && "
        f"curl -fsSL --proto =https {url}.sig -o $tmp/awscliv2.sig && "
        "mkdir -m 700 $tmp/gnupg && "
        f"gpg --homedir $tmp/gnupg --batch --quiet --import {STAGE}/{AWS_CLI_KEY} && "
        "{ gpg --homedir $tmp/gnupg --batch --status-file $tmp/status --verify $tmp/awscliv2.sig $tmp/awscliv2.zip "
        ">/dev/null 2>&1 || true; } && "
        f"if ! grep -q '^\\[GNUPG:\\] VALIDSIG {fp} ' $tmp/status; then "
        f"echo 'AWS CLI {ver}: the bundle is not signed by the AWS CLI Team key {fp}: not installed' >&2; exit 1; fi && "
        "unzip -q $tmp/awscliv2.zip -d $tmp && $tmp/aws/install --update")
    return Step("aws-cli-v2", f"aws --version 2>&1 | grep -q '^aws-cli/{ver} '", apply,
                f"AWS CLI {ver} from the official bundle, its signature checked (Ubuntu packages v1 or none)")


def _parallel_step() -> Step:
    v = PARALLEL_VERSION
    apply = (
        'tmp=$(mktemp -d) && trap \'rm -rf "$tmp"\' EXIT && '
        f"curl -fsSL --proto =https https://ftp.gnu.org/gnu/parallel/parallel-{v}.tar.bz2 -o $tmp/parallel.tar.bz2 && "
        f"if ! echo '{PARALLEL_SHA256}  '$tmp/parallel.tar.bz2 | sha256sum -c --status; then "
        f"echo 'GNU parallel {v}: the download does not match its pinned sha256: not installed' >&2; exit 1; fi && "
        f"tar -xjf $tmp/parallel.tar.bz2 -C $tmp && install -m 0755 $tmp/parallel-{v}/src/parallel /usr/local/bin/parallel")
    return Step("gnu-parallel", f"parallel --version 2>/dev/null | grep -q '^GNU parallel {v}'", apply,
                f"GNU parallel {v} (not in the Amazon Linux 2023 repositories), checked by sha256")


def _agent_python_step() -> Step:
    """Ubuntu 22.04: a maintained Python 3.11 for the agent (see pythons())."""
    return Step(
        "agent-python",
        "/usr/bin/python3.11 -c 'import sys; sys.exit(sys.version_info.releaselevel != \"final\")' 2>/dev/null && "
        "dpkg-query -W -f='${Status}' python3.11-venv 2>/dev/null | grep -q 'ok installed'",
        "export DEBIAN_FRONTEND=noninteractive; add-apt-repository -y ppa:deadsnakes/ppa && "
        "apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends python3.11 python3.11-venv",
        "Python 3.11 for the agent from the deadsnakes PPA (Ubuntu 22.04's own python3.11 is 3.11.0~rc1)")


def plan(os_info: OsInfo, opts: Options) -> list[Step]:
    pkgs, python = packages(os_info, opts)
    agent_python = pythons(os_info).agent
    steps = [_package_step(os_info, pkgs)]
    if os_info.key == ("ubuntu", "22.04"):
        steps.append(_agent_python_step())
    if os_info.id == "ubuntu":
        steps.append(_aws_cli_step(opts))
    if os_info.family == "dnf":
        steps.append(_parallel_step())
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
        f"{opts.flavour.name} at {opts.ref}, owned by {opts.owner}"))
    req = f"{opts.clone}/{opts.flavour.requirements}"
    marker = f"{DCP_VENV}/.requirements.sha256"
    steps.append(Step(
        "dcp-venv",
        f"{DCP_VENV}/bin/python -c 'import boto3' 2>/dev/null && sha256sum {_q(req)} | cmp -s - {marker}",
        # The marker is written last: an interrupted run leaves no marker and the next run starts over.
        f"rm -rf {DCP_VENV} && {python} -m venv {DCP_VENV} && "
        f"{DCP_VENV}/bin/pip install -q --disable-pip-version-check -r {_q(req)} && "
        f"sha256sum {_q(req)} > {marker}",
        f"a virtualenv outside the clone with {'DCP' if opts.flavour.is_dcp else opts.flavour.name}'s "
        f"{opts.flavour.requirements}"))
    amarker = f"{AGENT_VENV}/.wheel.sha256"
    steps.append(Step(
        "agent",
        f"{AGENT_VENV}/bin/dcp-agent --version >/dev/null 2>&1 && test \"$(cat {amarker} 2>/dev/null)\" = "
        f"{_q(opts.wheel_sha256)} && test \"$(readlink /usr/local/bin/dcp-agent)\" = {AGENT_VENV}/bin/dcp-agent",
        # The wheel is installed only if it is the one this run staged (its sha256), checked before anything goes.
        f"if ! echo {_q(opts.wheel_sha256 + '  ' + STAGE + '/' + opts.wheel)} | sha256sum -c --status; then "
        f"echo 'the agent wheel {STAGE}/{opts.wheel} is not the one staged (sha256 differs): not installed' >&2; "
        f"exit 1; fi && "
        f"rm -rf {AGENT_VENV} && {agent_python} -m venv {AGENT_VENV} && "
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
    manifest_cmd = manifest_script(opts, python, agent_python)
    steps.append(Step(
        "manifest", f"{manifest_cmd} | cmp -s - {MANIFEST}",
        f"mkdir -p {Path(MANIFEST).parent} && {manifest_cmd} > {MANIFEST}.tmp && mv {MANIFEST}.tmp {MANIFEST}",
        "versions recorded in " + MANIFEST))
    return steps


def manifest_script(opts: Options, python: str, agent_python: str = "") -> str:
    """A command printing the manifest JSON: what is installed, read from the host itself."""
    code = (
        "import json,subprocess as s\n"
        "def v(c):\n"
        " try: return s.run(c,shell=True,capture_output=True,text=True,timeout=30).stdout.strip().splitlines()[0]\n"
        " except Exception: return None\n"
        "print(json.dumps({"
        f"'recipe_sha256':{recipe_hash()!r},"
        f"'python':v('{DCP_VENV}/bin/python --version'),'python_path':{python!r},"
        f"'agent_python':v('{AGENT_VENV}/bin/python --version'),'agent_python_path':{agent_python or python!r},"
        "'aws_cli':v('aws --version 2>&1'),"
        "'git':v('git --version'),"
        "'parallel':v('parallel --version 2>/dev/null'),"
        "'tmux':v('tmux -V'),"
        "'s3fs':v('s3fs --version 2>/dev/null'),"
        f"'boto3':v('{DCP_VENV}/bin/python -c \"import boto3;print(boto3.__version__)\"'),"
        f"'project':{opts.flavour.name!r},"
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
