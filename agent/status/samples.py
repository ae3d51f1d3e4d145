"""Progress samples of a run, kept in the user's cache so the rate, the ETA and the spend so far survive a
reconnect (and the login hook, which reads only the cache, can show them).

``~/.cache/dcp-agent/status-<APP_NAME>.json`` (``$XDG_CACHE_HOME`` respected): a regular file of mode 0600 in a
directory of mode 0700, written atomically (a temporary file, fsync, rename). A symlink or anything but a regular
file there is never followed or read: it is treated as no samples, and replaced on the next write.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agent.settings import cache_dir

KEEP = 240                      # samples per run (2 hours at the 30-second default)


@dataclass
class Sample:
    at: float                   # epoch seconds
    waiting: int
    in_progress: int
    failed: int
    done: int
    tasks: int
    per_hour: float
    so_far: float


@dataclass
class History:
    run: str = ""               # which run these samples are of (the fleet id, else the queue's creation time)
    total: int = 0              # the most jobs seen at once (when neither the job file nor CloudWatch says)
    samples: list[Sample] = field(default_factory=list)
    last: dict[str, Any] = field(default_factory=dict)   # the last status document (what the login hook shows)

    def add(self, sample: Sample) -> None:
        self.samples.append(sample)
        del self.samples[:-KEEP]


def path_for(app: str) -> Path:
    return cache_dir() / f"status-{re.sub(r'[^A-Za-z0-9_.-]', '_', app)}.json"


def read_regular(path: Path) -> str | None:
    """The file's text if it is a regular file (never through a symlink), else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(4_000_000).decode("utf-8", errors="replace")
    finally:
        os.close(fd)


def load(app: str) -> History:
    text = read_regular(path_for(app))
    if not text:
        return History()
    try:
        doc = json.loads(text)
        return History(run=str(doc.get("run", "")), total=int(doc.get("total", 0)),
                       samples=[Sample(**s) for s in doc.get("samples", [])][-KEEP:],
                       last=dict(doc.get("last") or {}))
    except (ValueError, TypeError, AttributeError):
        return History()   # a damaged cache is no history, never an error


def save(app: str, history: History) -> None:
    """Write atomically; a cache that cannot be written is not an error (the status itself was shown)."""
    from agent.login import _write_atomic

    path = path_for(app)
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if path.is_symlink() or (path.exists() and not path.is_file()):
            if path.is_dir() and not path.is_symlink():
                return
            path.unlink()
        _write_atomic(path, json.dumps({"run": history.run, "total": history.total,
                                        "samples": [asdict(s) for s in history.samples],
                                        "last": history.last}) + "\n")
