"""``python -m bootstrap``'s rows of the edge-case table: bad or awkward inputs, each with what the user must get.

Rows either fail before connecting anywhere (exit 2, one line on stderr) or connect only to port 9 (discard)
on 127.0.0.1 or ::1, which refuses here (exit 1, a result line per host on stdout). A row that gets as far as
connecting names ``--log-dir`` and ``--known-hosts`` under ``{tmp}``, so the work tree and HOME stay as they were.
As root, a mode of 000 does not stop a read, so unreadable files are stood in for by devices and directories.
"""

from __future__ import annotations

from tests.edges.harness import Case

BOOT = ["python", "-m", "bootstrap"]
DEAD = "127.0.0.1:9"                                   # the discard port: refused at once, on loopback
QUIET = ["--log-dir", "{tmp}/logs", "--known-hosts", "{tmp}/known_hosts"]
LONG = "x" * 5000
KEY = b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
ALIAS_HOME: dict[str, str | None] = {"HOME": "{tmp}/home"}
REFUSED = "connection refused"

CASES = [
    # -- host strings (bootstrap/hosts.py) ---------------------------------------------------------------------
    Case("bootstrap-port-not-a-number", [*BOOT, "127.0.0.1:notaport"], 2, "not a number"),
    Case("bootstrap-port-zero", [*BOOT, "127.0.0.1:0"], 2, "port '0' is not a number"),
    Case("bootstrap-port-70000", [*BOOT, "127.0.0.1:70000"], 2, "port '70000' is not a number"),
    Case("bootstrap-port-negative", [*BOOT, "127.0.0.1:-22"], 2, "not a number"),
    Case("bootstrap-port-empty", [*BOOT, "127.0.0.1:"], 2, "no port after ':'"),
    Case("bootstrap-port-arabic-digits", [*BOOT, "127.0.0.1:٢٢"], 2, "not a number"),
    Case("bootstrap-port-huge-digits", [*BOOT, "127.0.0.1:" + "9" * 400], 2, "not a number"),
    Case("bootstrap-user-without-host", [*BOOT, "root@"], 2, "no host after '@'"),
    Case("bootstrap-host-without-user", [*BOOT, "@127.0.0.1"], 2, "no user before '@'"),
    Case("bootstrap-empty-host", [*BOOT, ""], 2, "empty host"),
    Case("bootstrap-unbalanced-bracket", [*BOOT, "[::1"], 2, "unbalanced '['"),
    Case("bootstrap-unbalanced-close", [*BOOT, "::1]:22"], 2, "unbalanced ']'"),
    Case("bootstrap-junk-after-bracket", [*BOOT, "[::1]22"], 2, "after ']'"),
    Case("bootstrap-bracket-not-ipv6", [*BOOT, "[1:2]:22"], 2, "not an ipv6 address"),
    Case("bootstrap-colons-not-ipv6", [*BOOT, "a:b:c"], 2, "not an ipv6 address"),
    Case("bootstrap-host-with-space", [*BOOT, "host name"], 2, "whitespace"),
    Case("bootstrap-host-with-tab", [*BOOT, "host\tname"], 2, "whitespace"),
    Case("bootstrap-host-with-newline", [*BOOT, "host\nname:22"], 2, "whitespace"),
    Case("bootstrap-host-with-escape", [*BOOT, "host\x1b[31mred"], 2, "control character"),
    Case("bootstrap-host-5000", [*BOOT, LONG], 2, "too long"),
    Case("bootstrap-host-300", [*BOOT, "h" * 300 + ":22"], 2, "too long"),
    Case("bootstrap-host-semicolon", [*BOOT, "host;id"], 2, "contains ';'"),
    Case("bootstrap-host-command-substitution", [*BOOT, "$(id)"], 2, "contains"),
    Case("bootstrap-host-backticks", [*BOOT, "`id`:22"], 2, "contains"),
    Case("bootstrap-host-leading-dash", [*BOOT, "--", "-oProxyCommand=id"], 2, "starts with '-'"),
    Case("bootstrap-user-with-metacharacter", [*BOOT, "ro|ot@127.0.0.1"], 2, "user name"),
    Case("bootstrap-same-host-twice", [*BOOT, DEAD, DEAD], 2, "named twice"),
    Case("bootstrap-same-host-two-spellings", [*BOOT, DEAD, "[127.0.0.1]:9"], 2, "are the same host"),
    Case("bootstrap-no-host", [*BOOT], 2, "required: HOST"),
    Case("bootstrap-unknown-flag", [*BOOT, DEAD, "--bogus"], 2, "unrecognized arguments"),
    # -- numbers ---------------------------------------------------------------------------------------------
    Case("bootstrap-parallel-abc", [*BOOT, DEAD, "--parallel", "abc"], 2, "not a whole number"),
    Case("bootstrap-parallel-zero", [*BOOT, DEAD, "--parallel", "0"], 2, "not a whole number"),
    Case("bootstrap-parallel-negative", [*BOOT, DEAD, "--parallel", "-1"], 2, "not a whole number"),
    Case("bootstrap-parallel-fraction", [*BOOT, DEAD, "--parallel", "2.5"], 2, "not a whole number"),
    Case("bootstrap-parallel-huge", [*BOOT, DEAD, "--parallel", "100000"], 2, "from 1 to 256"),
    Case("bootstrap-timeout-abc", [*BOOT, DEAD, "--connect-timeout", "abc"], 2, "not a number of seconds"),
    Case("bootstrap-timeout-nan", [*BOOT, DEAD, "--connect-timeout", "nan"], 2, "not a number of seconds"),
    Case("bootstrap-timeout-inf", [*BOOT, DEAD, "--connect-timeout", "inf"], 2, "not a number of seconds"),
    Case("bootstrap-timeout-overflow", [*BOOT, DEAD, "--connect-timeout", "1e309"], 2, "not a number of seconds"),
    Case("bootstrap-timeout-negative", [*BOOT, DEAD, "--connect-timeout", "-1"], 2, "not a number of seconds"),
    Case("bootstrap-timeout-zero", [*BOOT, DEAD, "--connect-timeout", "0"], 2, "not a number of seconds"),
    Case("bootstrap-timeout-without-value", [*BOOT, DEAD, "--connect-timeout"], 2, "expected one argument"),
    # -- files and directories given on the command line -------------------------------------------------------
    Case("bootstrap-log-dir-is-a-file", [*BOOT, DEAD, "--log-dir", "{tmp}/f"], 2, "is a file",
         files={"f": b"x"}),
    Case("bootstrap-log-dir-under-a-file", [*BOOT, DEAD, "--log-dir", "{tmp}/f/logs"], 2, "not a directory",
         files={"f": b"x"}),
    Case("bootstrap-log-dir-unwritable", [*BOOT, DEAD, "--log-dir", "/proc/dcp-no-such/logs"], 2,
         "not a writable directory"),
    Case("bootstrap-log-dir-empty", [*BOOT, DEAD, "--log-dir", ""], 2, "--log-dir is empty"),
    Case("bootstrap-key-path-5000", [*BOOT, DEAD, "-i", "/tmp/" + LONG], 2, "file name too long"),
    Case("bootstrap-log-dir-path-5000", [*BOOT, DEAD, "--log-dir", "/tmp/" + LONG], 2, "file name too long"),
    Case("bootstrap-known-hosts-path-5000", [*BOOT, DEAD, "--known-hosts", "/tmp/" + LONG], 2,
         "file name too long"),
    Case("bootstrap-key-missing", [*BOOT, DEAD, "-i", "{tmp}/no-key"], 2, "does not exist"),
    Case("bootstrap-key-is-a-directory", [*BOOT, DEAD, "-i", "{tmp}/d"], 2, "is a directory",
         files={"d": None}),
    Case("bootstrap-key-is-a-device", [*BOOT, DEAD, "-i", "/dev/zero"], 2, "not a regular file"),
    Case("bootstrap-key-is-the-public-half", [*BOOT, DEAD, "-i", "{tmp}/id.pub"], 2, "public key",
         files={"id.pub": b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG me@here\n"}),
    Case("bootstrap-key-not-a-key", [*BOOT, DEAD, "-i", "{tmp}/k"], 2, "not an ssh private key",
         files={"k": b"hello\n"}),
    Case("bootstrap-key-empty", [*BOOT, DEAD, "-i", "{tmp}/k"], 2, "not an ssh private key", files={"k": b""}),
    Case("bootstrap-key-binary", [*BOOT, DEAD, "-i", "{tmp}/k"], 2, "not an ssh private key",
         files={"k": bytes(range(256)) * 16}),
    Case("bootstrap-known-hosts-is-a-directory", [*BOOT, DEAD, "--known-hosts", "{tmp}/d"], 2, "is a directory",
         files={"d": None}),
    Case("bootstrap-known-hosts-is-a-device", [*BOOT, DEAD, "--known-hosts", "/dev/zero"], 2,
         "not a regular file"),
    Case("bootstrap-known-hosts-under-a-file", [*BOOT, DEAD, "--known-hosts", "{tmp}/f/known_hosts",
                                                "--accept-new-host-keys"], 2, "not a directory",
         files={"f": b"x"}),
    Case("bootstrap-known-hosts-empty", [*BOOT, DEAD, "--known-hosts", ""], 2, "--known-hosts is empty"),
    # -- other options ---------------------------------------------------------------------------------------------
    Case("bootstrap-aws-cli-v1", [*BOOT, DEAD, "--aws-cli-version", "1.2.3"], 2, "not an aws cli v2 version"),
    Case("bootstrap-aws-cli-arabic-digits", [*BOOT, DEAD, "--aws-cli-version", "2.٣.٤"], 2,
         "not an aws cli v2 version"),
    Case("bootstrap-ref-empty", [*BOOT, DEAD, "--ref", ""], 2, "--ref is empty"),
    Case("bootstrap-ref-looks-like-an-option", [*BOOT, DEAD, "--ref=--orphan=x"], 2, "starts with '-'"),
    Case("bootstrap-repo-url-looks-like-an-option", [*BOOT, DEAD, "--repo-url=--upload-pack=touch /tmp/x"], 2,
         "starts with '-'"),
    Case("bootstrap-repo-url-with-newline", [*BOOT, DEAD, "--repo-url", "git://127.0.0.1/a\nb"], 2, "whitespace"),
    Case("bootstrap-repo-url-with-quote", [*BOOT, DEAD, "--repo-url", 'git://127.0.0.1/a"b'], 2, "quote"),
    # -- stdout encodings that cannot show '–' or '…' -----------------------------------------------------------
    Case("bootstrap-ascii-stdout-usage-error", [*BOOT, "127.0.0.1:0"], 2, "not a number",
         env={"PYTHONIOENCODING": "ascii"}),
    Case("bootstrap-c-locale-usage-error", [*BOOT, "höst:x"], 2, "not a number",
         env={"LANG": "C", "LC_ALL": "C", "PYTHONIOENCODING": None}),
    Case("bootstrap-ascii-stdout-refused", [*BOOT, DEAD, *QUIET], 1, one_line=False, stdout_has=REFUSED,
         env={"PYTHONIOENCODING": "ascii"}),
    # -- connects, only to refusing loopback ports ----------------------------------------------------------------
    Case("bootstrap-refused", [*BOOT, DEAD, *QUIET], 1, one_line=False, stdout_has=f"{DEAD}: {REFUSED}"),
    Case("bootstrap-refused-fractional-timeout", [*BOOT, DEAD, "--connect-timeout", "2.5", *QUIET], 1,
         one_line=False, stdout_has=REFUSED),
    Case("bootstrap-refused-ipv6-literal", [*BOOT, "root@[::1]:9", *QUIET], 1, one_line=False,
         stdout_has="cannot connect to [::1]:9"),
    Case("bootstrap-refused-with-garbage-known-hosts", [*BOOT, DEAD, "--log-dir", "{tmp}/logs",
                                                        "--known-hosts", "{tmp}/kh"], 1, one_line=False,
         stdout_has=REFUSED, files={"kh": b"garbage\n\xff\xfe\n127.0.0.1 ssh-ed25519 !!!notbase64\n"}),
    Case("bootstrap-refused-known-hosts-devnull", [*BOOT, DEAD, "--log-dir", "{tmp}/logs",
                                                   "--known-hosts", "/dev/null"], 1, one_line=False,
         stdout_has=REFUSED),
    Case("bootstrap-refused-key-given", [*BOOT, DEAD, "-i", "{tmp}/id", *QUIET], 1, one_line=False,
         stdout_has=REFUSED, files={"id": KEY}),
    Case("bootstrap-ssh-config-alias", [*BOOT, "dcp-alias", *QUIET], 1, one_line=False,
         stdout_has=f"cannot connect to {DEAD}: {REFUSED}", env=ALIAS_HOME,
         files={"home/.ssh/config": b"Host dcp-alias\n    HostName 127.0.0.1\n    Port 9\n    User root\n"}),
    Case("bootstrap-home-unset", [*BOOT, DEAD, "--log-dir", "{tmp}/logs"], 1, one_line=False,
         stdout_has=REFUSED, env={"HOME": None}),
    Case("bootstrap-fifty-refused-hosts", [*BOOT, *(f"127.0.0.{i}:9" for i in range(1, 51)), "--parallel", "50",
                                           *QUIET], 1, one_line=False, stdout_has="127.0.0.50:9: failed"),
    Case("bootstrap-stdout-closed", [*BOOT, DEAD, *QUIET], (0, 1), one_line=False, stdout="closed"),
    Case("bootstrap-verbose-refused", [*BOOT, "-v", DEAD, *QUIET], 1, one_line=False, stdout_has=REFUSED),
]
