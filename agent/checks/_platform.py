"""Fixes in the control node's own words: apt-get on Debian and Ubuntu, dnf on Amazon Linux and Fedora/RHEL,
Homebrew on macOS. DCP's Step 0 allows the user's own machine as the control node, so a fix that says
``apt-get`` to a Mac user is a wrong fix. On a system the agent does not recognise, every known way is named."""

from __future__ import annotations

from agent.context import Context
from agent.facts import local

HOMEBREW = "https://brew.sh"


def for_os(ctx: Context, *, debian: str, amazon: str, macos: str, rhel: str | None = None) -> str:
    """The fix for this machine's family (see facts.local.HostOS), or all of them when it is unknown."""
    family = local.host_os(ctx).family
    chosen = {"debian": debian, "amazon": amazon, "rhel": rhel or amazon, "macos": macos}.get(family)
    if chosen is None:
        return f"Debian/Ubuntu: {debian};  Amazon Linux: {amazon};  macOS: {macos}"
    if family == "macos" and "brew " in chosen and local.which(ctx, "brew") is None:
        return f"{chosen}   (install Homebrew first: {HOMEBREW})"
    return chosen


def packages(ctx: Context, *, apt: str, dnf: str, brew: str) -> str:
    """Install packages with the platform's own package manager."""
    return for_os(ctx, debian=f"sudo apt-get install -y {apt}", amazon=f"sudo dnf install -y {dnf}",
                  macos=f"brew install {brew}")


def clock_fix(ctx: Context) -> str:
    """How to keep the clock synchronised (AWS rejects requests signed more than 15 minutes off)."""
    return for_os(ctx, debian="sudo systemctl enable --now systemd-timesyncd",
                  amazon="sudo systemctl enable --now chronyd",
                  macos="System Settings > General > Date & Time: turn on 'Set time and date automatically' "
                        "(or once: sudo sntp -sS time.apple.com)")
