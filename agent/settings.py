"""The agent's settings: ``/etc/dcp-agent/config.toml`` (written by the bootstrap), then the user's
``$XDG_CONFIG_HOME/dcp-agent/config.toml`` (default ``~/.config/dcp-agent/config.toml``) on top."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SYSTEM_FILE = Path("/etc/dcp-agent/config.toml")
DCP_VENV_PYTHON = Path("/opt/dcp/venv/bin/python")


class SettingsError(Exception):
    """A settings file that cannot be used; the message is one line for the user."""


def user_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "dcp-agent" / "config.toml"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dcp-agent"


@dataclass
class Settings:
    dcp_clone: Path = field(default_factory=lambda: Path.home() / "Distributed-CellProfiler")
    config: Path | None = None           # DCP's config.py; default <dcp_clone>/config.py
    fleet: Path | None = None            # spot-fleet JSON file
    job: Path | None = None              # DCP job file
    python: str = ""                     # the interpreter DCP runs with
    repo_url: str = ""                   # where the clone should come from (bootstrap records it)
    ssh_cidr: str = ""                   # the operator's address for fix's SSH rule (else --ssh-cidr, $SSH_CONNECTION)
    project: str = ""                    # which Distributed-* project the clone is (agent.flavours); else recognised
    check_timeout: float = 10.0          # seconds per check
    budget: float = 30.0                 # seconds for the whole run
    enable: list[str] = field(default_factory=list)       # opt-in checks, e.g. ["N10"]
    suppress: dict[str, str] = field(default_factory=dict)  # check id -> reason
    login_ttl: int = 600                 # seconds a login summary stays fresh
    login_timeout: int = 45              # hard limit for the background refresh
    sources: list[Path] = field(default_factory=list)

    @property
    def config_path(self) -> Path:
        return self.config or self.dcp_clone / "config.py"

    @property
    def dcp_python(self) -> str:
        if self.python:
            return self.python
        return str(DCP_VENV_PYTHON) if DCP_VENV_PYTHON.exists() else "python3"


_PATHS = {"dcp_clone", "config", "fleet", "job"}
_STRINGS = {"python", "repo_url", "ssh_cidr"}
_NUMBERS = {"check_timeout", "budget"}


def _apply(s: Settings, doc: dict[str, Any], source: Path) -> None:
    for key, value in doc.items():
        where = f"{source}: {key}"
        if key in _PATHS:
            if not isinstance(value, str) or not value:
                raise SettingsError(f"{where} must be a non-empty path string")
            p = Path(os.path.expanduser(value))
            setattr(s, key, p if p.is_absolute() else source.parent / p)
        elif key in _STRINGS:
            if not isinstance(value, str):
                raise SettingsError(f"{where} must be a string")
            setattr(s, key, value)
        elif key == "project":
            from agent import flavours

            try:
                s.project = flavours.by_key(value).key if isinstance(value, str) else ""
            except KeyError:
                s.project = ""
            if not s.project:
                raise SettingsError(f"{where} must be one of {', '.join(flavours.FLAVOURS)} (got {value!r})")
        elif key in _NUMBERS:
            # Below a second no AWS read can answer: every check would be "not run", which says nothing.
            if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value <= 3600:
                raise SettingsError(f"{where} must be a number of seconds from 1 to 3600 (got {value!r})")
            setattr(s, key, float(value))
        elif key == "enable":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise SettingsError(f'{where} must be a list of check ids, e.g. enable = ["N10"]')
            s.enable = list(value)
        elif key == "suppress":
            if not isinstance(value, dict) or not all(isinstance(v, str) and v for v in value.values()):
                raise SettingsError(f'{where} must be a table of id = "reason", e.g. '
                                    f'[suppress] "ec2.sg-ssh-ingress" = "we use SSM"')
            s.suppress.update(value)
        elif key == "login":
            if not isinstance(value, dict):
                raise SettingsError(f"{where} must be a table ([login])")
            for k, v in value.items():
                if k not in ("ttl", "timeout") or isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                    raise SettingsError(f"{where}.{k}: expected ttl or timeout as a positive whole number")
                setattr(s, f"login_{k}", v)
        else:
            raise SettingsError(f"{source}: unknown setting {key!r} (see docs/configuration.md)")


def load(path: Path | None = None) -> Settings:
    """System file, then user file (or ``path``); a broken file raises SettingsError."""
    s = Settings()
    given: set[str] = set()
    candidates = [SYSTEM_FILE, path] if path else [SYSTEM_FILE, user_file()]
    for source in candidates:
        if source is None:
            continue
        try:
            is_file, exists = source.is_file(), source.exists()
        except OSError:
            is_file, exists = False, True
        if not is_file:
            if path is not None and source == path and not exists:
                raise SettingsError(f"settings file {path} does not exist")
            if exists:
                raise SettingsError(f"settings file {source} is not a regular file (a directory?): make it a file "
                                    "or remove it")
            continue
        try:
            doc = tomllib.loads(source.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise SettingsError(f"{source} is not UTF-8 text: fix or remove it") from None
        except OSError as e:
            raise SettingsError(f"cannot read {source} ({(e.strerror or type(e).__name__).lower()})") from None
        except tomllib.TOMLDecodeError as e:
            raise SettingsError(f"{source} is not valid TOML ({e}); fix or remove it") from None
        _apply(s, doc, source)
        s.sources.append(source)
        given |= set(doc)
    if s.project and "dcp_clone" not in given:   # a sibling's clone is where its own Step 0 puts it
        from agent import flavours

        s.dcp_clone = Path.home() / flavours.by_key(s.project).name
    return s
