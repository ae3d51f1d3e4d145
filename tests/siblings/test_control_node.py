"""Control nodes per project: --project reaches the recipe (clone, requirements, manifest), the agent's settings
and the AMI's tags. The parameter plumbing only, without a sandbox (the suite's sandbox bootstraps are DCP's; a
sibling's recipe differs from it only in the strings checked here)."""

from __future__ import annotations

import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from agent import flavours
from agent.settings import load
from bootstrap.ami import BuildConfig, base_tags
from bootstrap.recipe import DEFAULT_REPO, Options, manifest_script, render_script
from bootstrap.stage import agent_settings


@pytest.mark.parametrize("key", ["something", "fiji", "omezarr"])
def test_the_recipe_installs_the_projects_clone_and_requirements(key: str, tmp_path: object) -> None:
    f = flavours.FLAVOURS[key]
    opts = Options(repo_url=f.repo_url, project=key, owner_home="/home/ubuntu")
    assert opts.clone == f"/home/ubuntu/{f.name}"
    script = render_script(opts)
    assert f"git clone -q {f.repo_url} /home/ubuntu/{f.name}.partial" in script
    assert f"-r /home/ubuntu/{f.name}/{f.requirements}" in script
    # the project's own default branch (DS and OMEZarr have no master), unless --ref says otherwise
    assert opts.ref == f.default_branch and f"checkout -q {f.default_branch} " in script
    assert f"'dcp_ref':{f.default_branch!r}" in shlex.split(manifest_script(opts, "python3"))[2]
    assert Options(repo_url=f.repo_url, project=key, ref="v1.2").ref == "v1.2"
    assert "Distributed-CellProfiler" not in script
    assert f"'project':{f.name!r}" in shlex.split(manifest_script(opts, "python3"))[2]
    settings = tomllib.loads(agent_settings(opts))
    assert settings["project"] == key and settings["dcp_clone"] == opts.clone


def test_dcp_stays_the_default() -> None:
    opts = Options()
    assert opts.project == "cellprofiler" and opts.clone == "/root/Distributed-CellProfiler"
    assert "project" not in tomllib.loads(agent_settings(opts))
    assert "'project':'Distributed-CellProfiler'" in shlex.split(manifest_script(opts, "python3"))[2]


def test_build_ami_takes_the_project() -> None:
    cfg = BuildConfig.from_options(region="us-east-1", project="fiji")
    assert cfg.repo_url == flavours.FIJI.repo_url
    tags = base_tags(cfg)
    assert cfg.ref == "master" and tags["dcp:dcp-ref"] == "master"
    for key, branch in (("something", "main"), ("omezarr", "main"), ("cellprofiler", "master")):
        built = BuildConfig.from_options(region="us-east-1", project=key)
        assert built.ref == branch and base_tags(built)["dcp:dcp-ref"] == branch
    assert BuildConfig.from_options(region="us-east-1", project="omezarr", ref="dev").ref == "dev"
    assert tags["dcp:distributed-project"] == "Distributed-Fiji" and tags["dcp:dcp-repo"] == flavours.FIJI.repo_url
    assert tags["dcp:project"] == "dcp-control-node"   # the run tag cleanup-build goes by is unchanged
    dcp = BuildConfig.from_options(region="us-east-1")
    assert dcp.repo_url == DEFAULT_REPO and base_tags(dcp)["dcp:distributed-project"] == "Distributed-CellProfiler"
    given = BuildConfig.from_options(region="us-east-1", project="something", repo_url="git://127.0.0.1/ds.git")
    assert given.repo_url == "git://127.0.0.1/ds.git"


MIRRORS = Path("/work/.mirror")


@pytest.mark.parametrize("key", list(flavours.FLAVOURS))
def test_the_rows_default_branch_is_the_repositorys(key: str) -> None:
    f = flavours.FLAVOURS[key]
    git_dir = MIRRORS / f"DistributedScience+{f.name}" / "repo"
    if not git_dir.is_dir():
        pytest.skip(f"no mirror of {f.name} at {git_dir}")
    head = subprocess.run(["git", "--git-dir", str(git_dir), "symbolic-ref", "HEAD"], capture_output=True,
                          text=True, timeout=30, check=True).stdout.strip()
    assert head == f"refs/heads/{f.default_branch}"


@pytest.mark.parametrize(("key", "given", "branch"), [("something", "", "main"), ("omezarr", "", "main"),
                                                    ("fiji", "", "master"), ("cellprofiler", "", "master"),
                                                    ("something", "v2", "v2")])
def test_bootstrap_checks_out_the_projects_default_branch(key: str, given: str, branch: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from bootstrap import cli

    seen: list[Options] = []

    def record(hosts: list[str], base: Options, *args: object, **kwargs: object) -> list[object]:
        seen.append(base)
        return []

    monkeypatch.setattr(cli, "bootstrap_many", record)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "known_hosts").write_text("")
    argv = ["--project", key, "--known-hosts", str(tmp_path / "known_hosts"), "root@127.0.0.1:22"]
    assert cli._main([*argv, *(["--ref", given] if given else [])], cli._Run()) == 0
    assert [o.ref for o in seen] == [branch]


def test_an_unknown_project_is_one_line_and_exit_2() -> None:
    r = subprocess.run([sys.executable, "-m", "bootstrap", "--project", "fijii", "root@127.0.0.1:22"],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 2 and "--project" in r.stderr and "fiji" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_settings_say_the_project(tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    home = Path(str(tmp_path))
    monkeypatch.setenv("HOME", str(home))
    user = home / "config.toml"
    user.write_text('project = "fiji"\n')
    s = load(user)
    assert s.project == "fiji" and s.dcp_clone == home / "Distributed-Fiji"
    (home / "Distributed-Fiji" / "worker").mkdir(parents=True)
    assert flavours.recognise(s.dcp_clone, s.project).how == "settings"
    user.write_text('project = "imagej"\n')
    with pytest.raises(Exception, match="must be one of"):
        load(user)


def test_recognised_from_the_clone(tmp_path: pytest.TempPathFactory) -> None:
    from pathlib import Path

    base = Path(str(tmp_path))
    for f in flavours.FLAVOURS.values():
        clone = base / f.name
        (clone / "worker").mkdir(parents=True)
        (clone / f.worker_file).write_text("")
        assert flavours.recognise(clone).flavour is f
    fork = base / "my-fork"
    (fork / ".git").mkdir(parents=True)
    (fork / ".git" / "config").write_text('[remote "origin"]\n\turl = git@github.com:lab/Distributed-Fiji.git\n')
    assert flavours.recognise(fork).flavour is flavours.FIJI and flavours.recognise(fork).how == "origin"
    assert flavours.recognise(base / "nothing").flavour is flavours.CELLPROFILER
