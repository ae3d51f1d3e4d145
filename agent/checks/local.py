"""L: the control node's own tools (no AWS calls)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
from pathlib import Path

from agent.checks._common import CONFIG, cfg, run_cmd
from agent.context import Context
from agent.model import Finding, Severity, Skip, fail, ok, warn
from agent.registry import check

CANONICAL_REMOTE = re.compile(r"github\.com[:/](DistributedScience|CellProfiler)/Distributed-CellProfiler(\.git)?/?$")
DCP_FILES = ("run.py", "config.py", "setup_AWS.py", "lambda_function.py", "run_batch_general.py",
             "files/requirements.txt")
PKG = "sudo apt-get install -y {deb}   (Amazon Linux: sudo dnf install -y {rpm})"


_PROBE = """
import importlib.util, sys
print("%d.%d.%d" % sys.version_info[:3])
pip = importlib.util.find_spec("pip")
if pip:
    from importlib.metadata import version
    print("pip", version("pip"))
else:
    print("nopip")
# Found and installed, read from metadata: importing boto3 here would cost ~200 ms of CPU at every run.
try:
    from importlib.metadata import version
    if importlib.util.find_spec("boto3") and importlib.util.find_spec("botocore"):
        print("boto3", version("boto3"), version("botocore"))
    else:
        print("noboto3 missing")
except Exception as e:
    print("noboto3", type(e).__name__)
"""


def _probe(ctx: Context) -> dict[str, str] | None:
    """One subprocess answers L01, L02 and L03 (the interpreter, its pip, and DCP's requirements)."""

    def run() -> dict[str, str] | None:
        rc, out = run_cmd([ctx.settings.dcp_python, "-c", _PROBE], timeout=15)
        lines = out.splitlines()
        if rc != 0 or not lines or not re.fullmatch(r"\d+\.\d+\.\d+", lines[0]):
            return None
        found = {"python": lines[0]}
        for line in lines[1:]:
            key, _, rest = line.partition(" ")
            found[key] = rest
        return found

    return ctx.memo("python-probe", run)


@check("L01", "local.python", "Python for DCP is 3.10 or newer", Severity.HIGH)
def python_version(ctx: Context) -> Finding:
    probe = _probe(ctx)
    py = ctx.settings.dcp_python
    if probe is None:
        return fail(f"no working Python at {py}",
                    "install Python 3.11+ (Debian/Ubuntu: sudo apt-get install -y python3 python3-venv; "
                    "Amazon Linux 2023: sudo dnf install -y python3.11), or set 'python' in the settings")
    text = probe["python"]
    v = tuple(int(x) for x in text.split("."))
    if v < (3, 8):
        return fail(f"{py} is Python {text}; DCP needs 3.8 or newer", "install Python 3.11+")
    if v < (3, 10):
        return warn(f"{py} is Python {text}; boto3 no longer supports it, so pip resolves an old boto3",
                    "install Python 3.11+ beside it (AL2023: sudo dnf install -y python3.12 python3.12-pip) "
                    "and point the DCP venv at it; do not repoint /usr/bin/python3")
    return ok(f"{py} is Python {text}")


@check("L02", "local.pip", "pip is available for that Python", Severity.HIGH, needs=("local.python",))
def pip_available(ctx: Context) -> Finding:
    probe = _probe(ctx) or {}
    if "pip" not in probe:
        return fail(f"{ctx.settings.dcp_python} has no pip",
                    "sudo apt-get install -y python3-pip python3-venv (AL2023: sudo dnf install -y python3.11-pip)")
    return ok(f"pip {probe['pip']}")


@check("L03", "local.dcp-requirements", "DCP's requirements import", Severity.BLOCKER, needs=("local.python",))
def requirements(ctx: Context) -> Finding:
    probe = _probe(ctx) or {}
    req = ctx.settings.dcp_clone / "files" / "requirements.txt"
    if "boto3" not in probe:
        return fail(f"boto3 does not import in {ctx.settings.dcp_python}",
                    f"{ctx.settings.dcp_python} -m pip install -r {req}  (use a venv outside the clone)")
    boto3_v, botocore_v = [*probe["boto3"].split(), "?", "?"][:2]
    return ok(f"boto3 {boto3_v}, botocore {botocore_v}")


@check("L04", "local.git", "git is installed", Severity.HIGH)
def git_installed(ctx: Context) -> Finding:
    rc, out = run_cmd(["git", "--version"])
    if rc != 0:
        return fail("git is not installed", PKG.format(deb="git", rpm="git"))
    return ok(out)


@check("L05", "local.dcp-clone", "Distributed-CellProfiler clone is present and writable", Severity.BLOCKER)
def dcp_clone(ctx: Context) -> Finding:
    p = ctx.settings.dcp_clone
    clone_fix = (f"git clone https://github.com/DistributedScience/Distributed-CellProfiler.git {p} "
                 "(or set 'dcp_clone' in the settings)")
    if not p.is_dir():
        return fail(f"no DCP clone at {p}", clone_fix)
    missing = [f for f in DCP_FILES if not (p / f).exists()]
    if missing:
        return fail(f"{p} lacks {', '.join(missing)}: not a complete DCP checkout", clone_fix)
    for d in (p, p / "files"):
        if not os.access(d, os.W_OK):
            return fail(f"{d} is not writable: run.py writes configtemp.config and files/*SpotFleetRequestId.json",
                        f"sudo chown -R $USER {p}")
    rc, out = run_cmd(["git", "-C", str(p), "config", "--get", "remote.origin.url"])
    if rc != 0 or not out:
        return warn(f"{p} is not a git clone with an origin, so it cannot be updated with git pull", clone_fix)
    expected = ctx.settings.repo_url
    if CANONICAL_REMOTE.search(out) or (expected and out == expected):
        return ok(f"{p} (origin {out})")
    return warn(f"{p} tracks {out}, not DistributedScience/Distributed-CellProfiler",
                "fine for a fork or mirror; otherwise git remote set-url origin "
                "https://github.com/DistributedScience/Distributed-CellProfiler.git")


def _aws_version() -> tuple[int, str]:
    """`aws --version`, read cheaply where possible: starting AWS CLI v1 takes half a second."""
    path = shutil.which("aws")
    if path is None:
        return 127, ""
    real = os.path.realpath(path)
    m = re.search(r"/v2/(2\.\d+\.\d+)/", real)            # the official v2 bundle keeps its version in the path
    if m:
        return 0, f"aws-cli/{m.group(1)}"
    try:
        with open(real, "rb") as f:
            head = f.readline(200)
    except OSError:
        head = b""
    if head.startswith(b"#!") and b"python" in head:     # a Python launcher (pip's v1, Debian's v2)
        interp = head[2:].decode(errors="replace").split()[0]
        rc, out = run_cmd([interp, "-c", "from importlib.metadata import version; print(version('awscli'))"])
        if rc == 0 and re.fullmatch(r"\d+\.\d+\.\d+", out.strip()):
            return 0, f"aws-cli/{out.strip()}"
    return run_cmd(["aws", "--version"], timeout=10)


@check("L06", "local.aws-cli", "AWS CLI v2 is installed", Severity.MEDIUM)
def aws_cli(ctx: Context) -> Finding:
    rc, out = _aws_version()
    fix = ("install AWS CLI v2: Debian 12/13 sudo apt-get install -y awscli; elsewhere the official bundle "
           "(https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html)")
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
    rc, out = run_cmd(["s3fs", "--version"])
    if rc == 127:
        return warn("s3fs is not installed (optional: mounts a bucket as a folder)", PKG.format(deb="s3fs", rpm="s3fs-fuse"))
    return ok(out.splitlines()[0] if out else "s3fs")


def _gnu_parallel(path: str) -> tuple[int, str]:
    """GNU parallel is a Perl script naming itself and its version; moreutils' is a binary."""
    try:
        with open(path, "rb") as f:
            head = f.read(65536)
    except OSError:
        head = b""
    m = re.search(rb"\$Global::version\s*=\s*(\d+)", head)
    if b"GNU Parallel" in head or b"GNU parallel" in head:
        return 0, f"GNU parallel {m.group(1).decode() if m else ''}".strip()
    return run_cmd(["parallel", "--version"])


@check("L08", "local.gnu-parallel", "GNU parallel is installed (optional)", Severity.LOW)
def gnu_parallel(ctx: Context) -> Finding:
    path = shutil.which("parallel")
    rc, out = (127, "") if path is None else _gnu_parallel(path)
    if rc == 127:
        return warn("parallel is not installed (optional: files/batches.sh needs it)",
                    PKG.format(deb="parallel", rpm="parallel"))
    if "GNU parallel" not in out:
        return warn("the 'parallel' on PATH is not GNU parallel (moreutils'?); DCP's scripts use GNU ::: syntax",
                    "sudo apt-get install -y parallel (it replaces moreutils' parallel)")
    return ok(out.splitlines()[0])


@check("L09", "local.tmux-or-screen", "tmux or screen is installed", Severity.MEDIUM)
def tmux_or_screen(ctx: Context) -> Finding:
    for tool in ("tmux", "screen"):
        rc, _ = run_cmd(["sh", "-c", f"command -v {tool}"])
        if rc == 0:
            return ok(f"{tool} is available for long-running monitors")
    return warn("neither tmux nor screen is installed: 'run.py monitor' must survive a dropped SSH session",
                PKG.format(deb="tmux", rpm="tmux"))


@check("L10", "local.ssh-key", "The SSH key named in config.py is present and private", Severity.MEDIUM,
       needs=(CONFIG,))
def ssh_key(ctx: Context) -> Finding:
    name = cfg(ctx, "SSH_KEY_NAME")
    if not isinstance(name, str) or not name or name == "your-key-file.pem":
        raise Skip("SSH_KEY_NAME is not set (see config.placeholders)")
    ssh_dir = Path.home() / ".ssh"
    key = ssh_dir / name
    if not key.exists():
        return warn(f"{key} does not exist (only needed to SSH into workers)",
                    f"copy the key pair's private key to {key} and chmod 600 {key}")
    st = key.stat()
    if not stat.S_ISREG(st.st_mode):
        return fail(f"{key} is not a regular file", f"replace {key} with the private key file")
    if st.st_mode & 0o077:
        return fail(f"{key} is readable by others (mode {stat.S_IMODE(st.st_mode):o}); ssh refuses such keys",
                    f"chmod 700 {ssh_dir} && chmod 600 {key}")
    if st.st_uid != os.getuid():
        return warn(f"{key} belongs to another user", f"sudo chown $USER {key}")
    if ssh_dir.stat().st_mode & 0o022:
        return warn(f"{ssh_dir} is writable by others", f"chmod 700 {ssh_dir}")
    return ok(f"{key} (mode 600)")


@check("L11", "local.clock", "The clock is synchronised", Severity.HIGH)
def clock(ctx: Context) -> Finding:
    rc, out = run_cmd(["timedatectl", "show", "-p", "NTPSynchronized", "--value"])
    if rc == 127:
        raise Skip("timedatectl is not available here; the skew against AWS is checked by identity.clock-skew")
    if rc != 0:
        raise Skip("timedatectl cannot read the clock state (no systemd?); see identity.clock-skew")
    if out.strip() != "yes":
        return warn("the clock is not NTP-synchronised; AWS rejects requests signed more than 15 min off",
                    "sudo systemctl enable --now systemd-timesyncd   (Amazon Linux: chronyd)")
    return ok("NTP-synchronised")


@check("L12", "local.dcp-clone-size", "The DCP clone is small enough for setup_AWS.py's Lambda zip", Severity.MEDIUM,
       needs=("local.dcp-clone",))
def clone_size(ctx: Context) -> Finding:
    p = ctx.settings.dcp_clone
    total, flagged = 0, []
    for root, dirs, files in os.walk(p):
        rel = Path(root).relative_to(p)
        for d in list(dirs):
            if d in (".venv", "venv", ".aws") or (d == "env" and rel == Path(".")):
                flagged.append(str(rel / d))
        for f in files:
            if f in ("credentials", ".env") or f.endswith(".pem"):
                flagged.append(str(rel / f))
            with contextlib.suppress(OSError):
                total += (Path(root) / f).lstat().st_size
    mb = total / 1e6
    if flagged:
        return warn(f"{p} holds {', '.join(sorted(flagged)[:3])}: setup_AWS.py zips the whole folder into "
                    "the Lambda package", "move venvs, keys and credentials out of the clone")
    if mb > 40:
        return warn(f"{p} is {mb:.0f} MB; the Lambda upload limit is 50 MB zipped",
                    "keep data and venvs outside the clone; run setup_AWS.py from a clean checkout")
    return ok(f"{mb:.1f} MB")
