"""Runs the recipe on hosts over SSH with Fabric: in parallel, one result per host, a log file per host.

Each step's ``check`` runs first; ``apply`` only when the host differs, then ``check`` again to prove it.
A dry run stops after the checks. Nothing changes before the OS is known to be supported and root (or
passwordless sudo) is available.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import logging
import queue
import re
import shlex
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from agent.boundary import one_line
from agent.redact import scrub
from bootstrap.facts import UnsupportedHost, parse_os_release
from bootstrap.hosts import parse_host
from bootstrap.recipe import STAGE, Options, plan
from bootstrap.stage import Stage, prepare

CONNECT_TIMEOUT = 10
LOCK = "/run/dcp-control-node.lock"
Progress = Callable[[str, str], None]   # (host, what is happening)


@dataclass(frozen=True)
class HostKeys:
    """How host keys are judged, as OpenSSH does: the user's known_hosts (``file``) is read; a host not in it
    is refused unless ``accept_new`` (then its key is added to ``file``, like StrictHostKeyChecking=accept-new);
    a host whose key differs from the known one is always refused."""
    file: Path = field(default_factory=lambda: Path.home() / ".ssh" / "known_hosts")
    accept_new: bool = False


_known_hosts_lock = threading.Lock()


def load_known_hosts(file: Path) -> tuple[Any, int]:
    """known_hosts as paramiko's HostKeys, read as OpenSSH reads it: a line it cannot parse (bad base64, an
    unknown key type, bytes that are not UTF-8) is skipped, not fatal; and how many lines were skipped.
    OSError if the file cannot be read (a directory, no permission)."""
    from paramiko.hostkeys import HostKeyEntry
    from paramiko.hostkeys import HostKeys as ParamikoHostKeys

    keys = ParamikoHostKeys()
    skipped = 0
    if not file.exists():
        return keys, 0
    for raw in file.read_bytes().decode("utf-8", errors="replace").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            entry = HostKeyEntry.from_line(line)
        except Exception:       # paramiko raises InvalidHostKey, binascii.Error, ValueError, …
            entry = None
        if entry is None or entry.key is None:
            skipped += 1
            continue
        for name in entry.hostnames:
            keys.add(name, entry.key.get_name(), entry.key)
    return keys, skipped


def fingerprint(key: Any) -> str:
    """OpenSSH's SHA256 fingerprint of a paramiko key."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


def _known_name(hostname: str, port: int) -> str:
    return hostname if port == 22 else f"[{hostname}]:{port}"


class _HostKeyPolicy:
    """paramiko's MissingHostKeyPolicy for a host that known_hosts does not list (a listed host whose key
    differs never gets here: paramiko raises BadHostKeyException)."""

    def __init__(self, keys: HostKeys) -> None:
        self.keys = keys

    def missing_host_key(self, client: Any, name: str, key: Any) -> None:
        # ``name`` is as known_hosts writes it: "host", or "[host]:port" for a port other than 22.
        if not self.keys.accept_new:
            raise StepFailed(f"host key of {name} is unknown ({key.get_name()} {fingerprint(key)}; not in "
                             f"{self.keys.file}): check it and run again with --accept-new-host-keys, or add it "
                             "to known_hosts")
        with _known_hosts_lock:
            self.keys.file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with open(self.keys.file, "a", encoding="ascii") as f:
                f.write(f"{name} {key.get_name()} {key.get_base64()}\n")
        client.get_host_keys().add(name, key.get_name(), key)


@dataclass
class HostResult:
    host: str
    status: str                          # ok | changed | would-change | failed
    changed: list[str] = field(default_factory=list)
    reason: str = ""
    seconds: float = 0.0
    log: Path | None = None

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def line(self) -> str:
        if self.status == "failed":
            return f"failed: {self.reason}"
        if self.status == "would-change":
            return f"would change {len(self.changed)}: {', '.join(self.changed)}" if self.changed else "ok (nothing to change)"
        if self.status == "changed":
            return f"changed {len(self.changed)}: {', '.join(self.changed)}"
        return "ok"


class StepFailed(Exception):
    pass


def _safe_name(host: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", host)
    if len(name) > 200:      # a file name is at most 255 bytes
        name = f"{name[:180]}-{hashlib.sha256(host.encode()).hexdigest()[:12]}"
    return name


def log_name(host: str) -> str:
    """The name of ``host``'s log file in the log directory."""
    return f"{_safe_name(host)}.log"


class Remote:
    """One host's connection: runs shell as root (directly or via sudo) and logs every command."""

    def __init__(self, host: str, key: str | None, log: IO[str], host_keys: HostKeys | None = None,
                 cancelled: threading.Event | None = None) -> None:
        from fabric import Config, Connection

        try:
            target = parse_host(host)
        except ValueError as e:
            raise StepFailed(f"not a host: {e}") from None
        self.host = host
        self.log = log
        self._log_lock = threading.Lock()
        self.cancelled = cancelled or threading.Event()
        timeout = CONNECT_TIMEOUT
        kwargs: dict[str, Any] = {"banner_timeout": timeout, "auth_timeout": timeout,
                                  "look_for_keys": key is None, "allow_agent": key is None}
        if key:
            kwargs["key_filename"] = [key]
        self.timeout = timeout
        # The one place a host string becomes a connection: user and port given apart, never re-parsed by
        # Fabric (which cannot read [::1]:22); an ~/.ssh/config alias is resolved by Fabric's SSHConfig.
        self.conn = Connection(target.host, user=target.user, port=target.port, connect_timeout=timeout,
                               connect_kwargs=kwargs, config=Config())
        # paramiko's transport thread logs (and formats tracebacks of) every failed handshake: into this
        # host's log, never onto the terminal.
        self._channel = f"paramiko.dcp.{next(_channels)}"
        self._handler = _HostLogHandler(self)
        logger = logging.getLogger(self._channel)
        logger.setLevel(logging.INFO)
        logger.addHandler(self._handler)
        self.conn.client.set_log_channel(self._channel)
        # Fabric accepts any host key (AutoAddPolicy, no known_hosts): judge them as OpenSSH does instead.
        self.host_keys = host_keys or HostKeys()
        known, skipped = load_known_hosts(self.host_keys.file)
        if skipped:
            self.write(f"# {self.host_keys.file}: {skipped} line(s) that are not host keys were skipped\n")
        for name in list(known):
            for keytype, hostkey in known[name].items():
                self.conn.client.get_host_keys().add(name, keytype, hostkey)   # in memory; never rewritten
        self.conn.client.set_missing_host_key_policy(_HostKeyPolicy(self.host_keys))
        self.root = False

    @property
    def where(self) -> str:
        host = str(self.conn.host)
        return f"{f'[{host}]' if ':' in host else host}:{self.conn.port}"

    def write(self, text: str) -> None:
        """Append to this host's log (the worker and paramiko's transport thread both write here)."""
        with self._log_lock, contextlib.suppress(ValueError, OSError):
            self.log.write(text)
            self.log.flush()

    def connect(self) -> None:
        import paramiko
        from paramiko.ssh_exception import NoValidConnectionsError

        where = self.where
        for attempt in (1, 2):
            if self.cancelled.is_set():
                raise StepFailed("interrupted")
            try:
                self.conn.open()
                return
            except NoValidConnectionsError:
                raise StepFailed(f"cannot connect to {where}: connection refused") from None
            except paramiko.BadHostKeyException as e:
                raise StepFailed(
                    f"host key of {_known_name(self.conn.host, int(self.conn.port))} has CHANGED (now "
                    f"{e.key.get_name()} {fingerprint(e.key)}, {self.host_keys.file} has {fingerprint(e.expected_key)}): "
                    "refused; if the host was rebuilt, remove the old key (ssh-keygen -R) and run again") from None
            except socket.gaierror as e:
                raise StepFailed(f"cannot connect to {where}: the host name does not resolve "
                                 f"({e.strerror or e})") from None
            except paramiko.AuthenticationException:
                raise StepFailed(f"cannot log in to {where} as {self.conn.user}: the key was refused") from None
            except (TimeoutError, EOFError, paramiko.SSHException, OSError) as e:
                if self.cancelled.is_set():
                    raise StepFailed("interrupted") from None
                if attempt == 2:
                    why = _why(e)
                    waited = f" (timeout {self.timeout:g} s)" if why == "no answer" else ""
                    raise StepFailed(f"cannot connect to {where}: {why}{waited}") from None
                self.cancelled.wait(1)

    def sh(self, script: str, *, as_root: bool = True, check: bool = False) -> tuple[int, str]:
        cmd = f"bash -c {shlex.quote(script)}"
        if as_root:
            # One recipe run at a time per host: a run interrupted from this side may leave its last
            # command running there; the next run waits for it instead of racing it.
            cmd = f"flock -w 900 {LOCK} {cmd}"
        if self.cancelled.is_set():
            raise StepFailed("interrupted")
        self.write(f"$ {scrub(script)}\n")
        runner = self.conn.sudo if as_root and not self.root else self.conn.run
        result = runner(cmd, hide=True, warn=True, in_stream=False, pty=False)
        out = (result.stdout + result.stderr).strip()
        self.write((scrub(out) + "\n" if out else "") + f"[exit {result.exited}]\n")
        if check and result.exited != 0:
            raise StepFailed(f"'{script[:60]}' failed: {scrub(out.splitlines()[-1]) if out else result.exited}")
        return int(result.exited), out

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
        logging.getLogger(self._channel).removeHandler(self._handler)

    def abort(self) -> None:
        """From another thread (Ctrl-C): close the connection, even one still being opened, so the worker's
        next read fails at once. A command already started on the host may go on there; the host-side lock
        makes the next run wait for it."""
        self.cancelled.set()
        self.write(f"# interrupted (Ctrl-C) at {time.strftime('%H:%M:%S')}: closing the connection\n")
        with contextlib.suppress(Exception):
            self.conn.client.close()      # closes the transport even before Fabric has one (mid-handshake)


_channels = itertools.count(1)


class _HostLogHandler(logging.Handler):
    """paramiko's log records (and the tracebacks its transport thread formats) into a host's log."""

    def __init__(self, remote: Remote) -> None:
        super().__init__(logging.INFO)
        self.remote = remote

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.remote.write(f"# paramiko: {scrub(record.getMessage())}\n")


def _quiet_paramiko() -> None:
    """Nothing paramiko logs reaches the terminal (logging's last-resort handler prints WARNING and up to
    stderr, tracebacks included): each host's records go to its log (:class:`_HostLogHandler`)."""
    top = logging.getLogger("paramiko")
    top.propagate = False
    if not any(isinstance(h, logging.NullHandler) for h in top.handlers):
        top.addHandler(logging.NullHandler())


def _why(e: BaseException) -> str:
    """Why a connection attempt failed, in a few words (paramiko's SSHException wraps the cause)."""
    chain: list[BaseException] = []
    link: BaseException | None = e
    while link is not None and link not in chain:
        chain.append(link)
        link = link.__cause__ or link.__context__
    if any(isinstance(x, EOFError | ConnectionResetError | BrokenPipeError) for x in chain):
        return "the connection was closed before SSH answered"
    text = str(e)
    if any(isinstance(x, TimeoutError | socket.timeout) for x in chain) or text == "No existing session":
        return "no answer"
    if "banner" in text:
        return "no SSH banner (is it an SSH server?)"
    return scrub(text).splitlines()[0] if text else type(e).__name__


def bootstrap_host(host: str, base: Options, stage_dir: Path, *, key: str | None = None, dry_run: bool = False,
                   log_dir: Path, progress: Progress | None = None, host_keys: HostKeys | None = None,
                   batch: Batch | None = None) -> HostResult:
    start = time.monotonic()
    log_path = log_dir / log_name(host)
    result = HostResult(host, "would-change" if dry_run else "ok", log=log_path)
    say = progress or (lambda h, m: None)
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 (closed in the finally below)
    except OSError as e:
        result.status, result.reason, result.log = "failed", f"cannot write its log {log_path}: {e.strerror}", None
        say(host, result.line())
        return result
    remote: Remote | None = None
    try:
        log.write(f"# dcp-control-node bootstrap of {host} ({'dry run' if dry_run else 'apply'}) "
                  f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        log.flush()
        remote = Remote(host, key, log, host_keys, batch.cancelled if batch else None)
        if batch is not None:
            batch.opened(host, remote)
        say(host, "connecting")
        remote.connect()
        user = remote.sh("id -un", as_root=False, check=True)[1]
        remote.root = user == "root"
        if not remote.root and remote.sh("sudo -n true", as_root=False)[0] != 0:
            raise StepFailed(f"{user} is not root and has no passwordless sudo; connect as root or grant sudo")
        os_info = parse_os_release(remote.sh("cat /etc/os-release", as_root=False, check=True)[1])
        home = remote.sh(f"getent passwd {shlex.quote(user)} | cut -d: -f6", as_root=False, check=True)[1]
        opts = Options(**{**base.__dict__, "owner": user, "owner_home": home or f"/home/{user}"})
        stage, opts = prepare(stage_dir / _safe_name(host), opts, wheel=None)
        steps = plan(os_info, opts)
        remote.write(f"# {os_info.pretty}, user {user}, {len(steps)} steps\n")
        if not dry_run:
            say(host, "uploading the recipe's files")
            _upload(remote, stage, user)
        for step in steps:
            say(host, step.name)
            if remote.sh(step.check)[0] == 0:
                continue
            result.changed.append(step.name)
            if dry_run:
                continue
            say(host, f"{step.name} (applying)")
            rc, out = remote.sh(step.apply)
            if rc != 0:
                last = scrub(out.splitlines()[-1]) if out else f"exit status {rc}"
                raise StepFailed(f"step {step.name} failed: {last}")
            if remote.sh(step.check)[0] != 0:
                raise StepFailed(f"step {step.name} ran but the host is still not as wanted")
        if not dry_run:
            result.status = "changed" if result.changed else "ok"
    except StepFailed as e:
        result.status, result.reason = "failed", str(e)
    except UnsupportedHost as e:
        result.status, result.reason = "failed", f"refused before any change: {e}"
    except Exception as e:
        if remote is not None and remote.cancelled.is_set():
            result.status, result.reason = "failed", "interrupted"
        else:
            result.status, result.reason = "failed", f"{type(e).__name__}: {scrub(str(e)).splitlines()[0] if str(e) else ''}"
        with contextlib.suppress(ValueError, OSError):
            log.write("".join(traceback.format_exception(e)))
    finally:
        if remote is not None:
            remote.close()
        result.seconds = time.monotonic() - start
        with contextlib.suppress(ValueError, OSError):
            log.write(f"# result: {result.status} {result.reason} ({result.seconds:.1f} s)\n")
        with contextlib.suppress(OSError):
            log.close()         # paramiko's late records are dropped (Remote.write), not raised
    say(host, result.line())
    return result


def _upload(remote: Remote, stage: Stage, user: str) -> None:
    remote.sh(f"mkdir -p {STAGE} && chown {shlex.quote(user)} {STAGE} && chmod 700 {STAGE}", check=True)
    for path in stage.files():
        remote.write(f"put {path.name} -> {STAGE}/{path.name}\n")
        remote.conn.put(str(path), f"{STAGE}/{path.name}")


class Batch:
    """One run over many hosts as the main thread sees it: which finished (and how), which are under way
    (and at which step), which have not started; and the open connections, to close them on Ctrl-C."""

    def __init__(self, hosts: list[str]) -> None:
        self.hosts = list(hosts)
        self.results: dict[str, HostResult] = {}
        self.steps: dict[str, str] = {}
        self.cancelled = threading.Event()
        self._remotes: dict[str, Remote] = {}
        self._lock = threading.Lock()
        self._fallback: Path | None = None

    def note(self, host: str, what: str) -> None:
        with self._lock:
            if not self.cancelled.is_set():      # the step a host was at when Ctrl-C came is kept
                self.steps[host] = what

    def opened(self, host: str, remote: Remote) -> None:
        with self._lock:
            self._remotes[host] = remote
        if self.cancelled.is_set():
            remote.abort()

    def finish(self, result: HostResult) -> None:
        with self._lock:
            self._remotes.pop(result.host, None)
            if not self.cancelled.is_set():      # after Ctrl-C a host "finishes" only because it was cut off
                self.results[result.host] = result

    def cancel(self) -> None:
        """Ctrl-C: no new host starts, and every open connection is closed now."""
        with self._lock:
            self.cancelled.set()
            remotes = list(self._remotes.values())
        for remote in remotes:
            remote.abort()

    def summary(self, limit: int = 6) -> str:
        """What had been done by an interrupted run, on one line."""
        def listed(items: list[str]) -> str:
            more = f" and {len(items) - limit} more" if len(items) > limit else ""
            return ", ".join(items[:limit]) + more

        with self._lock:
            results, steps = dict(self.results), dict(self.steps)
        done = [f"{h} ({'changed ' + str(len(r.changed)) if r.status == 'changed' else r.status})"
                for h in self.hosts if (r := results.get(h)) is not None]
        cut = [f"{h} (at {steps[h]})" for h in self.hosts if h not in results and h in steps]
        waiting = [h for h in self.hosts if h not in results and h not in steps]
        parts = [f"finished {listed(done)}" if done else "no host finished"]
        if cut:
            parts.append(f"stopped {listed(cut)}")
        if waiting:
            parts.append(f"not started {listed(waiting)}")
        if cut:
            parts.append("run the same command again to finish (a host-side lock makes it wait for a command "
                         "still running there)")
        return "; ".join(parts)

    def thread_exception(self, args: threading.ExceptHookArgs) -> None:
        """threading.excepthook while hosts run: a paramiko transport thread's exception goes to the log of
        the host it belongs to (any other thread's to ``threads.log`` next to the host logs), never to
        stderr."""
        text = "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))
        with self._lock:
            remotes = list(self._remotes.values())
        for remote in remotes:
            if args.thread is not None and remote.conn.client.get_transport() is args.thread:
                remote.write(f"# exception in {args.thread.name}:\n{scrub(text)}")
                return
        if self._fallback is not None:
            with contextlib.suppress(OSError), open(self._fallback, "a", encoding="utf-8") as f:
                f.write(f"# exception in {args.thread.name if args.thread else 'a thread'}:\n{scrub(text)}")


def bootstrap_many(hosts: list[str], base: Options, stage_dir: Path, *, key: str | None = None,
                   dry_run: bool = False, log_dir: Path, progress: Progress | None = None,
                   parallel: int = 10, host_keys: HostKeys | None = None,
                   batch: Batch | None = None) -> list[HostResult]:
    """Each host in a daemon worker thread (at most ``parallel`` at once) while the main thread waits in
    short joins, so Ctrl-C reaches it at once, even while a worker is blocked in a connect: then the open
    connections are closed and KeyboardInterrupt propagates (``batch`` says what was done); a worker stuck
    in the kernel cannot keep the process alive."""
    batch = batch or Batch(hosts)
    batch._fallback = log_dir / "threads.log"
    _quiet_paramiko()
    say = progress or (lambda h, m: None)

    def report(host: str, what: str) -> None:
        batch.note(host, what)
        if not batch.cancelled.is_set():
            say(host, what)

    todo: queue.SimpleQueue[str] = queue.SimpleQueue()
    for h in hosts:
        todo.put(h)

    def work() -> None:
        while not batch.cancelled.is_set():
            try:
                host = todo.get_nowait()
            except queue.Empty:
                return
            try:
                result = bootstrap_host(host, base, stage_dir, key=key, dry_run=dry_run, log_dir=log_dir,
                                        progress=report, host_keys=host_keys, batch=batch)
            except BaseException as e:       # a worker always leaves a result
                result = HostResult(host, "failed", reason=f"{type(e).__name__}: {one_line(str(e))}")
            batch.finish(result)

    previous = threading.excepthook
    threading.excepthook = batch.thread_exception
    workers = [threading.Thread(target=work, name=f"bootstrap-{i + 1}", daemon=True)
               for i in range(max(1, min(parallel, len(hosts))))]
    try:
        for w in workers:
            w.start()
        for w in workers:
            while w.is_alive():
                w.join(0.1)
    except BaseException:
        batch.cancel()       # the hook stays: transport threads may still fail as their sockets close
        raise
    threading.excepthook = previous
    return [batch.results[h] for h in hosts]

