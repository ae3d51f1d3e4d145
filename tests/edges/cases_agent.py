"""``dcp-agent``'s rows of the edge-case table: bad or awkward inputs, each with what the user must get.

Rows run against the shared healthy account (tests/edges/test_inputs.py); a row that sets HOME to
``{tmp}/home`` works on a home of its own. As root, a mode of 000 does not stop a read, so unreadable
files are stood in for by what root cannot read either: devices, FIFOs, directories, dangling names.
"""

from __future__ import annotations

from tests.edges.harness import Case

LONG = "x" * 5000
MINIMAL = b"APP_NAME = 'Run1'\nAWS_REGION = 'us-east-1'\nMACHINE_TYPE = ['m5.xlarge']\n"


def _cfg(**values: str) -> bytes:
    return "".join(f"{k} = {v!r}\n" for k, v in {"APP_NAME": "Run1", "AWS_REGION": "us-east-1", **values}.items()).encode()


CHECK = ["dcp-agent", "check"]
FLEET = ["dcp-agent", "fleet"]
FIX = ["dcp-agent", "fix"]
OWN_HOME: dict[str, str | None] = {"HOME": "{tmp}/home", "XDG_CONFIG_HOME": "{tmp}/home/.config", "XDG_CACHE_HOME": "{tmp}/home/.cache"}

CASES = [
    # -- the command line ---------------------------------------------------------------------------------
    Case("agent-no-command", ["dcp-agent"], 2, "say what to do"),
    Case("agent-unknown-command", ["dcp-agent", "frobnicate"], 2, "invalid choice"),
    Case("agent-unknown-flag", [*CHECK, "--bogus"], 2, "unrecognized arguments"),
    Case("agent-list-bogus", ["dcp-agent", "list", "--bogus"], 2, "unrecognized"),
    Case("agent-policy-bogus", ["dcp-agent", "policy", "--bogus"], 2, "unrecognized"),
    Case("agent-only-without-value", [*CHECK, "--only"], 2, "expected at least one argument"),
    Case("agent-only-unknown", [*CHECK, "--only", "Z99"], 2, "unknown check 'Z99'"),
    Case("agent-only-5000", [*CHECK, "--only", LONG], 2, "unknown check"),
    Case("agent-only-unicode", [*CHECK, "--only", "Ünïcødé✓"], 2, "unknown check"),
    Case("agent-only-dotdot", [*CHECK, "--only", "../../etc/passwd"], 2, "unknown check"),
    Case("agent-only-and-skip-same", [*CHECK, "--only", "K01", "--skip", "K01"], 2, "runs no check"),
    Case("agent-skip-everything", [*CHECK, "--only", "R04", "--skip", "R", "I", "C"], 2, "runs no check"),
    Case("agent-fleet-bad-family", [*FLEET, "--ami-family", "al3"], 2, "invalid choice"),
    Case("agent-fix-yes-without-apply", [*FIX, "--yes"], 2, "--yes only goes with --apply"),
    # -- files given on the command line --------------------------------------------------------------------
    Case("agent-config-missing", [*CHECK, "--config", "/nonexistent/config.py"], 2, "does not exist"),
    Case("agent-config-directory", [*CHECK, "--config", "{tmp}"], 2, "is a directory"),
    Case("agent-config-device", [*CHECK, "--config", "/dev/null"], 2, "not a regular file"),
    Case("agent-config-dangling", [*CHECK, "--config", "{tmp}/gone/config.py"], 2, "does not exist"),
    Case("agent-config-5000", [*CHECK, "--config", "/tmp/" + LONG], 2, "file name too long"),
    Case("agent-config-under-a-file", [*CHECK, "--config", "{tmp}/f/config.py"], 2, "does not exist",
         files={"f": b"x"}),
    Case("agent-config-not-utf8", [*CHECK, "--config", "{tmp}/c.py"], 1, one_line=False,
         files={"c.py": b"APP_NAME = '\xff\xfe'\n"}, stdout_has="not UTF-8"),
    Case("agent-config-syntax", [*CHECK, "--config", "{tmp}/c.py"], 1, one_line=False,
         files={"c.py": b"APP_NAME = (\n"}),
    Case("agent-config-huge", [*CHECK, "--only", "K01", "--config", "{tmp}/c.py"], (0, 1), one_line=False,
         files={"c.py": MINIMAL + b"# padding\n" * 300_000}, max_seconds=30),
    Case("agent-config-binary", [*CHECK, "--only", "K01", "--config", "{tmp}/c.py"], 1, one_line=False,
         files={"c.py": bytes(range(256)) * 64}),
    Case("agent-fleet-missing", [*CHECK, "--fleet", "/nonexistent/fleet.json"], 2, "does not exist"),
    Case("agent-fleet-directory", [*CHECK, "--fleet", "{tmp}"], 2, "is a directory"),
    Case("agent-fleet-device", [*CHECK, "--fleet", "/dev/zero"], 2, "not a regular file"),
    Case("agent-fleet-broken-json", [*CHECK, "--only", "F01", "--fleet", "{tmp}/f.json"], 1, one_line=False,
         files={"f.json": b"{\"LaunchSpecifications\": [\n"}),
    Case("agent-fleet-json-list", [*CHECK, "--only", "F01", "--fleet", "{tmp}/f.json"], 1, one_line=False,
         files={"f.json": b"[1, 2, 3]\n"}),
    Case("agent-fleet-not-utf8", [*CHECK, "--only", "F01", "--fleet", "{tmp}/f.json"], 1, one_line=False,
         files={"f.json": b"\xff\xfe{}"}),
    Case("agent-job-missing", [*CHECK, "--job", "{tmp}/job.json"], 2, "does not exist"),
    Case("agent-job-device", [*CHECK, "--job", "/dev/zero"], 2, "not a regular file"),
    Case("agent-job-directory", [*CHECK, "--job", "{tmp}"], 2, "is a directory"),
    Case("agent-settings-missing", [*CHECK, "--settings", "{tmp}/none.toml"], 2, "does not exist"),
    Case("agent-settings-directory", [*CHECK, "--settings", "{tmp}"], 2, "is a directory"),
    Case("agent-settings-device", [*CHECK, "--settings", "/dev/null"], 2, "not a regular file"),
    # -- the settings file ----------------------------------------------------------------------------------
    Case("agent-settings-broken-toml", [*CHECK, "--settings", "{tmp}/s.toml"], 2, "not valid TOML",
         files={"s.toml": b"dcp_clone = [unclosed\n"}),
    Case("agent-settings-not-utf8", [*CHECK, "--settings", "{tmp}/s.toml"], 2, "not UTF-8",
         files={"s.toml": b"python = \"\xff\"\n"}),
    Case("agent-settings-unknown-key", [*CHECK, "--settings", "{tmp}/s.toml"], 2, "unknown setting",
         files={"s.toml": b"fleeet = \"x\"\n"}),
    Case("agent-settings-tiny-budget", [*CHECK, "--settings", "{tmp}/s.toml"], 2, "from 1 to 3600",
         files={"s.toml": b"budget = 0.01\n"}),
    Case("agent-settings-zero-timeout", [*CHECK, "--settings", "{tmp}/s.toml"], 2, "from 1 to 3600",
         files={"s.toml": b"check_timeout = 0\n"}),
    Case("agent-settings-string-timeout", [*CHECK, "--settings", "{tmp}/s.toml"], 2, "number of seconds",
         files={"s.toml": b"check_timeout = \"ten\"\n"}),
    Case("agent-settings-huge-budget", [*CHECK, "--settings", "{tmp}/s.toml"], 2, "from 1 to 3600",
         files={"s.toml": b"budget = 1e308\n"}),
    Case("agent-settings-bool-budget", [*CHECK, "--settings", "{tmp}/s.toml"], 2, "number of seconds",
         files={"s.toml": b"budget = true\n"}),
    Case("agent-settings-empty-clone", [*CHECK, "--settings", "{tmp}/s.toml"], 2, "non-empty path",
         files={"s.toml": b"dcp_clone = \"\"\n"}),
    Case("agent-settings-enable-unknown", [*CHECK, "--settings", "{tmp}/s.toml"], 2, "unknown check",
         files={"s.toml": b"enable = [\"Z99\"]\n"}),
    Case("agent-settings-enable-string", [*CHECK, "--settings", "{tmp}/s.toml"], 2, "list of check ids",
         files={"s.toml": b"enable = \"N10\"\n"}),
    Case("agent-settings-suppress-empty", [*CHECK, "--settings", "{tmp}/s.toml"], 2, "id = \"reason\"",
         files={"s.toml": b"[suppress]\nK01 = \"\"\n"}),
    Case("agent-settings-login-negative", [*CHECK, "--settings", "{tmp}/s.toml"], 2, "positive whole number",
         files={"s.toml": b"[login]\nttl = -1\n"}),
    Case("agent-user-settings-directory", CHECK, 2, "not a regular file",
         env=OWN_HOME, files={"home/.config/dcp-agent/config.toml": None}),
    # -- fleet's output -------------------------------------------------------------------------------------
    Case("agent-fleet-out-devnull", [*FLEET, "--out", "/dev/null", "--force"], 2, "not a regular file"),
    Case("agent-fleet-out-symlink", [*FLEET, "--out", "{tmp}/link.json", "--force"], 2, "symbolic link",
         files={"target.json": b"{}\n"}, links={"link.json": "{tmp}/target.json"}),
    Case("agent-fleet-out-directory", [*FLEET, "--out", "{tmp}"], 2, "is a directory"),
    Case("agent-fleet-out-under-missing", [*FLEET, "--out", "{tmp}/no/such/dir/f.json"], 2, "not a directory"),
    Case("agent-fleet-out-under-file", [*FLEET, "--out", "{tmp}/file/f.json"], 2, "not a directory",
         files={"file": b"x"}),
    Case("agent-fleet-app-name-traversal", [*FLEET, "--config", "{tmp}/c.py"], 2, "APP_NAME",
         files={"c.py": _cfg(APP_NAME="../../../tmp/x")}),
    Case("agent-fleet-app-name-slash", [*FLEET, "--config", "{tmp}/c.py"], 2, "only letters, digits",
         files={"c.py": _cfg(APP_NAME="a/b")}),
    Case("agent-fleet-app-name-unicode", [*FLEET, "--config", "{tmp}/c.py"], 2, "only letters, digits",
         files={"c.py": _cfg(APP_NAME="Zellmalerei✓")}),
    Case("agent-fleet-app-name-5000", [*FLEET, "--config", "{tmp}/c.py"], 2, "APP_NAME",
         files={"c.py": _cfg(APP_NAME="A" * 5000)}),
    Case("agent-fleet-zone-region", [*FLEET, "--config", "{tmp}/c.py"], 2, "availability zone",
         files={"c.py": _cfg(AWS_REGION="us-east-1a")}),
    Case("agent-fleet-empty-region", [*FLEET, "--config", "{tmp}/c.py"], 2, "AWS_REGION is not set",
         files={"c.py": _cfg(AWS_REGION="")}),
    Case("agent-fleet-junk-region", [*FLEET, "--config", "{tmp}/c.py"], 2, "not an AWS region",
         files={"c.py": _cfg(AWS_REGION="mars-north-9x")}),
    Case("agent-fleet-config-missing", [*FLEET, "--config", "{tmp}/none.py"], 2, "does not exist"),
    # -- fix's operator network ----------------------------------------------------------------------------
    Case("agent-fix-cidr-half-internet", [*FIX, "--ssh-cidr", "0.0.0.0/1"], 2, "wider than /16"),
    Case("agent-fix-cidr-internet", [*FIX, "--ssh-cidr", "0.0.0.0/0"], 2, "the whole internet"),
    Case("agent-fix-cidr-slash8", [*FIX, "--ssh-cidr", "10.0.0.0/8"], 2, "wider than /16"),
    Case("agent-fix-cidr-v6-internet", [*FIX, "--ssh-cidr", "::/0"], 2, "wider than /48"),
    Case("agent-fix-cidr-host-bits", [*FIX, "--ssh-cidr", "203.0.113.7/24"], 2, "host bits"),
    Case("agent-fix-cidr-junk", [*FIX, "--ssh-cidr", "not-an-address"], 2, "not an IP address"),
    Case("agent-fix-cidr-5000", [*FIX, "--ssh-cidr", LONG], 2, "not an IP address"),
    Case("agent-fix-cidr-empty", [*FIX, "--ssh-cidr", " "], 2, "is empty"),
    Case("agent-fix-settings-cidr-broad", [*FIX, "--settings", "{tmp}/s.toml"], 2, "wider than /16",
         files={"s.toml": b"ssh_cidr = \"0.0.0.0/1\"\n"}),
    Case("agent-fix-apply-no-terminal", [*FIX, "--apply"], (0, 2), one_line=False),
    Case("agent-fix-config-directory", [*FIX, "--config", "{tmp}"], 2, "is a directory"),
    # -- the environment -----------------------------------------------------------------------------------
    Case("agent-endpoint-not-a-url", CHECK, 2, "AWS_ENDPOINT_URL", env={"AWS_ENDPOINT_URL": "not-a-url"}),
    Case("agent-endpoint-ftp", CHECK, 2, "http:// or https:// URL", env={"AWS_ENDPOINT_URL": "ftp://127.0.0.1:21"}),
    Case("agent-endpoint-bad-port", [*FIX], 2, "not a URL", env={"AWS_ENDPOINT_URL": "http://127.0.0.1:port"}),
    Case("agent-endpoint-service-junk", FLEET, 2, "AWS_ENDPOINT_URL_EC2",
         env={"AWS_ENDPOINT_URL_EC2": "http://[::1"}),
    Case("agent-ascii-stdout", CHECK, (0, 1), one_line=False, env={"PYTHONIOENCODING": "ascii"}),
    Case("agent-latin1-stdout", ["dcp-agent", "list"], 0, one_line=False, env={"PYTHONIOENCODING": "latin-1"}),
    Case("agent-c-locale", CHECK, (0, 1), one_line=False, env={"LANG": "C", "LC_ALL": "C"}),
    Case("agent-no-home", ["dcp-agent", "list"], 0, one_line=False, env={"HOME": None}),
    Case("agent-empty-home-check", CHECK, (1, 3), one_line=False, env=OWN_HOME, max_seconds=40),
    Case("agent-closed-stdout-check", CHECK, 0, one_line=False, stdout="closed"),
    Case("agent-closed-stdout-json", [*CHECK, "--json"], 0, one_line=False, stdout="closed"),
    Case("agent-closed-stdout-list", ["dcp-agent", "list"], 0, one_line=False, stdout="closed"),
    Case("agent-closed-stdout-policy", ["dcp-agent", "policy"], 0, one_line=False, stdout="closed"),
    Case("agent-closed-stdout-help", ["dcp-agent", "--help"], 0, one_line=False, stdout="closed"),
    # -- the login cache -----------------------------------------------------------------------------------
    Case("agent-login-cache-invalid-bytes", ["dcp-agent", "login"], 0, one_line=False, env=OWN_HOME,
         files={"home/.cache/dcp-agent/login.txt": b"\xff\xfe broken \x80\n", "home/.cache/dcp-agent/ttl": b"zz\n"}),
    Case("agent-login-cache-is-a-file", ["dcp-agent", "login", "--refresh"], 2, "cannot write the login cache",
         env={**OWN_HOME, "XDG_CACHE_HOME": "{tmp}/cachefile"}, files={"cachefile": b"not a directory"}),
    Case("agent-login-cache-dir-is-file", ["dcp-agent", "login", "--refresh"], 2, "cannot write the login cache",
         env={**OWN_HOME}, files={"home/.cache/dcp-agent": b"a file where the directory goes"}),
    Case("agent-login-no-cache", ["dcp-agent", "login"], 0, one_line=False, env=OWN_HOME, stdout_has="no result yet"),
]
