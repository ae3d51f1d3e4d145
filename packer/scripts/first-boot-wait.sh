#!/bin/bash
# Runs before the recipe: lets the instance's first boot finish, so the recipe never races cloud-init or
# apt's first-boot timers (apt-daily, apt-daily-upgrade, unattended-upgrades) for the dpkg lock.
# Hosts without cloud-init or systemd (the test sandboxes) pass straight through.
set -u
start=$(date +%s)
if command -v cloud-init >/dev/null 2>&1; then
  if ! timeout 900 cloud-init status --wait >/dev/null 2>&1; then
    echo "first-boot-wait: cloud-init did not finish cleanly: $(cloud-init status 2>&1 | tail -1)"
  fi
fi
if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1; then
  # A transient unit ordered after both apt units starts only once they have finished, if they run now.
  timeout 900 systemd-run --quiet --wait --property=After=apt-daily.service \
    --property=After=apt-daily-upgrade.service /bin/true 2>/dev/null || true
  # Not again during this build (the image keeps the timers enabled).
  systemctl stop apt-daily.timer apt-daily-upgrade.timer 2>/dev/null || true
fi
# Anything else still holding dpkg's locks (unattended-upgrades): wait for it, up to 15 minutes.
if command -v fuser >/dev/null 2>&1; then
  for _ in $(seq 1 180); do
    fuser /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock >/dev/null 2>&1 || break
    sleep 5
  done
fi
echo "first-boot-wait: first boot finished after $(( $(date +%s) - start )) s"
