"""The local part of a fix: ``region`` and ``output`` in the profile's section of ~/.aws/config.

The file is edited line by line (comments, order and every other key stay as they are), a copy is kept
beside it first (``config.dcp-agent-backup-<UTC time>``), and the new text replaces the old atomically with
the old file's mode.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from agent.context import REGION_RE
from agent.facts import local
from agent.fix.plan import Kind, Step

if TYPE_CHECKING:
    from agent.context import Context

_HEADER = re.compile(r"^\s*\[([^\]]+)\]\s*$")


def set_keys(text: str, section: str, values: dict[str, str]) -> str:
    """``text`` with ``key = value`` set in ``[section]`` (replaced where present, else added at the section's
    end; the section is appended when missing)."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if (m := _HEADER.match(line)) and m.group(1).strip() == section),
                 None)
    if start is None:
        block = [f"[{section}]", *(f"{k} = {v}" for k, v in values.items())]
        return "\n".join([*lines, *([""] if lines and lines[-1].strip() else []), *block]) + "\n"
    end = next((i for i in range(start + 1, len(lines)) if _HEADER.match(lines[i])), len(lines))
    todo = dict(values)
    for i in range(start + 1, end):
        key = lines[i].split("=", 1)[0].strip() if "=" in lines[i] and not lines[i].lstrip().startswith(("#", ";")) else ""
        if key in todo:
            lines[i] = f"{key} = {todo.pop(key)}"
    insert = end
    while insert > start + 1 and not lines[insert - 1].strip():
        insert -= 1
    lines[insert:insert] = [f"{k} = {v}" for k, v in todo.items()]
    return "\n".join(lines) + "\n"


def write_with_backup(path: Path, text: str) -> Path | None:
    """Back ``path`` up, then replace it atomically with ``text`` (keeping its mode); the backup's path."""
    backup = None
    mode = 0o600
    if path.exists():
        mode = path.stat().st_mode & 0o777
        backup = path.with_name(f"{path.name}.dcp-agent-backup-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
        shutil.copy2(path, backup)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return backup


def plan(ctx: Context, problems: list[str]) -> list[Step]:
    files = local.aws_files(ctx)
    if files.errors:
        return []   # C01 names the parse error: for a person (rewriting a file we cannot parse could lose it)
    profile = ctx.config_profile()
    section = files.profile_section(profile)
    if section is None:
        return []   # no section for the profile at all: its keys are for a person to set (C03 says how)
    wanted: dict[str, str] = {}
    codes: list[str] = []
    region = ctx.config.get("AWS_REGION")
    current = files.config.get(section, "region", fallback=None) if files.config.has_section(section) else None
    if isinstance(region, str) and REGION_RE.match(region) and current != region and not os.environ.get("AWS_REGION") \
            and not os.environ.get("AWS_DEFAULT_REGION"):
        wanted["region"] = region
        codes += ["C07", "C08", "C09"]
    output = files.config.get(section, "output", fallback=None) if files.config.has_section(section) else None
    if output != "json":
        wanted["output"] = "json"
        codes.append("C10")
    if not wanted:
        return []
    path = files.config_file
    if (path.exists() and not os.access(path, os.W_OK)) or not os.access(path.parent if path.parent.exists()
                                                                          else path.parent.parent, os.W_OK):
        problems.append(f"cannot write {path}: make it writable, or set {', '.join(wanted)} with aws configure")
        return []
    change = ", ".join(f"{k} {files.config.get(section, k, fallback=None) if files.config.has_section(section) else None}"
                       f" → {v}" for k, v in wanted.items())

    def run(ctx: Context) -> None:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        write_with_backup(path, set_keys(text, section, wanted))

    return [Step(tuple(codes), f"file {path} [{section}]", Kind.MODIFY, f"{change} (a backup copy first)", (), run)]
