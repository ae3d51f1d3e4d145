"""dcp-agent against an AWS that does not answer usefully: refused, silent, HTML 500, 503 SlowDown and 400
Throttling (rig/badnet.py, all on 127.0.0.1). Each command ends within its documented bound, never exits 0
and never says "ready", and says what happened once, in one line."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rig.badnet import KINDS, ThrottlingProxy, refusing, stand_in
from rig.moto_server import MotoServer
from rig.quota_stub import QuotaStub
from rig.seed import DcpAccount, seed_healthy_account

AGENT = str(Path(sys.executable).parent / "dcp-agent")
# Documented worst cases with the default settings (docs/agent.md, "Worst-case times with the default settings"):
# check: check_timeout (10 s) + start-up; fix: the same check run; fleet: one read's retries (3 × 5 s);
# login --refresh: the check's bound (its budget is the login timeout less 10 s).
BOUND = {"check": 20.0, "check --json": 20.0, "fix": 20.0, "fix --apply --yes": 20.0, "fleet": 30.0,
         "login --refresh": 25.0}


@pytest.fixture(scope="module")
def acct(moto: MotoServer, quotas: QuotaStub, tmp_path_factory: pytest.TempPathFactory) -> DcpAccount:
    a = seed_healthy_account(moto.endpoint, tmp_path_factory.mktemp("degraded") / "home", account_id="299999999902")
    a.extra_env["AWS_ENDPOINT_URL_SERVICE_QUOTAS"] = quotas.endpoint
    return a


@pytest.fixture(scope="module", params=KINDS)
def endpoint(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    with stand_in(request.param) as url:
        yield request.param, url


def _run(acct: DcpAccount, url: str, command: str, tmp: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    env = acct.env()
    env.update({"AWS_ENDPOINT_URL": url, "XDG_CACHE_HOME": str(tmp / "cache")})
    env.pop("AWS_ENDPOINT_URL_SERVICE_QUOTAS")   # every service behind the one bad endpoint
    argv = command.split()
    if argv[0] == "fleet":
        argv += ["--out", str(tmp / "fleet.json")]
    start = time.monotonic()
    p = subprocess.run([AGENT, *argv], capture_output=True, text=True, env=env, timeout=120, check=False,
                       stdin=subprocess.DEVNULL)
    return p, time.monotonic() - start


def test_no_answer_is_never_ready(acct: DcpAccount, endpoint: tuple[str, str], tmp_path: Path) -> None:
    """Every command against one stand-in, side by side (the waits are idle time, so they overlap)."""
    kind, url = endpoint
    dirs = {c: tmp_path / c.replace(" ", "_").replace("-", "") for c in BOUND}
    for d in dirs.values():
        d.mkdir()
    with ThreadPoolExecutor(len(BOUND)) as pool:
        ran = dict(zip(BOUND, pool.map(lambda c: _run(acct, url, c, dirs[c]), BOUND), strict=True))
    expected = {"refusing": "could not connect to http://127.0.0.1:", "silent": "no answer from http://127.0.0.1:",
                "html500": "answered HTTP 500", "slowdown": "SlowDown", "throttling": "throttling"}[kind]
    for command, (p, took) in ran.items():
        argv, tmp = command.split(), dirs[command]
        said = p.stdout + p.stderr
        where = f"{command} against {kind}: exit {p.returncode} in {took:.1f} s\n{said[-2000:]}"
        assert "Traceback" not in said, where
        assert took <= BOUND[command], where
        # 3: could not check. The login refresh runs in the user's login-shell environment (its PATH), where a
        # local check may fail as well: then "not ready" (1) is the verdict, and the summary still says AWS
        # was not seen.
        assert p.returncode in ((1, 3) if argv[0] == "login" else (3,)), where
        assert "ready for DCP" not in said.replace("not ready for DCP", ""), where
        assert not (tmp / "fleet.json").exists(), where
        if argv[0] == "check" and "--json" in argv:
            doc = json.loads(p.stdout)
            assert doc["verdict"] == "could not check" and doc["exit_status"] == 3, where
            assert expected.lower() in doc["cause"].lower() and p.stderr == "", where
        elif argv[0] == "check":
            last = p.stdout.rstrip().splitlines()[-1]
            assert last.startswith("could not check: ") and expected.lower() in last.lower(), where
            saying = [line for line in p.stdout.lower().splitlines() if expected.lower() in line]
            assert len(saying) == 2, where   # the "?" line and the verdict: not once per check
            assert p.stderr == "", where
        elif argv[0] == "login":
            summary = (tmp / "cache" / "dcp-agent" / "login.txt").read_text()
            assert summary.startswith("? could not reach AWS: ") and expected.lower() in summary.lower(), summary
        else:
            lines = p.stderr.strip().splitlines()
            assert len(lines) == 1 and expected.lower() in lines[0].lower(), where
            assert "credentials" not in lines[0], where


def test_login_keeps_the_last_good_result(acct: DcpAccount, tmp_path: Path) -> None:
    """After a good refresh, a refresh that cannot reach AWS shows the last good result and its time."""
    env = acct.env()
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    good = subprocess.run([AGENT, "login", "--refresh"], capture_output=True, text=True, env=env, timeout=120,
                          check=False)
    assert good.returncode in (0, 1), good.stderr
    first = (tmp_path / "cache" / "dcp-agent" / "login.txt").read_text().splitlines()[0]
    env["AWS_ENDPOINT_URL"] = refusing()
    env.pop("AWS_ENDPOINT_URL_SERVICE_QUOTAS")
    bad = subprocess.run([AGENT, "login", "--refresh"], capture_output=True, text=True, env=env, timeout=120,
                         check=False)
    assert bad.returncode in (1, 3)
    shown = subprocess.run([AGENT, "login"], capture_output=True, text=True, env=env, timeout=30, check=False)
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("? could not reach AWS: could not connect to http://127.0.0.1:")
    assert "last good result from 20" in lines[0]
    assert lines[1].strip() == first.strip()


def test_throttling_that_retries_get_through_gives_the_real_verdict(acct: DcpAccount, tmp_path: Path) -> None:
    """The first attempt of every request throttled (as each service throttles): botocore's standard retries get
    each one through, and every verdict is the healthy account's, not "could not check" or a wrong finding."""
    env = acct.env()
    healthy = json.loads(subprocess.run([AGENT, "check", "--json"], capture_output=True, text=True, env=env,
                                        timeout=120, check=False).stdout)
    for mode in ("throttling", "slowdown"):
        with ThrottlingProxy(acct.endpoint, mode=mode) as proxy:
            env["AWS_ENDPOINT_URL"] = proxy.endpoint
            p = subprocess.run([AGENT, "check", "--json"], capture_output=True, text=True, env=env, timeout=120,
                               check=False)
            doc = json.loads(p.stdout)
            assert proxy.throttled >= 20, proxy.throttled
        assert doc["verdict"] == healthy["verdict"] and p.returncode == healthy["exit_status"], doc["cause"]
        assert {c["code"]: c["status"] for c in doc["checks"]} == {c["code"]: c["status"] for c in healthy["checks"]}
