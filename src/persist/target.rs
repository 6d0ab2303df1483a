//! Where `persist` installs (a root directory) and how the unit gets enabled
//! there: shared by the CLI and the TUI.

use super::{Boot, Layout, PACKAGED_EXE};
use crate::runner::{SystemRunner, find_program};
use std::path::Path;

/// The root to install under, and whether it is this running host's.
pub struct Target {
    pub layout: Layout,
    pub host: bool,
}

impl Target {
    pub fn resolve(root: &Path) -> Result<Target, String> {
        let canonical = root.canonicalize().map_err(|e| {
            format!(
                "--root {}: {e}: give an existing directory (/ for this host)",
                root.display()
            )
        })?;
        if !canonical.is_dir() {
            return Err(format!("--root {}: not a directory", root.display()));
        }
        Ok(Target {
            host: canonical == Path::new("/"),
            layout: Layout::new(&canonical),
        })
    }

    /// How the unit gets enabled. On this host: `systemctl` when systemd is
    /// running (sd_booted: /run/systemd/system exists), else a recipe for the
    /// init system. Under another root (an image): the symlinks `systemctl
    /// --root` writes when the image has systemd's unit directories, else the
    /// recipe.
    pub fn boot(&self) -> Boot<'static> {
        if self.host {
            if Path::new("/run/systemd/system").is_dir() && find_program("systemctl").is_some() {
                return Boot::Systemctl(&SystemRunner);
            }
            return Boot::Manual;
        }
        let has_systemd = [
            "/etc/systemd/system",
            "/usr/lib/systemd/system",
            "/lib/systemd/system",
        ]
        .iter()
        .any(|d| self.layout.under(d).is_dir());
        if has_systemd {
            Boot::Files
        } else {
            Boot::Manual
        }
    }

    /// The binary a unit or script we write runs: this one on this host,
    /// the packaged path in an image.
    pub fn exe(&self) -> String {
        if self.host
            && let Ok(p) = std::env::current_exe().and_then(|p| p.canonicalize())
        {
            return p.display().to_string();
        }
        PACKAGED_EXE.to_string()
    }

    /// The agent's `--state-dir`, when the setup's journal is not in the
    /// default place: on this host only (an image boots with the default).
    pub fn agent_state_dir(&self, state: &Path) -> Option<String> {
        (self.host && state != Path::new(crate::apply::state_dir::DEFAULT))
            .then(|| state.display().to_string())
    }
}
