//! `exec`: run one command so that its traffic carries the signal, like
//! `mullvad-exclude` or `vopono exec`. This decides how (which identity, which
//! cgroup, which wrapper) and refuses while the client side is not in place;
//! the front then switches and replaces itself with the command.

use super::{Host, Kind};
use crate::plan::{self, PlanOptions, Role, StepState};
use crate::profile::{Profile, Who};
use std::path::PathBuf;
use thiserror::Error;

/// Who ran `sudo dscproute exec`: the command runs as them, not as root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invoker {
    pub uid: u32,
    pub gid: u32,
    /// For their supplementary groups (`initgroups`).
    pub name: Option<String>,
}

impl Invoker {
    /// From SUDO_UID, SUDO_GID and SUDO_USER; None when not run through sudo
    /// (or by root's own sudo).
    pub fn from_sudo(uid: Option<&str>, gid: Option<&str>, user: Option<&str>) -> Option<Invoker> {
        let uid: u32 = uid?.parse().ok()?;
        let gid: u32 = gid?.parse().ok()?;
        (uid != 0).then(|| Invoker {
            uid,
            gid,
            name: user
                .filter(|n| crate::profile::valid_group_name(n))
                .map(str::to_string),
        })
    }
}

/// The identity the command runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Become {
    /// As dscproute runs.
    Stay,
    /// Root with this primary group (and its own supplementary groups).
    Gid(u32),
    /// This user with this primary group; supplementary groups are the
    /// user's (`initgroups`) when named, else only the primary group.
    User {
        uid: u32,
        gid: u32,
        name: Option<String>,
    },
}

/// How to start the command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    /// Write our pid here first (`cgroup.procs` of the marked cgroup).
    pub join_cgroup: Option<PathBuf>,
    pub become_: Become,
    /// What to execute (the command, or systemd-run wrapping it).
    pub argv: Vec<String>,
    /// One line for stderr: which profile and marker.
    pub says: String,
}

#[derive(Debug, Error)]
#[error("{message}")]
pub struct ExecError {
    pub kind: Kind,
    pub message: String,
}

fn refuse(kind: Kind, message: String) -> ExecError {
    ExecError { kind, message }
}

pub struct Request<'a> {
    pub profile: &'a Profile,
    /// The profile's path, as given (for messages).
    pub path: &'a str,
    pub command: &'a [String],
    pub invoker: Option<Invoker>,
    /// Looks a uid up: (name, primary gid).
    pub passwd: &'a dyn Fn(u32) -> Option<(String, u32)>,
}

/// Decide how to run the command, after checking that the profile's marker
/// rules are in place here.
pub fn prepare(host: &Host, req: &Request) -> Result<Launch, ExecError> {
    let Some(m) = &req.profile.marker else {
        return Err(refuse(
            Kind::Refused,
            format!(
                "{} has no [marker]: exec runs a command on a client host",
                req.path
            ),
        ));
    };
    if !host.is_root {
        return Err(refuse(
            Kind::NotNow,
            "exec needs root, to check the marker rules and to put the command in the marked \
             group, user or cgroup: run `sudo dscproute exec …` (the command then runs as you)"
                .into(),
        ));
    }
    let facts = host.facts_for(req.profile);
    let planned = plan::plan(req.profile, &facts, PlanOptions::default()).map_err(|e| {
        refuse(
            Kind::NotNow,
            format!("the client side of {} cannot be checked: {e}", req.path),
        )
    })?;
    let pending = planned
        .steps
        .iter()
        .filter(|s| s.role == Role::Marker && s.state != StepState::InPlace)
        .count();
    if pending > 0 || facts.iptables_save.is_none() || !planned.errors.is_empty() {
        let why = match planned.errors.first() {
            Some(e) => e.clone(),
            None if pending > 0 => format!("{pending} of its marker steps are not in place"),
            None => "the rules could not be read".into(),
        };
        return Err(refuse(
            Kind::NotNow,
            format!(
                "the client side of {} is not applied here ({why}): run `dscproute apply \
                 --profile {}` first, or the command would go the normal way",
                req.path, req.path
            ),
        ));
    }
    let r = &planned.resolved;
    let says = format!("exec with profile {} (marker: {})", req.path, m.who);
    let mut launch = Launch {
        join_cgroup: None,
        become_: Become::Stay,
        argv: req.command.to_vec(),
        says,
    };
    let as_invoker = |gid: Option<u32>| match &req.invoker {
        Some(i) => Become::User {
            uid: i.uid,
            gid: gid.unwrap_or(i.gid),
            name: i.name.clone(),
        },
        None => gid.map_or(Become::Stay, Become::Gid),
    };
    match &m.who {
        Who::Group(_) => {
            let gid = r
                .group
                .as_deref()
                .and_then(|g| g.parse().ok())
                .ok_or_else(|| {
                    refuse(
                        Kind::Refused,
                        format!("the group of {} has no gid here", req.path),
                    )
                })?;
            launch.become_ = as_invoker(Some(gid));
        }
        Who::User(u) => {
            let uid: u32 = r
                .user
                .as_deref()
                .and_then(|g| g.parse().ok())
                .ok_or_else(|| refuse(Kind::Refused, format!("user {u} has no uid here")))?;
            let Some((name, gid)) = (req.passwd)(uid) else {
                return Err(refuse(
                    Kind::Refused,
                    format!(
                        "uid {uid} has no passwd entry, so exec cannot tell its groups: run \
                         `setpriv --reuid={uid} --regid=GID --clear-groups COMMAND` as root instead"
                    ),
                ));
            };
            launch.become_ = Become::User {
                uid,
                gid,
                name: Some(name),
            };
        }
        Who::Unit(u) => {
            if !u.ends_with(".slice") {
                return Err(refuse(
                    Kind::Refused,
                    format!(
                        "exec starts commands in a slice, and {u} is not one: mark a slice \
                         (e.g. unit = \"vpn.slice\") to use exec, or run the program through {u}"
                    ),
                ));
            }
            let mut argv: Vec<String> =
                ["systemd-run", "--scope", &format!("--slice={u}"), "--quiet"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
            if let Some(i) = &req.invoker {
                argv.push(format!("--uid={}", i.uid));
                argv.push(format!("--gid={}", i.gid));
            }
            argv.push("--".into());
            argv.extend(req.command.iter().cloned());
            launch.argv = argv;
        }
        Who::Cgroup(path) => {
            let mount = facts.cgroup2.as_deref().ok_or_else(|| {
                refuse(
                    Kind::Refused,
                    "no cgroup v2 hierarchy is mounted here".into(),
                )
            })?;
            launch.join_cgroup = Some(
                host.root
                    .join(mount.trim_start_matches('/'))
                    .join(path)
                    .join("cgroup.procs"),
            );
            launch.become_ = as_invoker(None);
        }
    }
    Ok(launch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_invoker_comes_from_sudo_and_never_is_root() {
        assert_eq!(
            Invoker::from_sudo(Some("1000"), Some("1000"), Some("alice")),
            Some(Invoker {
                uid: 1000,
                gid: 1000,
                name: Some("alice".into())
            })
        );
        assert_eq!(Invoker::from_sudo(Some("0"), Some("0"), Some("root")), None);
        assert_eq!(Invoker::from_sudo(None, Some("1"), None), None);
        assert_eq!(Invoker::from_sudo(Some("x"), Some("1"), None), None);
        let odd = Invoker::from_sudo(Some("5"), Some("5"), Some("a b")).unwrap();
        assert_eq!(odd.name, None);
    }
}
