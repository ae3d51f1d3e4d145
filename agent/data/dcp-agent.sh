# /etc/profile.d/dcp-agent.sh: show whether this DCP control node and its AWS account are ready.
# Installed by dcp-control-node. POSIX sh; sourced by login shells.
# - Prints nothing and returns at once unless the shell is interactive with a terminal, so scp, sftp,
#   rsync, Fabric, Packer provisioners, cron and `ssh host cmd` never see a byte from it.
# - Never waits on the network: it shows the last cached result and, when that is older than the TTL,
#   starts a detached refresh under a hard timeout.
# - Off for one user:  touch ~/.config/dcp-agent/no-login   (or DCP_AGENT_LOGIN=off in the environment)
#   Off for everyone:  touch /etc/dcp-agent/no-login
# - An admin may set DCP_AGENT_LOGIN_TTL and DCP_AGENT_LOGIN_TIMEOUT (seconds) in /etc/dcp-agent/login.conf.
case $- in *i*) ;; *) return 0 2>/dev/null || exit 0 ;; esac

_dcp_agent_login() {
    [ -t 1 ] || return 0
    [ "${DCP_AGENT_LOGIN:-on}" = off ] && return 0
    [ -e /etc/dcp-agent/no-login ] && return 0
    [ -e "${XDG_CONFIG_HOME:-$HOME/.config}/dcp-agent/no-login" ] && return 0
    command -v dcp-agent >/dev/null 2>&1 || return 0
    _dcp_dir="${XDG_CACHE_HOME:-$HOME/.cache}/dcp-agent"
    [ -r /etc/dcp-agent/login.conf ] && . /etc/dcp-agent/login.conf
    _dcp_ttl=${DCP_AGENT_LOGIN_TTL:-600}
    [ -r "$_dcp_dir/ttl" ] && read -r _dcp_ttl < "$_dcp_dir/ttl"
    case $_dcp_ttl in ''|*[!0-9]*) _dcp_ttl=600 ;; esac
    _dcp_age=999999999
    if [ -r "$_dcp_dir/login.txt" ]; then
        _dcp_age=$(( $(date +%s) - $(stat -c %Y "$_dcp_dir/login.txt" 2>/dev/null || echo 0) ))
        cat "$_dcp_dir/login.txt"
        if [ "$_dcp_age" -gt "$_dcp_ttl" ]; then
            echo "  (this result is $(( _dcp_age / 60 )) min old; refreshing in the background)"
        fi
    else
        echo "dcp-agent: checking this node and your AWS account in the background; 'dcp-agent check' shows it all"
    fi
    if [ "$_dcp_age" -gt "$_dcp_ttl" ]; then
        # While a refresh runs, its spawn lock is held: later logins start nothing (not even Python).
        # SIGHUP is ignored before the spawn: a session that ends at once (ssh host, then exit) hangs up its
        # terminal's process group, and setsid may not have detached the refresh from it yet.
        if [ -d "$_dcp_dir" ] && command -v flock >/dev/null 2>&1; then
            ( trap '' HUP; setsid flock -n "$_dcp_dir/spawn.lock" timeout -k 5 "${DCP_AGENT_LOGIN_TIMEOUT:-45}" \
                dcp-agent login --refresh </dev/null >/dev/null 2>&1 & ) </dev/null >/dev/null 2>&1
        else
            ( trap '' HUP; setsid timeout -k 5 "${DCP_AGENT_LOGIN_TIMEOUT:-45}" dcp-agent login --refresh \
                </dev/null >/dev/null 2>&1 & ) </dev/null >/dev/null 2>&1
        fi
    fi
    return 0
}
_dcp_agent_login 2>/dev/null || true
unset -f _dcp_agent_login 2>/dev/null
unset _dcp_dir _dcp_ttl _dcp_age DCP_AGENT_LOGIN_TTL DCP_AGENT_LOGIN_TIMEOUT
