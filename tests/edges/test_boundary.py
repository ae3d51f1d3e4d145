"""The one error boundary (agent.boundary.guard) every entry point runs in: each kind of failure is one line on
stderr and its exit status; a bug's traceback goes to a private log file the line names, with no secret in it."""

from __future__ import annotations

import re
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

from agent.boundary import UserError, guard


def _raise(exc: BaseException) -> Callable[[], int]:
    def fn() -> int:
        raise exc
    return fn


@pytest.mark.parametrize("exc, code, says", [
    (UserError("bad input: " + "x" * 5000), 2, "bad input: xxx"),
    (UserError("refused", code=3), 3, "refused"),
    (PermissionError(13, "Permission denied", "/home/u/.ssh/dcp-key.pem"), 2,
     "cannot use /home/u/.ssh/dcp-key.pem: permission denied"),
    (IsADirectoryError(21, "Is a directory", "/etc"), 2, "cannot use /etc: is a directory"),
    (EndpointConnectionError(endpoint_url="https://sts.us-east-1.amazonaws.com/"), 3,
     "could not reach AWS: could not connect to https://sts.us-east-1.amazonaws.com"),
    (ReadTimeoutError(endpoint_url="https://ec2.eu-west-1.amazonaws.com/"), 3,
     "could not reach AWS: no answer from https://ec2.eu-west-1.amazonaws.com"),
    (KeyboardInterrupt(), 130, "interrupted"),
])
def test_each_failure_is_one_line_and_its_status(exc: BaseException, code: int, says: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert guard("dcp-agent", _raise(exc)) == code
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert out == "" and len(lines) == 1 and lines[0].startswith(f"dcp-agent: {says}"), err
    assert len(lines[0]) <= 420 and "Traceback" not in err


def test_a_bug_keeps_its_traceback_in_a_private_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

    def buggy() -> int:
        raise RuntimeError(f"aws_secret_access_key = {secret} went wrong")

    assert guard("dcp-agent", buggy) == 70
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "internal error: RuntimeError" in err and "please report it" in err
    assert secret not in err
    path = Path(re.search(r"the traceback is in (\S+);", err).group(1))   # type: ignore[union-attr]
    assert path.parent == tmp_path / "cache" / "dcp-agent" / "errors"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert "Traceback" in text and "buggy" in text and secret not in text


def test_verbose_shows_a_bugs_traceback_but_not_bad_inputs(capsys: pytest.CaptureFixture[str],
                                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert guard("x", _raise(ValueError("boom")), verbose=True) == 70
    assert "Traceback" in capsys.readouterr().err
    assert guard("x", _raise(UserError("bad")), verbose=True) == 2
    assert capsys.readouterr().err == "x: bad\n"


def test_no_writable_log_directory_still_gives_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("not a directory")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path / "file"))
    assert guard("x", _raise(ValueError("boom"))) == 70
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "no log could be written" in err


def test_a_worker_threads_crash_goes_to_the_log_not_the_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capfd: pytest.CaptureFixture[str]) -> None:
    import threading

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)   # restored after the test

    def run() -> int:
        t = threading.Thread(target=lambda: (_ for _ in ()).throw(ImportError("cannot import name 'Config'")))
        t.start()
        t.join()
        return 0

    assert guard("dcp-agent", run) == 0
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and err == ""
    logs = list((tmp_path / "dcp-agent" / "errors").glob("dcp-agent-thread-*.log"))
    assert len(logs) == 1 and "cannot import name 'Config'" in logs[0].read_text()
