"""Small helpers the check modules share."""

from __future__ import annotations

import subprocess
from typing import Any

from agent.context import Context
from agent.model import Skip

CREDS = "identity.credentials"
REGION = "aws.region-format"
CONFIG = "config.loads"
FLEET = "fleet.structure"
AWS = (CREDS, REGION)


def run_cmd(args: list[str], timeout: float = 5.0) -> tuple[int, str]:
    """Run a local command; (127, "") when it is not installed, (124, "") on timeout."""
    try:
        p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                           check=False)
    except FileNotFoundError:
        return 127, ""
    except PermissionError:
        return 126, ""
    except subprocess.TimeoutExpired:
        return 124, ""
    except OSError:
        return 126, ""
    return p.returncode, (p.stdout + p.stderr).strip()


def cfg(ctx: Context, name: str) -> Any:
    """A config.py value, or Skip when config.py does not define it statically."""
    if not ctx.config.has(name):
        raise Skip(f"{name} is not set (or not statically known) in {ctx.config_path}")
    return ctx.config.get(name)



def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def is_true(value: Any) -> bool:
    return value == "True"

