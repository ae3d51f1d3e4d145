"""One run's inputs and shared machinery: settings, config.py, fleet and job files, the fact cache and
the AWS clients the facts use.

Clients are created on first use, only for the services a run touches, and shared between the check
threads (botocore clients are thread-safe; sessions are not, so creation is serialised).
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from agent import dcpconfig, flavours, fleetfile
from agent.facts.core import FactCache
from agent.inputs import REGION_RE
from agent.settings import Settings

# Sized for a whole run's reads in flight at once: every check starts as soon as it can.
BOTO_CONFIG: dict[str, Any] = {
    "connect_timeout": 3, "read_timeout": 5,
    # total_max_attempts counts the first try (botocore's max_attempts counts retries only): 3 tries in all.
    "retries": {"mode": "standard", "total_max_attempts": 3},
    "max_pool_connections": 64,
}


def import_aws_libraries() -> None:
    """Import boto3 and botocore in the calling thread, before threads need them: two threads importing one
    module at once can see it half-initialised (ImportError "cannot import name 'Config'", seen in CI)."""
    import botocore.config
    import botocore.session  # noqa: F401


class Context:
    def __init__(self, settings: Settings, *, config: Path | None = None, fleet: Path | None = None,
                 job: Path | None = None) -> None:
        self.settings = settings
        self.config_path = config or settings.config_path
        # Which Distributed-* project's rules judge this clone (the settings' project, else its worker file or
        # origin, else DCP's): every rule that differs between them reads ctx.flavour.
        self.recognised = flavours.recognise(settings.dcp_clone, settings.project, self.config_path)
        self.flavour = self.recognised.flavour
        self.sure = self.recognised.sure   # False: rules that differ between the projects warn, never fail
        self.config = dcpconfig.load(self.config_path, self.flavour)
        fleet_path = fleet or settings.fleet
        self.fleet = fleetfile.load(fleet_path) if fleet_path else None
        job_path = job or settings.job
        self.job_path = job_path
        self.job: dict[str, Any] | None = None
        self.job_error: str | None = None
        if job_path:
            try:
                doc = json.loads(job_path.read_text(encoding="utf-8"))
                if isinstance(doc, dict):
                    self.job = doc
                else:
                    self.job_error = f"{job_path} holds a JSON {type(doc).__name__}, not an object"
            except (OSError, UnicodeDecodeError) as e:
                self.job_error = f"cannot read {job_path}: {e.__class__.__name__}"
            except json.JSONDecodeError as e:
                self.job_error = f"{job_path} is not valid JSON at line {e.lineno}"
        self.facts = FactCache(self)
        self._client_lock = threading.Lock()
        self._create_lock = threading.Lock()
        self._clients: dict[tuple[str, str, str], Future[Any]] = {}
        self.secrets: set[str] = set()   # credential values to scrub from any output

    # -- what config.py says (no reads) -------------------------------------------------------------
    def config_profile(self) -> str:
        value = self.config.get("AWS_PROFILE")
        return value if isinstance(value, str) and value else "default"

    @property
    def region(self) -> str:
        """The region DCP works in: config.AWS_REGION when it is a region, else the session's."""
        from agent.facts import aws

        value = self.config.get("AWS_REGION")
        if isinstance(value, str) and REGION_RE.match(value):
            return value
        return aws.session_region(self) or "us-east-1"

    def machine_types(self) -> list[str]:
        value = self.config.get("MACHINE_TYPE")
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        return []

    def buckets(self) -> dict[str, str]:
        """The buckets config.py names: role -> bucket name."""
        out: dict[str, str] = {}
        for role in self.flavour.buckets:
            value = self.config.get(role)
            if isinstance(value, str) and value:
                out[role] = value
        return out

    # -- clients (for facts only) -------------------------------------------------------------------
    def warm_clients(self, services: list[str]) -> None:
        """Create these clients now, in this order, in the background: each costs tens of ms of CPU, and
        the first reads of a run (identity, then IAM's chains) should not wait behind clients that only
        later reads need. A thread that asks for one of them meanwhile waits for it."""
        keys = []
        with self._client_lock:
            for service in services:
                for retries in ((None, 1) if service == "iam" else (None,)):   # 1: the simulator's client
                    key = self._key(service, self.region, "operator", False, retries)
                    if key not in self._clients:
                        self._clients[key] = Future()
                        keys.append((key, service, retries))

        def make() -> None:
            for key, service, retries in keys:
                self._create(key, service, self.region, session="operator", unsigned=False, retries=retries)

        import_aws_libraries()
        threading.Thread(target=make, daemon=True, name="warm-clients").start()

    @staticmethod
    def _key(service: str, region: str, session: str, unsigned: bool, retries: int | None) -> tuple[str, str, str]:
        return (service, region, session + (":unsigned" if unsigned else "") + (f":r{retries}" if retries else ""))

    def _create(self, key: tuple[str, str, str], service: str, region: str, *, session: str, unsigned: bool,
                retries: int | None) -> None:
        fut = self._clients[key]
        try:
            from botocore.config import Config

            from agent.facts import aws

            with self._create_lock:   # botocore sessions are not thread-safe
                sess = aws.operator_session(self) if session == "operator" else aws.config_session(self)
                extra: dict[str, Any] = {}
                if retries:
                    extra["retries"] = {"mode": "standard", "total_max_attempts": retries}
                if unsigned:
                    from botocore import UNSIGNED

                    extra["signature_version"] = UNSIGNED
                fut.set_result(sess.client(service, region_name=region, config=Config(**{**BOTO_CONFIG, **extra})))
        except BaseException as e:
            fut.set_exception(e)

    def endpoint_for(self, check: Any) -> str:
        """The endpoint (scheme://host) a check's first AWS action goes to, without waiting; else "AWS"."""
        import urllib.parse

        for action in getattr(check, "actions", ()):
            service = {"servicequotas": "service-quotas"}.get(action.split(":", 1)[0], action.split(":", 1)[0])
            with self._client_lock:
                futures = [f for k, f in self._clients.items() if k[0] == service]
            for fut in futures:
                if fut.done() and fut.exception() is None:
                    parts = urllib.parse.urlsplit(str(fut.result().meta.endpoint_url))
                    return f"{parts.scheme}://{parts.netloc}"
            break
        return "AWS"

    def client(self, service: str, region: str | None = None, *, session: str = "operator",
               unsigned: bool = False, retries: int | None = None) -> Any:
        region = region or self.region
        key = self._key(service, region, session, unsigned, retries)
        with self._client_lock:
            fut = self._clients.get(key)
            owner = fut is None
            if fut is None:
                fut = self._clients[key] = Future()
        if owner:
            self._create(key, service, region, session=session, unsigned=unsigned, retries=retries)
        return fut.result()
