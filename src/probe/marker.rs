//! What a marker other than a group needs to know about this host: the
//! uid of a user name, the cgroup systemd gave a unit, and whether a cgroup
//! path exists. Asked only for the profile at hand, after `probe()`.

use super::HostFacts;
use crate::runner::Runner;
use std::path::Path;

/// What a marker asks of the host (`plan::marker_query` builds it from a
/// profile): a user name to resolve, a unit's cgroup, a cgroup's existence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkerQuery<'a> {
    UserName(&'a str),
    Unit(&'a str),
    Cgroup(&'a str),
}

/// The cgroup v2 mount point from /proc/self/mountinfo text: the fifth
/// field of the first line whose filesystem type (after ` - `) is cgroup2.
pub fn cgroup2_mount(mountinfo: &str) -> Option<String> {
    mountinfo.lines().find_map(|line| {
        let (mount, fs) = line.split_once(" - ")?;
        if fs.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        // mountinfo escapes spaces as \040; a mount point with one is not ours to use.
        let point = mount.split_whitespace().nth(4)?;
        (point.starts_with('/') && !point.contains('\\')).then(|| point.to_string())
    })
}

/// `systemctl show -p ControlGroup --value UNIT`: the unit's cgroup path
/// relative to the cgroup v2 root (as systemd says it; the plan judges it),
/// `Ok(None)` when it has none (not running), `Err` with one line when
/// systemctl could not answer.
pub fn unit_cgroup(runner: &dyn Runner, unit: &str) -> Result<Option<String>, String> {
    let out = runner
        .run_args(&["systemctl", "show", "-p", "ControlGroup", "--value", unit])
        .map_err(|e| e.to_string())?;
    if !out.success() {
        let said = out
            .stderr
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("no reason given");
        return Err(format!(
            "systemctl show {unit} failed ({}): {}",
            out.status,
            crate::text::clip(said)
        ));
    }
    let value = out.stdout.lines().next().unwrap_or_default().trim();
    let path = value.trim_start_matches('/');
    Ok((!path.is_empty()).then(|| path.to_string()))
}

/// Fill `facts.users`, `facts.units` and `facts.cgroups` for the marker.
/// What cannot be asked stays absent (the plan says so); a unit systemctl
/// cannot resolve becomes an unreadable note.
pub fn resolve_marker(
    facts: &mut HostFacts,
    query: Option<MarkerQuery>,
    runner: &dyn Runner,
    root: &Path,
) {
    let path = match query {
        None => return,
        Some(MarkerQuery::UserName(name)) => {
            if let Ok(out) = runner.run_args(&["getent", "passwd", name])
                && out.success()
                && let Some(user) = parse_passwd_line(&out.stdout)
            {
                facts.users.push(user);
            }
            return;
        }
        Some(MarkerQuery::Cgroup(p)) => p.to_string(),
        Some(MarkerQuery::Unit(unit)) => match unit_cgroup(runner, unit) {
            Ok(cg) => {
                facts.units.insert(unit.to_string(), cg.clone());
                match cg {
                    Some(p) => p,
                    None => return,
                }
            }
            Err(why) => {
                facts.unreadable.push(super::Unreadable::new(
                    super::Fact::Units,
                    super::Source::command(&[
                        "systemctl",
                        "show",
                        "-p",
                        "ControlGroup",
                        "--value",
                        unit,
                    ]),
                    super::Reason::NotStarted { error: why },
                ));
                return;
            }
        },
    };
    // Only a plain path below the mount is looked at.
    let plain = path
        .split('/')
        .all(|c| !c.is_empty() && c != "." && c != "..");
    if let (Some(mount), true) = (&facts.cgroup2, plain) {
        let dir = root.join(mount.trim_start_matches('/')).join(&path);
        let id = std::fs::metadata(&dir)
            .ok()
            .filter(|m| m.is_dir())
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m));
        facts.cgroups.insert(path, id);
    }
}

/// `name:x:uid:gid:…` -> the user.
fn parse_passwd_line(text: &str) -> Option<super::User> {
    let mut f = text.lines().next()?.split(':');
    let name = f.next()?.trim();
    let _pw = f.next()?;
    let uid = f.next()?.trim().parse().ok()?;
    (!name.is_empty()).then(|| super::User {
        name: name.to_string(),
        uid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{FakeRunner, Output};

    const HYBRID: &str = "25 30 0:23 / /sys rw,nosuid shared:7 - sysfs sysfs rw\n\
        31 25 0:26 / /sys/fs/cgroup ro shared:9 - tmpfs tmpfs ro,mode=755\n\
        41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:10 - cgroup2 cgroup2 rw\n\
        42 31 0:39 / /sys/fs/cgroup/memory rw shared:11 - cgroup cgroup rw,memory\n";

    #[test]
    fn finds_the_cgroup2_mount_on_hybrid_and_unified_hosts() {
        assert_eq!(
            cgroup2_mount(HYBRID).as_deref(),
            Some("/sys/fs/cgroup/unified")
        );
        let unified =
            "30 25 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(cgroup2_mount(unified).as_deref(), Some("/sys/fs/cgroup"));
        let v1_only = "42 31 0:39 / /sys/fs/cgroup/memory rw shared:11 - cgroup cgroup rw,memory\n";
        assert_eq!(cgroup2_mount(v1_only), None);
        assert_eq!(cgroup2_mount(""), None);
    }

    fn unit_marker(unit: &str) -> Option<MarkerQuery<'_>> {
        Some(MarkerQuery::Unit(unit))
    }

    const SHOW: &[&str] = &["systemctl", "show", "-p", "ControlGroup", "--value"];

    fn show(unit: &str) -> Vec<&str> {
        let mut v = SHOW.to_vec();
        v.push(unit);
        v
    }

    #[test]
    fn a_running_unit_resolves_to_its_cgroup_and_a_stopped_one_to_none() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sys/fs/cgroup/system.slice/app.service")).unwrap();
        let runner = FakeRunner::new()
            .on(
                &show("app.service"),
                Output::ok("/system.slice/app.service\n"),
            )
            .on(&show("gone.service"), Output::ok("\n"));
        let mut facts = HostFacts {
            cgroup2: Some("/sys/fs/cgroup".into()),
            ..HostFacts::default()
        };
        resolve_marker(&mut facts, unit_marker("app.service"), &runner, dir.path());
        resolve_marker(&mut facts, unit_marker("gone.service"), &runner, dir.path());
        assert_eq!(
            facts.units.get("app.service"),
            Some(&Some("system.slice/app.service".to_string()))
        );
        assert_eq!(facts.units.get("gone.service"), Some(&None));
        let id = facts
            .cgroups
            .get("system.slice/app.service")
            .copied()
            .flatten();
        assert!(id.is_some_and(|i| i > 0), "{id:?}");
        assert_eq!(runner.calls().len(), 2, "one systemctl call per unit");
    }

    #[test]
    fn systemctl_failing_is_a_note_and_an_odd_path_is_left_to_the_plan() {
        let runner = FakeRunner::new()
            .on(
                &show("a.service"),
                Output::failed(1, "System has not been booted with systemd\n"),
            )
            .on(&show("b.service"), Output::ok("/system.slice/../etc\n"));
        let mut facts = HostFacts::default();
        resolve_marker(
            &mut facts,
            unit_marker("a.service"),
            &runner,
            Path::new("/"),
        );
        resolve_marker(
            &mut facts,
            unit_marker("b.service"),
            &runner,
            Path::new("/"),
        );
        // Kept as systemd said it (the plan refuses it), but never looked up.
        assert_eq!(
            facts.units.get("b.service"),
            Some(&Some("system.slice/../etc".to_string()))
        );
        assert!(!facts.units.contains_key("a.service") && facts.cgroups.is_empty());
        assert_eq!(facts.unreadable.len(), 1);
        let text = facts.unreadable[0].to_string();
        assert!(text.contains("not been booted with systemd"), "{text}");
        // A missing systemctl is a note too (the fake answers "not found").
        let mut facts = HostFacts::default();
        resolve_marker(
            &mut facts,
            unit_marker("c.service"),
            &FakeRunner::new(),
            Path::new("/"),
        );
        assert_eq!(facts.unreadable.len(), 1);
    }

    #[test]
    fn a_user_name_resolves_through_getent() {
        let runner = FakeRunner::new().on(
            &["getent", "passwd", "alice"],
            Output::ok("alice:x:1001:1001:Alice:/home/alice:/bin/sh\n"),
        );
        let mut facts = HostFacts::default();
        resolve_marker(
            &mut facts,
            Some(MarkerQuery::UserName("alice")),
            &runner,
            Path::new("/"),
        );
        assert_eq!(facts.user_by_name("alice").map(|u| u.uid), Some(1001));
    }
}
