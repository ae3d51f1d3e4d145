"""What every check reads: settings, config.py, fleet and job files, and one shared set of AWS clients.

Clients are created once and shared between the check threads (botocore clients are thread-safe,
sessions are not, so creation is serialised). ``memo`` makes concurrent checks that need the same
API answer share one call.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from agent import awsfiles, dcpconfig, fleetfile
from agent.settings import Settings

T = TypeVar("T")
REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$")

BOTO_CONFIG = {
    "connect_timeout": 3, "read_timeout": 5,
    "retries": {"mode": "standard", "max_attempts": 3},
    "max_pool_connections": 32,
}


class Context:
    def __init__(self, settings: Settings, *, config: Path | None = None, fleet: Path | None = None,
                 job: Path | None = None) -> None:
        self.settings = settings
        self.config_path = config or settings.config_path
        self.config = dcpconfig.load(self.config_path)
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
        self._memo: dict[str, Future[Any]] = {}
        self._memo_lock = threading.Lock()
        self._client_lock = threading.Lock()
        self._clients: dict[tuple[str, str, str], Any] = {}
        self.secrets: set[str] = set()   # credential values to scrub from any output

    # -- shared computations ---------------------------------------------------------------------
    def memo(self, key: str, fn: Callable[[], T]) -> T:
        """Compute ``fn()`` once per run, even when several check threads ask at the same time."""
        with self._memo_lock:
            fut = self._memo.get(key)
            owner = fut is None
            if owner:
                fut = self._memo[key] = Future()
        assert fut is not None
        if owner:
            try:
                fut.set_result(fn())
            except BaseException as e:
                fut.set_exception(e)
        return fut.result()

    @property
    def aws_files(self) -> awsfiles.AwsFiles:
        return self.memo("awsfiles", awsfiles.load)

    # -- sessions and clients --------------------------------------------------------------------
    def operator_session(self) -> Any:
        """The session DCP's run.py uses: ``boto3.Session()`` with no arguments."""

        def make() -> Any:
            import boto3

            session = boto3.Session()
            self._remember_secrets(session)
            return session

        return self.memo("session:operator", make)

    def config_profile(self) -> str:
        value = self.config.get("AWS_PROFILE")
        return value if isinstance(value, str) and value else "default"

    def config_session(self) -> Any:
        """``boto3.Session(profile_name=config.AWS_PROFILE)``: whose keys DCP hands to the workers."""

        def make() -> Any:
            import boto3

            op = self.operator_session()
            if (op.profile_name or "default") == self.config_profile():
                return op
            session = boto3.Session(profile_name=self.config_profile())
            self._remember_secrets(session)
            return session

        return self.memo("session:config", make)

    def _remember_secrets(self, session: Any) -> None:
        try:
            creds = session.get_credentials()
        except Exception:
            return
        if creds is None:
            return
        try:
            frozen = creds.get_frozen_credentials()
        except Exception:
            return
        for value in (frozen.secret_key, frozen.token):
            if value:
                self.secrets.add(value)

    @property
    def session_region(self) -> str | None:
        region = self.operator_session().region_name
        return region if isinstance(region, str) and region else None

    @property
    def region(self) -> str:
        """The region DCP works in: config.AWS_REGION when it is a region, else the session's."""
        value = self.config.get("AWS_REGION")
        if isinstance(value, str) and REGION_RE.match(value):
            return value
        return self.session_region or "us-east-1"

    def client(self, service: str, region: str | None = None, *, session: str = "operator",
               unsigned: bool = False, retries: int | None = None) -> Any:
        from botocore.config import Config

        region = region or self.region
        key = (service, region, session + (":unsigned" if unsigned else "") + (f":r{retries}" if retries else ""))
        with self._client_lock:
            if key not in self._clients:
                sess = self.operator_session() if session == "operator" else self.config_session()
                extra: dict[str, Any] = {}
                if retries:
                    extra["retries"] = {"mode": "standard", "max_attempts": retries}
                if unsigned:
                    from botocore import UNSIGNED

                    extra["signature_version"] = UNSIGNED
                self._clients[key] = sess.client(service, region_name=region,
                                                 config=Config(**{**BOTO_CONFIG, **extra}))
            return self._clients[key]

    # -- answers several checks need ---------------------------------------------------------------
    def identity(self, session: str = "operator") -> dict[str, Any]:
        """sts:GetCallerIdentity (with the response date, for the clock-skew check)."""

        def call() -> dict[str, Any]:
            resp = self.client("sts", session=session).get_caller_identity()
            return dict(resp)

        return self.memo(f"identity:{session}", call)

    @property
    def account(self) -> str:
        return str(self.identity()["Account"])

    @property
    def partition(self) -> str:
        return str(self.identity()["Arn"]).split(":")[1]

    def instance_types(self, types: list[str]) -> dict[str, dict[str, Any]]:
        valid = [t for t in types if isinstance(t, str)]
        return self._describe("itypes:" + ",".join(sorted(valid)), valid, method="describe_instance_types",
                              id_param="InstanceTypes", result="InstanceTypes", id_field="InstanceType",
                              not_found="InvalidInstanceType")

    def machine_types(self) -> list[str]:
        value = self.config.get("MACHINE_TYPE")
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        return []

    def _describe(self, key: str, ids: list[str], *, method: str, id_param: str, result: str, id_field: str,
                  not_found: str, **extra: Any) -> dict[str, dict[str, Any]]:
        """EC2 describe-by-id, once per run: one call when every id exists, then one by one only to tell
        which do not (an unknown id fails the whole batch). Unknown ids are simply absent."""

        def call() -> dict[str, dict[str, Any]]:
            if not ids:
                return {}   # an empty id list would describe everything in the region
            describe = getattr(self.client("ec2"), method)
            try:
                return {r[id_field]: r for r in describe(**{id_param: ids}, **extra)[result]}
            except Exception as e:
                if not_found not in str(e):
                    raise
            found: dict[str, dict[str, Any]] = {}
            for one in ids:
                try:
                    found.update({r[id_field]: r for r in describe(**{id_param: [one]}, **extra)[result]})
                except Exception as e:
                    if not_found not in str(e):
                        raise
            return found

        return self.memo(key, call)

    def subnets(self) -> dict[str, dict[str, Any]]:
        assert self.fleet is not None
        return self._describe("subnets", self.fleet.subnets(), method="describe_subnets", id_param="SubnetIds",
                              result="Subnets", id_field="SubnetId", not_found="InvalidSubnetID")

    def security_groups(self) -> dict[str, dict[str, Any]]:
        assert self.fleet is not None
        return self._describe("sgs", self.fleet.security_groups(), method="describe_security_groups",
                              id_param="GroupIds", result="SecurityGroups", id_field="GroupId", not_found="InvalidGroup")

    def images(self) -> dict[str, dict[str, Any]]:
        assert self.fleet is not None
        return self._describe("images", self.fleet.image_ids(), method="describe_images", id_param="ImageIds",
                              result="Images", id_field="ImageId", not_found="InvalidAMIID", IncludeDeprecated=True)

    def buckets(self) -> dict[str, str]:
        """The buckets config.py names: role -> bucket name (valid-looking names only)."""
        out: dict[str, str] = {}
        for role in ("AWS_BUCKET", "SOURCE_BUCKET", "WORKSPACE_BUCKET", "DESTINATION_BUCKET"):
            value = self.config.get(role)
            if isinstance(value, str) and value:
                out[role] = value
        return out

