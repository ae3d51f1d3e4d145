"""A DCP run on the emulator: DCP's own run.py exported from the local mirror, or the state it leaves seeded
directly (for tests that must not depend on the mirror).

DCP's code is never copied into this project: ``export_dcp`` extracts the mirror's HEAD (``git archive HEAD |
tar -x``) into a temporary directory a test owns, and ``run_py`` runs ``run.py`` there unmodified, with
``time.sleep`` made instant (setup waits 3 × 60 s, monitor polls every 60 s) and the test's environment.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rig.seed import APP_NAME, DLQ, DcpAccount

# The same mirror directory as rig/siblings.py's (DCP_MIRROR: where the DistributedScience+<name>/repo git dirs are).
MIRROR = Path(os.environ.get("DCP_MIRROR", "/work/.mirror")) / "DistributedScience+Distributed-CellProfiler" / "repo"
_SHIM = ("import runpy, sys, time\n"
         "time.sleep = lambda seconds: None   # run.py's WAIT_TIME/MONITOR_TIME sleeps, made instant for the emulator\n"
         "sys.path.insert(0, '.')\n"
         "sys.argv = ['run.py', *sys.argv[1:]]\n"
         "runpy.run_path('run.py', run_name='__main__')\n")


def mirror_missing() -> str | None:
    """Why DCP's run.py cannot be exported here (None when it can)."""
    if shutil.which("git") is None:
        return "git is not installed"
    if not MIRROR.is_dir():
        return f"no local mirror of Distributed-CellProfiler at {MIRROR} (GitHub is out of reach; DCP_MIRROR names the directory of mirrors)"
    p = subprocess.run(["git", f"--git-dir={MIRROR}", "cat-file", "-e", "HEAD:run.py"], capture_output=True,
                       check=False)
    if p.returncode != 0:
        return f"the mirror at {MIRROR} has no run.py at HEAD"
    return None


def export_dcp(dest: Path) -> Path:
    """DCP's HEAD extracted into ``dest`` (git archive | tar -x); ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.Popen(["git", f"--git-dir={MIRROR}", "archive", "HEAD"], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, check=True)
    assert archive.stdout is not None
    archive.stdout.close()
    if archive.wait() != 0:
        raise RuntimeError("git archive HEAD failed")
    return dest


def run_py(workdir: Path, *args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python run.py ARGS`` in ``workdir`` (DCP's clone layout, with config.py), sleeps made instant."""
    return subprocess.run([sys.executable, "-c", _SHIM, *args], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL)


def job_file(path: Path, groups: int, *, plates: int = 5) -> Path:
    """A DCP job file of ``groups`` groups (Plate × Well × Site, as DCP's exampleJob.json names them)."""
    wells = [f"{r}{c:02d}" for r in "ABCDEFGH" for c in range(1, 13)]
    metas = [f"Metadata_Plate=Plate{p + 1},Metadata_Well={w},Metadata_Site=1" for w in wells for p in range(plates)]
    doc = {"pipeline": "projects/analysis.cppipe", "data_file": "projects/load_data.csv",
           "input": "projects/input/", "output": "projects/output/", "output_structure": "",
           "groups": [{"Metadata": m} for m in metas[:groups]]}
    path.write_text(json.dumps(doc, indent=1))
    return path


def seed_run(acct: DcpAccount, groups: int, *, machines: int = 2, retries: int = 3, visibility: int = 600,
             started: datetime | None = None) -> dict[str, Any]:
    """What run.py setup, submitJob and startCluster leave, made directly: the queue (redrive to the
    dead-letter queue after ``retries`` receives), the cluster, task definition and service (scaled to
    ``machines``), ``groups`` jobs, a fleet of ``machines`` whose user data fetches this app's ECS config, the log
    groups, and the monitor file. Returns the names and ids."""
    sqs, ecs, ec2, logs = (acct.client(s) for s in ("sqs", "ecs", "ec2", "logs"))
    started = started or datetime.now(UTC)
    dlq_arn = sqs.get_queue_attributes(QueueUrl=sqs.get_queue_url(QueueName=DLQ)["QueueUrl"],
                                       AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(QueueName=f"{APP_NAME}Queue", Attributes={
        "VisibilityTimeout": str(visibility), "MessageRetentionPeriod": "1209600",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(retries)})})["QueueUrl"]
    ecs.create_cluster(clusterName="dcp-cluster")
    ecs.register_task_definition(family=f"{APP_NAME}Task", containerDefinitions=[{
        "name": APP_NAME, "image": "cellprofiler/distributed-cellprofiler:2.2.0_4.2.8", "cpu": 1024, "memory": 2000,
        "essential": True}])
    ecs.create_service(cluster="dcp-cluster", serviceName=f"{APP_NAME}Service", taskDefinition=f"{APP_NAME}Task",
                       desiredCount=0)
    jobs = json.loads(job_file(acct.clone / "files" / "statusJob.json", groups).read_text())
    template = {k: jobs[k] for k in ("pipeline", "output", "input", "data_file", "output_structure")}
    for i in range(0, groups, 10):
        sqs.send_message_batch(QueueUrl=queue, Entries=[
            {"Id": str(j), "MessageBody": json.dumps({**template, "Metadata": g["Metadata"]})}
            for j, g in enumerate(jobs["groups"][i:i + 10])])
    fleet = acct.fleet_doc()
    user_data = base64.b64encode(f"aws s3 cp s3://{acct.bucket}/ecsconfigs/{APP_NAME}_ecs.config "
                                 "/etc/ecs/ecs.config".encode()).decode()
    for spec, kind in zip(fleet["LaunchSpecifications"], ["m5.xlarge", "m5a.xlarge"], strict=False):
        spec.update(UserData=user_data, InstanceType=kind)
    fleet.update(TargetCapacity=machines, SpotPrice="0.20", ValidFrom=started,
                 ValidUntil=started + timedelta(days=365), Type="maintain")
    fid = ec2.request_spot_fleet(SpotFleetRequestConfig=fleet)["SpotFleetRequestId"]
    ecs.update_service(cluster="dcp-cluster", service=f"{APP_NAME}Service", desiredCount=machines)
    for group in (APP_NAME, f"{APP_NAME}_perInstance"):
        logs.create_log_group(logGroupName=group)
    monitor = {"MONITOR_FLEET_ID": fid, "MONITOR_APP_NAME": APP_NAME, "MONITOR_ECS_CLUSTER": "dcp-cluster",
               "MONITOR_QUEUE_NAME": f"{APP_NAME}Queue", "MONITOR_BUCKET_NAME": acct.bucket,
               "MONITOR_LOG_GROUP_NAME": APP_NAME, "MONITOR_START_TIME": str(int(started.timestamp() * 1000)),
               "CLEAN_DASHBOARD": "False"}
    (acct.clone / "files" / f"{APP_NAME}SpotFleetRequestId.json").write_text(json.dumps(monitor))
    instances = [i["InstanceId"] for i in ec2.describe_spot_fleet_instances(SpotFleetRequestId=fid)["ActiveInstances"]]
    return {"queue_url": queue, "fleet_id": fid, "instances": instances, "job_file": acct.clone / "files" /
            "statusJob.json", "groups": [g["Metadata"] for g in jobs["groups"]]}
