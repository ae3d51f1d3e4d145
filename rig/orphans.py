"""The rig's servers die with the process that started them.

A test run, the demo or a benchmark that is killed (SIGTERM, SIGKILL, a CI timeout) runs no ``finally``: without
this, its moto server and git daemon would keep listening on loopback ports. Linux's PR_SET_PDEATHSIG sends the
child SIGKILL when its parent exits; the rig only runs on Linux (see docs/testing.md), and elsewhere this does
nothing. (The signal follows the parent *thread*: the rig starts its servers from the main thread.)"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """A ``preexec_fn``: in the child, before exec, ask for SIGKILL when the parent exits; exit at once if it
    already has (the parent died between fork and prctl)."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)
