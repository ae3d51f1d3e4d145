"""Hypothesis: no config.py and no fleet file, however malformed, makes the agent raise."""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent import dcpconfig
from agent.context import Context
from agent.model import Status
from agent.registry import resolve, with_needs
from agent.runner import run
from agent.settings import Settings
from rig.dcprepo import FIXTURES

NAMES = ["APP_NAME", "MACHINE_TYPE", "CLUSTER_MACHINES", "EBS_VOL_SIZE", "DOWNLOAD_FILES", "MEMORY", "X", "_"]
atoms = st.one_of(st.integers(-10**6, 10**6).map(str), st.floats(allow_nan=False, allow_infinity=False).map(repr),
                  st.text(string.printable, max_size=12).map(repr), st.sampled_from([*NAMES, "True", "None"]))


@st.composite
def expressions(draw: st.DrawFn, depth: int = 0) -> str:
    if depth > 3 or draw(st.booleans()):
        return draw(atoms)
    kind = draw(st.sampled_from(["bin", "list", "fstr", "call", "unary", "sub"]))
    a, b = draw(expressions(depth + 1)), draw(expressions(depth + 1))
    if kind == "bin":
        return f"({a} {draw(st.sampled_from(['+', '-', '*', '/', '//', '%', '**']))} {b})"
    if kind == "list":
        return f"[{a}, {b}]"
    if kind == "fstr":
        return f"f'{{{a}}}-x'"
    if kind == "call":
        return f"open({a})"
    if kind == "unary":
        return f"-{a}"
    return f"{a}[{b}]"


@st.composite
def config_sources(draw: st.DrawFn) -> str:
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        form = draw(st.sampled_from(["assign", "aug", "import", "if", "tuple", "junk"]))
        name, expr = draw(st.sampled_from(NAMES)), draw(expressions())
        lines.append({"assign": f"{name} = {expr}", "aug": f"{name} += {expr}", "import": "import os",
                      "if": f"if {expr}:\n    {name} = 1", "tuple": f"{name}, Y = {expr}",
                      "junk": draw(st.text(max_size=20))}[form])
    return "\n".join(lines)


@settings(max_examples=300, deadline=None)
@given(config_sources())
def test_config_evaluation_never_raises(source: str) -> None:
    cfg = dcpconfig.parse(source)
    assert cfg.error is not None or isinstance(cfg.values, dict)
    for problem in cfg.problems:
        assert problem.startswith("line ")


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_arbitrary_text_never_raises(source: str) -> None:
    dcpconfig.parse(source)


def test_expensive_expressions_are_refused_not_evaluated() -> None:
    cfg = dcpconfig.parse("A = 'x' * 10**9\nB = 9 ** 9 ** 9\nC = [0] * 10**8\nD = 2 ** 10\n")
    assert not cfg.has("A") and not cfg.has("B") and not cfg.has("C")
    assert cfg.get("D") == 1024
    assert len(cfg.problems) == 3


def test_config_is_read_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    cfg = dcpconfig.parse(f"import os\nos.system('touch {marker}')\nAPP_NAME = 'x'\n")
    assert not marker.exists()
    assert cfg.get("APP_NAME") == "x"
    assert any("Import" in p for p in cfg.problems)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)
fleet_like = st.fixed_dictionaries({}, optional={
    "IamFleetRole": json_values, "AllocationStrategy": json_values, "TargetCapacity": json_values,
    "LaunchSpecifications": st.lists(st.dictionaries(st.sampled_from(
        ["ImageId", "KeyName", "IamInstanceProfile", "BlockDeviceMappings", "NetworkInterfaces", "SubnetId",
         "InstanceType", "UserData"]), json_values, max_size=6), max_size=3) | json_values})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(fleet_like, json_values).map(json.dumps) | st.text(max_size=60))
def test_any_fleet_file_gives_findings_not_errors(tmp_path: Path, text: str) -> None:
    fleet = tmp_path / "fleet.json"
    fleet.write_text(text)
    ctx = Context(Settings(dcp_clone=tmp_path, config=FIXTURES / "config.py"), fleet=fleet)
    static: list[Any] = with_needs(resolve(["F01", "F02", "F04", "F08", "F09", "F10"]))
    outcome = run(static, ctx, timeout=5, budget=10)
    assert {r.status for r in outcome.results} <= {Status.PASS, Status.WARN, Status.FAIL, Status.SKIP}
