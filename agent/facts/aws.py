"""The AWS session the operator's shell would use, as DCP's run.py builds it, and what it says about
itself: profile, region, the regions botocore knows, and how its credentials are obtained."""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.facts.core import fact

if TYPE_CHECKING:
    from agent.context import Context


def _remember_secrets(ctx: Context, session: Any) -> None:
    try:
        creds = session.get_credentials()
        frozen = creds.get_frozen_credentials() if creds is not None else None
    except Exception:
        return
    for value in (frozen.secret_key, frozen.token) if frozen else ():
        if value:
            ctx.secrets.add(value)


MODEL_CACHE_MIN = 16_000   # bytes on disk: smaller data files parse faster than the cache is checked
MODEL_FORMAT = "nodoc1"    # what the copies hold (part of their key): service models without their documentation


def _model_cache_dir() -> Path | None:
    """~/.cache/dcp-agent/models/<botocore version>, if it is (or can be made) a private directory of ours."""
    import botocore

    from agent.settings import cache_dir

    d = cache_dir() / "models" / botocore.__version__
    try:
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = os.lstat(d)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
        return None
    return d


def _parsed(full_path: str, open_method: Any) -> Any:
    """A botocore data file as plain dicts, from a marshal copy in the user's cache when one matches the file
    (its path, size and mtime), else parsed and the copy written. EC2's model alone is 4 MB of JSON (gzipped
    since botocore 1.32): marshal loads the eleven models a run needs in ~50 ms instead of ~170. The copy is
    botocore's public data, no secret; any problem with it falls back to parsing.

    A service model (``service-2``) comes without its documentation strings (:func:`_without_docs`), cached or
    not: half of EC2's model, and nothing the agent shows (they are the clients' docstrings)."""
    import hashlib
    import json
    import marshal

    from agent.cachefiles import read_regular, write_private

    st = os.stat(full_path)
    cached: Path | None = None
    if st.st_size >= MODEL_CACHE_MIN and (d := _model_cache_dir()) is not None:
        key = hashlib.sha256(f"{full_path}|{st.st_size}|{st.st_mtime_ns}|{MODEL_FORMAT}".encode()).hexdigest()[:24]
        cached = d / f"{key}.marshal"
        raw = read_regular(cached, limit=64_000_000)
        if raw:
            try:
                return marshal.loads(raw)  # noqa: S302 - our own 0600 copy, in a directory only we can write
            except (ValueError, EOFError, TypeError):
                pass
    with open_method(full_path, "rb") as fp:
        doc = json.loads(fp.read().decode("utf-8"))
    if os.path.basename(full_path).startswith("service-2.") and isinstance(doc, dict):
        doc = _without_docs(doc)
    if cached is not None:
        with contextlib.suppress(OSError, ValueError):
            write_private(cached, marshal.dumps(doc))
    return doc


def _without_docs(model: dict[str, Any]) -> dict[str, Any]:
    """A service model without the ``documentation`` strings of the service, its operations and its shapes
    (and their members, errors …): botocore reads them only with ``.get`` (model.py) for docstrings and help.
    Names are kept whatever they are (the keys of ``operations``, ``shapes`` and ``members`` maps), and every
    other section as it is: ``clientContextParams`` entries, for one, must keep theirs (model.py indexes them)."""
    def walk(node: Any, names: bool = False) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, names=k == "members") for k, v in node.items()
                    if names or not (k == "documentation" and isinstance(v, str))}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    out = dict(model)
    out.pop("documentation", None)
    for section in ("operations", "shapes"):
        if isinstance(model.get(section), dict):
            out[section] = {name: walk(body) for name, body in model[section].items()}
    return out


_LOADERS_LOCK = threading.Lock()
_LOADERS: dict[tuple[str, ...], Any] = {}      # search paths -> the one loader of this process for them


def _fast_models(session: Any) -> Any:
    """Parse botocore's model files into plain dicts (ordered since Python 3.7) instead of OrderedDicts:
    the ``object_pairs_hook`` botocore passes makes parsing 2–5× slower, and a run creates up to eleven
    clients, whose models (EC2's alone is 4 MB) are most of a run's CPU time; the large ones come from a
    marshal copy in the user's cache (:func:`_parsed`). ``file_loader`` is the loader's own constructor
    parameter; nothing else about how models are found or used changes.

    One loader per process for the same search paths (the operator's and config.py's sessions share it: it
    holds botocore's data files, no credentials), and its ``list_available_services`` computed once per data
    type, under a lock: botocore's own cache is per loader and unlocked, so every check thread that asked for a
    paginator before the first listing finished listed again (23 listings a run, each a stat of every
    service's directories, ~10k stats: a third of a run's CPU)."""
    from botocore.loaders import JSONFileLoader

    class PlainJSONFileLoader(JSONFileLoader):
        def _load_file(self, full_path: str, open_method: Any) -> Any:
            if not os.path.isfile(full_path):
                return None
            return _parsed(full_path, open_method)

    loader = session._session.get_component("data_loader")
    with _LOADERS_LOCK:
        shared = _LOADERS.get(key := tuple(loader.search_paths))
        if shared is None:
            if type(loader.file_loader) is JSONFileLoader:
                loader.file_loader = PlainJSONFileLoader()
            _list_once(loader)
            shared = _LOADERS[key] = loader
    if shared is not loader:
        session._session.register_component("data_loader", shared)
    return session


def _list_once(loader: Any) -> None:
    """``loader.list_available_services`` once per data type, whichever threads ask at the same time."""
    listing = loader.list_available_services
    lock = threading.Lock()
    listed: dict[str, list[str]] = {}

    def list_available_services(type_name: str) -> list[str]:
        with lock:
            if type_name not in listed:
                listed[type_name] = listing(type_name)
            return list(listed[type_name])

    loader.list_available_services = list_available_services


class Session:
    """What the agent uses of ``boto3.Session``, over the same botocore session: boto3.Session(profile_name=…)
    only sets botocore's ``profile`` variable, and its ``client``, ``profile_name``, ``region_name`` and
    ``get_credentials`` are botocore's, so credentials, profile and region resolve exactly as in DCP's run.py.
    Importing boto3 itself would cost ~140 ms of every run's CPU (s3transfer, multiprocessing, resources)
    for nothing the checks read."""

    def __init__(self, profile_name: str | None = None) -> None:
        import botocore.session

        self._session = botocore.session.get_session()
        if profile_name is not None:
            self._session.set_config_variable("profile", profile_name)

    @property
    def profile_name(self) -> str:
        return str(self._session.profile or "default")

    @property
    def region_name(self) -> Any:
        return self._session.get_config_variable("region")

    def get_credentials(self) -> Any:
        return self._session.get_credentials()

    def client(self, service_name: str, **kwargs: Any) -> Any:
        return self._session.create_client(service_name, **kwargs)


@fact()
def operator_session(ctx: Context) -> Any:
    """``boto3.Session()`` with no arguments, the session DCP's run.py uses (see :class:`Session`)."""
    session = _fast_models(Session())
    _remember_secrets(ctx, session)
    return session


@fact()
def config_session(ctx: Context) -> Any:
    """``boto3.Session(profile_name=config.AWS_PROFILE)``: whose keys DCP hands to the workers."""
    op = operator_session(ctx)
    if (op.profile_name or "default") == ctx.config_profile():
        return op
    session = _fast_models(Session(profile_name=ctx.config_profile()))
    _remember_secrets(ctx, session)
    return session


@fact()
def profile_env(ctx: Context) -> tuple[tuple[str, str], ...]:
    """The profile variables set in the environment, in the order ``boto3.Session()`` consults them (the
    first one wins): botocore's own list, which puts AWS_DEFAULT_PROFILE before AWS_PROFILE."""
    from botocore.configprovider import BOTOCORE_DEFAUT_SESSION_VARIABLES

    names = BOTOCORE_DEFAUT_SESSION_VARIABLES["profile"][1]
    return tuple((n, os.environ[n]) for n in ([names] if isinstance(names, str) else names) if n in os.environ)


@fact()
def session_profile(ctx: Context) -> str:
    return str(operator_session(ctx).profile_name or "default")


@fact()
def session_region(ctx: Context) -> str | None:
    region = operator_session(ctx).region_name
    return region if isinstance(region, str) and region else None


@fact()
def known_regions(ctx: Context) -> frozenset[str]:
    """The regions this botocore knows, from its small partitions file (offline, under a millisecond;
    ``get_available_regions`` would parse the 1 MB endpoints file and EC2's model first)."""
    return frozenset(r for p in _partitions() for r in p.get("regions", {}) if not r.endswith("-global"))


def _partitions() -> list[dict[str, Any]]:
    from botocore.loaders import create_loader

    return list(create_loader().load_data("partitions").get("partitions", []))


@fact()
def partition(ctx: Context, region: str) -> str:
    """The partition a region belongs to (aws, aws-us-gov, aws-cn, …), from botocore's partitions file: the
    region's own entry, else the partition whose region pattern it matches; ``aws`` when none does."""
    import re

    parts = _partitions()
    for p in parts:
        if region in p.get("regions", {}):
            return str(p["id"])
    for p in parts:
        rx = p.get("regionRegex")
        if rx and re.match(rx, region):
            return str(p["id"])
    return "aws"


def arn(ctx: Context, service: str, resource: str, *, region: str = "", account: str = "") -> str:
    """An ARN in the partition of the region DCP works in (never a hard-coded ``arn:aws:``)."""
    return f"arn:{partition(ctx, ctx.region)}:{service}:{region}:{account}:{resource}"


def home_region(ctx: Context, region: str) -> str:
    """A region of the same partition that every account has enabled (the partition's implicit global region:
    us-east-1, us-gov-west-1, cn-northwest-1 …)."""
    pid = partition(ctx, region)
    for p in _partitions():
        if p.get("id") == pid:
            return str((p.get("outputs") or {}).get("implicitGlobalRegion") or "us-east-1")
    return "us-east-1"


@fact("ec2:DescribeRegions")
def region_opt_in(ctx: Context, region: str) -> str | None:
    """EC2's optInStatus of ``region`` for this account (opt-in-not-required, opted-in, not-opted-in), asked in
    the partition's home region, which every account has enabled; None when EC2 does not list the region."""
    resp = ctx.client("ec2", home_region(ctx, region)).describe_regions(AllRegions=True, RegionNames=[region])
    for r in resp.get("Regions", []):
        if r.get("RegionName") == region:
            return str(r.get("OptInStatus") or "") or None
    return None


@dataclass(frozen=True)
class CredentialInfo:
    method: str                 # botocore's name for where they came from: env, shared-credentials-file, iam-role …
    access_key_prefix: str      # AKIA / ASIA / "" (never the key itself)
    has_token: bool
    expiry: datetime | None


@fact()
def credential_info(ctx: Context) -> CredentialInfo | None:
    creds = operator_session(ctx).get_credentials()
    if creds is None:
        return None
    frozen = creds.get_frozen_credentials()
    return CredentialInfo(method=str(getattr(creds, "method", "") or ""),
                          access_key_prefix=(frozen.access_key or "")[:4], has_token=bool(frozen.token),
                          expiry=getattr(creds, "_expiry_time", None))


@dataclass(frozen=True)
class Identity:
    account: str
    arn: str
    user_id: str
    date: str | None = None     # the response's Date header: AWS's clock

    @property
    def partition(self) -> str:
        return self.arn.split(":")[1]


@fact("sts:GetCallerIdentity")
def identity(ctx: Context, session: str = "operator") -> Identity:
    """sts:GetCallerIdentity, with the response's Date (for the clock-skew check). ``session="config"``
    asks as config.AWS_PROFILE; when that is the shell's own profile, it is the same answer."""
    if session != "operator" and config_session(ctx) is operator_session(ctx):
        return identity(ctx)
    resp = ctx.client("sts", session=session).get_caller_identity()
    date = resp.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    return Identity(str(resp["Account"]), str(resp["Arn"]), str(resp.get("UserId", "")), date)
