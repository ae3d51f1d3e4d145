"""Reads of the control node itself: commands and their versions, DCP's interpreter, files, the AWS CLI's
configuration files and which of run.py's credential layouts they make."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agent import awsfiles
from agent.facts.core import fact

if TYPE_CHECKING:
    from agent.context import Context


def _run(args: list[str], timeout: float = 5.0) -> tuple[int, str]:
    try:
        p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                           check=False)
    except FileNotFoundError:
        return 127, ""
    except subprocess.TimeoutExpired:
        return 124, ""
    except OSError:   # PermissionError included
        return 126, ""
    return p.returncode, (p.stdout + p.stderr).strip()


OS_RELEASE = Path("/etc/os-release")


@dataclass(frozen=True)
class HostOS:
    """What the control node runs, as far as the local checks' fixes care: how it installs a package.

    family: "debian" (apt-get: Debian, Ubuntu and their derivatives), "amazon" (dnf: Amazon Linux 2023),
    "rhel" (dnf: Fedora, RHEL and its rebuilds), "macos" (Homebrew), "linux" (another distribution) or
    "other"."""

    family: str
    name: str


def parse_os_release(text: str) -> HostOS:
    """A Linux distribution from /etc/os-release (os-release(5)): ID, then ID_LIKE, decide the family."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, eq, value = line.partition("=")
        if eq:
            fields[key.strip()] = value.strip().strip("\"'")
    ids = [fields.get("ID", "").lower(), *fields.get("ID_LIKE", "").lower().split()]
    name = fields.get("PRETTY_NAME") or fields.get("NAME") or "Linux"
    for ident in ids:
        if ident in ("debian", "ubuntu"):
            return HostOS("debian", name)
        if ident == "amzn":
            # Amazon Linux 2 (past its end of life) has yum, not dnf: its fixes are the generic ones.
            return HostOS("linux" if fields.get("VERSION_ID") == "2" else "amazon", name)
        if ident in ("rhel", "fedora", "centos"):
            return HostOS("rhel", name)
    return HostOS("linux", name)


@fact()
def host_os(ctx: Context) -> HostOS:
    """The control node's operating system: macOS from the platform, a Linux distribution from /etc/os-release."""
    if sys.platform == "darwin":
        version = platform.mac_ver()[0]
        return HostOS("macos", f"macOS {version}".strip())
    if sys.platform.startswith("linux"):
        try:
            return parse_os_release(OS_RELEASE.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            return HostOS("linux", "Linux")
    return HostOS("other", platform.system() or sys.platform)


APPLE_STUBS = ("/usr/bin/git", "/usr/bin/python3")
XCODE_SELECT = "/usr/bin/xcode-select"


@fact()
def apple_stub(ctx: Context, tool: str) -> bool:
    """Whether ``tool`` is one of macOS's placeholders for the Command Line Tools while they are not installed.

    Running such a placeholder does not fail quietly: it opens a dialog offering to install them. ``xcode-select
    -p`` says whether they are installed without that: exit status 2 when no developer directory is set, else the
    directory, which must exist (removing it is Apple's way to uninstall the tools). Any other answer (no
    xcode-select, a timeout) proves nothing, and the tool is treated as a real one."""
    if host_os(ctx).family != "macos":
        return False
    path = tool if os.path.isabs(tool) else which(ctx, tool)
    if path is None or (path not in APPLE_STUBS and os.path.realpath(path) not in APPLE_STUBS):
        return False
    rc, out = command(ctx, XCODE_SELECT, "-p")
    if rc == 2:
        return True
    directory = out.strip().splitlines()[0] if out.strip() else ""
    return rc == 0 and bool(directory) and not os.path.isdir(directory)


@fact()
def command(ctx: Context, *args: str) -> tuple[int, str]:
    """A local command's exit status and output: (127, "") when it is not installed, (124, "") on timeout."""
    return _run(list(args))


@fact()
def which(ctx: Context, tool: str) -> str | None:
    return shutil.which(tool)


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


@fact()
def python_probe(ctx: Context) -> dict[str, str] | None:
    """One subprocess of DCP's interpreter: its version, its pip's, and boto3/botocore's (None: no Python)."""
    rc, out = _run([ctx.settings.dcp_python, "-c", _PROBE], timeout=15)
    lines = out.splitlines()
    if rc != 0 or not lines or not re.fullmatch(r"\d+\.\d+\.\d+", lines[0]):
        return None
    found = {"python": lines[0]}
    for line in lines[1:]:
        key, _, rest = line.partition(" ")
        found[key] = rest
    return found


@fact()
def aws_cli_version(ctx: Context) -> tuple[int, str]:
    """`aws --version`, read cheaply where possible: starting AWS CLI v1 takes half a second."""
    path = which(ctx, "aws")
    if path is None:
        return 127, ""
    real = os.path.realpath(path)
    # The official v2 bundle on Linux keeps its version in the path, and so does Homebrew's formula.
    m = re.search(r"/v2/(2\.\d+\.\d+)/", real) or re.search(r"/Cellar/awscli/(2\.\d+\.\d+)(?:_\d+)?/", real)
    if m:
        return 0, f"aws-cli/{m.group(1)}"
    try:
        with open(real, "rb") as f:
            first = f.readline(200)
    except OSError:
        first = b""
    if first.startswith(b"#!") and b"python" in first:     # a Python launcher (pip's v1, Debian's v2)
        interp = first[2:].decode(errors="replace").split()[0]
        rc, out = _run([interp, "-c", "from importlib.metadata import version; print(version('awscli'))"])
        if rc == 0 and re.fullmatch(r"\d+\.\d+\.\d+", out.strip()):
            return 0, f"aws-cli/{out.strip()}"
    return _run(["aws", "--version"], timeout=10)


@fact()
def parallel_version(ctx: Context) -> tuple[int, str]:
    """The `parallel` on PATH: GNU parallel is a Perl script naming itself and its version; moreutils' is a binary."""
    path = which(ctx, "parallel")
    if path is None:
        return 127, ""
    try:
        with open(path, "rb") as f:
            text = f.read(65536)
    except OSError:
        text = b""
    m = re.search(rb"\$Global::version\s*=\s*(\d+)", text)
    if b"GNU Parallel" in text or b"GNU parallel" in text:
        return 0, f"GNU parallel {m.group(1).decode() if m else ''}".strip()
    return _run(["parallel", "--version"])


@dataclass(frozen=True)
class FileInfo:
    exists: bool
    is_dir: bool = False
    is_file: bool = False
    mode: int = 0
    uid: int = -1
    writable: bool = False
    unreadable: str = ""   # why it could not be looked at when it may well exist ("permission denied")


@fact()
def file_info(ctx: Context, path: Path) -> FileInfo:
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return FileInfo(False)
    except OSError as e:   # EACCES on a parent (~/.ssh mode 000), ELOOP, …: not "does not exist"
        return FileInfo(False, unreadable=(e.strerror or type(e).__name__).lower())
    return FileInfo(True, stat.S_ISDIR(st.st_mode), stat.S_ISREG(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid,
                    os.access(path, os.W_OK))


@dataclass(frozen=True)
class TreeSummary:
    bytes: int
    flagged: tuple[str, ...]   # venvs, keys and credentials inside the tree


@fact()
def tree_summary(ctx: Context, root: Path) -> TreeSummary:
    """Size of a folder and the venvs, keys and credentials in it (what setup_AWS.py would zip)."""
    total, flagged = 0, []
    for here, dirs, files in os.walk(root):
        rel = Path(here).relative_to(root)
        for d in list(dirs):
            if d in (".venv", "venv", ".aws") or (d == "env" and rel == Path(".")):
                flagged.append(str(rel / d))
        for f in files:
            if f in ("credentials", ".env") or f.endswith(".pem"):
                flagged.append(str(rel / f))
            with contextlib.suppress(OSError):
                total += (Path(here) / f).lstat().st_size
    return TreeSummary(total, tuple(sorted(flagged)))


@fact()
def aws_files(ctx: Context) -> awsfiles.AwsFiles:
    """~/.aws/config and ~/.aws/credentials, parsed as run.py parses them."""
    return awsfiles.load()


@dataclass(frozen=True)
class Layout:
    kind: str                     # a: role_arn, b: source_profile with keys, c: keys in config, d: [default] keys
    keys: dict[str, str]          # the keys run.py would copy to workers (b–d)
    section: str | None           # the config section of config.AWS_PROFILE (None: there is none)


@fact()
def credential_layout(ctx: Context) -> Layout:
    """Which of run.py's four credential layouts config.AWS_PROFILE has (a–d), or 'none'."""
    files = aws_files(ctx)
    profile = ctx.config_profile()
    section = files.profile_section(profile)
    if section is None:
        return Layout("none", {}, None)
    conf = dict(files.config.items(section))
    if "role_arn" in conf:
        return Layout("a", {}, section)
    if "source_profile" in conf:
        src = conf["source_profile"]
        if files.credentials.has_section(src):
            keys = dict(files.credentials.items(src))
            if "aws_access_key_id" in keys and "aws_secret_access_key" in keys:
                return Layout("b", keys, section)
        return Layout("none", {}, section)
    if "aws_access_key_id" in conf and "aws_secret_access_key" in conf:
        return Layout("c", conf, section)
    if profile == "default" and files.credentials.has_section("default"):
        keys = dict(files.credentials.items("default"))
        if "aws_access_key_id" in keys and "aws_secret_access_key" in keys:
            return Layout("d", keys, section)
    return Layout("none", {}, section)


@fact()
def text(ctx: Context, path: Path) -> str | None:
    """A small text file's content (None when it is missing or unreadable)."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")[:1_000_000]
    except OSError:
        return None
