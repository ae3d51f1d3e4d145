"""`invoke bootstrap` at the edges: host strings as OpenSSH reads them, one error boundary (one line, an exit
status, no traceback), numbers as users type them, bad paths refused before connecting, paramiko's thread
tracebacks kept in the host's log, Ctrl-C within 2 s (also while connecting), and stdouts that are not UTF-8.

Everything here connects only to 127.0.0.1 / ::1: port 9 (discard, refused), a listener that never answers
(rig.ports.SilentListener), one that hangs up, or a sandbox sshd.
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bootstrap import cli, runner
from bootstrap.hosts import Target, parse_host
from rig.nodes import run_bootstrap
from rig.ports import SilentListener
from rig.sandbox import Sandbox
from tests.conftest import ROOT

DEAD = "127.0.0.1:9"       # the discard port: nothing listens, the connection is refused at once


# -- parse_host: the one place a host string is read ------------------------------------------------------------

VALID = [
    ("user@host:2222", Target("user", "host", 2222)),
    ("host", Target(None, "host", None)),
    ("host:22", Target(None, "host", 22)),
    ("root@127.0.0.1:9", Target("root", "127.0.0.1", 9)),
    ("127.0.0.1", Target(None, "127.0.0.1", None)),
    ("[::1]:22", Target(None, "::1", 22)),
    ("[::1]", Target(None, "::1", None)),
    ("::1", Target(None, "::1", None)),                          # a bare IPv6 literal never carries a port
    ("::1:22", Target(None, "::1:22", None)),                    # ... so this is an address, as ssh reads it
    ("user@[fe80::1%eth0]:2222", Target("user", "fe80::1%eth0", 2222)),
    ("fe80::1%eth0", Target(None, "fe80::1%eth0", None)),
    ("dcp@[2001:db8::7]", Target("dcp", "2001:db8::7", None)),
    ("[myhost]:2200", Target(None, "myhost", 2200)),             # known_hosts' spelling of host:port
    ("my-node_1.example.org:65535", Target(None, "my-node_1.example.org", 65535)),
    ("host:1", Target(None, "host", 1)),
    ("host:0022", Target(None, "host", 22)),
    ("a@b@host", Target("a@b", "host", None)),                   # the user is what comes before the last '@'
    ("dcp-control", Target(None, "dcp-control", None)),          # an ~/.ssh/config alias, kept for SSHConfig
    ("ubuntu@node-7", Target("ubuntu", "node-7", None)),
    ("höst", Target(None, "höst", None)),                         # ssh does not refuse non-ASCII names
    ("h" * 255, Target(None, "h" * 255, None)),
]

INVALID = [
    ("HOST:notaport", "port 'notaport' is not a number 1–65535"),
    ("host:0", "port '0' is not a number"),
    ("host:70000", "port '70000' is not a number"),
    ("host:65536", "not a number 1–65535"),
    ("host:-1", "not a number"),
    ("host:+22", "not a number"),
    ("host:٢٢", "not a number"),                                  # Arabic-Indic digits are not a port
    ("host:", "no port after ':'"),
    ("[::1]:", "no port after ':'"),
    ("user@", "no host after '@'"),
    ("@host", "no user before '@'"),
    ("", "empty host"),
    ("[::1", "unbalanced '['"),
    ("::1]", "unbalanced ']'"),
    ("[::1]22", "after ']'"),
    ("[]:22", "no host name"),
    ("[1:2]:22", "not an IPv6 address"),
    ("a:b:c", "not an IPv6 address"),
    ("host name", "whitespace or a control character"),
    ("host\tname", "whitespace or a control character"),
    ("host\n", "whitespace or a control character"),
    ("host\x00", "whitespace or a control character"),
    ("host\x1b[31m", "whitespace or a control character"),
    ("host\u200b", "whitespace or a control character"),          # zero-width space: invisible in a terminal
    ("x" * 5000, "too long"),
    ("h" * 256, "too long"),
    ("-oProxyCommand=id", "starts with '-'"),
    ("host;id", "contains ';'"),
    ("$(id)", "contains '$'"),
    ("`id`", "contains '`'"),
    ("ro|ot@host", "user name"),
    ("-l@host", "user name"),
]


@pytest.mark.parametrize("text, want", VALID, ids=[t[:30] for t, _ in VALID])
def test_parse_host_reads_what_openssh_reads(text: str, want: Target) -> None:
    got = parse_host(text)
    assert got == want
    assert parse_host(str(got)) == got                   # the canonical spelling reads back the same


@pytest.mark.parametrize("text, message", INVALID, ids=[repr(t[:20]) for t, _ in INVALID])
def test_parse_host_refuses_with_one_line(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_host(text)
    said = str(caught.value)
    assert message in said
    assert "\n" not in said and len(said) < 300          # one line, and a 5,000-character name is not echoed


def test_the_table_is_big_enough() -> None:
    assert len(VALID) + len(INVALID) >= 25


def test_fabric_gets_the_parsed_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """runner.Remote is the one place a host string becomes a Fabric Connection: user, host and port arrive
    apart (Fabric alone cannot split [::1]:22), and an ~/.ssh/config alias still resolves through SSHConfig."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text("Host dcp-alias\n    HostName 127.0.0.1\n    Port 9\n    User dcp\n")
    monkeypatch.setenv("HOME", str(home))
    keys = runner.HostKeys(tmp_path / "known_hosts")
    with open(tmp_path / "log", "w", encoding="utf-8") as log:
        cases = {"root@[::1]:2222": ("root", "::1", 2222, "[::1]:2222"),
                 "user@[fe80::1%eth0]:2200": ("user", "fe80::1%eth0", 2200, "[fe80::1%eth0]:2200"),
                 "root@127.0.0.1:9": ("root", "127.0.0.1", 9, "127.0.0.1:9"),
                 "dcp-alias": ("dcp", "127.0.0.1", 9, "127.0.0.1:9")}
        for text, (user, host, port, where) in cases.items():
            remote = runner.Remote(text, None, log, keys)
            try:
                assert (remote.conn.user, remote.conn.host, int(remote.conn.port)) == (user, host, port)
                assert remote.where == where
            finally:
                remote.close()


def test_known_hosts_lines_paramiko_cannot_read_are_skipped(tmp_path: Path) -> None:
    good = "127.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    kh = tmp_path / "known_hosts"
    kh.write_bytes(b"garbage\n\xff\xfe\n127.0.0.1 ssh-ed25519 !!!notbase64\n# comment\n" + good.encode() + b"\n")
    keys, skipped = runner.load_known_hosts(kh)
    assert skipped == 3
    assert list(keys) == ["127.0.0.1"]


# -- the command: one boundary ------------------------------------------------------------------------------------

def bootstrap(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bootstrap", *args], capture_output=True, text=True, cwd=ROOT,
                          errors="replace", env=env or dict(os.environ), stdin=subprocess.DEVNULL,
                          timeout=timeout, check=False)


def quiet(tmp: Path) -> list[str]:
    """Logs and known_hosts of the test's own: the work tree and ~/.ssh stay as they are."""
    return ["--log-dir", str(tmp / "logs"), "--known-hosts", str(tmp / "known_hosts")]


def assert_no_traceback(*outputs: str) -> None:
    for out in outputs:
        assert "Traceback" not in out, out[-3000:]


USAGE = [
    (["127.0.0.1:notaport"], "port 'notaport' is not a number 1–65535"),
    (["127.0.0.1:0"], "is not a number 1–65535"),
    (["127.0.0.1:70000"], "is not a number 1–65535"),
    (["root@"], "no host after '@'"),
    (["@127.0.0.1"], "no user before '@'"),
    ([""], "empty host"),
    (["[::1"], "unbalanced '['"),
    (["x" * 5000], "too long"),
    (["host\x1bname"], "control character"),
    ([DEAD, "--parallel", "abc"], "argument --parallel: 'abc' is not a whole number"),
    ([DEAD, "--parallel", "0"], "is not a whole number from 1"),
    ([DEAD, "--parallel", "-1"], "is not a whole number from 1"),
    ([DEAD, "--connect-timeout", "abc"], "argument --connect-timeout: 'abc' is not a number of seconds"),
    ([DEAD, "--connect-timeout", "-1"], "is not a number of seconds"),
    ([DEAD, "--connect-timeout", "0"], "is not a number of seconds"),
    ([DEAD, "--connect-timeout", "nan"], "is not a number of seconds"),
    ([DEAD, "--connect-timeout", "inf"], "is not a number of seconds"),
    ([DEAD, DEAD], "a host is named twice"),
    ([DEAD, "[127.0.0.1]:9"], "are the same host"),
    ([DEAD, "--ref=--orphan=x"], "starts with '-'"),
    ([DEAD, "--bogus"], "unrecognized arguments: --bogus"),
]


@pytest.mark.parametrize("args, message", USAGE, ids=[" ".join(a)[:40] for a, _ in USAGE])
def test_usage_errors_are_one_line_and_exit_two(args: list[str], message: str, tmp_path: Path) -> None:
    start = time.monotonic()
    p = bootstrap(*args, *quiet(tmp_path))
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bootstrap: ") and message in lines[0], p.stderr
    assert len(lines[0]) < 400
    assert p.stdout == ""                                   # refused before anything started
    assert not (tmp_path / "logs").exists()                 # and before the log directory was made
    assert_no_traceback(p.stdout, p.stderr)
    assert time.monotonic() - start < 10


def paths(tmp: Path) -> dict[str, str]:
    (tmp / "file").write_text("x")
    (tmp / "dir").mkdir()
    (tmp / "id.pub").write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl x\n")
    (tmp / "notakey").write_text("hello\n")
    return {"file": str(tmp / "file"), "dir": str(tmp / "dir"), "pub": str(tmp / "id.pub"),
            "notakey": str(tmp / "notakey"), "long": "/tmp/" + "x" * 5000}


PATHS = [
    (["--log-dir", "{file}"], "--log-dir {file} is a file, not a directory"),
    (["--log-dir", "{file}/logs"], "is under {file}, which is not a directory"),
    (["--log-dir", "/proc/dcp-no-such/logs"], "--log-dir /proc/dcp-no-such/logs is not a writable directory"),
    (["--log-dir", "{long}"], "file name too long"),
    (["-i", "{dir}"], "key {dir} is a directory"),
    (["-i", "/dev/zero"], "key /dev/zero is not a regular file"),
    (["-i", "{pub}"], "is a public key"),
    (["-i", "{notakey}"], "is not an SSH private key"),
    (["-i", "{long}"], "file name too long"),
    (["-i", "/nonexistent/key"], "key /nonexistent/key does not exist"),
    (["--known-hosts", "{dir}"], "--known-hosts {dir} is a directory"),
    (["--known-hosts", "/dev/zero"], "not a regular file"),
    (["--known-hosts", "{file}/kh", "--accept-new-host-keys"], "not a directory"),
]


@pytest.mark.parametrize("args, message", PATHS, ids=[" ".join(a)[:40] for a, _ in PATHS])
def test_bad_paths_are_refused_before_connecting(args: list[str], message: str, tmp_path: Path) -> None:
    """A port that accepts and never answers: had the command connected first, it would take 30 s."""
    names = paths(tmp_path)
    with SilentListener() as listener:
        start = time.monotonic()
        p = bootstrap(f"127.0.0.1:{listener.port}", "--connect-timeout", "30",
                      *[a.format(**names) for a in args], *(["--log-dir", str(tmp_path / "logs")]
                                                            if "--log-dir" not in args else []))
        took = time.monotonic() - start
        assert not listener._held                          # nothing connected
    assert p.returncode == 2, p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and message.format(**names) in lines[0], p.stderr
    assert_no_traceback(p.stdout, p.stderr)
    assert took < 10


def test_main_returns_an_int(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """tasks.py does `code = cli.main(args)`: usage errors, --help and results are statuses, not SystemExit."""
    assert cli.main(["--help"]) == 0
    assert cli.main(["127.0.0.1:notaport"]) == 2
    assert cli.main([DEAD, *quiet(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["bootstrap: host '127.0.0.1:notaport': port 'notaport' is not a number 1–65535"]


# -- hosts that do not answer: no paramiko tracebacks ---------------------------------------------------------------

def test_silent_host_gives_one_line_and_the_traceback_stays_in_its_log(tmp_path: Path) -> None:
    with SilentListener() as listener:
        start = time.monotonic()
        p = bootstrap(f"root@127.0.0.1:{listener.port}", "--connect-timeout", "0.5", *quiet(tmp_path))
        took = time.monotonic() - start
    assert p.returncode == 1
    assert_no_traceback(p.stdout, p.stderr)
    assert p.stderr == ""
    assert f"root@127.0.0.1:{listener.port}: failed: cannot connect to 127.0.0.1:{listener.port}: no answer " \
           "(timeout 0.5 s)" in p.stdout                   # a fraction of a second is a timeout too
    assert took < 8                                        # two attempts of 0.5 s and a pause, not 2 × 10 s
    log = (tmp_path / "logs" / f"root_127.0.0.1_{listener.port}.log").read_text()
    assert "Error reading SSH protocol banner" in log and "Traceback" in log   # kept, where it belongs


class HangUp:
    """A 127.0.0.1 port that accepts and closes at once (sshd's MaxStartups, a firewall's reset)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.close()

    def __enter__(self) -> HangUp:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def test_host_that_hangs_up_gives_one_line(tmp_path: Path) -> None:
    with HangUp() as server:
        p = bootstrap(f"127.0.0.1:{server.port}", "--connect-timeout", "5", *quiet(tmp_path))
    assert p.returncode == 1
    assert_no_traceback(p.stdout, p.stderr)
    assert p.stderr == ""
    assert f"cannot connect to 127.0.0.1:{server.port}: the connection was closed before SSH answered" in p.stdout


def test_ipv6_literal_reaches_the_socket(tmp_path: Path) -> None:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    p = bootstrap("root@[::1]:9", "[::1]:9", *quiet(tmp_path))      # (a bare ::1 would be port 22: not here)
    assert p.returncode == 1
    assert_no_traceback(p.stdout, p.stderr)
    assert "root@[::1]:9: failed: cannot connect to [::1]:9: connection refused" in p.stdout
    assert "bootstrap: [::1]:9: failed: cannot connect to [::1]:9: connection refused" in p.stdout


def test_ssh_config_alias_is_resolved(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text("Host dcp-alias\n    HostName 127.0.0.1\n    Port 9\n")
    p = bootstrap("dcp-alias", *quiet(tmp_path), env={**os.environ, "HOME": str(home)})
    assert p.returncode == 1
    assert "dcp-alias: failed: cannot connect to 127.0.0.1:9: connection refused" in p.stdout


# -- Ctrl-C --------------------------------------------------------------------------------------------------------

def interrupt_after(args: list[str], wait_for: str, delay: float = 1.0,
                    patience: float = 30) -> tuple[int | None, str, str, float]:
    """Start the command, SIGINT it ``delay`` s after ``wait_for`` appears on stdout (within ``patience`` s);
    (status, stdout, stderr, seconds from the signal to its exit)."""
    proc = subprocess.Popen([sys.executable, "-m", "bootstrap", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=dict(os.environ),
                            stdin=subprocess.DEVNULL)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        seen = ""
        deadline = time.monotonic() + patience
        while wait_for not in seen and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen += line
        assert wait_for in seen, seen
        time.sleep(delay)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        return proc.returncode, seen + out, err, time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ctrl_c_while_connecting_stops_within_two_seconds(tmp_path: Path) -> None:
    with SilentListener() as listener:
        host = f"127.0.0.1:{listener.port}"
        code, out, err, took = interrupt_after([host, "--connect-timeout", "30", *quiet(tmp_path)],
                                               f"{host}: connecting")
    print(f"Ctrl-C to exit while connecting: {took:.3f} s")
    assert took < 2, f"took {took:.1f} s"
    assert code == 130
    assert_no_traceback(out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bootstrap: interrupted"), err
    assert f"stopped {host} (at connecting)" in lines[0] and "run the same command again" in lines[0]
    log = (tmp_path / "logs" / f"127.0.0.1_{listener.port}.log").read_text()
    assert "# interrupted (Ctrl-C)" in log


def test_ctrl_c_says_which_hosts_finished(tmp_path: Path) -> None:
    with SilentListener() as listener:
        host = f"127.0.0.1:{listener.port}"
        code, out, err, took = interrupt_after(
            [DEAD, host, "127.0.0.2:9", "--parallel", "2", "--connect-timeout", "30", *quiet(tmp_path)],
            f"{DEAD}: failed", delay=0.5)
    assert took < 2 and code == 130
    assert_no_traceback(out, err)
    line = err.strip()
    assert "\n" not in line
    assert f"finished {DEAD} (failed)" in line and f"stopped {host} (at connecting)" in line, line
    # parallel 2: the third host started once the first one had failed, and finished too
    assert "127.0.0.2:9 (failed)" in line or "not started 127.0.0.2:9" in line


def in_pty(args: list[str], env: dict[str, str], interrupt_on: bytes = b"") -> tuple[int, str, float]:
    """Run in a pseudo-terminal (rich's live rows); SIGINT once ``interrupt_on`` has been printed."""
    master, slave = pty.openpty()
    env = {**env, "COLUMNS": "100", "LINES": "24", "TERM": "xterm"}
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, cwd=ROOT, env=env)
    os.close(slave)
    out = b""
    sent = 0.0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if interrupt_on and not sent and interrupt_on in out:
            time.sleep(0.5)
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    code = proc.wait(timeout=10)
    os.close(master)
    return code, re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.decode("ascii", errors="replace")), \
        (time.monotonic() - sent if sent else 0.0)


def test_ctrl_c_in_a_terminal_with_live_rows(tmp_path: Path) -> None:
    with SilentListener() as listener:
        code, text, took = in_pty([sys.executable, "-m", "bootstrap", f"127.0.0.1:{listener.port}",
                                   "--connect-timeout", "30", *quiet(tmp_path)], dict(os.environ),
                                  interrupt_on=b"connecting")
    assert code == 130, text
    assert took < 2.5            # includes draining the terminal
    assert "Traceback" not in text
    assert "bootstrap: interrupted" in text


# -- stdouts that cannot show '–', '…' or a table's box ----------------------------------------------------------

@pytest.mark.parametrize("env", [{"PYTHONIOENCODING": "ascii"}, {"LANG": "C", "LC_ALL": "C"},
                                 {"PYTHONIOENCODING": "latin-1"}], ids=["ascii", "C-locale", "latin-1"])
def test_stdout_that_is_not_utf8(env: dict[str, str], tmp_path: Path) -> None:
    full = {**os.environ, **env}
    if "LC_ALL" in env:
        full.pop("PYTHONIOENCODING", None)
    usage = bootstrap("höst:notaport", env=full)
    assert usage.returncode == 2 and len(usage.stderr.strip().splitlines()) == 1
    assert "is not a number 1" in usage.stderr
    refused = bootstrap(DEAD, "--connect-timeout", "1.5", *quiet(tmp_path), env=full)
    assert refused.returncode == 1 and "connection refused" in refused.stdout
    code, text, _ = in_pty([sys.executable, "-m", "bootstrap", DEAD, "höst-ünknown:x", *quiet(tmp_path)], full)
    assert code == 2 and "not a number" in text                # the same line on a terminal
    code, text, _ = in_pty([sys.executable, "-m", "bootstrap", DEAD, *quiet(tmp_path)], full)
    assert code == 1 and "connection refused" in text, text   # rich's live rows and table, in ASCII
    assert_no_traceback(usage.stdout, usage.stderr, refused.stdout, refused.stderr, text)


# -- real SSH: the bracketed spelling and Ctrl-C in the middle of a step ------------------------------------------

@pytest.mark.sandbox
def test_bracketed_host_reaches_a_real_sshd(sandbox: Sandbox, sandbox_key: Path, tmp_path: Path) -> None:
    bracketed = f"root@[127.0.0.1]:{sandbox.port}"
    p = run_bootstrap(bracketed, "-i", str(sandbox_key), "--dry-run", "--connect-timeout", "7.5",
                      "--log-dir", str(tmp_path / "logs"))
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert f"{bracketed}: would change 7" in p.stdout
    assert_no_traceback(p.stdout, p.stderr)

