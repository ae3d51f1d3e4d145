"""Inside rig/moto_main.py's server: create many plain resources in one request, by the backend methods moto's own
request handlers call with the same values (each line below names the handler it follows). SPEED ONLY, for the
rig's clutter (rig/clutter.py): 10,000 roles, buckets, alarms, log groups, security groups, queues, clusters and
key pairs take about a second this way instead of about forty over HTTP. Nothing here changes an answer: the agent
still reads every one of them over HTTP, through moto's own handlers.

``POST /_rig/bulk-create`` with ``{"account": …, "region": …, "items": [[kind, {API parameters}], …]}`` answers
``{"created": {kind: n}}``; an unknown kind or a failed create answers 400 with the error (nothing is retried).
Bulk requests run one at a time; the caller sends them before anything else (rig/clutter.py), since moto's
backends are dicts that a long batch beside other requests could change under their iteration.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

PATH = "/_rig/bulk-create"


def _role(account: str, region: str, p: dict[str, Any]) -> None:
    from moto.iam.models import iam_backends
    from moto.utilities.utils import get_partition

    # IamResponse.create_role: path, boundary, description, tags and duration as a request without them gives
    # them (None where the hints say str: the handler passes what _get_param returns)
    backend: Any = iam_backends[account][get_partition(region)]
    backend.create_role(p["RoleName"], p["AssumeRolePolicyDocument"], None, None, None, [], 3600)


def _bucket(account: str, region: str, p: dict[str, Any]) -> None:
    from moto.s3.models import s3_backends
    from moto.utilities.utils import get_partition

    s3_backends[account][get_partition(region)].create_bucket(p["Bucket"], region)   # S3Response._bucket_response_put


def _alarm(account: str, region: str, p: dict[str, Any]) -> None:
    from moto.cloudwatch.models import cloudwatch_backends

    cloudwatch_backends[account][region].put_metric_alarm(    # CloudWatchResponse.put_metric_alarm
        name=p["AlarmName"], namespace=p["Namespace"], metric_name=p["MetricName"],
        comparison_operator=p["ComparisonOperator"], evaluation_periods=int(p["EvaluationPeriods"]),
        period=int(p["Period"]), threshold=float(p["Threshold"]), statistic=p["Statistic"], description="",
        dimensions=[], alarm_actions=[], ok_actions=[], insufficient_data_actions=[], actions_enabled=True)


def _log_group(account: str, region: str, p: dict[str, Any]) -> None:
    from moto.logs.models import logs_backends

    logs_backends[account][region].create_log_group(p["logGroupName"], {}, kmsKeyId=None)   # LogsResponse


def _security_group(account: str, region: str, p: dict[str, Any]) -> None:
    from moto.ec2.models import ec2_backends

    ec2_backends[account][region].create_security_group(   # SecurityGroups.create_security_group
        p["GroupName"], p["Description"], vpc_id=p.get("VpcId"), tags={})


def _queue(account: str, region: str, p: dict[str, Any]) -> None:
    from moto.sqs.models import sqs_backends

    sqs_backends[account][region].create_queue(p["QueueName"], {})   # SQSResponse.create_queue


def _cluster(account: str, region: str, p: dict[str, Any]) -> None:
    from moto.ecs.models import ecs_backends

    ecs_backends[account][region].create_cluster(p["clusterName"], None, None, None, None, None,   # EC2ContainerServiceResponse
                                                 service_connect_defaults=None)


def _key_pair(account: str, region: str, p: dict[str, Any]) -> None:
    from moto.ec2.models import ec2_backends

    # KeyPairs.import_key_pair: the blob parameter, decoded to bytes
    ec2_backends[account][region].import_key_pair(p["KeyName"], p["PublicKeyMaterial"].encode(), {})


KINDS: dict[str, Callable[[str, str, dict[str, Any]], None]] = {
    "role": _role, "bucket": _bucket, "alarm": _alarm, "log_group": _log_group,
    "security_group": _security_group, "queue": _queue, "cluster": _cluster, "key_pair": _key_pair,
}


_ONE_AT_A_TIME = threading.Lock()


def create(account: str, region: str, items: Iterable[tuple[str, dict[str, Any]]]) -> Counter[str]:
    created: Counter[str] = Counter()
    with _ONE_AT_A_TIME:
        for kind, params in items:
            KINDS[kind](account, region, params)
            created[kind] += 1
    return created


def serve(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The WSGI answer to one bulk request (rig/moto_main.py routes PATH here)."""
    body: dict[str, Any]
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        doc = json.loads(environ["wsgi.input"].read(length))
        created = create(str(doc["account"]), str(doc["region"]), [(str(k), dict(p)) for k, p in doc["items"]])
        status, body = "200 OK", {"created": dict(created)}
    except Exception as e:   # the rig's caller gets the error, the server keeps serving
        status, body = "400 Bad Request", {"error": f"{type(e).__name__}: {e}"}
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
