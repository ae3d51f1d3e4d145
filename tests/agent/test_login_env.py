"""The login refresh adopts the environment the user's login shell ends up with (the sshd test in
tests/login shows it end to end); here the parts: reading it past whatever the files print, and giving up on a
shell that hangs."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import login


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A home of its own; the process environment (which adopt_shell_env changes) is restored afterwards."""
    saved = dict(os.environ)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".profile").write_text('[ -n "$BASH_VERSION" ] && [ -f "$HOME/.bashrc" ] && . "$HOME/.bashrc"\n')
    yield tmp_path
    os.environ.clear()
    os.environ.update(saved)


def test_bashrc_exports_are_adopted(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (home / ".bashrc").write_text("echo 'welcome'\nexport AWS_PROFILE=lab\nunset AWS_DEFAULT_PROFILE\n")
    monkeypatch.setenv("AWS_DEFAULT_PROFILE", "old")
    env = login.shell_env()
    assert env is not None and env.get("AWS_PROFILE") == "lab" and "AWS_DEFAULT_PROFILE" not in env
    login.adopt_shell_env(env)
    assert os.environ.get("AWS_PROFILE") == "lab" and "AWS_DEFAULT_PROFILE" not in os.environ


def test_a_hanging_shell_changes_nothing(home: Path) -> None:
    (home / ".bashrc").write_text("sleep 30\n")
    start = time.monotonic()
    assert login.shell_env(timeout=1) is None
    assert time.monotonic() - start < 5
    login.adopt_shell_env(None)
