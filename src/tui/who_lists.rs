//! What the Who step offers besides the groups: this host's users and its
//! running systemd units and slices. Read once by a worker at start (like
//! the probe), never while drawing; each list is absent until it arrives
//! and says why when it cannot be had.

use crate::probe::User;
use crate::runner::Runner;

/// `systemctl list-units` for units that own processes. `--state=active`
/// (not `running`): a slice is "active", never "running"; the services that
/// are active but not running (oneshots that exited) are dropped by
/// `parse_units`.
pub const LIST_UNITS: &[&str] = &[
    "systemctl",
    "list-units",
    "--type=service,slice",
    "--state=active",
    "--no-legend",
    "--plain",
];

/// A unit the Who step lists: its name and description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitEntry {
    pub name: String,
    pub description: String,
}

/// The lists as read (None: still reading; Err: one line saying why not).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WhoLists {
    pub users: Option<Result<Vec<User>, String>>,
    pub units: Option<Result<Vec<UnitEntry>, String>>,
}

impl WhoLists {
    /// Both lists from this host, through `runner`.
    pub fn read(runner: &dyn Runner) -> WhoLists {
        WhoLists {
            users: Some(read_users(runner)),
            units: Some(read_units(runner)),
        }
    }

    /// Nothing asked (recorded facts describe another host).
    pub fn not_this_host(why: &str) -> WhoLists {
        WhoLists {
            users: Some(Err(why.to_string())),
            units: Some(Err(why.to_string())),
        }
    }

    /// The user named or numbered `typed`, when the list has it.
    pub fn user(&self, typed: &str) -> Option<&User> {
        let users = self.users.as_ref()?.as_ref().ok()?;
        let uid = typed.parse::<u32>().ok();
        users.iter().find(|u| u.name == typed || Some(u.uid) == uid)
    }

    /// Running units whose name contains the filter: an exact name first.
    pub fn units_matching(&self, filter: &str) -> Vec<&UnitEntry> {
        let Some(Ok(units)) = &self.units else {
            return Vec::new();
        };
        let q = filter.trim().to_lowercase();
        let mut v: Vec<&UnitEntry> = units
            .iter()
            .filter(|u| u.name.to_lowercase().contains(&q))
            .collect();
        v.sort_by_key(|u| (u.name != q, u.name.clone()));
        v
    }
}

fn first_line(text: &str) -> &str {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no reason given")
}

fn read_users(runner: &dyn Runner) -> Result<Vec<User>, String> {
    match runner.run_args(&["getent", "passwd"]) {
        Ok(out) if out.success() => Ok(parse_passwd(&out.stdout)),
        Ok(out) => Err(format!(
            "getent passwd failed: {}",
            crate::text::clip(first_line(&out.stderr))
        )),
        Err(e) => Err(format!("getent passwd: {e}")),
    }
}

fn read_units(runner: &dyn Runner) -> Result<Vec<UnitEntry>, String> {
    match runner.run_args(LIST_UNITS) {
        Ok(out) if out.success() => Ok(parse_units(&out.stdout)),
        Ok(out) => Err(format!(
            "systemd does not answer here ({})",
            crate::text::clip(first_line(&out.stderr))
        )),
        Err(e) => Err(format!("no systemd here ({e})")),
    }
}

/// `name:x:uid:…` lines -> users (malformed lines are skipped).
pub fn parse_passwd(text: &str) -> Vec<User> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?.trim();
            let uid = f.nth(1)?.trim().parse().ok()?;
            (!name.is_empty()).then(|| User {
                name: name.to_string(),
                uid,
            })
        })
        .collect()
}

/// `UNIT LOAD ACTIVE SUB DESCRIPTION…` lines -> the running services and
/// the active slices, by name.
pub fn parse_units(text: &str) -> Vec<UnitEntry> {
    let mut v: Vec<UnitEntry> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (name, _load, _active, sub) = (f.next()?, f.next()?, f.next()?, f.next()?);
            let runs = (name.ends_with(".service") && sub == "running")
                || (name.ends_with(".slice") && sub == "active");
            (runs && crate::profile::check_unit_name(name).is_ok()).then(|| UnitEntry {
                name: name.to_string(),
                description: f.collect::<Vec<_>>().join(" "),
            })
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{FakeRunner, Output};

    const UNITS: &str = "\
cron.service               loaded active running Regular background program processing daemon
qbittorrent-nox.service    loaded active running qBittorrent-nox service
setup.service              loaded active exited  One-shot setup
-.slice                    loaded active active  Root Slice
system.slice               loaded active active  System Slice
weird\\x2dname.service      loaded active running Escaped
";

    /// Running services and active slices are listed; an exited oneshot, the
    /// root slice and an escaped name (which dscproute refuses) are not.
    #[test]
    fn lists_running_services_and_active_slices() {
        let names: Vec<String> = parse_units(UNITS).into_iter().map(|u| u.name).collect();
        assert_eq!(
            names,
            ["cron.service", "qbittorrent-nox.service", "system.slice"]
        );
        assert_eq!(parse_units(UNITS)[1].description, "qBittorrent-nox service");
    }

    /// Read through the runner; no systemd (or no getent) is a reason, not
    /// an empty list.
    #[test]
    fn reads_through_the_runner_and_says_why_not() {
        let runner = FakeRunner::new().on(LIST_UNITS, Output::ok(UNITS)).on(
            &["getent", "passwd"],
            Output::ok("root:x:0:0::/root:/bin/sh\nalice:x:1001:1001::/home/alice:/bin/sh\nbad\n"),
        );
        let l = WhoLists::read(&runner);
        assert_eq!(l.user("alice").map(|u| u.uid), Some(1001));
        assert_eq!(l.user("0").map(|u| u.name.as_str()), Some("root"));
        assert_eq!(l.user("bob"), None);
        let m: Vec<&str> = l
            .units_matching("QBIT")
            .iter()
            .map(|u| u.name.as_str())
            .collect();
        assert_eq!(m, ["qbittorrent-nox.service"]);
        let none = WhoLists::read(&FakeRunner::new().on(
            LIST_UNITS,
            Output::failed(
                1,
                "System has not been booted with systemd as init system\n",
            ),
        ));
        let why = none.units.unwrap().unwrap_err();
        assert!(why.contains("not been booted with systemd"), "{why}");
        assert!(none.users.unwrap().is_err());
    }
}
