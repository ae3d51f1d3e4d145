"""moto server, with the AWS behaviour it lacks that the tests rely on (each patch says what AWS does), and
four patches of moto's own bookkeeping that only make it faster (each says why it changes no answer), and one
route of the rig's own for seeding many resources at once (rig/moto_bulk.py), which no AWS client sends.

Run as ``python -m rig.moto_main -H 127.0.0.1 -p PORT``, exactly like ``moto_server``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import moto.backends
import moto.iam.models
from moto.core.base_backend import BaseBackend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.server import main
from moto.utilities.utils import PARTITION_NAMES

from rig import moto_bulk

# CreateServiceLinkedRole: AWS names the spot roles AWSServiceRoleForEC2SpotFleet and AWSServiceRoleForEC2Spot
# (EC2 User Guide, "Service-linked role for Spot Fleet" / "for Spot Instance requests"); moto builds the name
# from the service principal and would say AWSServiceRoleForspotfleet. STUB of AWS's naming only.
moto.iam.models.SERVICE_NAME_CONVERSION.update({"spotfleet": "EC2SpotFleet", "spot": "EC2Spot"})


# SPEED ONLY. A request without x-moto-account-id finds its account by its access key: moto looks the key up in
# every account's IAM backend of every partition, and `account[partition]` *creates* each missing one (loading
# ~1600 AWS managed policies, ~0.3 s each): six backends per new account, holding every concurrent request up
# for seconds. A key lives only in a backend that exists (creating the key created it), so looking only in the
# existing ones finds the same account.
def _account_id_from(access_key: str) -> str:
    for account_id, account in list(moto.iam.models.iam_backends.items()):
        for partition in PARTITION_NAMES:
            backend = dict.get(account, partition)
            if backend is not None and access_key in backend.access_keys:
                return account_id
    return moto.iam.models.DEFAULT_ACCOUNT_ID


moto.iam.models.get_account_id_from = _account_id_from


# SPEED ONLY. Each new account's IAM backend parses moto's 4.7 MB of AWS managed policies and serializes each
# policy document again; the parsed data never changes, so it is parsed once. Every account still gets its own
# policy objects, built by moto's own constructor from the same values.
_MANAGED: list[tuple[str, dict[str, Any]]] | None = None


def _init_aws_policies(self: moto.iam.models.IAMBackend) -> list[moto.iam.models.ManagedPolicy]:
    global _MANAGED
    if not moto.iam.models.load_iam_aws_managed_policies():
        return []
    if _MANAGED is None:
        from datetime import datetime

        _MANAGED = [(name, {"default_version_id": d.get("DefaultVersionId"), "path": d.get("Path"),
                            "document": json.dumps(d.get("Document")),
                            "create_date": datetime.fromisoformat(d["CreateDate"]),
                            "update_date": datetime.fromisoformat(d["UpdateDate"])})
                    for name, d in json.loads(moto.iam.models.aws_managed_policies_data).items()]
    policy: Any = moto.iam.models.AWSManagedPolicy
    return [policy(name, account_id=self.account_id, region=self.region_name, **kw) for name, kw in _MANAGED]


moto.iam.models.IAMBackend._init_aws_policies = _init_aws_policies  # type: ignore[method-assign]


# SPEED ONLY. /moto-api/reset calls reset() on every backend of every account and region, which empties it and
# builds it anew (IAM's managed policies, EC2's canned AMIs …) only for moto to drop them all right after
# (BackendDict.reset clears every BackendDict; backends are created again on first use). The subclasses' own
# reset() (S3 closes its temporary files, Batch stops its jobs) still run; only the rebuild is skipped.
# One difference: a request still running during a reset, holding the old backend, now gets a 500
# (AttributeError) instead of an answer from a blank backend. Tests reset between tests, when only
# the background threads of timed-out checks could still be talking to moto.
def _reset(self: BaseBackend) -> None:
    self.__dict__ = {}


BaseBackend.reset = _reset  # type: ignore[method-assign]


# SPEED ONLY. The server finds each request's service by listing moto's package directory (a listdir and ~170
# stats per request, ~2 ms); the installed package does not change while the server runs, so it is listed once.
_MODULES = tuple(moto.backends.list_of_moto_modules())
moto.backends.list_of_moto_modules = lambda: _MODULES


# THE RIG'S OWN ROUTE, not an AWS API: POST /_rig/bulk-create makes the clutter's plain resources in-process
# (rig/moto_bulk.py says how and why). Every other request goes to moto's dispatcher as before.
def _with_bulk_route(dispatch: Any) -> Any:
    def call(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == moto_bulk.PATH and environ.get("REQUEST_METHOD") == "POST":
            return moto_bulk.serve(environ, start_response)
        return dispatch(self, environ, start_response)
    return call


DomainDispatcherApplication.__call__ = _with_bulk_route(DomainDispatcherApplication.__call__)  # type: ignore[method-assign]

if __name__ == "__main__":
    main(sys.argv[1:])
