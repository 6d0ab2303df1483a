//! The unit side of `persist`: find (or install) the `dscproute@.service`
//! template and enable or disable an instance of it, with `systemctl` where
//! systemd runs, or by writing the same symlinks `systemctl --root` writes.

use super::{BootOutcome, Layout, PACKAGED_EXE, PersistError, unit_name};
use crate::runner::Runner;
use crate::safe_fs;
use std::path::{Path, PathBuf};

pub const TEMPLATE_NAME: &str = "dscproute@.service";

/// The unit template the package ships (assets/systemd/dscproute@.service).
pub const UNIT_TEMPLATE: &str = include_str!("../../assets/systemd/dscproute@.service");

/// First line of a template `persist` installed itself because no packaged
/// one was found (a `cargo install`ed binary): `unpersist` removes only those.
pub const OWN_TEMPLATE_MARK: &str = "# Installed by `dscproute persist` (no packaged unit was found); `dscproute unpersist` removes it.";

/// Where the admin's units live; ours goes there when none is packaged.
pub const ADMIN_UNIT_DIR: &str = "/etc/systemd/system";

/// systemd's unit search path, first match wins (the directories admins and
/// packages use; /lib only matters on hosts without merged /usr).
pub const UNIT_DIRS: &[&str] = &[
    "/etc/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

/// The template's path on the target, when one is installed under the root.
pub fn find_template(layout: &Layout) -> Option<String> {
    UNIT_DIRS
        .iter()
        .map(|d| format!("{d}/{TEMPLATE_NAME}"))
        .find(|p| layout.under(p).is_file())
}

/// Our embedded template, running `exe` instead of /usr/bin/dscproute.
pub fn own_template(exe: &str) -> Result<String, PersistError> {
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._+-".contains(c);
    if !exe.starts_with('/') || !exe.chars().all(safe) {
        return Err(PersistError::Failed(format!(
            "cannot write the binary's path {exe:?} into a unit file (it needs an absolute path \
             of letters, digits and /._+-): install dscproute as {PACKAGED_EXE}, e.g. from the \
             .deb"
        )));
    }
    Ok(format!(
        "{OWN_TEMPLATE_MARK}\n{}",
        UNIT_TEMPLATE.replace(PACKAGED_EXE, exe)
    ))
}

/// The targets a unit's `[Install]` section names in `WantedBy=`.
pub fn wanted_by(unit: &str) -> Vec<String> {
    let mut in_install = false;
    let mut out = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            in_install = line == "[Install]";
        } else if in_install && let Some(v) = line.strip_prefix("WantedBy=") {
            out.extend(v.split_whitespace().map(str::to_string));
        }
    }
    out
}

fn io(what: &str, p: &Path, e: std::io::Error) -> PersistError {
    PersistError::Failed(format!("cannot {what} {}: {e}", p.display()))
}

/// The template's target path; installs ours when none is there.
fn ensure_template(layout: &Layout, exe: &str) -> Result<(String, Option<PathBuf>), PersistError> {
    if let Some(t) = find_template(layout) {
        return Ok((t, None));
    }
    let target = format!("{ADMIN_UNIT_DIR}/{TEMPLATE_NAME}");
    let path = layout.under(&target);
    let text = own_template(exe)?;
    // The modes systemctl gives units and their directories, whatever the umask.
    if let Some(dir) = path.parent() {
        safe_fs::create_dir_all(dir, safe_fs::PUBLIC_DIR).map_err(|e| io("create", dir, e))?;
    }
    safe_fs::write_durably_mode(&path, text.as_bytes(), safe_fs::PUBLIC_FILE)
        .map_err(|e| io("write", &path, e))?;
    Ok((target, Some(path)))
}

fn systemctl(runner: &dyn Runner, args: &[&str]) -> Result<crate::runner::Output, PersistError> {
    let mut argv = vec!["systemctl"];
    argv.extend_from_slice(args);
    runner
        .run_args(&argv)
        .map_err(|e| PersistError::Failed(format!("cannot run {}: {e}", argv.join(" "))))
}

/// `systemctl ARGS`, failing with its stderr when it does.
fn run_ok(runner: &dyn Runner, args: &[&str]) -> Result<(), PersistError> {
    let out = systemctl(runner, args)?;
    if out.success() {
        return Ok(());
    }
    Err(PersistError::Failed(format!(
        "systemctl {} failed: {}",
        args.join(" "),
        out.stderr.trim()
    )))
}

fn is_enabled(runner: &dyn Runner, unit: &str) -> Result<bool, PersistError> {
    let out = systemctl(runner, &["is-enabled", unit])?;
    Ok(out.success() && out.stdout.trim() == "enabled")
}

/// Enable and start `dscproute@NAME.service` (the profile is already in
/// place): with `systemctl` through `runner`, or, without one, by writing
/// the symlinks (an image: nothing runs there now). An instance enabled
/// already is restarted, if it runs, when `profile_changed`: its agent
/// read the old profile.
pub fn enable(
    layout: &Layout,
    name: &str,
    runner: Option<&dyn Runner>,
    exe: &str,
    profile_changed: bool,
) -> Result<BootOutcome, PersistError> {
    let unit = unit_name(name);
    let (template, installed) = ensure_template(layout, exe)?;
    let undo_template = |e: PersistError| {
        if let Some(p) = &installed {
            let _ = std::fs::remove_file(p);
        }
        e
    };
    let newly = match runner {
        Some(runner) => {
            if is_enabled(runner, &unit).map_err(undo_template)? {
                if profile_changed {
                    run_ok(runner, &["try-restart", &unit])?;
                }
                false
            } else {
                run_ok(runner, &["enable", "--now", &unit]).map_err(undo_template)?;
                true
            }
        }
        None => link_wants(layout, &unit, &template).map_err(undo_template)?,
    };
    Ok(BootOutcome::Enabled {
        unit,
        newly,
        template_installed: installed,
    })
}

/// What `systemctl --root=ROOT enable UNIT` does: for each `WantedBy=`
/// target, a symlink `/etc/systemd/system/TARGET.wants/UNIT` to the
/// template. Returns whether a link was created or corrected.
fn link_wants(layout: &Layout, unit: &str, template: &str) -> Result<bool, PersistError> {
    let path = layout.under(template);
    let text = std::fs::read_to_string(&path).map_err(|e| io("read", &path, e))?;
    let targets = wanted_by(&text);
    if targets.is_empty() {
        return Err(PersistError::Failed(format!(
            "{} has no WantedBy= in its [Install] section, so it cannot be enabled: add \
             `WantedBy=multi-user.target`",
            path.display()
        )));
    }
    let mut changed = false;
    for target in targets {
        let dir = layout.under(&format!("{ADMIN_UNIT_DIR}/{target}.wants"));
        let link = dir.join(unit);
        if std::fs::read_link(&link).is_ok_and(|t| t == Path::new(template)) {
            continue;
        }
        safe_fs::create_dir_all(&dir, safe_fs::PUBLIC_DIR).map_err(|e| io("create", &dir, e))?;
        match std::fs::remove_file(&link) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io("replace", &link, e));
            }
            _ => {}
        }
        std::os::unix::fs::symlink(template, &link).map_err(|e| io("create", &link, e))?;
        changed = true;
    }
    Ok(changed)
}

/// The `.wants`/`.requires` symlinks to UNIT under /etc/systemd/system.
fn install_links(layout: &Layout, unit: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(layout.under(ADMIN_UNIT_DIR)) else {
        return Vec::new();
    };
    let mut links: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|d| {
            d.extension()
                .is_some_and(|x| x == "wants" || x == "requires")
        })
        .map(|d| d.join(unit))
        .filter(|l| {
            l.symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink())
        })
        .collect();
    links.sort();
    links
}

/// Stop and disable `dscproute@NAME.service` (with `systemctl` through
/// `runner`, or by removing the symlinks); returns whether it was enabled.
/// Stopping the agent leaves the setup in place.
pub fn disable(
    layout: &Layout,
    name: &str,
    runner: Option<&dyn Runner>,
) -> Result<bool, PersistError> {
    let unit = unit_name(name);
    match runner {
        Some(runner) => {
            let linked = !install_links(layout, &unit).is_empty();
            if !linked && !is_enabled(runner, &unit)? {
                return Ok(false);
            }
            run_ok(runner, &["disable", "--now", &unit])?;
            Ok(true)
        }
        None => {
            let links = install_links(layout, &unit);
            for link in &links {
                std::fs::remove_file(link).map_err(|e| io("remove", link, e))?;
                // systemctl removes a .wants directory it leaves empty.
                if let Some(dir) = link.parent() {
                    let _ = std::fs::remove_dir(dir);
                }
            }
            Ok(!links.is_empty())
        }
    }
}

/// Remove the template `persist` installed itself, once no instance of it
/// is enabled any more; a packaged or admin-written template stays.
pub fn remove_own_template(
    layout: &Layout,
    runner: Option<&dyn Runner>,
) -> Result<Option<PathBuf>, PersistError> {
    let path = layout.under(&format!("{ADMIN_UNIT_DIR}/{TEMPLATE_NAME}"));
    let ours = std::fs::read_to_string(&path).is_ok_and(|t| t.starts_with(OWN_TEMPLATE_MARK));
    if !ours || any_instance_linked(layout) {
        return Ok(None);
    }
    std::fs::remove_file(&path).map_err(|e| io("remove", &path, e))?;
    if let Some(runner) = runner {
        // The manager still has the removed file loaded.
        let out = systemctl(runner, &["daemon-reload"])?;
        if !out.success() {
            return Err(PersistError::Failed(format!(
                "removed {} but systemctl daemon-reload failed: {}",
                path.display(),
                out.stderr.trim()
            )));
        }
    }
    Ok(Some(path))
}

fn any_instance_linked(layout: &Layout) -> bool {
    let Ok(entries) = std::fs::read_dir(layout.under(ADMIN_UNIT_DIR)) else {
        return false;
    };
    entries.flatten().any(|d| {
        std::fs::read_dir(d.path()).is_ok_and(|mut links| {
            links.any(|l| {
                l.is_ok_and(|l| {
                    let n = l.file_name().to_string_lossy().into_owned();
                    n.starts_with("dscproute@") && n.ends_with(".service") && n != TEMPLATE_NAME
                })
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wanted_by_reads_only_the_install_section() {
        let unit = "[Unit]\nWantedBy=nope.target\n[Install]\nWantedBy=multi-user.target \
                    other.target\nWantedBy=third.target\n";
        assert_eq!(
            wanted_by(unit),
            ["multi-user.target", "other.target", "third.target"]
        );
        assert_eq!(wanted_by(UNIT_TEMPLATE), ["multi-user.target"]);
    }

    /// The `ExecStart=` lines of a unit's `[Service]` section, split the way
    /// systemd splits them; None when an argument holds anything systemd
    /// would read as more than a plain word (quotes, escapes, `$`, `;`,
    /// specifiers other than %i).
    fn exec_start(unit: &str) -> Option<Vec<Vec<String>>> {
        let mut in_service = false;
        let mut out = Vec::new();
        for line in unit.lines().map(str::trim) {
            if line.starts_with('[') {
                in_service = line == "[Service]";
            } else if in_service && let Some(v) = line.strip_prefix("ExecStart=") {
                let argv: Vec<String> = v.split_whitespace().map(str::to_string).collect();
                let plain = |a: &String| {
                    let rest = a.replace("%i", "");
                    rest.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "/._+-=".contains(c))
                };
                if !argv.iter().all(plain) {
                    return None;
                }
                out.push(argv);
            }
        }
        Some(out)
    }

    #[test]
    fn exec_start_is_exactly_the_agent_invocation() {
        for exe in [
            PACKAGED_EXE,
            "/usr/local/bin/dscproute",
            "/opt/dscproute-1.2_x+y/bin/dscproute",
        ] {
            let unit = own_template(exe).unwrap();
            assert_eq!(
                exec_start(&unit).unwrap(),
                [super::super::init_script::agent_argv(
                    exe,
                    &Layout::target_profile("%i"),
                    None
                )],
                "{unit}"
            );
        }
        // The shipped template is the same with the packaged binary.
        assert_eq!(
            exec_start(UNIT_TEMPLATE).unwrap(),
            [vec![
                "/usr/bin/dscproute",
                "agent",
                "--profile",
                "/etc/dscproute/%i.toml"
            ]]
        );
        // What systemd would split or expand is refused before it is written.
        for bad in [
            "/opt/my tools/dscproute",
            "/opt/it's/dscproute",
            "/opt/$HOME/dscproute",
            "/opt/a%n/dscproute",
            "/opt/a\\x20/dscproute",
            "/opt/a;b/dscproute",
            "relative/dscproute",
        ] {
            assert!(own_template(bad).is_err(), "{bad}");
        }
        assert_eq!(exec_start("[Service]\nExecStart=/x \"a b\"\n"), None);
    }

    #[test]
    fn own_template_runs_the_given_binary_and_stops_without_removing() {
        let t = own_template("/usr/local/bin/dscproute").unwrap();
        assert!(t.starts_with(OWN_TEMPLATE_MARK));
        assert!(t.contains("ExecStart=/usr/local/bin/dscproute agent"));
        assert!(
            !t.contains("ExecStop"),
            "stopping leaves the setup in place"
        );
        assert!(!t.contains("rollback --yes\n"), "{t}");
        assert!(!t.contains(PACKAGED_EXE));
    }
}
