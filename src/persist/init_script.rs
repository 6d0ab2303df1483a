//! Without systemd, `persist` installs the profile and prints what the init
//! system should run instead: the agent command, and a SysV-style script
//! (also fine for BusyBox init and OpenWrt's rc.d) that starts the agent in
//! the background with a pidfile and stops it with SIGTERM. The agent waits
//! for the VPN interface itself, so a slow VPN never holds up the boot.

/// How long `stop` waits for the agent to exit after SIGTERM, in seconds
/// (it finishes a repair under way first; that takes well under a second).
pub const STOP_WAIT_SECS: u32 = 30;

/// The same quoting as `plan --script`.
pub use crate::plan::sh_quote;

/// The script's suggested path.
pub fn script_path(name: &str) -> String {
    format!("/etc/init.d/dscproute-{name}")
}

/// Where the script keeps the agent's pid.
pub fn pidfile(name: &str) -> String {
    format!("/run/dscproute-{name}.pid")
}

/// The agent's argv: `exe agent --profile PROFILE [--state-dir DIR]`.
pub fn agent_argv(exe: &str, profile: &str, state_dir: Option<&str>) -> Vec<String> {
    let mut argv = vec![
        exe.into(),
        "agent".into(),
        "--profile".into(),
        profile.into(),
    ];
    if let Some(dir) = state_dir {
        argv.extend(["--state-dir".into(), dir.into()]);
    }
    argv
}

/// The agent command line, quoted for sh.
pub fn agent_command(exe: &str, profile: &str, state_dir: Option<&str>) -> String {
    agent_argv(exe, profile, state_dir)
        .iter()
        .map(|a| sh_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The boot script for NAME: `start` runs the agent in the background and
/// records its pid, `stop` sends it SIGTERM and waits (the setup stays).
pub fn script(name: &str, profile: &str, state_dir: Option<&str>, exe: &str) -> String {
    let command = agent_command(exe, profile, state_dir);
    let pidfile = pidfile(name);
    format!(
        r#"#!/bin/sh
### BEGIN INIT INFO
# Provides:          dscproute-{name}
# Required-Start:    $local_fs
# Required-Stop:     $local_fs
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: dscproute agent for profile {name}
### END INIT INFO
# Written by `dscproute persist`: run `dscproute agent` for {profile}. It
# waits for the VPN interface itself (the kill switch holds meanwhile).
# `stop` ends the agent and leaves the setup in place; `dscproute rollback
# --yes` removes it.
PIDFILE={pidfile}
LOG=/var/log/dscproute-{name}.log
# The pid in PIDFILE, if that process is still our agent (not a reused pid).
agent_pid() {{
    pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
    [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q ' agent ' &&
        echo "$pid"
}}
case "$1" in
start)
    agent_pid >/dev/null && exit 0
    {command} </dev/null >>"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
    ;;
stop)
    if pid=$(agent_pid); then
        kill -TERM "$pid"
        # The agent finishes a repair under way, then exits 0.
        i=0
        while agent_pid >/dev/null && [ "$i" -lt {STOP_WAIT_SECS} ]; do
            sleep 1
            i=$((i + 1))
        done
    fi
    rm -f "$PIDFILE"
    ;;
restart)
    "$0" stop
    "$0" start
    ;;
status)
    if pid=$(agent_pid); then
        echo "dscproute-{name}: agent running (pid $pid)"
    else
        echo "dscproute-{name}: agent not running"
        exit 3
    fi
    ;;
*)
    echo "usage: $0 start|stop|restart|status" >&2
    exit 2
    ;;
esac
"#
    )
}

/// Everything `persist` prints on a host without systemd.
pub fn recipe(name: &str, profile: &str, state_dir: Option<&str>, exe: &str) -> String {
    let path = script_path(name);
    format!(
        "This host does not run systemd, so no unit was enabled. Have the init system run \
         the agent at boot, in the background (it waits for the VPN interface itself):\n\n    \
         {command}\n\n\
         and stop it with SIGTERM (the setup stays in place; `dscproute rollback --yes` \
         removes it).\n\n\
         For example, save this as {path} and make it executable:\n\n{script}\n\
         then link it into the boot: `update-rc.d dscproute-{name} defaults` (Debian \
         sysvinit), or a symlink /etc/rc.d/S99dscproute-{name} (BusyBox, OpenWrt), and \
         start it: `{path} start`. `dscproute unpersist {name}` removes the profile again.\n",
        command = agent_command(exe, profile, state_dir),
        script = script(name, profile, state_dir, exe)
    )
}

/// What `unpersist` prints on a host without systemd.
pub fn removal(name: &str) -> String {
    let path = script_path(name);
    format!(
        "This host does not run systemd: stop the agent and remove dscproute-{name} from the \
         init system yourself, e.g. `{path} stop && update-rc.d -f dscproute-{name} remove && \
         rm {path}` (Debian sysvinit) or `{path} stop`, then remove {path} and its /etc/rc.d \
         link. Stopping the agent leaves the setup in place; `dscproute rollback --yes` \
         removes it.\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_runs_the_agent_with_a_pidfile_and_stops_it_with_sigterm() {
        let s = script("gw", "/etc/dscproute/gw.toml", None, "/usr/bin/dscproute");
        assert!(s.contains(
            "    /usr/bin/dscproute agent --profile /etc/dscproute/gw.toml </dev/null >>\"$LOG\" \
             2>&1 &\n    echo $! >\"$PIDFILE\"\n"
        ));
        assert!(s.contains("PIDFILE=/run/dscproute-gw.pid\n"));
        assert!(s.contains("kill -TERM \"$pid\""));
        assert!(
            !s.contains("rollback --yes <"),
            "stop never removes the setup"
        );
        let odd = script(
            "x",
            "/etc/dscproute/x.toml",
            Some("/var/lib/my state"),
            "/opt/a b/dscproute",
        );
        assert!(odd.contains(
            "'/opt/a b/dscproute' agent --profile /etc/dscproute/x.toml --state-dir \
             '/var/lib/my state' </dev/null"
        ));
    }

    #[test]
    fn agent_argv_is_the_agent_invocation() {
        assert_eq!(
            agent_argv("/usr/bin/dscproute", "/etc/dscproute/gw.toml", Some("/s")),
            [
                "/usr/bin/dscproute",
                "agent",
                "--profile",
                "/etc/dscproute/gw.toml",
                "--state-dir",
                "/s"
            ]
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("/usr/bin/dscproute"), "/usr/bin/dscproute");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote(""), "''");
    }
}
