"""Runs the recipe on hosts over SSH with Fabric: in parallel, one result per host, a log file per host.

Each step's ``check`` runs first; ``apply`` only when the host differs, then ``check`` again to prove it.
A dry run stops after the checks. Nothing changes before the OS is known to be supported and root (or
passwordless sudo) is available.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shlex
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from agent.redact import scrub
from bootstrap.facts import UnsupportedHost, parse_os_release
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
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", host)


class Remote:
    """One host's connection: runs shell as root (directly or via sudo) and logs every command."""

    def __init__(self, host: str, key: str | None, log: IO[str], host_keys: HostKeys | None = None) -> None:
        from fabric import Config, Connection

        self.host = host
        self.log = log
        timeout = CONNECT_TIMEOUT
        kwargs: dict[str, Any] = {"banner_timeout": timeout, "auth_timeout": timeout,
                                  "look_for_keys": key is None, "allow_agent": key is None}
        if key:
            kwargs["key_filename"] = [key]
        self.timeout = timeout
        self.conn = Connection(host, connect_timeout=timeout, connect_kwargs=kwargs, config=Config())
        # Fabric accepts any host key (AutoAddPolicy, no known_hosts): judge them as OpenSSH does instead.
        self.host_keys = host_keys or HostKeys()
        if self.host_keys.file.exists():
            self.conn.client.load_host_keys(str(self.host_keys.file))  # kept in memory; never rewritten
        self.conn.client.set_missing_host_key_policy(_HostKeyPolicy(self.host_keys))
        self.root = False

    def connect(self) -> None:
        import paramiko
        from paramiko.ssh_exception import NoValidConnectionsError

        where = f"{self.conn.host}:{self.conn.port}"
        for attempt in (1, 2):
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
            except paramiko.AuthenticationException:
                raise StepFailed(f"cannot log in to {where} as {self.conn.user}: the key was refused") from None
            except (TimeoutError, EOFError, paramiko.SSHException, OSError) as e:
                if attempt == 2:
                    detail = "no answer" if isinstance(e, TimeoutError | socket.timeout) else str(e) or type(e).__name__
                    raise StepFailed(f"cannot connect to {where}: {detail} (timeout {self.timeout:g} s)") from None
                time.sleep(1)

    def sh(self, script: str, *, as_root: bool = True, check: bool = False) -> tuple[int, str]:
        cmd = f"bash -c {shlex.quote(script)}"
        if as_root:
            # One recipe run at a time per host: a run interrupted from this side may leave its last
            # command running there; the next run waits for it instead of racing it.
            cmd = f"flock -w 900 {LOCK} {cmd}"
        self.log.write(f"$ {scrub(script)}\n")
        runner = self.conn.sudo if as_root and not self.root else self.conn.run
        result = runner(cmd, hide=True, warn=True, in_stream=False, pty=False)
        out = (result.stdout + result.stderr).strip()
        if out:
            self.log.write(scrub(out) + "\n")
        self.log.write(f"[exit {result.exited}]\n")
        self.log.flush()
        if check and result.exited != 0:
            raise StepFailed(f"'{script[:60]}' failed: {scrub(out.splitlines()[-1]) if out else result.exited}")
        return int(result.exited), out

    def close(self) -> None:
        self.conn.close()


def bootstrap_host(host: str, base: Options, stage_dir: Path, *, key: str | None = None, dry_run: bool = False,
                   log_dir: Path, progress: Progress | None = None, host_keys: HostKeys | None = None) -> HostResult:
    start = time.monotonic()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{_safe_name(host)}.log"
    result = HostResult(host, "would-change" if dry_run else "ok", log=log_path)
    say = progress or (lambda h, m: None)
    with open(log_path, "w", encoding="utf-8") as log:
        log.write(f"# dcp-control-node bootstrap of {host} ({'dry run' if dry_run else 'apply'}) "
                  f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        remote = Remote(host, key, log, host_keys)
        try:
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
            log.write(f"# {os_info.pretty}, user {user}, {len(steps)} steps\n")
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
            result.status, result.reason = "failed", f"{type(e).__name__}: {scrub(str(e)).splitlines()[0] if str(e) else ''}"
        finally:
            remote.close()
            result.seconds = time.monotonic() - start
            log.write(f"# result: {result.status} {result.reason} ({result.seconds:.1f} s)\n")
    say(host, result.line())
    return result


def _upload(remote: Remote, stage: Stage, user: str) -> None:
    remote.sh(f"mkdir -p {STAGE} && chown {shlex.quote(user)} {STAGE} && chmod 700 {STAGE}", check=True)
    for path in stage.files():
        remote.log.write(f"put {path.name} -> {STAGE}/{path.name}\n")
        remote.conn.put(str(path), f"{STAGE}/{path.name}")


def bootstrap_many(hosts: list[str], base: Options, stage_dir: Path, *, key: str | None = None,
                   dry_run: bool = False, log_dir: Path, progress: Progress | None = None,
                   parallel: int = 10, host_keys: HostKeys | None = None) -> list[HostResult]:
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(hosts)))) as pool:
        futures = [pool.submit(bootstrap_host, h, base, stage_dir, key=key, dry_run=dry_run, log_dir=log_dir,
                               progress=progress, host_keys=host_keys) for h in hosts]
        return [f.result() for f in futures]
