"""What the benchmarks share: the sandbox precondition and the line naming the machine."""

from __future__ import annotations

import os
import platform
import time

from rig.sandbox import can_sandbox, ensure_base


def sandbox_ready() -> bool:
    """True when sandbox hosts can start here (the base is built if needed); else says why and is False."""
    reason = can_sandbox()
    if reason:
        print(f"skipped: {reason}")
        return False
    ensure_base()
    return True


def machine() -> str:
    return f"machine: {platform.machine()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}"
