"""Loaded by Python subprocesses of the tests (PYTHONPATH): installs the loopback guard."""

import os
import sys

if os.environ.get("DCP_NETGUARD_LOG"):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        import netguard

        netguard.install()
    finally:
        sys.path.pop(0)
