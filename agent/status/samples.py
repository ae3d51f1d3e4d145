"""Progress samples of a run, kept in the user's cache so the rate, the ETA and the spend so far survive a
reconnect (and the login hook, which reads only the cache, can show them).

``~/.cache/dcp-agent/status-<APP_NAME>.json`` (``$XDG_CACHE_HOME`` respected): a regular file of mode 0600 in a
directory of mode 0700, written atomically (a temporary file, fsync, rename). A symlink or anything but a regular
file there is never followed or read: it is treated as no samples, and replaced on the next write.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agent.cachefiles import read_regular, write_private
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


def load(app: str) -> History:
    raw = read_regular(path_for(app))
    text = raw.decode("utf-8", errors="replace") if raw else None
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
    path = path_for(app)
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if path.is_symlink() or (path.exists() and not path.is_file()):
            if path.is_dir() and not path.is_symlink():
                return
            path.unlink()
        write_private(path, json.dumps({"run": history.run, "total": history.total,
                                        "samples": [asdict(s) for s in history.samples],
                                        "last": history.last}) + "\n")
