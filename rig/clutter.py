"""Clutter for a seeded account: what other labs (and DCP's own earlier runs) leave in a shared AWS account.

``add_clutter(account, k)`` adds k × (20 roles, 10 buckets, 50 alarms, 10 log groups, 5 finished spot fleets,
10 security groups, 5 queues, 3 ECS clusters, 10 instances, 5 key pairs), none of it this app's: other apps'
worker alarms (``OtherLab<n>_i-…``, and ``<APP_NAME>2_i-…``, a name that starts like this app's without being
it), their log groups, fleets whose workers fetch another app's ecsconfig, cancelled and their instances
terminated, and plain on-demand instances. A DCP check of the seeded app must see none of it.

Fast: one boto3 client per service shared by a thread pool (boto3 clients are thread-safe), the fewest round
trips moto allows (RunInstances starts ten instances in one request, CancelSpotFleetRequests cancels five
fleets in one, ImportKeyPair instead of CreateKeyPair, which makes moto generate an RSA key each time). With
``bulk=True`` the plain resources (all but the instances and fleets) are made inside moto by the rig's own
route (rig/moto_bulk.py): k = 100 in seconds, which lets a test afford it; the benchmark seeds over HTTP, as
an account is filled. Everything goes to the account's moto endpoint on loopback.
"""

from __future__ import annotations

import base64
import itertools
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from rig import moto_bulk
from rig.seed import APP_NAME, DcpAccount, ssh_keypair, trust_policy

PER_K = {"roles": 20, "buckets": 10, "alarms": 50, "log_groups": 10, "fleets": 5, "security_groups": 10,
         "queues": 5, "clusters": 3, "instances": 10, "key_pairs": 5}


@dataclass(frozen=True)
class Clutter:
    k: int
    requests: int          # the seeding requests sent
    seconds: float


def _alarm_name(j: int, n: int) -> str:
    app = f"{APP_NAME}2" if n == 0 else f"OtherLab{j}"   # one in 50: a name that begins like this app's
    return f"{app}_i-{j:08x}{n:09x}"


def _user_data(app: str) -> str:
    script = (f"#!/bin/bash\necho ECS_CLUSTER=other >> /etc/ecs/ecs.config\n"
              f"aws s3 cp s3://other-bucket/ecsconfigs/{app}_ecs.config /tmp/ecs.config\n")
    return base64.b64encode(script.encode()).decode()


# The plain kinds: one create each, by these API parameters; with ``bulk`` they are made inside moto in one
# request per few thousand (rig/moto_bulk.py, the same backend methods moto's handlers call), else over HTTP.
_API = {"role": ("iam", "create_role"), "bucket": ("s3", "create_bucket"), "alarm": ("cloudwatch", "put_metric_alarm"),
        "log_group": ("logs", "create_log_group"), "security_group": ("ec2", "create_security_group"),
        "queue": ("sqs", "create_queue"), "cluster": ("ecs", "create_cluster"), "key_pair": ("ec2", "import_key_pair")}


def _plain(a: DcpAccount, j: int, public_key: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Clutter unit ``j``'s plain resources: (kind, the create's API parameters)."""
    tag = f"{j:04d}"
    for n in range(PER_K["roles"]):
        yield "role", {"RoleName": f"OtherLab{tag}Role{n}", "AssumeRolePolicyDocument": trust_policy("ec2.amazonaws.com")}
    for n in range(PER_K["buckets"]):
        yield "bucket", {"Bucket": f"otherlab-{a.account_id}-{tag}-{n}"}
    for n in range(PER_K["alarms"]):
        yield "alarm", {"AlarmName": _alarm_name(j, n), "MetricName": "CPUUtilization", "Namespace": "AWS/EC2",
                        "Statistic": "Maximum", "Period": 60, "EvaluationPeriods": 15, "Threshold": 1,
                        "ComparisonOperator": "LessThanThreshold"}
    for n in range(PER_K["log_groups"]):
        yield "log_group", {"logGroupName": f"OtherLab{tag}_{n}"}
    for n in range(PER_K["security_groups"]):
        yield "security_group", {"GroupName": f"otherlab-{tag}-{n}", "Description": "clutter", "VpcId": a.vpc_id}
    for n in range(PER_K["queues"]):
        yield "queue", {"QueueName": f"OtherLab{tag}Queue{n}"}
    for n in range(PER_K["clusters"]):
        yield "cluster", {"clusterName": f"otherlab-{tag}-{n}"}
    for n in range(PER_K["key_pairs"]):
        yield "key_pair", {"KeyName": f"otherlab-{tag}-{n}", "PublicKeyMaterial": public_key}


def _running(a: DcpAccount, j: int) -> Iterator[tuple[int, Callable[[], Any]]]:
    """Clutter unit ``j``'s instances and finished fleets, always over HTTP (moto's own fleet and instance
    logic makes them): (requests it sends, the call)."""
    yield 1, partial(a.client("ec2").run_instances, ImageId=a.image_id, InstanceType="t3.micro",
                     MinCount=PER_K["instances"], MaxCount=PER_K["instances"], SubnetId=a.subnets[0])
    yield 2 * PER_K["fleets"] + 2, partial(_finished_fleets, a, j)


def add_alarms(a: DcpAccount, n: int) -> None:
    """``n`` more worker alarms of other apps (one in 50 named like this app's), made inside moto
    (rig/moto_bulk.py): on top of ``add_clutter``'s, for an account of 10,000 alarms."""
    units = [next(_units) for _ in range(-(-n // PER_K["alarms"]))]
    items = [item for j in units for item in _plain(a, j, "") if item[0] == "alarm"][:n]
    for i in range(0, len(items), BULK_BATCH):
        _retrying(_in_moto(a, items[i:i + BULK_BATCH]))()


def _over_http(a: DcpAccount, kind: str, params: dict[str, Any]) -> Callable[[], Any]:
    service, method = _API[kind]
    if kind == "key_pair":
        params = dict(params, PublicKeyMaterial=params["PublicKeyMaterial"].encode())
    return partial(getattr(a.client(service), method), **params)


BULK_BATCH = 2500   # items a bulk request carries (~0.3 s of moto's time, ~250 kB of JSON)


def _in_moto(a: DcpAccount, items: list[tuple[str, dict[str, Any]]]) -> Callable[[], Any]:
    def post() -> Any:
        body = json.dumps({"account": a.account_id, "region": a.region, "items": items}).encode()
        req = urllib.request.Request(a.endpoint.rstrip("/") + moto_bulk.PATH, data=body, method="POST",  # noqa: S310
                                     headers={"Content-Type": "application/json"})   # the rig's moto: http, loopback
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:   # noqa: S310
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"moto's bulk create failed: {e.read().decode(errors='replace')[:500]}") from None
    return post


def _finished_fleets(a: DcpAccount, j: int) -> None:
    """Five fleets of another app, each fulfilled with one instance, then cancelled with it terminated."""
    ec2 = a.client("ec2")
    doc = json.loads(a.fleet.read_text())
    spec = dict(doc["LaunchSpecifications"][0], InstanceType="m5.large", SubnetId=a.subnets[0],
                UserData=_user_data(f"OtherLab{j}"))
    spec.pop("NetworkInterfaces", None)   # as the tests' own leftover fleets: moto ignores them anyway
    ids = []
    for _ in range(PER_K["fleets"]):
        ids.append(ec2.request_spot_fleet(SpotFleetRequestConfig=dict(
            doc, TargetCapacity=1, SpotPrice="0.10", LaunchSpecifications=[spec]))["SpotFleetRequestId"])
    # Cancelled without TerminateInstances, then their instances terminated: moto deletes a fleet cancelled with
    # TerminateInstances at once, while AWS lists it, cancelled, for 48 hours; this one stays listed (state
    # cancelled_running in moto, which, like AWS's cancelled, is no fleet that can still run instances).
    ec2.cancel_spot_fleet_requests(SpotFleetRequestIds=ids, TerminateInstances=False)
    instances = [i["InstanceId"] for fid in ids
                 for i in ec2.describe_spot_fleet_instances(SpotFleetRequestId=fid)["ActiveInstances"]]
    if instances:
        ec2.terminate_instances(InstanceIds=instances)


def _finish_strays(a: DcpAccount) -> None:
    """Cancel any clutter fleet still live, and end its instances. A RequestSpotFleet that moto answered with a
    500 after making the fleet, then asked again (botocore's retry, or ``_retrying``'s of the whole unit), leaves
    a fleet nobody cancelled: an active fleet of another app with a running spot instance, which would change
    what a check reads (seen once in a hundred units)."""
    ec2 = a.client("ec2")
    live = [f["SpotFleetRequestId"] for p in ec2.get_paginator("describe_spot_fleet_requests").paginate()
            for f in p["SpotFleetRequestConfigs"]
            if f["SpotFleetRequestState"] in ("submitted", "active", "modifying")
            and "OtherLab" in base64.b64decode(
                (f["SpotFleetRequestConfig"].get("LaunchSpecifications") or [{}])[0].get("UserData", "")).decode(
                errors="replace")]
    if not live:
        return
    ec2.cancel_spot_fleet_requests(SpotFleetRequestIds=live, TerminateInstances=False)
    instances = [i["InstanceId"] for fid in live
                 for i in ec2.describe_spot_fleet_instances(SpotFleetRequestId=fid)["ActiveInstances"]]
    if instances:
        ec2.terminate_instances(InstanceIds=instances)


_units = itertools.count()
_ALREADY = {"EntityAlreadyExists", "BucketAlreadyOwnedByYou", "InvalidGroup.Duplicate",
            "ResourceAlreadyExistsException", "InvalidKeyPair.Duplicate", "QueueAlreadyExists"}


def _retrying(call: Callable[[], Any]) -> Callable[[], Any]:
    """moto server now and then answers a burst of concurrent creates with an HTML 500 page (botocore's
    ResponseParserError, which its retries do not cover): ask again; a create that had gone through then
    says so (already exists), which is what was wanted."""
    def run() -> Any:
        for attempt in range(4):
            try:
                return call()
            except Exception as e:
                code = str((getattr(e, "response", None) or {}).get("Error", {}).get("Code", ""))
                if attempt and code in _ALREADY:
                    return None
                if attempt == 3 or not (type(e).__name__ == "ResponseParserError" or code in ("500", "InternalError")):
                    raise
        return None
    return run


def add_clutter(a: DcpAccount, k: int, *, threads: int = 24, bulk: bool = False) -> Clutter:
    """Add ``k`` units of clutter to the account (each unit's names are new, so it can be called again). With
    ``bulk``, the plain resources are made inside moto (rig/moto_bulk.py; the endpoint must be rig/moto_main's
    server, not a proxy): k = 100 in seconds instead of a minute."""
    import time

    start = time.monotonic()
    public_key = ssh_keypair()[1]
    units = [next(_units) for _ in range(k)]
    plain = [item for j in units for item in _plain(a, j, public_key)]
    tasks = [t for j in units for t in _running(a, j)]
    if bulk:   # one batch after another, before the HTTP work: moto's backends are not made for concurrency
        for i in range(0, len(plain), BULK_BATCH):
            _retrying(_in_moto(a, plain[i:i + BULK_BATCH]))()
    else:
        tasks += [(1, _over_http(a, kind, params)) for kind, params in plain]
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="clutter") as pool:
        for f in [pool.submit(_retrying(call)) for _, call in tasks]:
            f.result()
    _finish_strays(a)
    bulk_requests = -(-len(plain) // BULK_BATCH) if bulk else 0
    return Clutter(k, sum(n for n, _ in tasks) + bulk_requests, time.monotonic() - start)
