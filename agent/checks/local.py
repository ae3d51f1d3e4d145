"""L: the control node's own tools (no AWS calls)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from agent import flavours, gates
from agent.checks._common import cfg
from agent.checks._platform import clock_fix, for_os, packages
from agent.context import Context
from agent.facts import local
from agent.flavours import Defect
from agent.model import Finding, Severity, Skip, fail, ok, warn
from agent.registry import check

CANONICAL_REMOTE = re.compile(r"github\.com[:/](DistributedScience|CellProfiler)/Distributed-CellProfiler(\.git)?/?$")
DCP_FILES = ("run.py", "config.py", "setup_AWS.py", "lambda_function.py", "run_batch_general.py",
             "files/requirements.txt")
# What every project's clone has (agent.flavours): missing, a clone of any of them is incomplete.
_EVERY_CLONE = frozenset(DCP_FILES).intersection(*(f.files for f in flavours.FLAVOURS.values()))
AWS_CLI_BUNDLE = "https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html"


@check("L01", "local.python", "Python for DCP is 3.10 or newer", Severity.HIGH)
def python_version(ctx: Context) -> Finding:
    py = ctx.settings.dcp_python
    install = packages(ctx, apt="python3 python3-venv", dnf="python3.11", brew="python@3.12")
    if local.apple_stub(ctx, py):
        return fail(f"{py} is macOS's placeholder: the Command Line Tools that provide it are not installed",
                    f"{install} and set 'python' in the settings (xcode-select --install gives Apple's Python "
                    "3.9, too old for current boto3)")
    probe = local.python_probe(ctx)
    if probe is None:
        return fail(f"no working Python at {py}",
                    f"{install}, or set 'python' in the settings to the interpreter DCP should use")
    text = probe["python"]
    v = tuple(int(x) for x in text.split("."))
    if v < (3, 8):
        return fail(f"{py} is Python {text}; DCP needs 3.8 or newer", "install Python 3.11+")
    if v < (3, 10):
        return warn(f"{py} is Python {text}; boto3 no longer supports it, so pip resolves an old boto3",
                    "install Python 3.11+ beside it ("
                    + packages(ctx, apt="python3.11 python3.11-venv", dnf="python3.12 python3.12-pip",
                               brew="python@3.12")
                    + "), make DCP's venv with it and set 'python' in the settings; leave the system's python3 "
                    "as it is")
    return ok(f"{py} is Python {text}")


@check("L02", "local.pip", "pip is available for that Python", Severity.HIGH, needs=(python_version,))
def pip_available(ctx: Context) -> Finding:
    probe = local.python_probe(ctx) or {}
    if "pip" not in probe:
        py = ctx.settings.dcp_python
        return fail(f"{py} has no pip",
                    for_os(ctx, debian="sudo apt-get install -y python3-pip python3-venv",
                           amazon="sudo dnf install -y python3.11-pip", macos=f"{py} -m ensurepip --upgrade"))
    return ok(f"pip {probe['pip']}")


@check("L03", "local.dcp-requirements", "DCP's requirements import", Severity.BLOCKER, needs=(python_version,))
def requirements(ctx: Context) -> Finding:
    """Imports boto3 in DCP's interpreter; it no longer runs ``pip check`` (1.5 s, the slowest step of a run)."""
    probe = local.python_probe(ctx) or {}
    req = ctx.settings.dcp_clone / ctx.flavour.requirements
    if "boto3" not in probe:
        return fail(f"boto3 does not import in {ctx.settings.dcp_python}",
                    f"{ctx.settings.dcp_python} -m pip install -r {req}  (use a venv outside the clone)")
    boto3_v, botocore_v = [*probe["boto3"].split(), "?", "?"][:2]
    return ok(f"boto3 {boto3_v}, botocore {botocore_v}")


@check("L04", "local.git", "git is installed", Severity.HIGH)
def git_installed(ctx: Context) -> Finding:
    fix = for_os(ctx, debian="sudo apt-get install -y git", amazon="sudo dnf install -y git",
                 macos="xcode-select --install (Apple's git), or brew install git")
    if local.apple_stub(ctx, "git"):
        return fail("git is macOS's placeholder: the Command Line Tools that provide it are not installed", fix)
    rc, out = local.command(ctx, "git", "--version")
    if rc != 0:
        return fail("git is not installed", fix)
    return ok(out)


@check("L05", "local.dcp-clone", "Distributed-CellProfiler clone is present and writable", Severity.BLOCKER)
def dcp_clone(ctx: Context) -> Finding:
    f = ctx.flavour
    p = ctx.settings.dcp_clone
    clone_fix = f"git clone {f.repo_url} {p} (or set 'dcp_clone' in the settings)"
    info = local.file_info(ctx, p)
    if info.unreadable:
        return fail(f"cannot read {p} ({info.unreadable})", f"sudo chown -R $USER {p} (or set 'dcp_clone')")
    if info.exists and not info.is_dir:
        return fail(f"{p} is not a directory", f"move {p} aside, then {clone_fix}")
    if not info.is_dir:
        return fail(f"no {'DCP' if f.is_dcp else f.name} clone at {p}", clone_fix)
    wanted = [n for n in (DCP_FILES if f.is_dcp else f.files) if not (f.worker_renamable and n == f.worker_file)]
    missing = [n for n in wanted if not local.file_info(ctx, p / n).exists]
    if missing and not ctx.sure and not set(missing) & _EVERY_CLONE:
        return warn(f"{p} lacks {', '.join(missing)}, which a DCP checkout has; {flavours.unsure(ctx.recognised)}",
                    flavours.UNSURE_FIX)
    if missing:
        # git clone into an existing directory fails: restore the files in place, or start again beside it.
        is_git = local.file_info(ctx, p / ".git").exists
        fix = (f"git -C {p} checkout -- {' '.join(missing)} (or git -C {p} pull)" if is_git else
               f"move {p} aside (mv {p} {p}.old), then {clone_fix}")
        return fail(f"{p} lacks {', '.join(missing)}: not a complete {'DCP' if f.is_dcp else f.name} checkout", fix)
    for d in (p, p / "files"):
        if not local.file_info(ctx, d).writable:
            return fail(f"{d} is not writable: run.py writes configtemp.config and files/*SpotFleetRequestId.json",
                        f"sudo chown -R $USER {p}")
    defects = _defects(ctx)
    if local.apple_stub(ctx, "git"):
        return _with_defects(ok(f"{p} (its origin was not read: git is macOS's placeholder, see L04)"), defects)
    rc, out = local.command(ctx, "git", "-C", str(p), "config", "--get", "remote.origin.url")
    if rc == 127:
        return _with_defects(ok(f"{p} (its origin was not read: git is not installed, see L04)"), defects)
    if rc != 0 or not out:
        return _with_defects(warn(f"{p} is not a git clone with an origin, so it cannot be updated with git pull",
                                  f"git -C {p} remote add origin {f.repo_url}"
                                  if local.file_info(ctx, p / ".git").exists else
                                  f"move {p} aside (mv {p} {p}.old), then {clone_fix}"), defects)
    expected = ctx.settings.repo_url
    canonical = CANONICAL_REMOTE if f.is_dcp else re.compile(
        rf"github\.com[:/]DistributedScience/{re.escape(f.name)}(\.git)?/?$")
    if canonical.search(out) or (expected and out == expected):
        return _with_defects(ok(f"{p} (origin {out})"), defects)
    owner = "DistributedScience/" + f.name
    return _with_defects(warn(f"{p} tracks {out}, not {owner}", f"fine for a fork or mirror; otherwise git remote "
                              f"set-url origin {f.repo_url}"), defects)


def _defects(ctx: Context) -> list[Defect]:
    """The known defects of this project's run.py (agent.flavours) that the clone's run.py still has."""
    if not ctx.flavour.defects:
        return []
    run_py = local.text(ctx, ctx.settings.dcp_clone / "run.py") or ""
    config_py = local.text(ctx, ctx.config_path) or ""
    return [d for d in ctx.flavour.defects if d.found(run_py, config_py)]


def _with_defects(finding: Finding, defects: list[Defect]) -> Finding:
    """A clone whose run.py fails on a subcommand a correct account needs: said, with the workaround, as a
    warning (the account is not at fault; the run would be)."""
    if not defects:
        return finding
    said = "; ".join(f"{d.effect} ({d.source})" for d in defects)
    fixes = "; ".join(f"{d.subcommand}: {d.workaround}" for d in defects)
    head = f"{finding.message}; " if finding.message else ""
    notes = f" (also: {finding.fix})" if finding.fix else ""
    return warn(f"{head}known defect{'s' if len(defects) > 1 else ''} of this run.py: {said}", fixes + notes)


@check("L06", "local.aws-cli", "AWS CLI v2 is installed", Severity.MEDIUM)
def aws_cli(ctx: Context) -> Finding:
    rc, out = local.aws_cli_version(ctx)
    fix = "install AWS CLI v2: " + for_os(
        ctx, debian=f"Debian 12/13: sudo apt-get install -y awscli; Ubuntu: the official bundle ({AWS_CLI_BUNDLE})",
        amazon="sudo dnf install -y awscli-2", rhel=f"the official bundle ({AWS_CLI_BUNDLE})",
        macos=f"brew install awscli, or AWS's .pkg ({AWS_CLI_BUNDLE})")
    if rc == 127:
        return fail("the aws command is not installed (needed for aws configure and DCP's hygiene scripts)", fix)
    m = re.search(r"aws-cli/(\d+)\.[\d.]+", out)
    if not m:
        last = out.strip().splitlines()[-1][:120] if out.strip() else f"exit status {rc}"
        return warn(f"'aws --version' failed: {last}", f"fix the AWS CLI's configuration or reinstall it; {fix}")
    if m.group(1) == "1":
        return warn(f"{m.group(0)} is AWS CLI v1, in maintenance mode since 2026-07-15", fix)
    return ok(m.group(0))


@check("L07", "local.s3fs", "s3fs is installed (optional)", Severity.LOW)
def s3fs(ctx: Context) -> Finding:
    rc, out = local.command(ctx, "s3fs", "--version")
    if rc == 127:
        return warn("s3fs is not installed (optional: mounts a bucket as a folder)",
                    for_os(ctx, debian="sudo apt-get install -y s3fs",
                           amazon="Amazon Linux 2023 has no s3fs package: build s3fs-fuse from source, "
                                  "https://github.com/s3fs-fuse/s3fs-fuse/blob/master/COMPILATION.md",
                           rhel="sudo dnf install -y s3fs-fuse (from EPEL on RHEL and its rebuilds)",
                           macos="brew install --cask macfuse && brew install gromgit/fuse/s3fs-mac "
                                 "(macFUSE asks to approve its system extension)"))
    return ok(out.splitlines()[0] if out else "s3fs")


@check("L08", "local.gnu-parallel", "GNU parallel is installed (optional)", Severity.LOW)
def gnu_parallel(ctx: Context) -> Finding:
    rc, out = local.parallel_version(ctx)
    if rc == 127:
        return warn("parallel is not installed (optional: files/batches.sh needs it)",
                    for_os(ctx, debian="sudo apt-get install -y parallel",
                           amazon="Amazon Linux 2023 has no parallel package: invoke bootstrap installs GNU's "
                                  "release, checksum-verified; or https://www.gnu.org/software/parallel/",
                           rhel="sudo dnf install -y parallel", macos="brew install parallel"))
    if "GNU parallel" not in out:
        return warn("the 'parallel' on PATH is not GNU parallel (moreutils'?); DCP's scripts use GNU ::: syntax",
                    for_os(ctx, debian="sudo apt-get install -y parallel (it replaces moreutils' parallel)",
                           amazon="install GNU parallel (https://www.gnu.org/software/parallel/) ahead of "
                                  "moreutils' on PATH",
                           rhel="sudo dnf install -y parallel",
                           macos="brew uninstall moreutils && brew install parallel (both install 'parallel')"))
    return ok(out.splitlines()[0])


@check("L09", "local.tmux-or-screen", "tmux or screen is installed", Severity.MEDIUM)
def tmux_or_screen(ctx: Context) -> Finding:
    for tool in ("tmux", "screen"):
        if local.which(ctx, tool):
            return ok(f"{tool} is available for long-running monitors")
    return warn("neither tmux nor screen is installed: 'run.py monitor' must survive a dropped SSH session",
                packages(ctx, apt="tmux", dnf="tmux", brew="tmux"))


@check("L10", "local.ssh-key", "The SSH key named in config.py is present and private", Severity.MEDIUM,
       needs=(gates.CONFIG,))
def ssh_key(ctx: Context) -> Finding:
    name = cfg(ctx, "SSH_KEY_NAME")
    if not isinstance(name, str) or not name or name == "your-key-file.pem":
        raise Skip("SSH_KEY_NAME is not set (see config.placeholders)")
    ssh_dir = Path.home() / ".ssh"
    key = ssh_dir / name
    info = local.file_info(ctx, key)
    if info.unreadable:
        return warn(f"cannot read {key} ({info.unreadable}; only needed to SSH into workers)",
                    f"chmod 700 {ssh_dir} && chmod 600 {key}")
    if not info.exists:
        return warn(f"{key} does not exist (only needed to SSH into workers)",
                    f"copy the key pair's private key to {key} and chmod 600 {key}")
    if not info.is_file:
        return fail(f"{key} is not a regular file", f"replace {key} with the private key file")
    if info.mode & 0o077:
        return fail(f"{key} is readable by others (mode {info.mode:o}); ssh refuses such keys",
                    f"chmod 700 {ssh_dir} && chmod 600 {key}")
    if info.uid != os.getuid():
        return warn(f"{key} belongs to another user", f"sudo chown $USER {key}")
    if local.file_info(ctx, ssh_dir).mode & 0o022:
        return warn(f"{ssh_dir} is writable by others", f"chmod 700 {ssh_dir}")
    return ok(f"{key} (mode 600)")


@check("L11", "local.clock", "The clock is synchronised", Severity.HIGH,
       blind=("It needs ``timedatectl``: macOS does not tell a user whether its clock is NTP-synchronised, and "
              "a Linux without systemd has no ``timedatectl``; L11 is then skipped and says so, and I02 (skew "
              "against AWS's ``Date``) still compares the clock with AWS's.",))
def clock(ctx: Context) -> Finding:
    if local.host_os(ctx).family == "macos":
        raise Skip("macOS does not tell a user whether its clock is synchronised; I02 (identity.clock-skew) "
                   "compares it with AWS's instead")
    rc, out = local.command(ctx, "timedatectl", "show", "-p", "NTPSynchronized", "--value")
    if rc == 127:
        raise Skip("timedatectl is not available here, so the synchronisation state could not be read; I02 "
                   "(identity.clock-skew) compares the clock with AWS's instead")
    if rc != 0:
        raise Skip("timedatectl cannot read the clock state (no systemd?); I02 (identity.clock-skew) compares "
                   "the clock with AWS's instead")
    if out.strip() != "yes":
        return warn("the clock is not NTP-synchronised; AWS rejects requests signed more than 15 min off",
                    clock_fix(ctx))
    return ok("NTP-synchronised")


@check("L12", "local.dcp-clone-size", "The DCP clone is small enough for setup_AWS.py's Lambda zip", Severity.MEDIUM,
       needs=(dcp_clone,))
def clone_size(ctx: Context) -> Finding:
    """Group M has no M04: the Lambda package size is this check."""
    p = ctx.settings.dcp_clone
    tree = local.tree_summary(ctx, p)
    flagged, mb = list(tree.flagged), tree.bytes / 1e6
    if flagged:
        return warn(f"{p} holds {', '.join(sorted(flagged)[:3])}: setup_AWS.py zips the whole folder into "
                    "the Lambda package", "move venvs, keys and credentials out of the clone")
    if mb > 40:
        return warn(f"{p} is {mb:.0f} MB; the Lambda upload limit is 50 MB zipped",
                    "keep data and venvs outside the clone; run setup_AWS.py from a clean checkout")
    return ok(f"{mb:.1f} MB")
