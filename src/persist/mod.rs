//! Keep a setup up, across reboots too: `persist` installs a profile as
//! `/etc/dscproute/NAME.toml` and enables and starts `dscproute@NAME.service`,
//! which runs `dscproute agent` on it; stopping the agent leaves the setup in
//! place (`dscproute rollback` removes it). `unpersist` undoes `persist`.
//!
//! Everything is written under a root directory (`/` on a real host; an image
//! or a test's temporary directory otherwise), so tests never touch the
//! host's /etc. How the unit gets enabled depends on the host (see [`Boot`]):
//! `systemctl` where systemd runs, the symlinks `systemctl --root` would make
//! for another root, or, without systemd, a printed recipe for the init system.
//!
//! Only a setup that was applied and kept is persisted: [`confirmed::check`]
//! reads the journal before anything is written.

pub mod confirmed;
pub mod init_script;
pub mod kept;
pub mod systemd;
pub mod target;

use crate::runner::Runner;
use crate::safe_fs;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Where persisted profiles live on the target.
pub const CONFIG_DIR: &str = "/etc/dscproute";
/// Where the unit runs the binary from (the package installs it there).
pub const PACKAGED_EXE: &str = "/usr/bin/dscproute";
/// Longest accepted NAME (it becomes a file name and a unit instance).
pub const MAX_NAME: usize = 64;

/// Mode of a persisted profile: it holds no secret (a group, a DSCP, an
/// interface, next hops, marks), and world-readable lets an ordinary user
/// preview it with `dscproute plan --profile /etc/dscproute/NAME.toml`.
/// Only root can change it, as for anything else in /etc.
pub const PROFILE_MODE: u32 = 0o644;
pub const CONFIG_DIR_MODE: u32 = 0o755;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PersistError {
    /// Bad input (a name, a root): nothing was changed.
    #[error("{0}")]
    Usage(String),
    /// Not now (no confirmed apply, another profile persisted): nothing was changed.
    #[error("{0}")]
    NotNow(String),
    /// A write or `systemctl` failed.
    #[error("{0}")]
    Failed(String),
}

/// How the boot-time part gets installed.
pub enum Boot<'a> {
    /// systemd runs this host: `systemctl enable` / `disable` through the runner.
    Systemctl(&'a dyn Runner),
    /// An image or test root: write the symlinks `systemctl --root=ROOT
    /// enable` would (it needs no running systemd; nor do we).
    Files,
    /// No systemd: say what another init system should run.
    Manual,
}

/// Paths of a persisted setup under a root directory.
#[derive(Clone, Debug)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: &Path) -> Layout {
        Layout {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// An absolute path of the target system, under our root.
    pub fn under(&self, target_path: &str) -> PathBuf {
        self.root.join(target_path.trim_start_matches('/'))
    }

    pub fn config_dir(&self) -> PathBuf {
        self.under(CONFIG_DIR)
    }

    /// The profile's path as the target system sees it (what the unit reads).
    pub fn target_profile(name: &str) -> String {
        format!("{CONFIG_DIR}/{name}.toml")
    }

    pub fn profile(&self, name: &str) -> PathBuf {
        self.under(&Layout::target_profile(name))
    }

    /// Names of the profiles persisted under this root, sorted.
    pub fn persisted_names(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.config_dir()) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".toml")
                    .filter(|n| validate_name(n).is_ok())
                    .map(str::to_string)
            })
            .collect();
        names.sort();
        names
    }
}

/// The systemd instance for a name.
pub fn unit_name(name: &str) -> String {
    format!("dscproute@{name}.service")
}

/// A NAME is a file name and a unit instance: letters, digits, `-`, `_`.
pub fn validate_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if name.is_empty() || name.len() > MAX_NAME || !name.chars().all(ok_char) {
        return Err(format!(
            "invalid name {name:?}: use 1–{MAX_NAME} letters, digits, '-' or '_' (it becomes \
             {CONFIG_DIR}/NAME.toml and the unit dscproute@NAME.service), e.g. --name gateway"
        ));
    }
    if name.starts_with('-') {
        return Err(format!(
            "invalid name {name:?}: it must not start with '-' (it would read as an option); \
             start with a letter or digit"
        ));
    }
    Ok(())
}

/// NAME when `--name` is not given: the profile's file stem.
pub fn default_name(profile: &Path) -> Result<String, String> {
    let stem = profile
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    validate_name(&stem).map(|()| stem.clone()).map_err(|e| {
        format!(
            "cannot name the setup after {}: {e}; pass --name",
            profile.display()
        )
    })
}

/// What `persist` did.
#[derive(Debug, PartialEq, Eq)]
pub struct Persisted {
    pub name: String,
    /// The profile as written, on this host's filesystem (under the root).
    pub profile: PathBuf,
    /// False when it already held exactly these bytes.
    pub profile_changed: bool,
    pub boot: BootOutcome,
}

impl Persisted {
    pub fn changed(&self) -> bool {
        self.profile_changed
            || matches!(
                self.boot,
                BootOutcome::Enabled { newly: true, .. }
                    | BootOutcome::Enabled {
                        template_installed: Some(_),
                        ..
                    }
            )
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum BootOutcome {
    Enabled {
        unit: String,
        /// False when it was enabled already.
        newly: bool,
        /// No packaged template was found, so ours went here.
        template_installed: Option<PathBuf>,
    },
    /// No systemd: the recipe for another init system.
    Manual(String),
}

/// Install `text` (the profile's bytes, comments kept) as NAME and enable
/// its unit. The caller has validated the profile and checked that it was
/// applied and kept. Only one profile is persisted per host: dscproute keeps
/// one journal, so two agents would fight over one setup.
/// `exe` is the binary a unit installed from our embedded template runs;
/// `state_dir` the agent's `--state-dir` when it is not the default, which
/// only the init script can pass (the unit's agent uses /var/lib/dscproute).
pub fn persist(
    layout: &Layout,
    name: &str,
    text: &[u8],
    state_dir: Option<&str>,
    boot: &Boot,
    exe: &str,
) -> Result<Persisted, PersistError> {
    validate_name(name).map_err(PersistError::Usage)?;
    if let (Some(dir), Boot::Files | Boot::Systemctl(_)) = (state_dir, boot) {
        return Err(PersistError::Usage(format!(
            "--state-dir {dir}: the unit's agent keeps its journal in {}, so a setup applied \
             with another state directory cannot be persisted: apply and persist without \
             --state-dir (and DSCPROUTE_STATE_DIR), or run `dscproute agent --state-dir {dir}` \
             from your own unit",
            crate::apply::state_dir::DEFAULT
        )));
    }
    if let Some(other) = layout.persisted_names().into_iter().find(|n| n != name) {
        return Err(PersistError::NotNow(format!(
            "profile {other:?} is already persisted ({}): dscproute keeps one setup per host \
             (one journal), and two boot units would roll back each other's changes; run \
             `dscproute unpersist {other}` first, or persist with --name {other} to replace it \
             (a host that is both client and gateway takes one profile with [marker] and \
             [gateway])",
            layout.profile(&other).display()
        )));
    }
    let path = layout.profile(name);
    let old = match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(PersistError::Failed(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    let profile_changed = old.as_deref() != Some(text);
    if profile_changed {
        write_profile(layout, &path, text)?;
    }
    let outcome = match boot {
        Boot::Manual => Ok(BootOutcome::Manual(init_script::recipe(
            name,
            &Layout::target_profile(name),
            state_dir,
            exe,
        ))),
        Boot::Files => systemd::enable(layout, name, None, exe, profile_changed),
        Boot::Systemctl(runner) => {
            systemd::enable(layout, name, Some(*runner), exe, profile_changed)
        }
    };
    match outcome {
        Ok(boot) => Ok(Persisted {
            name: name.to_string(),
            profile: path,
            profile_changed,
            boot,
        }),
        Err(e) => {
            // Leave the profile as it was: nothing half-persisted.
            if profile_changed {
                match &old {
                    Some(bytes) => {
                        let _ = write_profile(layout, &path, bytes);
                    }
                    None => {
                        let _ = std::fs::remove_file(&path);
                        let _ = std::fs::remove_dir(layout.config_dir());
                    }
                }
            }
            Err(e)
        }
    }
}

fn write_profile(layout: &Layout, path: &Path, text: &[u8]) -> Result<(), PersistError> {
    let dir = layout.config_dir();
    let err = |what: &str, p: &Path, e: std::io::Error| {
        PersistError::Failed(format!("cannot {what} {}: {e}", p.display()))
    };
    // Exact modes, whatever the umask: /etc, /etc/dscproute under an image
    // root too.
    safe_fs::create_dir_all(&dir, CONFIG_DIR_MODE).map_err(|e| err("create", &dir, e))?;
    safe_fs::write_durably_mode(path, text, PROFILE_MODE).map_err(|e| err("write", path, e))
}

/// What `unpersist` did.
#[derive(Debug, PartialEq, Eq)]
pub struct Unpersisted {
    pub name: String,
    /// The profile file, when there was one to remove.
    pub removed_profile: Option<PathBuf>,
    /// Unit symlinks removed (Files), or whether `systemctl disable` ran.
    pub disabled: bool,
    /// Our own template copy, removed with the last persisted profile.
    pub removed_template: Option<PathBuf>,
    /// Without systemd: what to remove from the init system.
    pub manual: Option<String>,
}

impl Unpersisted {
    pub fn changed(&self) -> bool {
        self.removed_profile.is_some() || self.disabled || self.removed_template.is_some()
    }
}

/// Stop and disable NAME's unit and remove its profile. The setup stays as
/// it is (`dscproute rollback` removes it); only the agent stops.
/// Unpersisting a name that is not persisted changes nothing.
pub fn unpersist(layout: &Layout, name: &str, boot: &Boot) -> Result<Unpersisted, PersistError> {
    validate_name(name).map_err(PersistError::Usage)?;
    let path = layout.profile(name);
    let mut out = Unpersisted {
        name: name.to_string(),
        removed_profile: None,
        disabled: false,
        removed_template: None,
        manual: None,
    };
    // Disable first: a boot must never find the unit without its profile.
    match boot {
        Boot::Manual => {
            if path.exists() {
                out.manual = Some(init_script::removal(name));
            }
        }
        Boot::Files => out.disabled = systemd::disable(layout, name, None)?,
        Boot::Systemctl(runner) => out.disabled = systemd::disable(layout, name, Some(*runner))?,
    }
    match std::fs::remove_file(&path) {
        Ok(()) => out.removed_profile = Some(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(PersistError::Failed(format!(
                "cannot remove {}: {e}",
                path.display()
            )));
        }
    }
    // An empty /etc/dscproute goes too; anything else in it stays.
    let _ = std::fs::remove_dir(layout.config_dir());
    if layout.persisted_names().is_empty() {
        out.removed_template = match boot {
            Boot::Manual => None,
            Boot::Files => systemd::remove_own_template(layout, None)?,
            Boot::Systemctl(runner) => systemd::remove_own_template(layout, Some(*runner))?,
        };
    }
    Ok(out)
}
