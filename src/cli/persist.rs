//! `dscproute persist` / `unpersist`: keep a kept setup up with the agent,
//! from boot on.

use super::{exit, fail};
use crate::apply::{Journal, StateDir};
use crate::output;
use crate::persist::kept::{self, Request};
use crate::persist::target::Target;
use crate::persist::{self, BootOutcome, PersistError, confirmed, systemd};
use crate::profile::Profile;
use clap::Args;
use std::path::PathBuf;

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
    let req = Request {
        profile: &profile,
        text: &text,
        path: profile_path,
        name: &name,
        state_dir: state.path(),
    };
    let (done, evidence) = match kept::persist_kept(&target, journal.as_ref(), &req) {
        Ok(d) => d,
        Err(e) => return fail(code(&e), &e.to_string()),
    };
    output::print(&persist_report(&target, &done, &evidence));
    exit::OK
}

fn persist_report(
    target: &Target,
    done: &persist::Persisted,
    evidence: &confirmed::Evidence,
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
            let now = if target.host {
                "enabled and started"
            } else {
                "enabled"
            };
            let mut o = format!(
                "Persisted {name}, the setup of transaction {} (applied and kept):\n  \
                 profile   {profile} (mode 0644)\n  \
                 unit      {unit} {now}: it runs `dscproute agent` on the profile, which keeps \
                 the setup in place (and waits for the VPN interface when it is missing)\n",
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
                "`systemctl stop {unit}` stops the agent and leaves the setup in place. \
                 `dscproute unpersist {name}` undoes this (and stops the agent); `dscproute \
                 rollback --yes` then removes the setup.\n"
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
        let how = if target.host {
            "stopped and disabled"
        } else {
            "disabled"
        };
        parts.push(format!("{how} {unit}"));
    }
    if let Some(p) = &done.removed_profile {
        parts.push(format!("removed {}", p.display()));
    }
    if let Some(p) = &done.removed_template {
        parts.push(format!("removed {} (installed by persist)", p.display()));
    }
    let mut o = format!(
        "Unpersisted {name}: {}. The setup stays in place until `dscproute rollback --yes`.\n",
        parts.join(", ")
    );
    if let Some(m) = &done.manual {
        o.push_str(m);
    }
    o
}
