"""Which project a clone is, when its worker file does not say (Distributed-Something's customizing_DS.md has
implementers rename generic-worker.py): config.py's folder and names, and otherwise DCP's rules by default, which
then warn ("cannot confirm which project") where the projects' rules differ, never fail."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from agent import flavours
from agent.model import Status
from rig.seed import DcpAccount
from rig.siblings import as_sibling, config_text, make_worktree
from tests.agent.harness import run_agent


def _renamed_worker(sib: DcpAccount) -> None:
    """What customizing_DS.md says to do: the worker renamed for the implementer's tool; and no origin remote
    (a copy of the template, not a clone of it)."""
    (sib.clone / "worker" / "generic-worker.py").rename(sib.clone / "worker" / "stitch-worker.py")
    subprocess.run(["git", "-C", str(sib.clone), "remote", "remove", "origin"], check=True)


def _drop(config_py: Path, name: str) -> None:
    config_py.write_text("".join(ln for ln in config_py.read_text().splitlines(keepends=True)
                                 if not ln.startswith(f"{name} =")))


def test_a_renamed_worker_ds_clone_is_recognised_by_its_config(account: DcpAccount) -> None:
    sib = as_sibling(account, "something")
    _renamed_worker(sib)
    found = flavours.recognise(sib.clone)
    assert (found.flavour, found.how, found.sure) == (flavours.SOMETHING, "config.py's names", True)
    results = run_agent(sib, job=sib.job)
    bad = {c: f"{r.status}: {r.message}" for c, r in results.items() if r.status in (Status.FAIL, Status.ERROR)}
    assert bad == {}
    assert results["K01"].status == Status.PASS, results["K01"].message


def test_an_unrecognisable_clone_warns_instead_of_failing(account: DcpAccount) -> None:
    sib = as_sibling(account, "something")
    _renamed_worker(sib)
    _drop(sib.config_py, "SECONDS_TO_START")   # no name left that says which project this is
    found = flavours.recognise(sib.clone)
    assert (found.flavour, found.how, found.sure) == (flavours.CELLPROFILER, "default", False)
    results = run_agent(sib, job=sib.job)
    bad = {c: f"{r.status}: {r.message}" for c, r in results.items() if r.status in (Status.FAIL, Status.ERROR)}
    assert bad == {}
    k01 = results["K01"]
    assert k01.status == Status.WARN and "cannot confirm which project" in k01.message
    assert "set project =" in (k01.fix or "")


def test_a_name_every_project_needs_still_fails_when_unrecognisable(account: DcpAccount) -> None:
    sib = as_sibling(account, "something")
    _renamed_worker(sib)
    _drop(sib.config_py, "SECONDS_TO_START")
    _drop(sib.config_py, "ECS_CLUSTER")
    results = run_agent(sib, job=sib.job)
    assert results["K01"].status == Status.FAIL and "ECS_CLUSTER" in results["K01"].message


@pytest.mark.parametrize("key", ["cellprofiler", "something", "fiji", "omezarr"])
def test_recognised_from_config_names(key: str, tmp_path: Path, account: DcpAccount) -> None:
    clone = tmp_path / "clone"
    clone.mkdir()
    if key == "cellprofiler":
        (clone / "config.py").write_text(account.config_py.read_text())
    else:
        (clone / "config.py").write_text(config_text(key, account))
    found = flavours.recognise(clone)
    assert found.flavour is flavours.FLAVOURS[key] and found.how == "config.py's names"


def test_recognised_from_the_config_files_folder(tmp_path: Path) -> None:
    real = make_worktree(tmp_path / "Distributed-Fiji", flavours.FIJI)
    (real / "config.py").write_text("APP_NAME = 'x'\n")
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()
    found = flavours.recognise(elsewhere, config=real / "config.py")
    assert found.flavour is flavours.FIJI and found.how == "config folder's worker/fiji-worker.py"
    assert "from the config folder's worker/fiji-worker.py" in found.line()


@pytest.mark.parametrize(("expr", "status"), [("int(DOCKER_CORES * 1024)", Status.WARN),
                                              ("DOCKER_CORES * 1024", Status.PASS), ("'4096'", Status.FAIL)])
def test_dcp_cpu_shares_not_evaluated_is_a_warning_not_a_failure(account: DcpAccount, expr: str,
                                                                 status: Status) -> None:
    """DCP's K04 (a regression of the flavours change): an expression the agent does not evaluate is 'cannot
    confirm'; only a value it knows to be wrong fails."""
    from rig.seed import raw

    account.edit_config(CPU_SHARES=raw(expr))
    r = run_agent(account, ["K04"])["K04"]
    assert r.status == status, r.message
    if status == Status.WARN:
        assert "cannot confirm CPU_SHARES" in r.message
