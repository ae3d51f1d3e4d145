"""Read DCP's ``config.py`` without running it.

The agent runs at login, so executing a user's file would run arbitrary code. Instead the top-level
assignments are evaluated statically: literals, names defined earlier, arithmetic and string
concatenation on them, and f-strings. Anything else is reported as a problem and left unknown.
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent import flavours

MAX_SIZE = 100_000  # the largest string/list a config expression may build


class _Unknown:
    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN: Any = _Unknown()

# DCP's own rules (run.py at 17388b3); each project's are its row in agent.flavours, which these name.
BACKFILLED = dict(flavours.CELLPROFILER.backfilled)
REQUIRED = flavours.CELLPROFILER.required
# Read by run.py's task definition only when USE_PLUGINS.lower() == 'true' (a NameError without them).
PLUGIN_REQUIRED = flavours.CELLPROFILER.conditional[0][1]


def _off(value: Any) -> bool:
    """run.py's test for an unset bucket: ``X.lower() != 'false'`` is what sends it to the worker."""
    return isinstance(value, str) and value.lower() == "false"


class Unsupported(Exception):
    """An expression the static evaluator will not evaluate."""


_BINOPS: dict[type[ast.operator], Any] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Any] = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}


def _size(v: Any) -> int:
    return len(v) if isinstance(v, str | bytes | list | tuple | dict | set) else 0


def _eval(node: ast.expr, names: dict[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[node.id]
        if node.id not in names or names[node.id] is UNKNOWN:
            raise Unsupported(f"uses {node.id}, which is not defined above it")
        return names[node.id]
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        items = [_eval(e, names) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items) if isinstance(node, ast.Tuple) else set(items)
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise Unsupported("dict unpacking (**) is not evaluated")
        return {_eval(k, names): _eval(v, names) for k, v in zip(node.keys, node.values, strict=True)
                if k is not None}
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        operand = _eval(node.operand, names)
        try:
            return _UNARY[type(node.op)](operand)
        except (TypeError, ValueError, OverflowError) as e:
            raise Unsupported(f"{e.__class__.__name__}: {e}") from None
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = _eval(node.left, names), _eval(node.right, names)
        if isinstance(node.op, ast.Pow) and (not isinstance(right, int | float) or abs(right) > 64):
            raise Unsupported("exponent too large to evaluate")
        if isinstance(node.op, ast.Mult) and max(_size(left), _size(right)) * max(
                abs(x) if isinstance(x, int) else 1 for x in (left, right)) > MAX_SIZE:
            raise Unsupported("expression builds a value too large to evaluate")
        if isinstance(node.op, ast.Mod) and isinstance(left, str):
            raise Unsupported("%-formatting is not evaluated")
        try:
            value = _BINOPS[type(node.op)](left, right)
        except (TypeError, ZeroDivisionError, OverflowError, ValueError) as e:
            raise Unsupported(f"{e.__class__.__name__}: {e}") from None
        if _size(value) > MAX_SIZE:
            raise Unsupported("expression builds a value too large to evaluate")
        return value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for v in node.values:
            if isinstance(v, ast.Constant):
                parts.append(str(v.value))
            elif isinstance(v, ast.FormattedValue):
                if v.conversion != -1 or v.format_spec is not None:
                    raise Unsupported("f-string conversions and format specs are not evaluated")
                parts.append(str(_eval(v.value, names)))
            else:
                raise Unsupported("unsupported f-string part")
        return "".join(parts)
    raise Unsupported(f"{type(node).__name__} expressions are not evaluated")


@dataclass
class DcpConfig:
    path: Path | None
    values: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)   # constructs that were not evaluated
    error: str | None = None                            # the file could not be read or parsed

    def has(self, name: str) -> bool:
        return name in self.values and self.values[name] is not UNKNOWN

    def get(self, name: str, default: Any = None) -> Any:
        value = self.values.get(name, default)
        return default if value is UNKNOWN else value

    unsent: dict[str, Any] = field(default_factory=dict)  # set in config.py, but never reaches the worker
    flavour: flavours.Flavour = flavours.DEFAULT          # whose run.py the names are judged by

    @property
    def missing(self) -> list[str]:
        """The names this project's run.py needs that config.py does not set: its required names, the
        back-filled ones whose default crashes, and those a flag set to 'True' makes required."""
        f = self.flavour
        missing = [n for n in (*f.required, *f.crashing_defaults) if n not in self.values]
        for flag, names in f.conditional:
            value = self.values.get(flag)
            if isinstance(value, str) and value.lower() == "true":
                missing += [n for n in names if n not in self.values]
        return missing


def _assign(names: dict[str, Any], target: ast.expr, value: Any, line: int, problems: list[str]) -> None:
    if isinstance(target, ast.Name):
        names[target.id] = value
    elif isinstance(target, ast.Tuple | ast.List):
        if value is not UNKNOWN and isinstance(value, list | tuple) and len(value) == len(target.elts):
            for t, v in zip(target.elts, value, strict=True):
                _assign(names, t, v, line, problems)
        else:
            for t in target.elts:
                _assign(names, t, UNKNOWN, line, problems)
    else:
        problems.append(f"line {line}: assignment to {type(target).__name__} is not evaluated")


def parse(source: str, path: Path | None = None, flavour: flavours.Flavour = flavours.DEFAULT) -> DcpConfig:
    cfg = DcpConfig(path, flavour=flavour)
    try:
        tree = ast.parse(source, filename=str(path or "config.py"))
    except SyntaxError as e:
        cfg.error = f"syntax error at line {e.lineno}: {e.msg}"
        return cfg
    except (ValueError, RecursionError, MemoryError) as e:
        cfg.error = f"cannot parse: {e.__class__.__name__}"
        return cfg
    names: dict[str, Any] = {}
    for stmt in tree.body:
        line = stmt.lineno
        try:
            if isinstance(stmt, ast.Assign):
                value = _eval(stmt.value, names)
                for target in stmt.targets:
                    _assign(names, target, value, line, cfg.problems)
            elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                _assign(names, stmt.target, _eval(stmt.value, names), line, cfg.problems)
            elif isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name):
                op = ast.BinOp(left=ast.Name(stmt.target.id, ast.Load()), op=stmt.op, right=stmt.value)
                names[stmt.target.id] = _eval(op, names)
            elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                continue  # a docstring or bare literal
            elif isinstance(stmt, ast.Pass):
                continue
            else:
                cfg.problems.append(f"line {line}: {type(stmt).__name__} statements are not evaluated")
                for node in ast.walk(stmt):  # names it may bind become unknown
                    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                        names[node.id] = UNKNOWN
                    elif isinstance(node, ast.alias):
                        names[(node.asname or node.name).split(".")[0]] = UNKNOWN
        except Unsupported as e:
            cfg.problems.append(f"line {line}: {e}")
            targets: list[ast.expr] = list(stmt.targets) if isinstance(stmt, ast.Assign) else [
                t for t in [getattr(stmt, "target", None)] if isinstance(t, ast.expr)]
            for target in targets:
                _assign(names, target, UNKNOWN, line, [])
        except RecursionError:
            cfg.problems.append(f"line {line}: expression too deeply nested")
        except (TypeError, ValueError, OverflowError, ArithmeticError, MemoryError) as e:  # a last line of defence
            cfg.problems.append(f"line {line}: {e.__class__.__name__}")
    for name, default in flavour.backfilled.items():
        if name not in flavour.crashing_defaults:   # those K01 reports missing instead
            names.setdefault(name, default)
    if "REQUIREMENTS_FILE" in flavour.backfilled:
        req_file = names["REQUIREMENTS_FILE"]   # run.py: if REQUIREMENTS_FILE: REQUIREMENTS = REQUIREMENTS_FILE
        if req_file is UNKNOWN:
            names.setdefault("REQUIREMENTS", UNKNOWN)
        elif req_file:
            names["REQUIREMENTS"] = req_file
    if flavour.worker_buckets:
        _worker_buckets(names, cfg.unsent)
    cfg.values = names
    return cfg


def _worker_buckets(names: dict[str, Any], unsent: dict[str, Any]) -> None:
    """The buckets DCP's worker ends up using, in place of what config.py says (run.py and worker/cp-worker.py
    at 17388b3): run.py sends SOURCE_BUCKET, and DESTINATION_BUCKET with it, only when SOURCE_BUCKET is set and
    not 'False'; the worker then takes AWS_BUCKET for both. It sends WORKSPACE_BUCKET on the same terms; the
    worker then takes its SOURCE_BUCKET (not AWS_BUCKET)."""
    if "AWS_BUCKET" not in names:
        return   # K01 reports it missing
    logs = names["AWS_BUCKET"]
    source = names.get("SOURCE_BUCKET", "False")
    if _off(source):
        if "DESTINATION_BUCKET" in names and names["DESTINATION_BUCKET"] not in (logs, UNKNOWN):
            unsent["DESTINATION_BUCKET"] = names["DESTINATION_BUCKET"]
        names["SOURCE_BUCKET"] = names["DESTINATION_BUCKET"] = logs
    if _off(names.get("WORKSPACE_BUCKET", "False")):
        names["WORKSPACE_BUCKET"] = names["SOURCE_BUCKET"]


def load(path: Path, flavour: flavours.Flavour = flavours.DEFAULT) -> DcpConfig:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return DcpConfig(path, error=f"{path} does not exist", flavour=flavour)
    except OSError as e:
        return DcpConfig(path, error=f"cannot read {path}: {e.strerror}", flavour=flavour)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return DcpConfig(path, error=f"{path} is not UTF-8 text", flavour=flavour)
    return parse(text, path, flavour)
