//! `dscproute persist` / `unpersist`: make a kept setup come back at boot.

use super::{exit, fail};
use crate::apply::{Journal, StateDir};
use crate::output;
use crate::persist::{
    self, Boot, BootOutcome, Layout, PACKAGED_EXE, PersistError, confirmed, systemd,
};
use crate::plan::{self, PlanOptions};
use crate::probe;
use crate::profile::Profile;
use crate::runner::{SystemRunner, find_program};
use clap::Args;
use std::path::{Path, PathBuf};

/// The root to install under, and whether it is this running host's.
struct Target {
    layout: Layout,
    host: bool,
}

impl Target {
    fn resolve(root: &Path) -> Result<Target, String> {
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
    fn boot(&self) -> Boot<'static> {
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
    fn exe(&self) -> String {
        if self.host
            && let Ok(p) = std::env::current_exe().and_then(|p| p.canonicalize())
        {
            return p.display().to_string();
        }
        PACKAGED_EXE.to_string()
    }
}

fn code(e: &PersistError) -> i32 {
    match e {
        PersistError::Usage(_) => exit::USAGE,
        PersistError::NotNow(_) => exit::BLOCKED,
        PersistError::Failed(_) => exit::FAILED,
    }
}

fn need_root(target: &Target, what: &str) -> Option<i32> {
    (target.host && !crate::runner::is_root()).then(|| {
        fail(
            exit::BLOCKED,
            &format!(
                "{what} writes /etc and enables a unit, and needs root: run it as root (or \
                 give --root DIR to install into an image)"
            ),
        )
    })
}

#[derive(Debug, Args)]
pub struct PersistArgs {
    /// The profile that was applied and kept.
    #[arg(long, short)]
    pub profile: PathBuf,
    /// Name of the persisted profile and unit instance [default: the file stem].
    #[arg(long)]
    pub name: Option<String>,
    /// Filesystem root to install under (for tests and image builds).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
}

#[derive(Debug, Args)]
pub struct UnpersistArgs {
    /// The NAME given to (or chosen by) `persist`.
    pub name: String,
    /// Filesystem root the profile was installed under.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
}

pub fn persist_cmd(state: &StateDir, args: &PersistArgs) -> i32 {
    let (profile_path, name, root) = (&args.profile, args.name.as_deref(), &args.root);
    let profile = match Profile::load(profile_path) {
        Ok(p) => p,
        Err(e) => return fail(exit::USAGE, &e.to_string()),
    };
    let text = match std::fs::read(profile_path) {
        Ok(t) => t,
        Err(e) => {
            return fail(
                exit::USAGE,
                &format!("cannot read {}: {e}", profile_path.display()),
            );
        }
    };
    let name = match name {
        Some(n) => persist::validate_name(n).map(|()| n.to_string()),
        None => persist::default_name(profile_path),
    };
    let name = match name {
        Ok(n) => n,
        Err(e) => return fail(exit::USAGE, &e),
    };
    let target = match Target::resolve(root) {
        Ok(t) => t,
        Err(e) => return fail(exit::USAGE, &e),
    };
    if let Some(code) = need_root(&target, "persist") {
        return code;
    }
    let journal = match Journal::load(state) {
        Ok(j) => j,
        Err(e) => {
            let message = e.to_string();
            return fail(super::code(crate::ops::JournalError(e).kind()), &message);
        }
    };
    let mut in_place = || {
        let facts = probe::probe_system();
        plan::plan(&profile, &facts, PlanOptions::default())
            .is_ok_and(|p| p.is_applicable() && p.is_noop())
    };
    let evidence = match confirmed::check(journal.as_ref(), profile_path, &text, &mut in_place) {
        Ok(e) => e,
        Err(e) => return fail(exit::BLOCKED, &format!("not persisting: {e}")),
    };
    let interface = profile.gateway.as_ref().map(|g| g.interface.as_str());
    let boot = target.boot();
    let done = match persist::persist(
        &target.layout,
        &name,
        &text,
        interface,
        &boot,
        &target.exe(),
    ) {
        Ok(d) => d,
        Err(e) => return fail(code(&e), &e.to_string()),
    };
    output::print(&persist_report(&target, &done, &evidence, interface));
    exit::OK
}

fn persist_report(
    target: &Target,
    done: &persist::Persisted,
    evidence: &confirmed::Evidence,
    interface: Option<&str>,
) -> String {
    let profile = &done.profile.display();
    let name = &done.name;
    match &done.boot {
        BootOutcome::Enabled { unit, .. } if !done.changed() => format!(
            "Nothing changed: {profile} already holds this profile and {unit} is enabled.\n"
        ),
        BootOutcome::Enabled {
            unit,
            template_installed,
            ..
        } => {
            let waits = interface.map_or(String::new(), |i| {
                format!(" (retrying every 10 s while {i} is missing)")
            });
            let mut o = format!(
                "Persisted {name}, the setup of transaction {} (applied and kept):\n  \
                 profile   {profile} (mode 0644)\n  \
                 unit      {unit} enabled: at boot, once the network is online, it applies the \
                 profile{waits}; stopping it rolls the setup back\n",
                evidence.transaction()
            );
            if let Some(t) = template_installed {
                o.push_str(&format!(
                    "  template  {} (no packaged {} was found; it runs {})\n",
                    t.display(),
                    systemd::TEMPLATE_NAME,
                    target.exe()
                ));
            }
            o.push_str(&format!(
                "The running setup is unchanged. `dscproute unpersist {name}` undoes this.\n"
            ));
            o
        }
        BootOutcome::Manual(recipe) => {
            let head = if done.profile_changed {
                format!(
                    "Installed {profile} (the setup of transaction {}, applied and kept).",
                    evidence.transaction()
                )
            } else {
                format!("Nothing changed: {profile} already holds this profile.")
            };
            format!("{head}\n{recipe}")
        }
    }
}

pub fn unpersist_cmd(args: &UnpersistArgs) -> i32 {
    let (name, root) = (args.name.as_str(), &args.root);
    if let Err(e) = persist::validate_name(name) {
        return fail(exit::USAGE, &e);
    }
    let target = match Target::resolve(root) {
        Ok(t) => t,
        Err(e) => return fail(exit::USAGE, &e),
    };
    if let Some(code) = need_root(&target, "unpersist") {
        return code;
    }
    let boot = target.boot();
    let done = match persist::unpersist(&target.layout, name, &boot) {
        Ok(d) => d,
        Err(e) => return fail(code(&e), &e.to_string()),
    };
    output::print(&unpersist_report(&target, &done));
    exit::OK
}

fn unpersist_report(target: &Target, done: &persist::Unpersisted) -> String {
    let name = &done.name;
    let unit = persist::unit_name(name);
    if !done.changed() {
        return format!(
            "Nothing changed: {name} is not persisted here (no {}, {unit} not enabled).\n",
            &target.layout.profile(name).display()
        );
    }
    let mut parts: Vec<String> = Vec::new();
    if done.disabled {
        parts.push(format!("disabled {unit}"));
    }
    if let Some(p) = &done.removed_profile {
        parts.push(format!("removed {}", p.display()));
    }
    if let Some(p) = &done.removed_template {
        parts.push(format!("removed {} (installed by persist)", p.display()));
    }
    let mut o = format!(
        "Unpersisted {name}: {}. The running setup stays until `dscproute rollback` (or the next \
         boot).\n",
        parts.join(", ")
    );
    if let Some(m) = &done.manual {
        o.push_str(m);
    }
    o
}
