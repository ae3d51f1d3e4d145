"""A real sshd login on a bootstrapped control node: a DCP run in progress is the first line of the banner,
then its problems, then the readiness lines (the hook still only prints the cache the background refresh
wrote)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import boto3
import pytest

from rig.fleethistory import FleetHistoryStandIn
from rig.quota_stub import QuotaStub
from rig.sandbox import Sandbox
from tests.login.test_login_hook import aws_files, cache, login, wait_for

pytestmark = pytest.mark.sandbox
APP = "DistributedCP"          # the node's config.py (DCP's own defaults)


def test_a_run_in_progress_is_the_first_line_at_login(node: Sandbox, sandbox_key: Path,
                                                       history_standin: FleetHistoryStandIn,
                                                       quotas: QuotaStub) -> None:
    aws_files(node, history_standin.endpoint, quotas.endpoint)
    kw = {"endpoint_url": history_standin.endpoint, "region_name": "us-east-1",
          "aws_access_key_id": "AKIAEXAMPLEEXAMPLE01", "aws_secret_access_key": "testing"}
    sqs, ec2 = boto3.client("sqs", **kw), boto3.client("ec2", **kw)
    dlq = sqs.create_queue(QueueName="user_DeadMessages")["QueueUrl"]
    queue = sqs.create_queue(QueueName=f"{APP}Queue")["QueueUrl"]
    for i in range(10):
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"Metadata": f"Metadata_Plate=P{i}",
                                                                 "output_structure": ""}))
    for i in range(2):
        sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps({"Metadata": f"Metadata_Plate=F{i}"}))
    sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=3, VisibilityTimeout=900)   # 3 jobs in flight
    user_data = base64.b64encode(f"aws s3 cp s3://b/ecsconfigs/{APP}_ecs.config /etc/ecs/ecs.config".encode()).decode()
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    fid = ec2.request_spot_fleet(SpotFleetRequestConfig={
        "IamFleetRole": "arn:aws:iam::123456789012:role/aws-ec2-spot-fleet-tagging-role", "TargetCapacity": 2,
        "SpotPrice": "0.20", "Type": "maintain", "AllocationStrategy": "lowestPrice", "LaunchSpecifications": [
            {"ImageId": image, "InstanceType": "m5.xlarge", "SubnetId": subnet, "UserData": user_data}]}
    )["SpotFleetRequestId"]
    monitor = node.root / f"root/Distributed-CellProfiler/files/{APP}SpotFleetRequestId.json"
    monitor.write_text(json.dumps({"MONITOR_FLEET_ID": fid, "MONITOR_APP_NAME": APP, "MONITOR_QUEUE_NAME": f"{APP}Queue",
                                   "MONITOR_ECS_CLUSTER": "default", "MONITOR_LOG_GROUP_NAME": APP,
                                   "MONITOR_START_TIME": str(int((time.time() - 600) * 1000))}))
    try:
        login(node, sandbox_key)
        assert wait_for(lambda: cache(node).exists(), 90), "the background refresh never wrote the cache"
        _, out = login(node, sandbox_key)
        lines = [line for line in out.splitlines() if line.strip() and not line.startswith(("Linux", "Last login"))]
        first = next(i for i, line in enumerate(lines) if APP in line)
        readiness = next(i for i, line in enumerate(lines) if line.startswith(("✗ DCP", "! ready", "✓ ready")))
        assert first < readiness, out
        assert lines[first].startswith(f"{APP}: 0 / 12 jobs (0 %), 2 failed, 2 workers, $"), lines[first]
        assert "ETA unknown" in lines[first]
        assert any("failed-" in line for line in lines[first + 1:readiness])          # its problems, before
        assert (node.root / f"root/.cache/dcp-agent/status-{APP}.json").stat().st_mode & 0o777 == 0o600
    finally:
        ec2.cancel_spot_fleet_requests(SpotFleetRequestIds=[fid], TerminateInstances=True)
        sqs.delete_queue(QueueUrl=queue)
        sqs.delete_queue(QueueUrl=dlq)
        monitor.unlink()
