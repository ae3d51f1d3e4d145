"""The host suite runs only against a host named with --hosts (pytest-testinfra), e.g.

    pytest tests/host --hosts=ssh://ubuntu@node --ssh-identity-file=~/.ssh/key.pem
    pytest tests/host --hosts=paramiko://root@127.0.0.1:2222 --ssh-identity-file=KEY

Without --hosts it is not collected, so `make test` never tests the machine it runs on by mistake.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if not config.getoption("hosts", default=None):
        return True
    return None
