"""A recording stand-in for current Packer (>= 1.10, plugins installed by `packer init`).

Only Debian's Packer 1.6.6 can be installed here (test-rig.md §7), so the tests of build-ami's modern path
put this script on PATH as ``packer`` (:func:`install`). It is a stub, not Packer: it never talks to AWS
or SSH, and builds nothing. It reports a current version, appends every invocation's arguments to
``$PACKER_STANDIN_LOG`` (one JSON list per line) and answers the commands build-ami uses the way Packer
1.11 does:

- ``version``: ``Packer v1.11.2`` (``$PACKER_STANDIN_VERSION`` to change it);
- ``init DIR``: when DIR's ``required_plugins`` names a plugin not yet in ``$PACKER_PLUGIN_PATH``, "installs"
  it there (a file named as Packer names plugin binaries) and says so; when it is there, does nothing
  (idempotent). With ``PACKER_STANDIN_OFFLINE=1`` a missing plugin fails as Packer does without network;
- ``validate``/``build [-var-file=F] DIR``: fail as Packer does when a required plugin is not installed or
  a variable without default is not set; ``build`` then writes the manifest post-processor's file (path from
  the variable ``packer_manifest``) naming ``$PACKER_STANDIN_AMI`` and the node manifest the template's
  download provisioner would fetch (``node_manifest``);
- ``fmt -check DIR``: exit 0 (formatting is checked for real by Packer 1.6.6).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

VERSION = "1.11.2"
AMAZON_VERSION = "1.3.3"
ARCH = "x5.0_linux_amd64"


def install(bin_dir: Path) -> Path:
    """Put an executable ``packer`` that runs this stand-in into ``bin_dir`` (prepend it to PATH)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    exe = bin_dir / "packer"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).resolve()}" "$@"\n')
    exe.chmod(0o755)
    return exe


def calls(log: Path) -> list[list[str]]:
    """The recorded invocations, oldest first."""
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []


def _plugin_dir() -> Path:
    return Path(os.environ.get("PACKER_PLUGIN_PATH") or Path.home() / ".config/packer/plugins")


def _templates(folder: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(folder.glob("*.pkr.hcl")))


def _required_plugins(text: str) -> list[tuple[str, str]]:
    """(source, version constraint) of every plugin in ``required_plugins`` blocks."""
    found = []
    for start in (m.end() for m in re.finditer(r"required_plugins\s*\{", text)):
        depth, end = 1, start
        while depth and end < len(text):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            end += 1
        for body in re.findall(r"=\s*\{([^{}]*)\}", text[start:end]):
            source = re.search(r'source\s*=\s*"([^"]+)"', body)
            version = re.search(r'version\s*=\s*"([^"]+)"', body)
            if source:
                found.append((source.group(1), version.group(1) if version else ""))
    return found


def _installed(source: str) -> bool:
    name = source.rsplit("/", 1)[-1]
    return any((_plugin_dir() / source).glob(f"packer-plugin-{name}_v*_{ARCH}"))


def _missing(folder: Path) -> int:
    missing = [(s, v) for s, v in _required_plugins(_templates(folder)) if not _installed(s)]
    if not missing:
        return 0
    lines = "\n".join(f"{s} {v}".strip() for s, v in missing)
    print(f"Error: Missing plugins\n\nThe following plugins are required, but not installed:\n\n{lines}\n\n"
          "Did you run packer init for this project ?", file=sys.stderr)
    return 1


def _variables(text: str) -> dict[str, bool]:
    """Declared variables -> whether they have a default."""
    out = {}
    for m in re.finditer(r'^variable\s+"([^"]+)"\s*\{(.*?)^\}', text, re.S | re.M):
        out[m.group(1)] = re.search(r"^\s*default\s*=", m.group(2), re.M) is not None
    return out


def _var_file(args: list[str]) -> dict[str, object]:
    for a in args:
        if a.startswith("-var-file="):
            return dict(json.loads(Path(a.split("=", 1)[1]).read_text()))
    return {}


def _unset(folder: Path, values: dict[str, object]) -> int:
    declared = _variables(_templates(folder))
    for name in values:
        if name not in declared:
            print(f'Warning: Undefined variable\n\nThe variable "{name}" was set but was not declared.', file=sys.stderr)
    unset = [n for n, has_default in declared.items() if not has_default and n not in values]
    for name in unset:
        print(f'Error: Unset variable "{name}"\n\nA used variable must be set or have a default value.',
              file=sys.stderr)
    return 1 if unset else 0


def init(folder: Path) -> int:
    for source, _ in _required_plugins(_templates(folder)):
        if _installed(source):
            continue
        if os.environ.get("PACKER_STANDIN_OFFLINE") == "1":
            name = source.rsplit("/", 1)[-1]
            print(f'Failed getting the "{source}" plugin:\n1 error occurred:\n\t* Get "https://api.releases.hashicorp.com'
                  f'/v1/releases/packer-plugin-{name}?limit=20": dial tcp: lookup api.releases.hashicorp.com: '
                  "no such host\n", file=sys.stderr)
            return 1
        target = _plugin_dir() / source / f"packer-plugin-{source.rsplit('/', 1)[-1]}_v{AMAZON_VERSION}_{ARCH}"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("stand-in plugin\n")
        print(f'Installed plugin {source} v{AMAZON_VERSION} in "{target}"')
    return 0


def build(folder: Path, values: dict[str, object]) -> int:
    ami = os.environ.get("PACKER_STANDIN_AMI", "")
    print("amazon-ebs.control-node: output will be in this color.\n")
    if not ami:
        print("==> Builds finished but no artifacts were created.", file=sys.stderr)
        return 1
    if values.get("node_manifest"):
        Path(str(values["node_manifest"])).write_text(json.dumps({
            "python": "Python 3.12.3", "aws_cli": "aws-cli/2.22.35", "dcp_commit": "0123456789ab",
            "dcp_agent": "0.1.0", "boto3": "1.35.99"}))
    artifact = f"{values.get('region', 'us-east-1')}:{ami}"
    Path(str(values["packer_manifest"])).write_text(json.dumps({"builds": [{
        "name": "control-node", "builder_type": "amazon-ebs", "artifact_id": artifact,
        "packer_run_uuid": "00000000-0000-0000-0000-000000000000", "custom_data": None}],
        "last_run_uuid": "00000000-0000-0000-0000-000000000000"}, indent=2))
    print(f"Build 'amazon-ebs.control-node' finished after 0 seconds.\n\n==> Builds finished. The artifacts of "
          f"successful builds are:\n--> amazon-ebs.control-node: AMIs were created:\n{artifact.replace(':', ': ')}")
    return 0


def main(argv: list[str]) -> int:
    log = os.environ.get("PACKER_STANDIN_LOG")
    if log:
        with open(log, "a") as f:
            f.write(json.dumps(argv) + "\n")
    if not argv:
        print("Usage: packer [--version] [--help] <command> [<args>]", file=sys.stderr)
        return 127
    command, args = argv[0], argv[1:]
    if command in ("version", "--version", "-v"):
        print(f"Packer v{os.environ.get('PACKER_STANDIN_VERSION', VERSION)}")
        return 0
    folder = Path(args[-1]) if args and not args[-1].startswith("-") else Path.cwd()
    if command == "init":
        return init(folder)
    if command == "fmt":
        return 0
    if command in ("validate", "build"):
        values = _var_file(args)
        rc = _missing(folder) or _unset(folder, values)
        if rc:
            return rc
        if command == "validate":
            print("The configuration is valid.")
            return 0
        return build(folder, values)
    print(f"stand-in: packer {command} is not something build-ami runs", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
