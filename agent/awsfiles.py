"""The AWS CLI's config and credentials files, read the way DCP's run.py reads them (configparser)."""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass, field
from pathlib import Path


def config_path() -> Path:
    return Path(os.path.expanduser(os.environ.get("AWS_CONFIG_FILE", "~/.aws/config")))


def credentials_path() -> Path:
    return Path(os.path.expanduser(os.environ.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials")))


@dataclass
class AwsFiles:
    config: configparser.RawConfigParser = field(default_factory=configparser.RawConfigParser)
    credentials: configparser.RawConfigParser = field(default_factory=configparser.RawConfigParser)
    errors: list[str] = field(default_factory=list)
    config_file: Path = field(default_factory=config_path)
    credentials_file: Path = field(default_factory=credentials_path)

    def profile_section(self, profile: str) -> str | None:
        """The config section DCP finds for ``profile`` (run.py L81–84), or None."""
        for name in (profile, f"profile {profile}"):
            if self.config.has_section(name):
                return name
        return None


def _read(parser: configparser.RawConfigParser, path: Path, errors: list[str]) -> None:
    if not path.exists():
        return
    try:
        with path.open(encoding="utf-8") as f:
            parser.read_file(f)
    except configparser.Error as e:
        first = str(e).splitlines()[0]
        errors.append(f"{path}: {first}")
    except (OSError, UnicodeDecodeError) as e:
        errors.append(f"{path}: cannot read ({e.__class__.__name__})")


def load() -> AwsFiles:
    files = AwsFiles()
    _read(files.config, files.config_file, files.errors)
    _read(files.credentials, files.credentials_file, files.errors)
    return files
