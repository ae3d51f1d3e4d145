"""Invoke tasks: ``invoke --list`` shows them; each task's page is in docs/ (``invoke --help TASK`` names it).

The tasks only turn options into calls: the work is in ``bootstrap`` (its CLI, ``bootstrap.ami``,
``bootstrap.node`` and ``bootstrap.cleanup``), where the defaults live too (``BuildConfig``, ``NodeConfig``).

Every task runs inside one error boundary (:func:`command`): whatever escapes it becomes one line on stderr
and an exit status (agent.boundary's: 2 bad input, 3 AWS unreachable, 130 Ctrl-C, 70 a bug of ours with the
traceback in a log file). Numeric options are read by :class:`Number`, which refuses junk in one line (exit
2) before the task starts, and ``-h`` is help for every task (no automatic short flags).
"""

from __future__ import annotations

import functools
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from invoke import Context, Task, task
from invoke.exceptions import Exit, Failure, ParseError
from invoke.parser import Argument

from agent.boundary import EXIT_INTERRUPTED, EXIT_USAGE, describe, one_line, quiet_stdout
from bootstrap import ami, awsclient, cleanup, node

ROOT = Path(__file__).resolve().parent

# `invoke build-ami --help | head -1`: a closed pipe ends the process quietly, as for any Unix tool.
if hasattr(signal, "SIGPIPE"):
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)


# -- numeric options --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Number:
    """How a numeric option is read: a whole number or a decimal one (2.5), optionally above 0. Junk is one
    line and exit 2, raised while invoke parses the command line (before the task starts)."""
    whole: bool
    what: str                   # "a port number", "a number of seconds"
    unit: str                   # "seconds"
    example: str
    positive: bool = False      # else any value; the task's own checks say what range it takes
    MAX_DIGITS = 18

    def parse(self, prog: str, flag: str, text: str) -> int | float:
        value = text.strip()
        shown = value if len(value) <= 30 else value[:29] + "…"
        pattern = r"[+-]?\d+" if self.whole else r"[+-]?(\d+(\.\d*)?|\.\d+)"
        if not re.fullmatch(pattern, value, flags=re.ASCII):        # "٣" is a digit to \d, not to a user
            raise Exit(f"{prog}: {flag} {shown!r} is not {self.what} (e.g. {flag} {self.example})", code=EXIT_USAGE)
        if len(value.lstrip("+-").split(".")[0]) > self.MAX_DIGITS:
            raise Exit(f"{prog}: {flag} {shown} is too large (e.g. {flag} {self.example})", code=EXIT_USAGE)
        number: int | float = int(value) if self.whole else float(value)
        if self.positive and number <= 0:
            raise Exit(f"{prog}: {flag} {shown}: give more than 0 {self.unit} (e.g. {flag} {self.example})",
                       code=EXIT_USAGE)
        return number


PORT = Number(whole=True, what="a port number", unit="", example="22")
SECONDS = Number(whole=False, what="a number of seconds", unit="seconds", example="2.5")
POSITIVE_SECONDS = Number(whole=False, what="a number of seconds", unit="seconds", example="2.5", positive=True)
MINUTES = Number(whole=False, what="a number of minutes", unit="minutes", example="120")
COUNT = Number(whole=True, what="a whole number", unit="", example="3")


class _Flag(Argument):
    """A task's option, named in invoke's parse errors as the user types it ("Flag '--keep' needed value")."""

    def __repr__(self) -> str:
        return repr(f"--{self.names[0]}")


class _NumberArgument(_Flag):
    """An option read by a :class:`Number`. Shown in --help as INT (whole) or STRING (decimals allowed), the
    two placeholders invoke knows."""

    def __init__(self, rule: Number, prog: str, **kwargs: Any) -> None:
        super().__init__(kind=int if rule.whole else str, **kwargs)
        self.rule = rule
        self.prog = prog

    def set_value(self, value: Any, cast: bool = True) -> None:
        if cast and isinstance(value, str):
            value = self.rule.parse(self.prog, f"--{self.names[0]}", value)
        super().set_value(value, cast=False)


class _Task(Task):
    """A task whose numeric options are read by :class:`Number` and whose short flags are only the given ones."""

    def __init__(self, body: Callable[..., Any], *, numbers: dict[str, Number] | None = None,
                 short: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(body, **kwargs)
        self.numbers = numbers or {}
        self.short = short or {}

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list[Argument]:
        prog = self.name.replace("_", "-")
        out: list[Argument] = []
        for arg in super().get_arguments(ignore_unknown_help):
            key = arg.attr_name or arg.name or ""
            names = tuple(arg.names) + ((self.short[key],) if key in self.short else ())
            rule = self.numbers.get(key)
            common: dict[str, Any] = {"names": names, "default": arg.default, "help": arg.help,
                                      "positional": arg.positional, "optional": arg.optional,
                                      "attr_name": arg.attr_name}
            out.append(_NumberArgument(rule, prog, **common) if rule else _Flag(kind=arg.kind, **common))
        return out


def _usage_errors_exit_2() -> None:
    """invoke reports its own parse errors (an unknown flag, a flag without its value, a missing argument)
    with exit status 1; like every other usage error here they are one line and exit 2."""
    from invoke.program import Program

    original = Program.parse_tasks
    if getattr(original, "dcp_usage", False):
        return

    def parse_tasks(self: Program) -> None:
        try:
            original(self)
        except ParseError as e:
            context = getattr(e, "context", None)
            name = str(getattr(context, "name", "") or "")
            prefix = f"{name}: " if name else ""
            hint = f" (invoke {name} --help)" if name else " (invoke --list)"
            raise Exit(one_line(f"{prefix}{e}{hint}"), code=EXIT_USAGE) from None

    parse_tasks.dcp_usage = True  # type: ignore[attr-defined]
    Program.parse_tasks = parse_tasks  # type: ignore[method-assign]


_usage_errors_exit_2()


# -- the error boundary ---------------------------------------------------------------------------------

def command(*, help: dict[str, str] | None = None, numbers: dict[str, Number] | None = None,
            short: dict[str, str] | None = None,
            interrupted: Callable[[], str] = awsclient.done_so_far) -> Callable[[Callable[..., None]], Task]:
    """@task, with the error boundary, Number options, and no automatic short flags (-h is help)."""

    def make(body: Callable[..., None]) -> Task:
        prog = body.__name__.replace("_", "-")

        @functools.wraps(body)
        def run(c: Context, *args: Any, **kwargs: Any) -> None:
            awsclient.begin(prog)
            try:
                body(c, *args, **kwargs)
            except (Exit, Failure, ParseError):
                raise                               # invoke's own: it reports them
            except KeyboardInterrupt:
                raise Exit(f"{prog}: interrupted; {_said(interrupted)}", code=EXIT_INTERRUPTED) from None
            except BrokenPipeError:
                quiet_stdout()
                raise Exit(code=0) from None
            except Exception as e:
                line, code = _verdict(prog, e)
                raise Exit(line, code=code) from None
            finally:
                awsclient.end()

        return task(klass=_Task, auto_shortflags=False, help=help or {}, numbers=numbers or {},
                    short=short or {})(run)

    return make


def _said(interrupted: Callable[[], str]) -> str:
    try:
        return interrupted()
    except Exception:
        return "what had been done is unknown"


def _verdict(prog: str, e: Exception) -> tuple[str, int]:
    """The line and exit status for anything that escaped a task: agent.boundary's, as every entry point's."""
    line, code = describe(prog, e, verbose=os.environ.get("DCP_DEBUG") == "1")
    return f"{prog}: {line}", code


def _help_if_asked(prog: str, *values: str) -> None:
    """invoke takes ``--help`` for a missing positional argument's value (``invoke stop-node --help`` would
    stop a node named "--help"): show the task's help instead, as ``invoke --help TASK`` does."""
    if any(v in ("-h", "--help") for v in values):
        shown = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), "--help", prog],
                               check=False)
        raise Exit(code=shown.returncode)


# -- the tasks ------------------------------------------------------------------------------------------

@command()
def demo(c: Context) -> None:
    """The whole flow against a local AWS emulator and a sandbox host (what `make demo` runs).

    Docs: README.md, 'The two commands'."""
    c.run(f"{sys.executable} -m rig.demo", pty=sys.stdout.isatty())


def _bootstrap_interrupted() -> str:
    return "hosts may be part-way through the recipe: run the same command again (it converges)"


@command(help={
    "hosts": "one or more hosts, comma- or space-separated: user@host:port, host, or ~/.ssh/config aliases",
    "identity": "SSH private key (-i)", "dry_run": "connect, read state and list what would change",
    "repo_url": "the project's repository to clone (default: the --project's own)", "ref": "branch, tag or commit",
    "project": "cellprofiler (default), something, fiji or omezarr: whose clone and requirements the nodes get",
    "no_s3fs": "do not install s3fs", "log_dir": "one log file per host (default bootstrap-logs/)",
    "connect_timeout": "seconds to wait for SSH, decimals allowed (default 10)",
    "accept_new_host_keys": "trust hosts not yet in known_hosts and add them (a changed key is always refused)",
    "known_hosts": "known_hosts file (default ~/.ssh/known_hosts)",
    "aws_cli_version": "AWS CLI v2 bundle version where the OS has no v2 package (Ubuntu)",
}, numbers={"connect_timeout": POSITIVE_SECONDS}, short={"identity": "i"}, interrupted=_bootstrap_interrupted)
def bootstrap(c: Context, hosts: str, identity: str = "", dry_run: bool = False, repo_url: str = "",  # noqa: PLR0917
              ref: str = "", no_s3fs: bool = False, log_dir: str = "", connect_timeout: float = 0.0,
              accept_new_host_keys: bool = False, known_hosts: str = "", aws_cli_version: str = "",
              project: str = "") -> None:
    """Turn running hosts into DCP control nodes over SSH (the same recipe as build-ami).

    Docs: docs/bootstrap.md (make docs builds the site)."""
    from bootstrap import cli

    args = hosts.replace(",", " ").split()
    _help_if_asked("bootstrap", *args)
    for flag, value in (("-i", identity), ("--project", project), ("--repo-url", repo_url), ("--ref", ref),
                        ("--log-dir", log_dir),
                        ("--known-hosts", known_hosts), ("--aws-cli-version", aws_cli_version)):
        if value:
            args += [flag, value]
    if connect_timeout:
        args += ["--connect-timeout", f"{connect_timeout:g}"]
    if dry_run:
        args.append("--dry-run")
    if no_s3fs:
        args.append("--no-s3fs")
    if accept_new_host_keys:
        args.append("--accept-new-host-keys")
    try:
        code = cli.main(args)
    except SystemExit as e:                 # the CLI's usage errors (one line on stderr already)
        code = e.code if isinstance(e.code, int) else 1
    if code:
        raise Exit(code=code)


# The build's defaults belong to BuildConfig: an empty option ("") means "BuildConfig's default".
_BUILD = ami.BuildConfig.defaults()
_ENDPOINT = "EC2-compatible endpoint http(s)://host[:port] (an emulator); empty for AWS"


@command(help={
    "region": "AWS region (e.g. us-east-1; default: the AWS configuration's)",
    "instance_type": f"build instance type (default {_BUILD['instance_type']})",
    "subnet_id": "subnet for the build instance", "security_group_id": "security group allowing SSH from here",
    "ssh_username": f"login user of the base AMI (default {_BUILD['ssh_username']})",
    "source_ami_name": f"base AMI name filter (default {_BUILD['source_ami_name']})",
    "source_ami_owner": f"base AMI owner (default {_BUILD['source_ami_owner']})",
    "ami_name_prefix": f"AMI name prefix (default {_BUILD['ami_name_prefix']})",
    "kms_key_id": "KMS key for the root volume",
    "ssh_cidr": "IPv4 network(s) allowed to SSH to the build instance, e.g. 203.0.113.7/32, none wider than /16 "
                "(default: your public address as Packer sees it; Packer 1.6.6 needs this or --security-group-id)",
    "repo_url": f"the project's repository (default {_BUILD['repo_url']}, or the --project's own)",
    "project": "cellprofiler (default), something, fiji or omezarr: whose clone and requirements the node gets",
    "ref": "branch, tag or commit (default: the --project's default branch, master or main)",
    "endpoint": _ENDPOINT, "ssh_host": "SSH address override",
    "ssh_port": f"SSH port (default {_BUILD['ssh_port']})", "ssh_keypair_name": "existing key pair",
    "ssh_private_key_file": "its private key",
    "aws_cli_version": f"AWS CLI v2 bundle version for Ubuntu images (default {_BUILD['aws_cli_version']})",
    "associate_public_ip": "give the build instance a public address even where the subnet gives none",
    "ssh_interface": "how Packer reaches it: public_ip, private_ip, or session_manager (private subnets; needs "
                     "--iam-instance-profile and the session-manager-plugin)",
    "iam_instance_profile": "instance profile for the build instance",
}, numbers={"ssh_port": PORT})
def build_ami(c: Context, region: str = "", instance_type: str = "", subnet_id: str = "",  # noqa: PLR0917
              security_group_id: str = "", ssh_username: str = "", source_ami_name: str = "",
              source_ami_owner: str = "", ami_name_prefix: str = "", kms_key_id: str = "",
              repo_url: str = "", ref: str = "", endpoint: str = "", ssh_host: str = "",
              ssh_port: int = _BUILD["ssh_port"], ssh_keypair_name: str = "", ssh_private_key_file: str = "",
              ssh_cidr: str = "", aws_cli_version: str = "", associate_public_ip: bool = False,
              ssh_interface: str = "", iam_instance_profile: str = "", project: str = "") -> None:
    """Bake a DCP control-node AMI with Packer (the bootstrap recipe), then print its id.

    Docs: docs/build-ami.md#build-ami (make docs builds the site)."""
    cfg = ami.BuildConfig.from_options(
        region=region, instance_type=instance_type, subnet_id=subnet_id, security_group_id=security_group_id,
        ssh_username=ssh_username, source_ami_name=source_ami_name, source_ami_owner=source_ami_owner,
        ami_name_prefix=ami_name_prefix, kms_key_id=kms_key_id, repo_url=repo_url, ref=ref, endpoint=endpoint,
        ssh_host=ssh_host, ssh_port=ssh_port, ssh_keypair_name=ssh_keypair_name,
        ssh_private_key_file=ssh_private_key_file, ssh_cidr=ssh_cidr, aws_cli_version=aws_cli_version,
        associate_public_ip=associate_public_ip, ssh_interface=ssh_interface,
        iam_instance_profile=iam_instance_profile, project=project)
    print(ami.build(cfg).image_id)


@command()
def validate(c: Context) -> None:
    """packer fmt -check and packer validate on the template; no AWS credentials needed.

    Docs: docs/build-ami.md#validate (make docs builds the site)."""
    try:
        version = ami.validate()
    except ami.BuildError as e:
        raise Exit(f"validate: {one_line(str(e))}", code=1) from None
    print(f"validate: packer/ is formatted and valid (Packer {'.'.join(map(str, version))})")


@command(help={"region": "AWS region", "endpoint": _ENDPOINT,
               "delete": "delete what is found (default: only list it)",
               "keep": f"AMIs to keep (newest first; default {cleanup.KEEP})",
               "older_than": f"only builds started at least this many minutes ago, decimals allowed (default "
                             f"{cleanup.OLDER_THAN:g})",
               "prefix": f"AMI name prefix (default {_BUILD['ami_name_prefix']})"},
         numbers={"keep": COUNT, "older_than": MINUTES})
def cleanup_build(c: Context, region: str = "", endpoint: str = "", delete: bool = False,  # noqa: PLR0917
                  keep: int = cleanup.KEEP, older_than: float = cleanup.OLDER_THAN, prefix: str = "") -> None:
    """Find (and with --delete remove) what this project's interrupted builds left, and AMIs beyond --keep.

    Docs: docs/build-ami.md#cleanup-build (make docs builds the site)."""
    failed = cleanup.cleanup(region, endpoint, prefix=prefix, keep=keep, delete=delete, older_than=older_than)
    if failed:
        raise Exit(f"cleanup-build: {failed} could not be deleted (see above)", code=1)


_NODE = node.NodeConfig.__dataclass_fields__
_NODE_SSH_PORT: int = _NODE["ssh_port"].default          # type: ignore[assignment]
_NODE_WAIT: float = _NODE["wait_timeout"].default        # type: ignore[assignment]


@command(help={
    "region": "AWS region (default: the AWS configuration's)",
    "key_name": "EC2 key pair, or NAME of ~/.ssh/NAME.pub to import as one",
    "ami": "AMI id (default: the newest one build-ami made here for --project)",
    "project": "cellprofiler (default), something, fiji or omezarr: whose AMI (dcp:distributed-project tag)",
    "instance_type": f"instance type of the AMI's architecture (default {_NODE['instance_type'].default})",
    "name": f"the node's name (tag; default {_NODE['name'].default})",
    "ssh_cidr": "who may SSH in, e.g. 203.0.113.7/32, none wider than /16 (default: DCP_OPERATOR_CIDR, else your "
                "public address)",
    "instance_profile": "instance profile name or ARN for the node", "subnet_id": "subnet (default: the default VPC's)",
    "kms_key_id": "KMS key for the root volume (default: the account's EBS key)",
    "ssh_username": f"login user of the AMI (default {_NODE['ssh_username'].default})",
    "dry_run": "check everything and ask EC2 (DryRun) whether each create call would succeed; create nothing",
    "endpoint": _ENDPOINT, "ssh_host": "SSH address override",
    "ssh_port": f"SSH port (default {_NODE['ssh_port'].default})",
    "wait_timeout": f"seconds to wait for running, then for SSH, decimals allowed (default "
                    f"{_NODE['wait_timeout'].default:g})",
}, numbers={"ssh_port": PORT, "wait_timeout": SECONDS})
def launch_node(c: Context, region: str = "", key_name: str = "", ami: str = "", instance_type: str = "",  # noqa: PLR0917
                name: str = "", ssh_cidr: str = "", instance_profile: str = "", subnet_id: str = "",
                kms_key_id: str = "", ssh_username: str = "", dry_run: bool = False, endpoint: str = "",
                ssh_host: str = "", ssh_port: int = _NODE_SSH_PORT,
                wait_timeout: float = _NODE_WAIT, project: str = "") -> None:
    """Start a control node from this project's newest AMI; wait for SSH; print the ssh command.

    Docs: docs/nodes.md#launch-node (make docs builds the site)."""
    cfg = node.NodeConfig.from_options(
        region=region, key_name=key_name, ami=ami, instance_type=instance_type, name=name, ssh_cidr=ssh_cidr,
        instance_profile=instance_profile, subnet_id=subnet_id, kms_key_id=kms_key_id, ssh_username=ssh_username,
        dry_run=dry_run, endpoint=endpoint, ssh_host=ssh_host, ssh_port=ssh_port, wait_timeout=wait_timeout,
        project=project)
    result = node.launch(cfg)
    if result:
        print(result.ssh_command)


@command(help={"region": "AWS region", "endpoint": _ENDPOINT})
def list_nodes(c: Context, region: str = "", endpoint: str = "") -> None:
    """The control nodes launch-node started (not terminated).

    Docs: docs/nodes.md#list-nodes (make docs builds the site)."""
    lines = node.list_nodes(region, endpoint)
    print("\n".join(lines) if lines else "list-nodes: no nodes")


@command(help={"node_name": "node name or instance id (invoke list-nodes)", "region": "AWS region",
               "endpoint": _ENDPOINT})
def stop_node(c: Context, node_name: str, region: str = "", endpoint: str = "") -> None:
    """Stop a node launch-node started (its volume stays, and keeps costing).

    Docs: docs/nodes.md#stop-node (make docs builds the site)."""
    _help_if_asked("stop-node", node_name)
    ids = node.change_node(node_name, "stop", region, endpoint)
    print(f"stop-node: {', '.join(ids)} stopped")


@command(help={"node_name": "node name or instance id (invoke list-nodes)", "region": "AWS region",
               "endpoint": _ENDPOINT})
def terminate_node(c: Context, node_name: str, region: str = "", endpoint: str = "") -> None:
    """Terminate a node launch-node started (its root volume goes with it).

    Docs: docs/nodes.md#stop-node (make docs builds the site)."""
    _help_if_asked("terminate-node", node_name)
    ids = node.change_node(node_name, "terminate", region, endpoint)
    print(f"terminate-node: {', '.join(ids)} terminated")
