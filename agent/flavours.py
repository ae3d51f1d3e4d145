"""The Distributed-* family as data: one row per project, everything the agent treats differently.

DCP is one of a family built from one template (Distributed-Something); Distributed-Fiji and
Distributed-OMEZarrCreator share its Step 0. Their ``run.py`` files look alike and differ in ways a glance
misses, so every value below was read from that project's own code at the commit in its row (file and line
cited beside it; "L" is a line of that file at that commit). Adding a sibling is adding one row to ``FLAVOURS``.

How a run picks its row (``recognise``): the settings' ``project`` if set, else the clone's worker file,
else its origin remote, else Distributed-CellProfiler (the agent's first project, and the default everywhere).
"""

from __future__ import annotations

import configparser
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

# Credential layouts run.py's generate_task_definition can hand to workers (what C04 judges):
#   a: the profile has role_arn           -> the workers get it as the ECS task role
#   b: source_profile with its keys in ~/.aws/credentials [source]
#   c: keys inline in the profile's section of ~/.aws/config
#   d: profile 'default' with its keys in ~/.aws/credentials [default]
#   session: whatever boto3.Session(profile_name=AWS_PROFILE) resolves, as access key + secret only (no token,
#            no task role): long-term keys of that profile, in ~/.aws/config or ~/.aws/credentials
LAYOUT_NAMES = {"a": "role_arn (workers get the task role)", "b": "source_profile with keys",
                "c": "keys inline in ~/.aws/config", "d": "[default] keys in ~/.aws/credentials",
                "session": "the profile's own long-term keys, as boto3.Session resolves them"}

# What run.py (startCluster) does with ASSIGN_IP to launch specification 0's first network interface:
#   "false-off": ASSIGN_IP.lower() == 'false' turns its public address off (else the fleet file decides)
#   "true-off":  anything but 'false' turns it off; 'false' leaves the fleet file as it is (the inverse)
#   None:        run.py has no ASSIGN_IP: the fleet file (or the subnet) always decides
ASSIGN_IP_RULES = ("false-off", "true-off")


@dataclass(frozen=True)
class Defect:
    """A failure of run.py at the row's commit that a user of a correct account will hit.

    Found in the clone's own run.py (so a patched clone, or a later commit that fixed it, is not reported):
    ``present`` matches run.py's text, and ``absent``, when given, matches neither run.py nor config.py (a
    definition config.py can supply, since run.py does ``from config import *``)."""

    subcommand: str
    present: str
    effect: str
    workaround: str
    source: str
    absent: str = ""

    def found(self, run_py: str, config_py: str = "") -> bool:
        if not re.search(self.present, run_py, re.M):
            return False
        return not self.absent or not (re.search(self.absent, run_py, re.M) or re.search(self.absent, config_py, re.M))


@dataclass(frozen=True)
class Flavour:
    key: str                       # what settings' ``project`` says: "cellprofiler", "something", "fiji", "omezarr"
    name: str                      # the repository's name, which is also the default clone directory
    short: str                     # what its docs call it (DCP, DS, DF, DOZC)
    commit: str                    # the commit this row was read at
    repo_url: str
    default_branch: str            # the repository's default branch (what bootstrap/build-ami check out unless --ref)
    worker_file: str               # recognises a clone
    required: tuple[str, ...]      # config names run.py reads on every path with no default
    backfilled: MappingProxyType[str, Any]      # run.py's own defaults, set before ``from config import *``
    crashing_defaults: MappingProxyType[str, str]  # backfilled names whose default crashes run.py: name -> why
    conditional: tuple[tuple[str, tuple[str, ...]], ...]   # (flag that when 'true' makes these required, names)
    files: tuple[str, ...]         # what a clone must have
    buckets: tuple[str, ...]       # config names of the buckets run.py and the workers use
    worker_buckets: bool           # DCP's SOURCE/DESTINATION/WORKSPACE_BUCKET back-fill (dcpconfig._worker_buckets)
    assign_ip: str | None          # see ASSIGN_IP_RULES
    credential_layouts: tuple[str, ...]   # see LAYOUT_NAMES
    image: str                     # the worker image's repository (DOCKERHUB_TAG without the tag)
    image_example: str             # DOCKERHUB_TAG in config.py at the commit
    image_is_placeholder: bool     # the template's image names no real repository: every implementer builds one
    job_keys: tuple[str, ...]      # keys submitJob reads from the job file (a KeyError without them)
    job_tasks: str                 # the job file's list of tasks
    requirements: str              # the control node's requirements file, in the clone
    strips_dlq_arn: bool           # run.py reduces an ARN in SQS_DEAD_LETTER_QUEUE to its name
    job_retries: str | int         # "JOB_RETRIES" when config.py's name sets maxReceiveCount, else the fixed count
    docs: str                      # the clone's documentation folder
    defects: tuple[Defect, ...] = ()
    # customizing_DS.md L98: implementers may rename generic-worker.py (a clone need not have worker_file)
    worker_renamable: bool = False
    task_cpu: int | None = None    # run.py's fixed container "cpu" when it does not use CPU_SHARES
    # the config name of the bucket worker/run-worker.sh always mounts with s3fs (None: none, or DCP's conditional
    # SOURCE_BUCKET mount with DOWNLOAD_FILES 'False', which S07 judges as before)
    s3fs_bucket: str | None = None
    default_app_name: str = "DistributedCP"   # APP_NAME in the project's config.py (L3), shared by default
    # keys the worker reads from every message without a default (submitJob sends the job file's keys as they are)
    worker_job_keys: tuple[str, ...] = ()
    # job-file keys still holding files/exampleJob.json's placeholder: key -> placeholder
    job_placeholders: MappingProxyType[str, str] = field(default_factory=lambda: MappingProxyType({}))
    placeholders: MappingProxyType[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def reads(self) -> frozenset[str]:
        """Every config name run.py reads (required, back-filled or conditional)."""
        return frozenset(self.required) | frozenset(self.backfilled) | frozenset(
            n for _, names in self.conditional for n in names)

    def turns_public_ip_off(self, assign_ip: Any) -> bool:
        """Whether this ASSIGN_IP makes run.py (startCluster) set AssociatePublicIpAddress = False on launch
        specification 0's first network interface (when it has one)."""
        if self.assign_ip is None or not isinstance(assign_ip, str):
            return False
        off = assign_ip.lower() == "false"
        return off if self.assign_ip == "false-off" else not off

    def assign_ip_for(self, public: bool) -> str | None:
        """The ASSIGN_IP value that lets the fleet file's addresses stand (public) or turns them off."""
        if self.assign_ip is None:
            return None
        return ("True" if public else "False") if self.assign_ip == "false-off" else ("False" if public else "True")

    @property
    def is_dcp(self) -> bool:
        return self.key == "cellprofiler"

    def describe(self) -> str:
        return f"{self.name} (rules read at {self.commit[:7]})"


def _ro(d: dict[str, Any]) -> MappingProxyType[str, Any]:
    return MappingProxyType(dict(d))


_COMMON = ("APP_NAME", "DOCKERHUB_TAG", "AWS_REGION", "AWS_PROFILE", "AWS_BUCKET", "ECS_CLUSTER", "CLUSTER_MACHINES",
           "TASKS_PER_MACHINE", "MACHINE_TYPE", "MACHINE_PRICE", "EBS_VOL_SIZE", "MEMORY", "SQS_QUEUE_NAME",
           "SQS_MESSAGE_VISIBILITY", "SQS_DEAD_LETTER_QUEUE", "LOG_GROUP_NAME")
_CLONE = ("run.py", "config.py", "setup_AWS.py", "lambda_function.py", "files/requirements.txt")

# The two-argument get_queue_url(sqs, queue_name) called with one (Distributed-Fiji run.py L70,
# Distributed-OMEZarrCreator run.py L100): setup creates the queues and the cluster, then stops.
_SETUP_QUEUE_URL = (r"^\s*queue_name\s*=\s*get_queue_url\(sqs\)\s*$",
                    "run.py setup stops with \"TypeError: get_queue_url() missing 1 required positional argument: "
                    "'queue_name'\" after creating the queues and the cluster: no task definition, no service",
                    "in run.py's generate_task_definition change 'get_queue_url(sqs)' to "
                    "'get_queue_url(sqs, SQS_QUEUE_NAME)', then run 'python run.py setup' again")
# startCluster's monitor file: the MONITOR_START_TIME line closes the object and a CLEAN_DASHBOARD line follows.
_MONITOR_JSON_RE = r"MONITOR_START_TIME\" : \"'\+ starttime\+'\"\}\\n'"
_MONITOR_JSON_EFFECT = ("run.py startCluster writes files/<APP_NAME>SpotFleetRequestId.json as invalid JSON (the "
                        "MONITOR_START_TIME line closes the object, CLEAN_DASHBOARD follows), so 'run.py monitor' "
                        "stops with json.decoder.JSONDecodeError: Extra data")
_MONITOR_JSON_FIX = ("after each startCluster, repair the monitor file before monitoring: sed -i "
                     "'s/^\\(\"MONITOR_START_TIME\" : \"[0-9]*\"\\)}$/\\1,/' files/<APP_NAME>SpotFleetRequestId.json "
                     "(or in run.py's startCluster end the MONITOR_START_TIME line with '\",\\n' instead of '\"}\\n')")


def _monitor_json(source: str, uploaded: bool) -> Defect:
    """The monitor file's defect; where startCluster uploads it for Auto-Monitor (AUTO_MONITOR = 'True'), the
    Lambda reads the broken copy too, and the repaired file has to be uploaded again."""
    if not uploaded:
        return Defect("startCluster", _MONITOR_JSON_RE, _MONITOR_JSON_EFFECT, _MONITOR_JSON_FIX, source)
    return Defect("startCluster", _MONITOR_JSON_RE, _MONITOR_JSON_EFFECT + ", and so would Auto-Monitor's Lambda "
                  "on the copy startCluster uploads to s3://<AWS_BUCKET>/monitors/ (with AUTO_MONITOR = 'True')",
                  _MONITOR_JSON_FIX + "; with AUTO_MONITOR = 'True' upload the repaired file again: aws s3 cp "
                  "files/<APP_NAME>SpotFleetRequestId.json s3://<AWS_BUCKET>/monitors/", source)


# Distributed-Fiji's startCluster writes the monitor file (run.py L547–559) but never uploads it, while its
# lambda_function.py (L88–92) downloads monitors/<APP_NAME>SpotFleetRequestId.json from AWS_BUCKET: with
# AUTO_MONITOR = 'True' the alarms fire and the Lambda finds no file, so nothing is ever cleaned up.
_FIJI_NO_UPLOAD = Defect(
    "startCluster", r"^\s*if AUTO_MONITOR\.lower\(\)\s*==\s*'true'\s*:",
    "run.py startCluster never uploads the monitor file to s3://<AWS_BUCKET>/monitors/, where Auto-Monitor's "
    "Lambda (lambda_function.py) reads it: with AUTO_MONITOR = 'True' the Lambda finds no file and never cleans up "
    "the fleet, queue, service or alarms",
    "after each startCluster (and repairing the file, see above), upload it: aws s3 cp "
    "files/<APP_NAME>SpotFleetRequestId.json s3://<AWS_BUCKET>/monitors/; or set AUTO_MONITOR = 'False' and run "
    "'python run.py monitor files/<APP_NAME>SpotFleetRequestId.json' yourself",
    "run.py L547–559, lambda_function.py L88–92", absent=r"monitors/")

CELLPROFILER = Flavour(
    key="cellprofiler", name="Distributed-CellProfiler", short="DCP",
    commit="17388b33e6e7324b9f014b624450585926ea944c",
    repo_url="https://github.com/DistributedScience/Distributed-CellProfiler.git",
    default_branch="master",                        # its HEAD: refs/heads/master
    worker_file="worker/cp-worker.py",
    # run.py reads these on every path without a default (SSH_KEY_NAME is not one: run.py never reads it);
    # DESTINATION_BUCKET only with SOURCE_BUCKET, and it is back-filled otherwise (dcpconfig._worker_buckets).
    required=("APP_NAME", "DOCKERHUB_TAG", "AWS_REGION", "AWS_PROFILE", "AWS_BUCKET",
              "DESTINATION_BUCKET", "ECS_CLUSTER", "CLUSTER_MACHINES", "TASKS_PER_MACHINE", "MACHINE_TYPE",
              "MACHINE_PRICE", "EBS_VOL_SIZE", "DOWNLOAD_FILES", "DOCKER_CORES", "CPU_SHARES", "MEMORY",
              "SECONDS_TO_START", "SQS_QUEUE_NAME", "SQS_MESSAGE_VISIBILITY", "SQS_DEAD_LETTER_QUEUE",
              "CHECK_IF_DONE_BOOL", "EXPECTED_NUMBER_FILES", "MIN_FILE_SIZE_BYTES", "NECESSARY_STRING",
              "USE_PLUGINS", "LOG_GROUP_NAME"),
    # run.py L13–24 (SOURCE_BUCKET and WORKSPACE_BUCKET: see dcpconfig._worker_buckets; UPLOAD_FLAGS is 'False'
    # there and sent only when not 'false', which "" stands for here).
    backfilled=_ro({"UPLOAD_FLAGS": "", "UPDATE_PLUGINS": "False", "CREATE_DASHBOARD": "False",
                    "CLEAN_DASHBOARD": "False", "AUTO_MONITOR": "False", "REQUIREMENTS_FILE": False,
                    "ALWAYS_CONTINUE": "False", "JOB_RETRIES": 10, "ASSIGN_IP": "True"}),
    crashing_defaults=_ro({}),
    # run.py L158–164: read only when USE_PLUGINS.lower() == 'true' (a NameError without them).
    conditional=(("USE_PLUGINS", ("PLUGINS_COMMIT", "INSTALL_REQUIREMENTS", "REQUIREMENTS")),),
    files=("run.py", "config.py", "setup_AWS.py", "lambda_function.py", "run_batch_general.py",
           "files/requirements.txt"),
    buckets=("AWS_BUCKET", "SOURCE_BUCKET", "WORKSPACE_BUCKET", "DESTINATION_BUCKET"),   # run.py L136–151
    worker_buckets=True,
    assign_ip="false-off",                        # run.py L600–605: ASSIGN_IP.lower() == 'false'
    credential_layouts=("a", "b", "c", "d"),      # run.py L75–117
    image="cellprofiler/distributed-cellprofiler", image_example="cellprofiler/distributed-cellprofiler:2.2.1_4.2.8",
    image_is_placeholder=False,                   # worker/Makefile L1–3
    job_keys=("pipeline", "output", "input", "data_file", "groups"),   # run.py L553–568
    job_tasks="groups",
    requirements="files/requirements.txt",
    strips_dlq_arn=True,                          # run.py L29–30
    job_retries="JOB_RETRIES",                    # run.py L229
    docs="documentation/DCP-documentation",
)

SOMETHING = Flavour(
    key="something", name="Distributed-Something", short="DS",
    commit="d1d6e62edb0c83e5d0a047e8569d455ea2cebacd",
    repo_url="https://github.com/DistributedScience/Distributed-Something.git",
    default_branch="main",                        # its HEAD: refs/heads/main
    worker_file="worker/generic-worker.py",
    # run.py: the task definition L28–51 and L104–151, setup L523–537, startCluster L562–650; no DOWNLOAD_FILES,
    # DESTINATION_BUCKET, USE_PLUGINS (generic-worker.py reads those only inside try/except).
    required=(*_COMMON, "DOCKER_CORES", "CPU_SHARES", "SECONDS_TO_START", "CHECK_IF_DONE_BOOL",
              "EXPECTED_NUMBER_FILES", "MIN_FILE_SIZE_BYTES", "NECESSARY_STRING"),
    backfilled=_ro({"CREATE_DASHBOARD": "False", "CLEAN_DASHBOARD": "False", "AUTO_MONITOR": "False",
                    "ASSIGN_IP": "True"}),       # run.py L13–16
    crashing_defaults=_ro({}),
    conditional=(),
    files=(*_CLONE, "worker/generic-worker.py"),
    buckets=("AWS_BUCKET",),                      # run.py L112, generic-worker.py L21: one bucket
    worker_buckets=False,
    # run.py L582: 'if not ASSIGN_IP.lower() == 'false'' — the inverse of DCP's (and of its own
    # step_1_configuration.md L39–41 and config.py's comment, which describe DCP's).
    assign_ip="true-off",
    credential_layouts=("a", "b", "c", "d"),      # run.py L61–103 (DCP's four)
    image="user/distributed-something", image_example="user/distributed-something:sometag",
    image_is_placeholder=True,                    # worker/Makefile L1–3: user = user, the template's
    job_keys=("groups",),                         # run.py L547–555: every other key is sent as it is
    job_tasks="groups",
    requirements="files/requirements.txt",
    strips_dlq_arn=False,                         # no ':' handling: the name is used as it is (L199–207)
    job_retries=10,                               # run.py L217–219: maxReceiveCount "10"
    docs="documentation/DS-documentation",
    defects=(_monitor_json("run.py L606–607", uploaded=True),),     # uploaded: run.py L610–616
    placeholders=_ro({"DOCKERHUB_TAG": "user/distributed-something:sometag"}),
    worker_renamable=True,                        # documentation/DS-documentation/customizing_DS.md L98
    s3fs_bucket="AWS_BUCKET",                     # worker/run-worker.sh L23, with the workers' keys
    default_app_name="DistributedSomething",      # config.py L3
)

FIJI = Flavour(
    key="fiji", name="Distributed-Fiji", short="DF",
    commit="448d1badd20348d4b212f8fb790216a51f1fae4b",
    repo_url="https://github.com/DistributedScience/Distributed-Fiji.git",
    default_branch="master",                        # its HEAD: refs/heads/master
    worker_file="worker/fiji-worker.py",
    # run.py: "cpu" is 1024 (L40, no CPU_SHARES), no DOCKER_CORES or SECONDS_TO_START; AUTO_MONITOR has no
    # default (L610 .lower(): NameError without it); SCRIPT_DOWNLOAD_URL L112–115.
    required=(*_COMMON, "EXPECTED_NUMBER_FILES", "MIN_FILE_SIZE_BYTES", "NECESSARY_STRING", "SCRIPT_DOWNLOAD_URL",
              "AUTO_MONITOR"),
    backfilled=_ro({"CREATE_DASHBOARD": False, "CLEAN_DASHBOARD": False}),   # run.py L11–12: bools
    crashing_defaults=_ro({
        "CREATE_DASHBOARD": "run.py's default is the bool False and startCluster calls CREATE_DASHBOARD.lower() "
                            "(L606): AttributeError",
        "CLEAN_DASHBOARD": "run.py's default is the bool False and startCluster adds it to a string (L558): "
                           "TypeError, after the fleet was requested",
    }),
    conditional=(),
    files=(*_CLONE, "worker/fiji-worker.py"),
    buckets=("AWS_BUCKET",),                      # run.py L92, fiji-worker.py L21
    worker_buckets=False,
    assign_ip=None,                               # no ASSIGN_IP in run.py or config.py
    credential_layouts=("session",),              # run.py L61–64: boto3.Session(...).get_credentials(), no role
    image="cellprofiler/distributed-fiji", image_example="cellprofiler/distributed-fiji:latest",
    image_is_placeholder=False,                   # worker/Makefile L1–3
    job_keys=("output_file_location", "shared_metadata", "groups"),   # run.py L501–511
    job_tasks="groups",
    requirements="files/requirements.txt",
    strips_dlq_arn=True,                          # run.py L17–18
    job_retries=10,                               # run.py L176–178
    docs="documentation/DF-documentation",
    defects=(Defect("setup", *_SETUP_QUEUE_URL, source="run.py L70"),
             _monitor_json("run.py L557–558", uploaded=False), _FIJI_NO_UPLOAD),
    placeholders=_ro({"SCRIPT_DOWNLOAD_URL": "https://some/url/with/a/script.y"}),
    task_cpu=1024,                                # run.py L40: "cpu": 1024
    s3fs_bucket="AWS_BUCKET",                     # worker/run-worker.sh L25, with the workers' keys
    default_app_name="DistributedFiji",           # config.py L3
)

OMEZARR = Flavour(
    key="omezarr", name="Distributed-OMEZarrCreator", short="DOZC",
    commit="d4d16dd14f68d1a0256087029d8551287a2aec7c",
    repo_url="https://github.com/DistributedScience/Distributed-OMEZarrCreator.git",
    default_branch="main",                        # its HEAD: refs/heads/main
    worker_file="worker/B2R-worker.py",
    # run.py: the task definition L28–122 (CPU_SHARES, CHECK_IF_DONE_BOOL), no DOCKER_CORES, SECONDS_TO_START,
    # EXPECTED_NUMBER_FILES; AUTO_MONITOR has no default (L564 .lower(): NameError without it).
    required=(*_COMMON, "CPU_SHARES", "CHECK_IF_DONE_BOOL", "AUTO_MONITOR"),
    backfilled=_ro({"CREATE_DASHBOARD": False, "CLEAN_DASHBOARD": False}),   # run.py L12–13: bools
    crashing_defaults=_ro({
        "CREATE_DASHBOARD": "run.py's default is the bool False and startCluster calls CREATE_DASHBOARD.lower() "
                            "(L615): AttributeError",
        "CLEAN_DASHBOARD": "run.py's default is the bool False and startCluster adds it to a string (L560): "
                           "TypeError, after the fleet was requested",
    }),
    conditional=(),
    files=(*_CLONE, "worker/B2R-worker.py"),
    buckets=("AWS_BUCKET",),                      # startCluster's ecsconfigs only; jobs name their own buckets
    worker_buckets=False,
    assign_ip=None,                               # no ASSIGN_IP in run.py or config.py
    credential_layouts=("a", "b", "c"),           # run.py L60–97: no [default]-in-credentials branch
    image="erinweisbart/distributed-bioformats2raw",
    image_example="erinweisbart/distributed-bioformats2raw:0.0.19",
    image_is_placeholder=False,                   # worker/Makefile L1–3, config.py L7
    job_keys=("plates",),                         # run.py L505–513: every other key is sent as it is
    job_tasks="plates",
    # worker/B2R-worker.py L111–184: message[...] with no default (run.py adds "plate"); false is how its
    # exampleJob.json says "not set", so the keys must be there even when unused.
    worker_job_keys=("input_bucket", "input_location", "path_to_metadata", "output_bucket", "output_location",
                     "upload_flags", "resolutions", "tile_width", "tile_height", "target-min-size",
                     "additional_flags"),
    job_placeholders=_ro({"input_bucket": "SOURCE_BUCKET", "output_bucket": "DESTINATION_BUCKET"}),  # L3, L7
    requirements="files/requirements.txt",
    strips_dlq_arn=True,                          # run.py L18–19
    job_retries=10,                               # run.py L187–189
    docs="documentation/DOZC-documentation",
    defects=(Defect("setup", *_SETUP_QUEUE_URL, source="run.py L100"),
             # run.py calls loadConfig (L505, L530, L666, L713) but never defines it (DS's L227–231 are gone).
             Defect("submitJob, startCluster, monitor", r"loadConfig\(", "run.py submitJob, startCluster and "
                    "monitor stop at once with \"NameError: name 'loadConfig' is not defined\"",
                    "define it in config.py (run.py imports everything from there): 'import json' and "
                    "'def loadConfig(configFile): return json.load(open(configFile))', or add the same function "
                    "to run.py", "run.py L505, L530, L666, L713", absent=r"^def loadConfig\("),
             _monitor_json("run.py L559–560", uploaded=True)),     # uploaded: run.py L563–568
    default_app_name="DistributedBioFormats2Raw",  # config.py L3
)

FLAVOURS: dict[str, Flavour] = {f.key: f for f in (CELLPROFILER, SOMETHING, FIJI, OMEZARR)}
DEFAULT = CELLPROFILER


@dataclass(frozen=True)
class Recognised:
    flavour: Flavour
    how: str        # "settings", "worker/fiji-worker.py", "config folder's worker/…", "config.py's names",
                    # "origin", "default"

    def as_dict(self) -> dict[str, str]:
        """What reports carry (RunOutcome.project; report.project_line words it)."""
        return {"key": self.flavour.key, "name": self.flavour.name, "commit": self.flavour.commit, "how": self.how}

    @property
    def sure(self) -> bool:
        """False when nothing said which project this is (DCP's rules by default): rules that differ between the
        projects then warn (UNSURE) rather than fail."""
        return self.how != "default"

    def line(self) -> str:
        return f"judged as {self.flavour.describe()}, {how_words(self.how)}"


UNSURE_FIX = "set project = \"cellprofiler\", \"something\", \"fiji\" or \"omezarr\" in the agent's settings"


def unsure(recognised: Recognised) -> str:
    """The words of a warning a rule gives instead of a failure when the project is only DCP by default."""
    return (f"cannot confirm which project this clone is (no worker file, origin or config.py name says; judged as "
            f"{recognised.flavour.name} by default), so this is {recognised.flavour.short}'s rule only")


def how_words(how: str) -> str:
    return {"settings": "as the settings say (project)", "default": "by default",
            "origin": "from the clone's origin remote", "config.py's names": "from the names config.py defines"
            }.get(how, f"from the {how}" if how.startswith("config folder") else f"from the clone's {how}")


def by_key(key: str) -> Flavour:
    """The row for a settings value: its key, or its repository name, case-insensitively; KeyError if none."""
    k = key.strip().lower()
    for f in FLAVOURS.values():
        if k in (f.key, f.name.lower(), f.short.lower()):
            return f
    raise KeyError(key)


def _origin(clone: Path) -> str:
    parser = configparser.RawConfigParser(strict=False)
    try:
        parser.read(clone / ".git" / "config", encoding="utf-8")
        return parser.get('remote "origin"', "url", fallback="")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return ""


# Names only one project's config.py defines (each project's config.py at its row's commit): DCP's buckets,
# plugins and retries; Fiji's script. DS and OMEZarr define no name of their own: DS has DCP's worker names
# (DOCKER_CORES, SECONDS_TO_START, CHECK_IF_DONE_BOOL) without any of DCP's or Fiji's; OMEZarr has CPU_SHARES and
# CHECK_IF_DONE_BOOL without DOCKER_CORES, SECONDS_TO_START or EXPECTED_NUMBER_FILES.
_DCP_NAMES = frozenset({"SOURCE_BUCKET", "WORKSPACE_BUCKET", "DESTINATION_BUCKET", "UPLOAD_FLAGS", "USE_PLUGINS",
                        "UPDATE_PLUGINS", "PLUGINS_COMMIT", "INSTALL_REQUIREMENTS", "ALWAYS_CONTINUE", "JOB_RETRIES"})
_NAME_RE = re.compile(r"^([A-Z][A-Z0-9_]*)\s*=", re.M)


def _by_names(config_py: Path) -> Flavour | None:
    try:
        names = set(_NAME_RE.findall(config_py.read_text(encoding="utf-8")[:200_000]))
    except (OSError, UnicodeDecodeError):
        return None
    if "SCRIPT_DOWNLOAD_URL" in names and not names & _DCP_NAMES:
        return FIJI
    if names & _DCP_NAMES and "SCRIPT_DOWNLOAD_URL" not in names:
        return CELLPROFILER
    if names & _DCP_NAMES or "DOWNLOAD_FILES" in names:
        return None
    if {"DOCKER_CORES", "SECONDS_TO_START", "CHECK_IF_DONE_BOOL"} <= names:
        return SOMETHING
    if {"CPU_SHARES", "CHECK_IF_DONE_BOOL"} <= names and not names & {"DOCKER_CORES", "SECONDS_TO_START",
                                                                        "EXPECTED_NUMBER_FILES"}:
        return OMEZARR
    return None


def recognise(clone: Path, project: str = "", config: Path | None = None) -> Recognised:
    """Which row judges this clone (no subprocess, no network: a few file reads at most): the settings' project,
    the worker file in the clone or in config.py's folder, the origin of either, the names config.py defines;
    else DCP's, by default (``Recognised.sure`` is then False)."""
    if project:
        return Recognised(by_key(project), "settings")
    config = config if config is not None else clone / "config.py"
    folders = [(clone, "")]
    try:
        if config.parent.resolve() != clone.resolve():
            folders.append((config.parent, "config folder's "))
    except (OSError, RuntimeError):
        pass
    for folder, where in folders:
        try:
            for f in FLAVOURS.values():
                if (folder / f.worker_file).is_file():
                    return Recognised(f, where + f.worker_file)
        except OSError:
            pass
    for folder, where in folders:
        origin = _origin(folder)
        for f in FLAVOURS.values():
            if re.search(rf"[:/]{re.escape(f.name)}(\.git)?/?$", origin):
                return Recognised(f, "config folder's origin remote" if where else "origin")
    named = _by_names(config)
    if named is not None:
        return Recognised(named, "config.py's names")
    return Recognised(DEFAULT, "default")
