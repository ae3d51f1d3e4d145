"""``dcp-agent``: check, fix, fleet, list, policy and login."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from agent import __version__
from agent.boundary import UserError, guard, quiet_stdout

if TYPE_CHECKING:
    from agent.context import Context
    from agent.settings import Settings

# Exit statuses (docs/agent.md): 0 ready, 1 not ready (a problem was seen), 2 bad input, 3 could not
# check (AWS did not answer), 70 internal error (traceback in the log the line names), 130 interrupted.
EXIT_OK, EXIT_PROBLEMS = 0, 1
DOCS = "Docs: docs/agent.md (make docs builds the site)"


def _docs(page: str) -> str:
    """The one line each --help ends with: where the command's page is."""
    return f"Docs: docs/{page} (make docs builds the site)"


class UsageError(UserError):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see 'dcp-agent {self.prog.split()[-1]} --help')"
                         if " " in self.prog else f"{message} (see 'dcp-agent --help')")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="dcp-agent", description="Preflight checks for Distributed-CellProfiler control nodes.",
                epilog="Exit statuses: 0 ready, 1 not ready, 2 bad input, 3 could not check (AWS did not answer), "
                       "70 internal error, 130 interrupted. " + DOCS)
    p.add_argument("--version", action="version", version=f"dcp-agent {__version__}")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    c = sub.add_parser("check", help="run the preflight checks", epilog=_docs("agent.md#check"))
    c.add_argument("--config", type=Path, help="DCP's config.py (default: <dcp_clone>/config.py)")
    c.add_argument("--fleet", type=Path, help="a spot-fleet JSON file")
    c.add_argument("--job", type=Path, help="a DCP job file (checks its S3 objects)")
    c.add_argument("--settings", type=Path, help="the agent's settings file (default: ~/.config/dcp-agent/config.toml)")
    c.add_argument("--only", nargs="+", default=[], metavar="ID_OR_CODE", help="run just these (and what they need)")
    c.add_argument("--skip", nargs="+", default=[], metavar="ID_OR_CODE", help="leave these out")
    c.add_argument("--json", action="store_true", help="print one JSON document on stdout, nothing else")
    c.add_argument("-v", "--verbose", action="store_true", help="show passes, skips, ids and timings")
    ls = sub.add_parser("list", help="list every check with its id, code, severity and IAM actions",
                        epilog=_docs("agent.md#list"))
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--markdown", action="store_true", help="print docs/checks.md, the catalogue page")
    fx = sub.add_parser("fix", help="plan (and with --apply, make) the changes that cure what check finds",
                        epilog=_docs("agent.md#fix"))
    fx.add_argument("--config", type=Path, help="DCP's config.py (default: <dcp_clone>/config.py)")
    fx.add_argument("--fleet", type=Path, help="a spot-fleet JSON file (its security group and key pair)")
    fx.add_argument("--settings", type=Path, help="the agent's settings file")
    fx.add_argument("--apply", action="store_true", help="make the changes (asks once on a terminal)")
    fx.add_argument("--yes", action="store_true", help="with --apply: do not ask")
    fx.add_argument("--ssh-cidr", metavar="CIDR", help="the operator's address for the SSH rule (e.g. 203.0.113.7/32)")
    fx.add_argument("--request-quota", action="store_true",
                    help="file a spot quota increase where the plan says the quota is too low")
    fx.add_argument("--json", action="store_true", help="print the plan (and the result) as JSON")
    fl = sub.add_parser("fleet", help="write a DCP spot-fleet file for this account and config.py",
                        epilog=_docs("agent.md#fleet"))
    fl.add_argument("--config", type=Path, help="DCP's config.py (default: <dcp_clone>/config.py)")
    fl.add_argument("--settings", type=Path, help="the agent's settings file")
    fl.add_argument("--out", type=Path, help="where to write it (default: <dcp_clone>/files/<APP_NAME>Fleet_<region>.json)")
    fl.add_argument("--force", action="store_true", help="overwrite an existing file (shows the diff)")
    fl.add_argument("--ami-family", choices=("al2023", "al2"), default="al2023",
                    help="the ECS-optimized Amazon Linux the workers run (default: al2023)")
    fl.add_argument("--vpc", help="the VPC whose subnets the workers use (default: the default VPC)")
    fl.add_argument("--security-group", help="the workers' security group (default: the one dcp-agent fix made)")
    fl.add_argument("--key-name", help="the key pair (default: SSH_KEY_NAME without .pem)")
    po = sub.add_parser("policy", help="print the least-privilege IAM policy the checks (or fix) need",
                        epilog=_docs("agent.md#policy"))
    po.add_argument("--fix", action="store_true", help="the policy 'dcp-agent fix --apply' needs instead")
    lg = sub.add_parser("login", help="what the login hook runs", epilog=_docs("login.md"))
    lg.add_argument("--refresh", action="store_true", help="run the checks and rewrite the login summary cache")
    from agent.status.cli import add_parsers as add_status_parsers  # status, requeue (agent/status/cli.py)

    add_status_parsers(sub)
    return p


def _readable(path: Path | None, what: str) -> None:
    if path is None:
        return
    from agent.boundary import one_line

    shown = one_line(str(path), 200)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise UsageError(f"{what} {shown} does not exist") from None
    except NotADirectoryError:
        raise UsageError(f"{what} {shown} does not exist (a part of its path is a file)") from None
    except PermissionError:
        raise UsageError(f"cannot read {what} {shown} (permission denied)") from None
    except OSError as e:
        raise UsageError(f"cannot read {what} {shown} ({(e.strerror or type(e).__name__).lower()})") from None
    import stat as stat_mod

    if stat_mod.S_ISDIR(st.st_mode):
        raise UsageError(f"{what} {shown} is a directory, not a file")
    if not stat_mod.S_ISREG(st.st_mode):
        raise UsageError(f"{what} {shown} is not a regular file")
    if not os.access(path, os.R_OK):
        raise UsageError(f"cannot read {what} {shown} (permission denied)")


def _environment() -> None:
    """What the environment sets for every AWS client, checked once (a bad endpoint fails every read alike)."""
    from agent import inputs

    try:
        inputs.endpoint_environment()
    except ValueError as e:
        raise UsageError(str(e)) from None


def cmd_check(args: argparse.Namespace) -> int:
    from agent import settings as settings_mod
    from agent.context import Context
    from agent.registry import select
    from agent.report import as_json, render
    from agent.runner import run

    for path, what in ((args.config, "config file"), (args.fleet, "fleet file"), (args.job, "job file"),
                       (args.settings, "settings file")):
        _readable(path, what)
    _environment()
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
    try:
        if args.json:
            sys.stdout.write(as_json(outcome) + "\n")
        else:
            render(outcome, verbose=args.verbose)
        sys.stdout.flush()
    except BrokenPipeError:   # `dcp-agent check | head -1`: the reader has gone; the verdict still holds
        quiet_stdout()
    return outcome.exit_status


def cmd_list(args: argparse.Namespace) -> int:
    from agent.registry import all_checks

    checks = all_checks()
    if args.markdown:
        from agent.catalogue import render

        sys.stdout.write(render())
        return EXIT_OK
    if args.json:
        print(json.dumps([{"id": c.id, "code": c.code, "title": c.title, "group": c.group,
                           "severity": str(c.severity), "needs": list(c.needs), "actions": list(c.actions),
                           "opt_in": c.opt_in} for c in checks], indent=2, ensure_ascii=False))
        return EXIT_OK
    rows = [(c.code, c.id, str(c.severity), c.title + (" (opt-in)" if c.opt_in else ""), ", ".join(c.actions) or "-")
            for c in checks]
    if not sys.stdout.isatty():   # a pipe or a file: whole lines, tab-separated, never cut at 80 columns
        sys.stdout.write("".join("\t".join(r) + "\n" for r in [("code", "id", "severity", "title", "IAM actions"),
                                                                *rows]))
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table

    table = Table(show_edge=False, box=None, pad_edge=False)
    for col in ("code", "id", "severity", "title", "IAM actions"):
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    Console(soft_wrap=False, no_color=bool(os.environ.get("NO_COLOR"))).print(table)
    return EXIT_OK


def cmd_policy(args: argparse.Namespace) -> int:
    name = "data/policy-fix.json" if args.fix else "data/policy.json"
    sys.stdout.write(resources.files("agent").joinpath(name).read_text(encoding="utf-8"))
    return EXIT_OK


def _with_inputs(args: argparse.Namespace, command: Callable[[argparse.Namespace, Settings, Context], int]) -> int:
    """Run fix or fleet on the settings and context, with check's rules for bad paths; a ValueError is bad input."""
    from agent import settings as settings_mod
    from agent.context import Context

    for path, what in ((args.config, "config file"), (getattr(args, "fleet", None), "fleet file"),
                       (args.settings, "settings file")):
        _readable(path, what)
    _environment()
    try:
        s = settings_mod.load(args.settings)
        return command(args, s, Context(s, config=args.config, fleet=getattr(args, "fleet", None)))
    except (settings_mod.SettingsError, ValueError) as e:
        raise UsageError(str(e)) from None


def cmd_fix(args: argparse.Namespace) -> int:
    from agent.fix.cli import run_fix

    if args.yes and not args.apply:
        raise UsageError("--yes only goes with --apply")
    return _with_inputs(args, run_fix)


def cmd_fleet(args: argparse.Namespace) -> int:
    from agent.fleetgen import run_fleet

    return _with_inputs(args, run_fleet)


def cmd_login(args: argparse.Namespace) -> int:
    from agent.login import refresh, show

    return refresh() if args.refresh else show()


def _dispatch(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.command is None:
        raise UsageError("say what to do: check, fix, fleet, list, policy or login (see 'dcp-agent --help')")
    if args.command in ("status", "requeue"):
        from agent.status.cli import run_command

        return run_command(args)
    handler = {"check": cmd_check, "fix": cmd_fix, "fleet": cmd_fleet, "list": cmd_list, "policy": cmd_policy,
               "login": cmd_login}[args.command]
    return handler(args)


def main(argv: list[str] | None = None) -> int:
    """The one error boundary (agent.boundary): every failure is one line on stderr and an exit status."""
    words = sys.argv[1:] if argv is None else argv
    return guard("dcp-agent", lambda: _dispatch(argv), verbose="-v" in words or "--verbose" in words,
                 interrupted=_interrupted)


def _interrupted() -> str:
    """What the command in hand had done when Ctrl-C came (requeue --apply: what moved); "" for the others."""
    status_cli = sys.modules.get("agent.status.cli")
    return status_cli.interrupted_note() if status_cli is not None else ""


GC_THRESHOLDS = (10_000, 10, 10)


def entry() -> None:
    """Console-script entry point: exits without waiting for check threads stuck on the network.

    The cyclic garbage collector runs every 10,000 allocations instead of Python's 700: a run holds botocore's
    models (EC2's alone is ~400k objects), and at 700 the collector walks them again and again while the
    clients are made, ~15 % of a check's wall time (measured: 640 → 560 ms, the same as with no collector at
    all). It still runs, so a long ``status --watch`` or ``login --refresh`` frees its cycles."""
    import gc

    gc.set_threshold(*GC_THRESHOLDS)
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


if __name__ == "__main__":
    entry()
