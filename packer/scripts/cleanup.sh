#!/bin/bash
# Leave nothing in the image that belongs to the build: keys, history, credentials, cloud-init state, temp files.
set -euo pipefail
rm -rf /var/tmp/dcp-stage
rm -f /etc/ssh/ssh_host_*
for home in /root /home/*; do
  [ -d "$home" ] || continue
  rm -f "$home/.ssh/authorized_keys" "$home"/.*_history "$home/.lesshst" "$home/.viminfo"
  rm -rf "$home/.aws" "$home/.cache/pip" "$home/.cache/dcp-agent"
done
if command -v cloud-init >/dev/null 2>&1; then cloud-init clean --logs --seed >/dev/null 2>&1 || true; fi
rm -rf /var/lib/cloud/instances /var/lib/cloud/instance
if command -v apt-get >/dev/null 2>&1; then apt-get clean; fi
# Packer's own uploaded scripts (script_*.sh) are still running; it removes them itself.
find /tmp /var/tmp -mindepth 1 -maxdepth 1 ! -name 'script_*.sh' -exec rm -rf {} +
truncate -s 0 /etc/machine-id 2>/dev/null || true
echo "cleanup: done"
