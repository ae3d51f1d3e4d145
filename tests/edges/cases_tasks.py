"""The Invoke tasks' rows of the edge-case table: bad or awkward inputs, each with what the user must get.

Every row either fails before any network call (exit 2, one line naming the option) or talks only to
127.0.0.1:9, where nothing listens here (exit 3, "could not reach AWS"); launch-node rows that get as far
as AWS always give --ssh-cidr, so the public-address lookup (checkip) is never dialled.
"""

from __future__ import annotations

from tests.edges.harness import Case

DEAD = "http://127.0.0.1:9"                      # refuses at once
REFUSED = "could not connect to http://127.0.0.1:9"
R = ["--region", "us-east-1"]
NO_REGION = {"AWS_DEFAULT_REGION": None, "AWS_REGION": None, "AWS_PROFILE": None,
             "AWS_CONFIG_FILE": "/nonexistent/aws-config"}
LONG = "x" * 5000

CLEAN = ["invoke", "cleanup-build", *R]
BUILD = ["invoke", "build-ami", *R]
# build-ami as far as its preflight: SSH pinned to loopback, so Packer 1.6.6 needs no --ssh-cidr.
BUILD_LOCAL = [*BUILD, "--endpoint", DEAD, "--ssh-host", "127.0.0.1"]
LAUNCH = ["invoke", "launch-node", *R, "--key-name", "dcp-node"]
# launch-node as far as AWS: SSH pinned to loopback and the operator's network given (no checkip).
LAUNCH_LOCAL = [*LAUNCH, "--endpoint", DEAD, "--ssh-host", "127.0.0.1", "--ssh-cidr", "127.0.0.1/32"]
LIST = ["invoke", "list-nodes", *R]
STOP = ["invoke", "stop-node", "some-node", *R]
TERMINATE = ["invoke", "terminate-node", "some-node", *R]

CASES = [
    # -- cleanup-build: numbers ---------------------------------------------------------------------------
    Case("cleanup-keep-abc", [*CLEAN, "--keep", "abc"], 2, "--keep"),
    Case("cleanup-keep-decimal", [*CLEAN, "--keep", "1.5"], 2, "is not a whole number"),
    Case("cleanup-keep-negative", [*CLEAN, "--keep", "-1"], 2, "--keep and --older-than must be 0 or more"),
    Case("cleanup-keep-huge", [*CLEAN, "--keep", "9" * 40], 2, "is too large"),
    Case("cleanup-keep-5000-digits", [*CLEAN, "--keep", "9" * 5000], 2, "is too large"),
    Case("cleanup-keep-empty", [*CLEAN, "--keep", ""], 2, "--keep"),
    Case("cleanup-keep-without-value", ["invoke", "cleanup-build", "--keep"], 2, "'--keep' needed value"),
    Case("cleanup-keep-unicode-digits", [*CLEAN, "--keep", "٣"], 2, "--keep"),
    Case("cleanup-older-than-x", [*CLEAN, "--older-than", "x"], 2, "--older-than"),
    Case("cleanup-older-than-negative", [*CLEAN, "--older-than", "-5"], 2, "must be 0 or more"),
    Case("cleanup-older-than-nan", [*CLEAN, "--older-than", "nan"], 2, "is not a number of minutes"),
    Case("cleanup-older-than-inf", [*CLEAN, "--older-than", "inf"], 2, "is not a number of minutes"),
    Case("cleanup-older-than-exponent", [*CLEAN, "--older-than", "1e3"], 2, "is not a number of minutes"),
    Case("cleanup-older-than-comma", [*CLEAN, "--older-than", "2,5"], 2, "--older-than"),
    Case("cleanup-older-than-decimal-is-read", [*CLEAN, "--older-than", "2.5", "--endpoint", DEAD], 3, REFUSED),
    Case("cleanup-keep-plus-is-read", [*CLEAN, "--keep", "+2", "--endpoint", DEAD], 3, REFUSED),
    Case("cleanup-unknown-flag", [*CLEAN, "--bogus"], 2, "No idea what '--bogus' is"),
    Case("cleanup-stray-argument", [*CLEAN, "--keep", "2", "3"], 2, "No idea what '3' is"),
    # -- cleanup-build: region and endpoint ---------------------------------------------------------------
    Case("cleanup-region-az", ["invoke", "cleanup-build", "--region", "us-east-1a"], 2, "is an availability zone"),
    Case("cleanup-region-junk", ["invoke", "cleanup-build", "--region", "mars"], 2, "is not an AWS region"),
    Case("cleanup-region-5000", ["invoke", "cleanup-build", "--region", LONG], 2, "is not an AWS region"),
    Case("cleanup-no-region-anywhere", ["invoke", "cleanup-build"], 2, "no region configured: pass --region",
         env=NO_REGION),
    Case("cleanup-region-from-env-bad", ["invoke", "cleanup-build"], 2, "the AWS configuration's region",
         env={"AWS_DEFAULT_REGION": "Frankfurt", "AWS_REGION": None}),
    Case("cleanup-endpoint-not-a-url", [*CLEAN, "--endpoint", "not-a-url"], 2, "--endpoint 'not-a-url'"),
    Case("cleanup-endpoint-ftp", [*CLEAN, "--endpoint", "ftp://x"], 2, "is not an http:// or https:// URL"),
    Case("cleanup-endpoint-path", [*CLEAN, "--endpoint", "http://127.0.0.1:9/ec2"], 2, "no path"),
    Case("cleanup-endpoint-query", [*CLEAN, "--endpoint", "http://127.0.0.1:9?x=1"], 2, "no path, query"),
    Case("cleanup-endpoint-port-99999", [*CLEAN, "--endpoint", "http://127.0.0.1:99999"], 2, "valid port"),
    Case("cleanup-endpoint-no-host", [*CLEAN, "--endpoint", "http://"], 2, "names no host"),
    Case("cleanup-endpoint-user", [*CLEAN, "--endpoint", "http://u:p@127.0.0.1:9"], 2, "no path, query or user"),
    Case("cleanup-endpoint-refused", [*CLEAN, "--endpoint", DEAD], 3, REFUSED),
    Case("cleanup-delete-refused", [*CLEAN, "--delete", "--endpoint", DEAD], 3, "could not reach AWS"),
    Case("cleanup-env-endpoint-refused", CLEAN, 3, REFUSED, env={"AWS_ENDPOINT_URL": DEAD}),
    # -- build-ami ----------------------------------------------------------------------------------------
    Case("build-ssh-port-abc", [*BUILD, "--ssh-port", "abc"], 2, "--ssh-port 'abc' is not a port number"),
    Case("build-ssh-port-decimal", [*BUILD, "--ssh-port", "22.5"], 2, "is not a port number"),
    Case("build-ssh-port-zero", [*BUILD, "--ssh-port", "0"], 2, "ssh port 0 is not a port number"),
    Case("build-ssh-port-70000", [*BUILD, "--ssh-port", "70000"], 2, "ssh port 70000 is not a port number"),
    Case("build-ssh-port-without-value", ["invoke", "build-ami", "--ssh-port"], 2, "'--ssh-port' needed value"),
    Case("build-ssh-cidr-half-the-internet", [*BUILD, "--ssh-cidr", "0.0.0.0/1"], 2, "is wider than /16"),
    Case("build-ssh-cidr-slash-8", [*BUILD, "--ssh-cidr", "10.0.0.0/8"], 2, "is wider than /16"),
    Case("build-ssh-cidr-slash-15", [*BUILD, "--ssh-cidr", "10.0.0.0/15"], 2, "is wider than /16"),
    Case("build-ssh-cidr-whole-internet", [*BUILD, "--ssh-cidr", "0.0.0.0/0"], 2, "the whole internet"),
    Case("build-ssh-cidr-ipv6", [*BUILD, "--ssh-cidr", "2001:db8::/64"], 2, "IPv4 networks only"),
    Case("build-ssh-cidr-junk", [*BUILD, "--ssh-cidr", "my-laptop"], 2, "not an IP address or network"),
    Case("build-ssh-cidr-host-bits", [*BUILD, "--ssh-cidr", "10.1.2.3/16"], 2, "host bits are set"),
    Case("build-ssh-cidr-one-of-two-wide", [*BUILD, "--ssh-cidr", "203.0.113.7/32,0.0.0.0/1"], 2, "0.0.0.0/1"),
    Case("build-ssh-cidr-5000", [*BUILD, "--ssh-cidr", LONG], 2, "--ssh-cidr"),
    Case("build-ssh-cidr-and-group", [*BUILD, "--ssh-cidr", "203.0.113.7/32", "--security-group-id", "sg-1"], 2,
         "give one or the other"),
    Case("build-region-az", ["invoke", "build-ami", "--region", "us-east-1a"], 2, "is an availability zone"),
    Case("build-region-uppercase", ["invoke", "build-ami", "--region", "US-EAST-1"], 2, "is not an AWS region"),
    Case("build-no-region-anywhere", ["invoke", "build-ami"], 2, "no region configured: pass --region",
         env=NO_REGION),
    Case("build-endpoint-not-a-url", [*BUILD, "--endpoint", "not-a-url"], 2, "--endpoint"),
    Case("build-endpoint-ftp", [*BUILD, "--endpoint", "ftp://x"], 2, "http:// or https://"),
    Case("build-endpoint-path", [*BUILD, "--endpoint", "http://127.0.0.1:9/a/b"], 2, "no path"),
    Case("build-instance-type-junk", [*BUILD, "--instance-type", "large"], 2, "is not like t3.small"),
    Case("build-ssh-interface-junk", [*BUILD, "--ssh-interface", "ssm"], 2, "--ssh-interface 'ssm'"),
    Case("build-keypair-without-key", [*BUILD, "--ssh-keypair-name", "k"], 2, "give both"),
    Case("build-missing-private-key", [*BUILD, "--ssh-keypair-name", "k", "--ssh-private-key-file",
                                       "{tmp}/nokey"], 2, "does not exist"),
    Case("build-aws-cli-version-junk", [*BUILD, "--aws-cli-version", "latest"], 2, "--aws-cli-version"),
    Case("build-ami-prefix-junk", [*BUILD, "--ami-name-prefix", "a;b"], 2, "AMI name prefix"),
    Case("build-unknown-flag", [*BUILD, "--bogus"], 2, "No idea what '--bogus' is"),
    Case("build-preflight-refused", BUILD_LOCAL, 3, REFUSED),
    Case("build-help-short", ["invoke", "build-ami", "-h"], 0, one_line=False, stdout_has="--ssh-host=STRING"),
    Case("build-help-closed-stdout", ["invoke", "build-ami", "--help"], (0, -13, 141), one_line=False,
         stdout="closed"),
    # -- launch-node --------------------------------------------------------------------------------------
    Case("launch-no-key-name", ["invoke", "launch-node", *R], 2, "give --key-name"),
    Case("launch-wait-timeout-abc", [*LAUNCH, "--wait-timeout", "abc"], 2, "--wait-timeout 'abc'"),
    Case("launch-wait-timeout-zero", [*LAUNCH, "--wait-timeout", "0"], 2, "give seconds above 0"),
    Case("launch-wait-timeout-negative", [*LAUNCH, "--wait-timeout", "-3"], 2, "give seconds above 0"),
    Case("launch-wait-timeout-a-year", [*LAUNCH, "--wait-timeout", "31536000"], 2, "at most 86400"),
    Case("launch-wait-timeout-without-value", [*LAUNCH, "--wait-timeout"], 2, "'--wait-timeout' needed value"),
    Case("launch-wait-timeout-decimal-is-read", [*LAUNCH_LOCAL, "--wait-timeout", "1.5"], 3, REFUSED),
    Case("launch-ssh-port-abc", [*LAUNCH, "--ssh-port", "abc"], 2, "--ssh-port 'abc'"),
    Case("launch-ssh-port-negative", [*LAUNCH, "--ssh-port", "-1"], 2, "ssh port -1 is not a port number"),
    Case("launch-ssh-cidr-half-the-internet", [*LAUNCH, "--ssh-cidr", "0.0.0.0/1"], 2, "is wider than /16"),
    Case("launch-ssh-cidr-whole-internet", [*LAUNCH, "--ssh-cidr", "0.0.0.0/0"], 2, "the whole internet"),
    Case("launch-operator-cidr-env-too-wide", LAUNCH, 2, "DCP_OPERATOR_CIDR 128.0.0.0/1 is wider than /16",
         env={"DCP_OPERATOR_CIDR": "128.0.0.0/1"}),
    Case("launch-ami-junk", [*LAUNCH, "--ami", "my-image"], 2, "is not an AMI id"),
    Case("launch-name-with-space", [*LAUNCH, "--name", "my node"], 2, "--name 'my node'"),
    Case("launch-key-name-junk", ["invoke", "launch-node", *R, "--key-name", "k;rm -rf"], 2,
         "characters EC2 does not allow"),
    Case("launch-instance-type-junk", [*LAUNCH, "--instance-type", "big"], 2, "is not like t3.small"),
    Case("launch-region-az", ["invoke", "launch-node", "--key-name", "k", "--region", "eu-west-2b"], 2,
         "is an availability zone"),
    Case("launch-no-region-anywhere", ["invoke", "launch-node", "--key-name", "k"], 2,
         "no region configured: pass --region", env=NO_REGION),
    Case("launch-endpoint-ftp", [*LAUNCH, "--endpoint", "ftp://127.0.0.1"], 2, "http:// or https://"),
    Case("launch-local-endpoint-needs-ssh-host", [*LAUNCH, "--endpoint", DEAD], 2, "give --ssh-host 127.0.0.1"),
    Case("launch-remote-endpoint-needs-ssh-cidr", [*LAUNCH, "--endpoint", "https://ec2.example.invalid"], 2,
         "give --ssh-cidr"),
    Case("launch-refused", LAUNCH_LOCAL, 3, REFUSED),
    Case("launch-dry-run-refused", [*LAUNCH_LOCAL, "--dry-run"], 3, REFUSED),
    Case("launch-help-long", ["invoke", "launch-node", "--help"], 0, one_line=False, stdout_has="--wait-timeout"),
    # -- list-nodes, stop-node, terminate-node ------------------------------------------------------------
    Case("list-region-az", ["invoke", "list-nodes", "--region", "us-east-1a"], 2, "is an availability zone"),
    Case("list-no-region-anywhere", ["invoke", "list-nodes"], 2, "no region configured", env=NO_REGION),
    Case("list-endpoint-junk", [*LIST, "--endpoint", "127.0.0.1:9"], 2, "--endpoint"),
    Case("list-refused", [*LIST, "--endpoint", DEAD], 3, REFUSED),
    Case("list-refused-closed-stdout", [*LIST, "--endpoint", DEAD], 3, REFUSED, stdout="closed"),
    Case("list-bogus-flag", [*LIST, "--all"], 2, "No idea what '--all' is"),
    Case("list-region-without-value", ["invoke", "list-nodes", "--region"], 2, "'--region' needed value"),
    Case("stop-no-name", ["invoke", "stop-node", *R], 2, "did not receive required positional arguments"),
    Case("stop-empty-name", ["invoke", "stop-node", "", *R], 2, "needs a node name or instance id"),
    Case("stop-help-is-help", ["invoke", "stop-node", "--help"], 0, one_line=False, stdout_has="--node-name"),
    Case("stop-short-help-is-help", ["invoke", "stop-node", "-h"], 0, one_line=False, stdout_has="--node-name"),
    Case("stop-refused", [*STOP, "--endpoint", DEAD], 3, REFUSED),
    Case("stop-endpoint-path", [*STOP, "--endpoint", "http://127.0.0.1:9/x"], 2, "no path"),
    Case("terminate-refused", [*TERMINATE, "--endpoint", DEAD], 3, REFUSED),
    Case("terminate-region-junk", ["invoke", "terminate-node", "n", "--region", "../../etc"], 2,
         "is not an AWS region"),
    Case("terminate-help-is-help", ["invoke", "terminate-node", "-h"], 0, one_line=False, stdout_has="Usage"),
    # -- bootstrap, validate, invoke itself ---------------------------------------------------------------
    Case("bootstrap-connect-timeout-abc", ["invoke", "bootstrap", "h", "--connect-timeout", "abc"], 2,
         "--connect-timeout 'abc'"),
    Case("bootstrap-connect-timeout-zero", ["invoke", "bootstrap", "h", "--connect-timeout", "0"], 2,
         "give more than 0 seconds"),
    Case("bootstrap-connect-timeout-negative", ["invoke", "bootstrap", "h", "--connect-timeout", "-2.5"], 2,
         "give more than 0 seconds"),
    Case("bootstrap-no-hosts", ["invoke", "bootstrap"], 2, "did not receive required positional arguments"),
    Case("bootstrap-help-is-help", ["invoke", "bootstrap", "--help"], 0, one_line=False,
         stdout_has="--connect-timeout"),
    Case("bootstrap-short-help-is-help", ["invoke", "bootstrap", "-h"], 0, one_line=False, stdout_has="Usage"),
    Case("validate-bogus-flag", ["invoke", "validate", "--fast"], 2, "No idea what '--fast' is"),
    Case("invoke-unknown-task", ["invoke", "build-amis"], 2, "No idea what 'build-amis' is"),
]
