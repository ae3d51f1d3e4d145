"""DCP's troubleshooting tables as data: the log line a failed job leaves, what it means and what to do.

From Distributed-CellProfiler's documentation at 17388b3, "Troubleshooting runs" (troubleshooting_runs.md,
one row per symptom: SQS, CloudWatch, S3, EC2/ECS, problem, solution) and "Troubleshooting startCluster"
(troubleshooting_start_cluster.md), and from the lines worker/cp-worker.py itself logs. The log line is
matched as a substring of an event in the job's own log stream (``LOG_GROUP_NAME``, stream named by the job's
Metadata, as cp-worker.py names it). Problems and fixes are said in our words after DCP's.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cause:
    code: str
    lines: tuple[str, ...]     # any of these in the job's log stream
    problem: str
    fix: str


# Jobs moving to the dead-letter queue, in the order they are tried (the more specific first).
JOB_CAUSES: tuple[Cause, ...] = (
    Cause("job-groups-syntax", ("dictionary update sequence element",),
          "the groups section of the job file is malformed (ValueError: dictionary update sequence element …)",
          "write Metadata without spaces between the variables: \"Metadata_Plate=Plate1,Metadata_Well=A01\", not "
          "\"Metadata_Plate=Plate1, Metadata_Well=A01\"; then submit those jobs again"),
    Cause("loaddata-csv", ("no name (Invalid arguments to routine: Bad value)", "error in LoadData during startup"),
          "CellProfiler cannot parse the LoadData CSV (an empty column, ',,', often from pandas' to_csv)",
          "find the ',,' in the CSV and remove it; with pandas, write it with to_csv(..., index=False)"),
    Cause("metadata-mismatch", ("index 0 is out of bounds for axis 0 with size 0",),
          "the job's Metadata selects no row CellProfiler can use (IndexError: index 0 is out of bounds)",
          "no Metadata values of 0 or with leading zeros (Metadata_Site=4, not 04); jobs that match the "
          "pipeline's input; correct paths in the LoadData CSV and its base image location; LoadData's "
          "'Process just a range of rows?' set to No"),
    Cause("empty-image-set", ("Empty image set list",),
          "DCP does not know how to load the image set (\"Empty image set list: no images passed the filtering "
          "criteria.\")", "with a .cppipe and a LoadData CSV, make sure the pipeline includes the LoadData module"),
    Cause("missing-channel", ("image is missing from the pipeline",),
          "the pipeline uses a channel the LoadData CSV does not load (ValueError: The … image is missing)",
          "check that the LoadData CSV has FileName_ and PathName_ columns for every channel the pipeline uses"),
    Cause("empty-loaddata", ("Failed to prepare run for module LoadData", "zero-size array to reduction operation"),
          "CellProfiler reads nothing from the LoadData CSV", "check that the CSV has rows beyond its header"),
    Cause("is-a-directory", ("IsADirectoryError",),
          "a path in the job is a directory (IsADirectoryError: [Errno 21]), usually from job submission",
          "check for spaces between the plate names passed to run_batch_general.py"),
    Cause("bucket-name-dot", ("SSL: certificate subject name",),
          "s3fs cannot mount a bucket whose name has a dot in it", "set DOWNLOAD_FILES = 'True' in config.py (and "
          "raise EBS_VOL_SIZE for the downloads), or use a bucket without a dot"),
    Cause("no-load-data-file", ("Can't find load data file in S3",),
          "the job's data_file is not in the workspace bucket", "fix data_file in the job file (it is relative to "
          "WORKSPACE_BUCKET), or upload the CSV there"),
    Cause("no-pipeline", ("Can't find pipeline in S3",),
          "the job's pipeline is not in the workspace bucket", "fix pipeline in the job file (relative to "
          "WORKSPACE_BUCKET), or upload the .cppipe there"),
    Cause("output-structure", ("You must specify an output structure",),
          "the job passes Metadata as a dictionary without output_structure",
          "add \"output_structure\" to the job file"),
    Cause("output-problem", ("OUTPUT PROBLEM",),
          "the results could not be moved to S3 after three tries", "read the '== ERR' lines of the job's log "
          "stream; check DESTINATION_BUCKET and the workers' S3 permissions"),
    Cause("cp-problem", ("CP PROBLEM",),
          "CellProfiler failed (\"CP PROBLEM: Done file reports failure\")",
          "read the job's log stream above the CP PROBLEM line for CellProfiler's own error, and fix that in "
          "the pipeline"),
)

UNKNOWN_JOB = Cause("unknown", (), "no known cause in its log stream (or the stream has no events)",
                    "read the job's log stream (LOG_GROUP_NAME, stream named by its Metadata) and its worker's "
                    "_perInstance log")

# Lines that mean a job failed (and will be tried again): a stream with several starts and one of these is a
# retry, not a message received twice.
FAILURE_MARKS = ("PROBLEM", "Aborting", "Error", "Traceback", *(line for c in JOB_CAUSES for line in c.lines))

SLOWDOWN = Cause("s3-slowdown", ("SlowDown",),
                 "S3 answers SlowDown to the workers' uploads (\"Please reduce your request rate\"): too many "
                 "jobs finish at once", "check out fewer or smaller machines, group jobs more coarsely (by Plate "
                 "instead of Well or Site), or raise SECONDS_TO_START in config.py")
S3FS = Cause("s3fs-disconnected", ("Transport endpoint is not connected",),
             "s3fs dropped the bucket mount (\"/home/ubuntu/bucket: Transport endpoint is not connected\")",
             "run without s3fs: DOWNLOAD_FILES = 'True' in config.py (raise EBS_VOL_SIZE for the downloads)")
START_LINE = "cellprofiler -c -r"
STALLED = Cause("stalled", (),
                "fewer messages in flight than CellProfiler containers running, for a long time: CellProfiler is "
                "stalling on a module without an error", "the stalling module is the one after the last one "
                "logged; look for it in CellProfiler's issues, change its settings, or use a DCP version with it "
                "fixed")
NAMELESS = Cause("never-registered", (),
                 "instances that started but never joined the ECS cluster (DCP's \"nameless machines\": no "
                 "Docker is placed on them)", "check MEMORY against MACHINE_TYPE and the DOCKERHUB_TAG in "
                 "config.py, that ecsInstanceRole can read s3://AWS_BUCKET/ecsconfigs/, and 'Registered container "
                 "instances' in ECS (dcp-agent check: N05, R02)")


@dataclass(frozen=True)
class FleetCause:
    code: str
    problem: str
    fix: str


def fleet_cause(sub_type: str, description: str) -> FleetCause:
    """A spot fleet ``error`` event (its EventSubType and EventDescription) in DCP's words."""
    d = description.lower()
    if sub_type == "spotFleetRequestConfigurationInvalid" and "security group" in d:
        return FleetCause("fleet-security-group", "the fleet's security group is not usable: " + description,
                          "fix Groups in the fleet file's launch specifications: the group must exist in the "
                          "subnet's VPC (dcp-agent fleet writes a file with this account's group)")
    if sub_type == "spotFleetRequestConfigurationInvalid":
        return FleetCause("fleet-config-invalid", "the fleet's launch specification is not valid: " + description,
                          "in the fleet file, IamInstanceProfile's Arn must be an instance-profile, not a role "
                          "(arn:aws:iam::ACCOUNT:instance-profile/ecsInstanceRole); if "
                          "'aws iam list-instance-profiles-for-role --role-name ecsInstanceRole' lists none, create it "
                          "and add the role (dcp-agent fix does)")
    if sub_type == "iamFleetRoleInvalid":
        return FleetCause("fleet-role-invalid", "the fleet may not launch or terminate instances: " + description,
                          "IamFleetRole in the fleet file must be the aws-ec2-spot-fleet-tagging-role (trusting "
                          "spotfleet.amazonaws.com); dcp-agent check R03 says what is wrong with it")
    if sub_type == "allLaunchSpecsTemporarilyBlacklisted":
        return FleetCause("fleet-no-capacity", "no launch specification could launch (run.py: 'I think, but am not "
                          "sure, that this is an insufficient capacity error'): " + description,
                          "offer more MACHINE_TYPEs and subnets (zones), or raise MACHINE_PRICE; if the description "
                          "names the AMI, key or group, fix the fleet file")
    if sub_type == "spotInstanceCountLimitExceeded":
        return FleetCause("fleet-spot-limit", "the account's spot vCPU quota is reached: " + description,
                          "lower CLUSTER_MACHINES or request a higher quota (dcp-agent check Z01, dcp-agent fix "
                          "--request-quota)")
    return FleetCause("fleet-launch-spec", f"the fleet reports {sub_type or 'an error'}: {description}",
                      "read the description: a price below the spot price (raise MACHINE_PRICE), an AMI or key "
                      "that does not exist (fix the fleet file)")
