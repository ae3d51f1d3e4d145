"""A stand-in for DCP's worker (worker/cp-worker.py and run-worker.sh at 17388b3): what it does to the queue,
to ECS and to CloudWatch Logs, without Docker or CellProfiler.

As cp-worker.py: a job is one message of the queue; its log lines go to ``LOG_GROUP_NAME`` in a stream named by
its Metadata (the values joined by '-', or ``output_structure`` with each key replaced by its value), the
worker's own prints to ``LOG_GROUP_NAME_perInstance`` (the awslogs driver's stream ``<prefix>/<container>/<task
id>``, prefix and container ``APP_NAME``); a success is deleted; a failure is not (cp-worker.py makes it visible
again after 60 s; this stand-in at once, to keep tests fast), so after the redrive policy's maxReceiveCount
receives SQS moves it to the dead-letter queue. As the ECS agent on each instance would: the fleet's instances
register with the cluster (``RegisterContainerInstance``), and tasks of ``<APP_NAME>Task`` start and stop.

The lines are cp-worker.py's own (``Downloading …``, the ``cellprofiler -c -r …`` command, ``CP PROBLEM: Done
file reports failure``, ``SUCCESS``) and, for a failure, the CellProfiler error DCP's "Troubleshooting runs" table
names for it (``OUTCOMES``).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# outcome -> (lines CellProfiler / the worker logs, success?)
OUTCOMES: dict[str, tuple[tuple[str, ...], bool]] = {
    "success": (("Times reported are CPU and Wall-clock times for each module",), True),
    "empty-image-set": (("Error detected during run of module LoadData",
                         "ValueError: Empty image set list: no images passed the filtering criteria."), False),
    "metadata-mismatch": (("Error detected during run of module MeasureObjectIntensity",
                           "IndexError: index 0 is out of bounds for axis 0 with size 0"), False),
    "job-groups-syntax": (("Traceback (most recent call last):",
                           "ValueError: dictionary update sequence element #1 has length 1; 2 is required"), False),
    "no-load-data-file": ((), False),      # the worker aborts before CellProfiler: see _lines
    "slowdown": (("Times reported are CPU and Wall-clock times for each module",), True),
    "s3fs": (("ls: cannot access '/home/ubuntu/bucket/projects': Transport endpoint is not connected",
              "Error detected during run of module LoadData"), False),
}


def stream_of(job: dict[str, Any]) -> str:
    """cp-worker.py's metadataID for a job (its log stream's name)."""
    meta = job.get("Metadata")
    structure = job.get("output_structure") or ""
    if isinstance(meta, dict):
        ident = str(structure)
        for k, v in meta.items():
            if k in ident:
                ident = ident.replace(k, str(v))
        return ident
    pairs = [p.split("=", 1) for p in str(meta).split(",")]
    if structure:
        ident = str(structure)
        for k, v in pairs:
            if k in ident:
                ident = ident.replace(k, v)
        return ident
    return "-".join(v for _, v in pairs)


@dataclass
class DcpWorker:
    client: Callable[[str], Any]          # service -> boto3 client of the run's account
    app: str
    queue_url: str
    log_group: str
    bucket: str
    outcomes: dict[str, str] = field(default_factory=dict)   # Metadata -> outcome (default success)
    # Jobs (their Metadata) whose message comes back while they run (a visibility timeout shorter than the job):
    # started, and then run a second time, both times successfully.
    twice: frozenset[str] = frozenset()
    task_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    done: list[str] = field(default_factory=list)
    returned: list[str] = field(default_factory=list)
    _streams: set[str] = field(default_factory=set)
    _clock: int = 0

    # -- ECS, as the ECS agent on each instance -------------------------------------------------------
    def register(self, cluster: str, instance_ids: list[str]) -> list[str]:
        """Each instance joins the cluster (the ECS agent's RegisterContainerInstance); their ARNs."""
        ecs = self.client("ecs")
        arns = []
        for iid in instance_ids:
            doc = json.dumps({"instanceId": iid, "region": "us-east-1", "accountId": "000000000000"})
            arns.append(ecs.register_container_instance(cluster=cluster, instanceIdentityDocument=doc)
                        ["containerInstance"]["containerInstanceArn"])
        return arns

    def stop_tasks(self, cluster: str, container_instance: str, reason: str, count: int) -> None:
        """Tasks of <APP_NAME>Task that start on the instance and stop with ``reason`` (as ECS reports a container
        that exited or ran out of memory)."""
        ecs = self.client("ecs")
        for _ in range(count):
            task = ecs.start_task(cluster=cluster, taskDefinition=f"{self.app}Task",
                                  containerInstances=[container_instance], startedBy=f"ecs-svc/{self.app}")["tasks"][0]
            ecs.stop_task(cluster=cluster, task=task["taskArn"], reason=reason)

    # -- the queue and the logs, as cp-worker.py ------------------------------------------------------
    def _now(self) -> int:
        self._clock = max(self._clock + 1, int(time.time() * 1000))
        return self._clock

    def _log(self, group: str, stream: str, lines: list[str]) -> None:
        logs = self.client("logs")
        if (group, stream) not in self._streams:
            try:
                logs.create_log_stream(logGroupName=group, logStreamName=stream)
            except Exception as e:   # the stream exists (a retry of the same job)
                if "ResourceAlreadyExists" not in str(e):
                    raise
            self._streams.add((group, stream))  # type: ignore[arg-type]
        logs.put_log_events(logGroupName=group, logStreamName=stream,
                            logEvents=[{"timestamp": self._now(), "message": line} for line in lines])

    def _lines(self, job: dict[str, Any], outcome: str) -> tuple[list[str], bool]:
        data_file, pipeline = job.get("data_file", ""), job.get("pipeline", "")
        head = [f"Downloading {data_file} from {self.bucket}"]
        if outcome == "no-load-data-file":
            return [*head, f"Can't find load data file in S3. Looking for {data_file} in {self.bucket}", "Aborting. Can't run without load data."], False
        ident = stream_of(job)
        cmd = (f"cellprofiler -c -r -p /home/ubuntu/local_input/{pipeline.split('/')[-1]} -i /home/ubuntu/bucket/"
               f"{job.get('input', '')} -o /home/ubuntu/local_output/{ident} -d /home/ubuntu/local_output/{ident}/"
               f"cp.is.done --data-file=/home/ubuntu/local_input/{data_file} -g {job.get('Metadata')}")
        head += [f"Downloading {pipeline} from {self.bucket}", "Using bucket mount for image files", cmd]
        cp_lines, ok = OUTCOMES[outcome]
        lines = head + list(cp_lines)
        if not ok:
            return [*lines, "CP PROBLEM: Done file reports failure"], False
        upload = (f"Uploading with command aws s3 mv /home/ubuntu/local_output/{ident} s3://{self.bucket}/"
                  f"{job.get('output', '')}{ident} --recursive --exclude=cp.is.done")
        lines += ["Move attempt #1", upload]
        if outcome == "slowdown":
            lines += ["== OUT ", "== ERR move failed:An error occurred (SlowDown) when calling the PutObject "
                      "operation (reached max retries: 4): Please reduce your request rate.", "Move attempt #2", upload]
        return [*lines, "== OUT ", "SUCCESS"], True

    def take(self, max_jobs: int = 1_000_000) -> int:
        """Take jobs until the queue has none (or ``max_jobs``): the number of messages received."""
        sqs = self.client("sqs")
        taken = 0
        per_instance = f"{self.log_group}_perInstance"
        instance_stream = f"{self.app}/{self.app}/{self.task_id}"
        while taken < max_jobs:
            got = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=0,
                                      AttributeNames=["ApproximateReceiveCount"]).get("Messages", [])
            if not got:
                self._log(per_instance, instance_stream, ["No messages in the queue"])
                break
            msg = got[0]
            taken += 1
            job = json.loads(msg["Body"])
            meta = str(job.get("Metadata"))
            outcome = self.outcomes.get(meta, "success")
            lines, ok = self._lines(job, outcome)
            if meta in self.twice and int(msg["Attributes"].get("ApproximateReceiveCount", 1)) == 1:
                self._log(self.log_group, stream_of(job), lines[:4])    # started; the message shows again …
                sqs.change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=msg["ReceiptHandle"],
                                              VisibilityTimeout=0)
                continue                                                # … and a worker takes it once more
            self._log(self.log_group, stream_of(job), lines)
            if ok:
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=msg["ReceiptHandle"])
                self.done.append(meta)
                self._log(per_instance, instance_stream, ["Batch completed successfully."])
            else:
                sqs.change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=msg["ReceiptHandle"],
                                              VisibilityTimeout=0)
                self.returned.append(meta)
                self._log(per_instance, instance_stream, ["Returning message to the queue."])
        return taken
