//! Without systemd, `persist` installs the profile and prints what the init
//! system should run instead: the two commands, and a SysV-style script
//! (also fine for BusyBox init and OpenWrt's rc.d) that waits for the VPN
//! interface in the background, so a slow VPN never holds up the boot.

/// How long the boot script waits for the VPN interface, in seconds.
pub const WAIT_SECS: u32 = 600;

/// The same quoting as `plan --script`.
pub use crate::plan::sh_quote;

/// The script's suggested path.
pub fn script_path(name: &str) -> String {
    format!("/etc/init.d/dscproute-{name}")
}

/// The boot script for NAME: `start` applies `profile` once `interface`
/// exists (bounded wait, in the background), `stop` rolls back.
pub fn script(name: &str, profile: &str, interface: Option<&str>, exe: &str) -> String {
    let (profile, exe) = (sh_quote(profile), sh_quote(exe));
    let wait = match interface {
        Some(ifname) => format!(
            "        # The VPN interface may come up after this script runs.\n        \
             i=0\n        \
             while [ ! -e {dev} ] && [ \"$i\" -lt {WAIT_SECS} ]; do\n            \
             sleep 1\n            \
             i=$((i + 1))\n        \
             done\n",
            dev = sh_quote(&format!("/sys/class/net/{ifname}"))
        ),
        None => String::new(),
    };
    format!(
        r#"#!/bin/sh
### BEGIN INIT INFO
# Provides:          dscproute-{name}
# Required-Start:    $network $remote_fs
# Required-Stop:     $network $remote_fs
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: dscproute profile {name}
### END INIT INFO
# Written by `dscproute persist`: apply {profile} at boot, roll it back on stop.
LOG=/var/log/dscproute-{name}.log
case "$1" in
start)
    (
{wait}        {exe} apply --profile {profile} --yes
    ) </dev/null >>"$LOG" 2>&1 &
    ;;
stop)
    {exe} rollback --yes </dev/null >>"$LOG" 2>&1
    ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
"#
    )
}

/// Everything `persist` prints on a host without systemd.
pub fn recipe(name: &str, profile: &str, interface: Option<&str>, exe: &str) -> String {
    let path = script_path(name);
    let after = interface.map_or(String::new(), |i| format!(" and {i}"));
    let (q_profile, q_exe) = (sh_quote(profile), sh_quote(exe));
    format!(
        "This host does not run systemd, so no unit was enabled. Have the init system run, \
         at boot once the network{after} is up:\n\n    \
         {q_exe} apply --profile {q_profile} --yes\n\n\
         and at shutdown:\n\n    \
         {q_exe} rollback --yes\n\n\
         For example, save this as {path} and make it executable:\n\n{script}\n\
         then link it into the boot: `update-rc.d dscproute-{name} defaults` (Debian \
         sysvinit), or a symlink /etc/rc.d/S99dscproute-{name} (BusyBox, OpenWrt). \
         `dscproute unpersist {name}` removes the profile again.\n",
        script = script(name, profile, interface, exe)
    )
}

/// What `unpersist` prints on a host without systemd.
pub fn removal(name: &str) -> String {
    let path = script_path(name);
    format!(
        "This host does not run systemd: remove dscproute-{name} from the init system \
         yourself, e.g. `update-rc.d -f dscproute-{name} remove && rm {path}` (Debian \
         sysvinit) or remove {path} and its /etc/rc.d link.\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_waits_for_the_interface_only_when_there_is_one() {
        let s = script(
            "gw",
            "/etc/dscproute/gw.toml",
            Some("wg0"),
            "/usr/bin/dscproute",
        );
        assert!(s.contains("while [ ! -e /sys/class/net/wg0 ] && [ \"$i\" -lt 600 ]"));
        assert!(s.contains("/usr/bin/dscproute apply --profile /etc/dscproute/gw.toml --yes"));
        assert!(s.contains("/usr/bin/dscproute rollback --yes"));
        let client = script("c", "/etc/dscproute/c.toml", None, "/usr/bin/dscproute");
        assert!(!client.contains("/sys/class/net"));
        let odd = script(
            "x",
            "/etc/dscproute/x.toml",
            Some("w$g;0"),
            "/opt/a b/dscproute",
        );
        assert!(odd.contains("[ ! -e '/sys/class/net/w$g;0' ]"));
        assert!(odd.contains("'/opt/a b/dscproute' rollback --yes"));
    }

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("/usr/bin/dscproute"), "/usr/bin/dscproute");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote(""), "''");
    }
}
