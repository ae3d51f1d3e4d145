"""What the recipe needs to know about a host before planning: its OS, read from /etc/os-release."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

SUPPORTED = {
    ("debian", "12"): "Debian 12", ("debian", "13"): "Debian 13",
    ("ubuntu", "22.04"): "Ubuntu 22.04", ("ubuntu", "24.04"): "Ubuntu 24.04",
    ("amzn", "2023"): "Amazon Linux 2023",
}


class UnsupportedHost(Exception):
    pass


@dataclass(frozen=True)
class OsInfo:
    id: str
    version_id: str
    pretty: str

    @property
    def key(self) -> tuple[str, str]:
        return self.id, self.version_id

    @property
    def family(self) -> str:
        return "dnf" if self.id == "amzn" else "apt"


def parse_os_release(text: str) -> OsInfo:
    values: dict[str, str] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, raw = line.partition("=")
            try:
                parts = shlex.split(raw)
            except ValueError:
                parts = [raw]
            values[key.strip()] = parts[0] if parts else ""
    info = OsInfo(values.get("ID", "").lower(), values.get("VERSION_ID", ""),
                  values.get("PRETTY_NAME", "") or "unknown OS")
    if info.key not in SUPPORTED:
        raise UnsupportedHost(f"{info.pretty} is not supported (supported: {', '.join(SUPPORTED.values())})")
    return info
