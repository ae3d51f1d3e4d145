"""``dcp-agent``: check, list, policy and login."""

from __future__ import annotations

import argparse
import json
import os
import sys
from importlib import resources
from pathlib import Path
from typing import NoReturn

from agent import __version__

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see 'dcp-agent {self.prog.split()[-1]} --help')"
                         if " " in self.prog else f"{message} (see 'dcp-agent --help')")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="dcp-agent", description="Preflight checks for Distributed-CellProfiler control nodes.")
    p.add_argument("--version", action="version", version=f"dcp-agent {__version__}")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    c = sub.add_parser("check", help="run the preflight checks")
    c.add_argument("--config", type=Path, help="DCP's config.py (default: <dcp_clone>/config.py)")
    c.add_argument("--fleet", type=Path, help="a spot-fleet JSON file")
    c.add_argument("--job", type=Path, help="a DCP job file (checks its S3 objects)")
    c.add_argument("--settings", type=Path, help="the agent's settings file (default: ~/.config/dcp-agent/config.toml)")
    c.add_argument("--only", nargs="+", default=[], metavar="ID_OR_CODE", help="run just these (and what they need)")
    c.add_argument("--skip", nargs="+", default=[], metavar="ID_OR_CODE", help="leave these out")
    c.add_argument("--json", action="store_true", help="print one JSON document on stdout, nothing else")
    c.add_argument("-v", "--verbose", action="store_true", help="show passes, skips, ids and timings")
    ls = sub.add_parser("list", help="list every check with its id, code, severity and IAM actions")
    ls.add_argument("--json", action="store_true")
    sub.add_parser("policy", help="print the least-privilege read-only IAM policy the checks need")
    lg = sub.add_parser("login", help="what the login hook runs (see the README)")
    lg.add_argument("--refresh", action="store_true", help="run the checks and rewrite the login summary cache")
    return p


def _readable(path: Path | None, what: str) -> None:
    if path is None:
        return
    if not path.exists():
        raise UsageError(f"{what} {path} does not exist")
    if not path.is_file() or not os.access(path, os.R_OK):
        raise UsageError(f"{what} {path} is not a readable file")


def cmd_check(args: argparse.Namespace) -> int:
    from agent import settings as settings_mod
    from agent.context import Context
    from agent.registry import select
    from agent.report import as_json, render
    from agent.runner import run

    for path, what in ((args.config, "config file"), (args.fleet, "fleet file"), (args.job, "job file"),
                       (args.settings, "settings file")):
        _readable(path, what)
    try:
        s = settings_mod.load(args.settings)
    except settings_mod.SettingsError as e:
        raise UsageError(str(e)) from None
    try:
        selection = select(s, only=args.only, skip=args.skip)
    except ValueError as e:
        raise UsageError(str(e)) from None
    ctx = Context(s, config=args.config, fleet=args.fleet, job=args.job)
    outcome = run(selection, ctx)
    if args.json:
        sys.stdout.write(as_json(outcome) + "\n")
    else:
        render(outcome, verbose=args.verbose)
    sys.stdout.flush()
    return EXIT_OK if outcome.ok else EXIT_PROBLEMS


def cmd_list(args: argparse.Namespace) -> int:
    from agent.registry import all_checks

    checks = all_checks()
    if args.json:
        print(json.dumps([{"id": c.id, "code": c.code, "title": c.title, "group": c.group,
                           "severity": str(c.severity), "needs": list(c.needs), "actions": list(c.actions),
                           "opt_in": c.opt_in} for c in checks], indent=2, ensure_ascii=False))
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table

    table = Table(show_edge=False, box=None, pad_edge=False)
    for col in ("code", "id", "severity", "title", "IAM actions"):
        table.add_column(col)
    for c in checks:
        table.add_row(c.code, c.id, str(c.severity), c.title + (" (opt-in)" if c.opt_in else ""),
                      ", ".join(c.actions) or "-")
    Console(soft_wrap=False, no_color=bool(os.environ.get("NO_COLOR"))).print(table)
    return EXIT_OK


def cmd_policy(args: argparse.Namespace) -> int:
    sys.stdout.write(resources.files("agent").joinpath("data/policy.json").read_text(encoding="utf-8"))
    return EXIT_OK


def cmd_login(args: argparse.Namespace) -> int:
    from agent.login import refresh, show

    return refresh() if args.refresh else show()


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        if args.command is None:
            raise UsageError("say what to do: check, list, policy or login (see 'dcp-agent --help')")
        handler = {"check": cmd_check, "list": cmd_list, "policy": cmd_policy, "login": cmd_login}[args.command]
        return handler(args)
    except UsageError as e:
        print(f"dcp-agent: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("dcp-agent: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK


def entry() -> None:
    """Console-script entry point: exits without waiting for check threads stuck on the network."""
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)
