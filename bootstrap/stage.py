"""What the recipe uploads before it runs: the agent wheel (this project's own build), the agent's
settings, the login hook and the AWS CLI Team's public key. The same staged folder feeds Fabric (put) and Packer (file provisioner)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from bootstrap.recipe import AWS_CLI_KEY, DCP_VENV, Options

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Stage:
    directory: Path
    wheel: Path

    def files(self) -> list[Path]:
        return sorted(p for p in self.directory.iterdir() if p.is_file())


def _source_hash() -> str:
    h = hashlib.sha256()
    for base in ("agent", "bootstrap"):
        for p in sorted((ROOT / base).rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts:
                h.update(str(p.relative_to(ROOT)).encode())
                h.update(p.read_bytes())
    h.update((ROOT / "pyproject.toml").read_bytes())
    return h.hexdigest()[:16]


def build_wheel(out: Path | None = None) -> Path:
    """Build (or reuse) the project's wheel; keyed by a hash of the sources, so a rebuild is rare."""
    out = out or ROOT / "build" / f"wheel-{_source_hash()}"
    found = list(out.glob("dcp_control_node-*.whl")) if out.exists() else []
    if found:
        return found[0]
    # Two runs at once (a demo and a test, say) each build into their own folder; the first rename wins and
    # the other's copy is dropped (same sources, same wheel).
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    try:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "-w", str(tmp), str(ROOT)], check=True, stdout=subprocess.DEVNULL)
        try:
            tmp.rename(out)
        except OSError:
            if not list(out.glob("dcp_control_node-*.whl")):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return next(out.glob("dcp_control_node-*.whl"))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _toml_string(value: object) -> str:
    """A TOML basic string: JSON's escaping (quotes, backslashes, control characters as \\uXXXX) is TOML's."""
    return json.dumps(str(value), ensure_ascii=True)


def agent_settings(opts: Options) -> str:
    return ("# Written by dcp-control-node's bootstrap; users override in ~/.config/dcp-agent/config.toml\n"
            f"dcp_clone = {_toml_string(opts.clone)}\npython = {_toml_string(f'{DCP_VENV}/bin/python')}\n"
            f"repo_url = {_toml_string(opts.repo_url)}\n"
            + (f"project = {_toml_string(opts.project)}\n" if opts.project != "cellprofiler" else ""))


def prepare(directory: Path, opts: Options, wheel: Path | None = None) -> tuple[Stage, Options]:
    """Write the staged files for ``opts`` into ``directory``; return them and the options with hashes."""
    directory.mkdir(parents=True, exist_ok=True)
    wheel = wheel or build_wheel()
    staged_wheel = directory / wheel.name
    if not staged_wheel.exists():
        shutil.copy(wheel, staged_wheel)
    (directory / "config.toml").write_text(agent_settings(opts))
    (directory / "dcp-agent.sh").write_bytes(resources.files("agent").joinpath("data/dcp-agent.sh").read_bytes())
    # The AWS CLI Team's public key: the Ubuntu recipe checks the CLI bundle's signature with it.
    (directory / AWS_CLI_KEY).write_bytes(resources.files("bootstrap").joinpath(f"files/{AWS_CLI_KEY}").read_bytes())
    files = {name: sha256(directory / name) for name in ("config.toml", "dcp-agent.sh")}
    full = Options(**{**opts.__dict__, "wheel": wheel.name, "wheel_sha256": sha256(staged_wheel),
                      "files_sha256": files})
    return Stage(directory, staged_wheel), full
