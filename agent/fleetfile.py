"""Read a spot-fleet request file (DCP's files/exampleFleet_*.json shape)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def spec_subnets(spec: dict[str, Any]) -> list[str]:
    """The subnets one launch specification names: its SubnetId (a comma-separated list, as RequestSpotFleet
    takes it) and its network interfaces' SubnetId."""
    values = [spec.get("SubnetId")]
    nics = spec.get("NetworkInterfaces")
    if isinstance(nics, list):
        values += [n.get("SubnetId") for n in nics if isinstance(n, dict)]
    found: list[str] = []
    for v in values:
        if isinstance(v, str):
            found += [s.strip() for s in v.split(",") if s.strip() and s.strip() not in found]
    return found


def assign_ip_off(spec: dict[str, Any], index: int, assign_ip: Any) -> bool:
    """Whether run.py (startCluster) turns this specification's public address off: ASSIGN_IP.lower() == 'false'
    sets AssociatePublicIpAddress = False on launch specification 0's network interface 0, and only there, and
    only when NetworkInterfaces exists."""
    nics = spec.get("NetworkInterfaces")
    return (index == 0 and isinstance(assign_ip, str) and assign_ip.lower() == "false"
            and isinstance(nics, list) and bool(nics) and isinstance(nics[0], dict))


@dataclass
class FleetFile:
    path: Path | None
    doc: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def specs(self) -> list[dict[str, Any]]:
        specs = self.doc.get("LaunchSpecifications")
        return [s for s in specs if isinstance(s, dict)] if isinstance(specs, list) else []

    def subnets(self) -> list[str]:
        """Every subnet id named by a launch spec (top level or first NIC; comma lists split)."""
        found: list[str] = []
        for spec in self.specs:
            found += [s for s in spec_subnets(spec) if s not in found]
        return found

    def security_groups(self) -> list[str]:
        found: list[str] = []
        for spec in self.specs:
            groups: list[Any] = []
            nics = spec.get("NetworkInterfaces")
            if isinstance(nics, list):
                for n in nics:
                    if isinstance(n, dict) and isinstance(n.get("Groups"), list):
                        groups += n["Groups"]
            if isinstance(spec.get("SecurityGroups"), list):
                groups += [g.get("GroupId") for g in spec["SecurityGroups"] if isinstance(g, dict)]
            found += [g for g in groups if isinstance(g, str) and g not in found]
        return found

    def image_ids(self) -> list[str]:
        ids = [s.get("ImageId") for s in self.specs]
        return list(dict.fromkeys(i for i in ids if isinstance(i, str)))


def load(path: Path) -> FleetFile:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return FleetFile(path, error=f"{path} does not exist")
    except (OSError, UnicodeDecodeError) as e:
        return FleetFile(path, error=f"cannot read {path}: {e.__class__.__name__}")
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        where = f" at line {e.lineno} column {e.colno}" if isinstance(e, json.JSONDecodeError) else ""
        return FleetFile(path, error=f"{path} is not valid JSON{where}")
    if not isinstance(doc, dict):
        return FleetFile(path, error=f"{path} holds a JSON {type(doc).__name__}, not an object")
    return FleetFile(path, doc)
