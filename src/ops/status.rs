//! What dscproute has in place here (see `apply::status`).

use super::Host;
pub use crate::apply::status::{ClassStatus, Status};
use crate::ownership::is_our_proto;
use crate::plan::{self, PlanOptions};
use crate::probe::HostFacts;
use crate::profile::Profile;
use std::path::Path;

/// The status report; `Status::needs_action` says whether something
/// needs a command (the CLI then exits 1).
pub fn status(host: &Host) -> Status {
    let mut facts = (host.probe)(crate::probe::Reads::ALL);
    let mut s = crate::apply::status::gather_dir(&host.state, &facts, host.runner);
    if let Some(t) = &s.transaction {
        if let Some(a) = &s.agent {
            facts.unhealthy = a.held_down.clone();
        }
        s.classes = classes(&t.profile, &facts);
    }
    // A running agent says since when and why each class is where it is.
    if let Some(a) = &s.agent {
        for c in &mut s.classes {
            if let Some(r) = a.classes.iter().find(|r| r.class == c.name) {
                c.since_unix = Some(r.since_unix);
                c.why = Some(r.why.clone());
            }
        }
    }
    s
}

/// The classes of a `[[class]]` profile (read again from where the
/// transaction says it came from) and the uplink each routes through now:
/// our route in its table. Nothing when the file is gone or unreadable.
fn classes(profile: &str, facts: &HostFacts) -> Vec<ClassStatus> {
    let Ok(p) = Profile::load(Path::new(profile)) else {
        return Vec::new();
    };
    if p.classes.is_empty() {
        return Vec::new();
    }
    let Ok(plan) = plan::plan(&p, facts, PlanOptions::default()) else {
        return Vec::new();
    };
    plan.resolved
        .classes
        .iter()
        .map(|c| {
            let uplink = facts
                .routes_v4
                .iter()
                .find(|r| {
                    r.dst == "default"
                        && is_our_proto(r.protocol.as_deref())
                        && c.table_id.is_some()
                        && facts.table_id(&r.table) == c.table_id
                })
                .and_then(|r| r.dev.clone());
            let kill_switch = p.classes.iter().any(|k| k.name == c.name && k.kill_switch);
            ClassStatus {
                name: c.name.clone(),
                dscp: c.dscp,
                mark: c.mark,
                table_id: c.table_id,
                blocked: uplink.is_none() && kill_switch,
                uplink,
                since_unix: None,
                why: None,
            }
        })
        .collect()
}
