#!/bin/bash
# Fail the build if anything is left behind, or anything the recipe should have installed is missing.
set -uo pipefail
problems=()
left() { problems+=("left behind: $1"); }
missing() { problems+=("missing: $1"); }

compgen -G '/etc/ssh/ssh_host_*' >/dev/null && left "SSH host keys"
for home in /root /home/*; do
  [ -d "$home" ] || continue
  [ -e "$home/.ssh/authorized_keys" ] && left "$home/.ssh/authorized_keys"
  compgen -G "$home/.*_history" >/dev/null && left "shell history in $home"
  [ -e "$home/.aws/credentials" ] && left "AWS credentials in $home"
done
[ -d /var/lib/cloud/instances ] && left "cloud-init instance state"
[ -e /var/tmp/dcp-stage ] && left "/var/tmp/dcp-stage"
leftover=$(find /tmp /var/tmp -mindepth 1 -maxdepth 1 ! -name 'script_*.sh' | head -3)
[ -n "$leftover" ] && left "temporary files: $leftover"
grep -rlsIE '^[[:space:]]*aws_secret_access_key[[:space:]]*=' /etc /root /home 2>/dev/null | grep -q . && left "AWS secret keys"

for tool in git tmux parallel aws dcp-agent; do command -v "$tool" >/dev/null 2>&1 || missing "$tool"; done
[ -x /opt/dcp/venv/bin/python ] || missing "/opt/dcp/venv"
/opt/dcp/venv/bin/python -c 'import boto3' 2>/dev/null || missing "boto3 in /opt/dcp/venv"
[ -s /etc/dcp-control-node/manifest.json ] || missing "the manifest"
[ -f /etc/profile.d/dcp-agent.sh ] || missing "the login hook"
[ -f /etc/dcp-agent/config.toml ] || missing "the agent settings"
clone=$(sed -n 's/^dcp_clone = "\(.*\)"$/\1/p' /etc/dcp-agent/config.toml 2>/dev/null)
[ -n "$clone" ] && [ -f "$clone/run.py" ] || missing "the Distributed-CellProfiler clone"

if [ ${#problems[@]} -gt 0 ]; then
  printf 'validate: %s\n' "${problems[@]}" >&2
  exit 1
fi
echo "validate: image is clean and complete"
