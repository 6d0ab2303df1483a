//! Which of a class's uplinks its table routes through: the first one that
//! is usable now (there, up, next hop on-link). The choice is made when the
//! plan is made; the agent re-plans when the uplinks change.

use crate::probe::HostFacts;
use crate::profile::{Class, Profile, Uplink};
use std::net::IpAddr;

/// Why an uplink cannot carry a route now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wait {
    InterfaceMissing(String),
    InterfaceDown(String),
    /// The interface is up but `via` (or `via6`) is not on-link through it:
    /// the VPN client has not put its addresses back yet.
    NoNextHop(String),
}

impl Wait {
    pub fn describe(&self) -> String {
        match self {
            Wait::InterfaceMissing(i) => format!("{i} does not exist"),
            Wait::InterfaceDown(i) => format!("{i} is down"),
            Wait::NoNextHop(i) => format!("{i} has no address its next hop is on-link with"),
        }
    }
}

/// Is the interface there, up, and with its next hops on-link?
pub fn wait(u: &Uplink, facts: &HostFacts) -> Option<Wait> {
    let name = &u.interface;
    let Some(link) = facts.link(name) else {
        return Some(Wait::InterfaceMissing(name.clone()));
    };
    // Routes through a link without carrier are refused ("Network is down").
    let flag = |x: &str| link.flags.iter().any(|f| f == x);
    let up = flag("UP")
        && !flag("NO-CARRIER")
        && !matches!(link.state.as_str(), "DOWN" | "LOWERLAYERDOWN");
    if !up {
        return Some(Wait::InterfaceDown(name.clone()));
    }
    let hops = u.via.map(IpAddr::V4).into_iter().chain(
        u.via6
            .filter(|v| v.segments()[0] & 0xffc0 != 0xfe80)
            .map(IpAddr::V6),
    );
    for hop in hops {
        if !super::on_link(link, hop) {
            return Some(Wait::NoNextHop(name.clone()));
        }
    }
    None
}

/// The uplink a class's table routes through, and why, for the preview.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    /// Index into the class's uplinks; None: none is usable now.
    pub index: Option<usize>,
    pub why: String,
}

/// The first usable uplink. When this host's links were not read (a
/// script for another host), the first one, said so.
pub fn choose(c: &Class, facts: &HostFacts, for_script: bool) -> Choice {
    if for_script || facts.links.is_empty() {
        return Choice {
            index: Some(0),
            why: format!(
                "{}: the links were not read here, so the first one; it must be usable where \
                 the plan runs",
                c.uplinks[0].interface
            ),
        };
    }
    let mut skipped = Vec::new();
    for (i, u) in c.uplinks.iter().enumerate() {
        let failing = facts
            .unhealthy
            .iter()
            .find(|h| h.class == c.name && h.interface == u.interface)
            .map(|h| format!("{} fails its check: {}", u.interface, h.why));
        let problem = wait(u, facts)
            .map(|w| w.describe())
            .or(failing)
            .or_else(|| {
                let p2p = facts.link(&u.interface).is_some_and(|l| {
                    l.flags.iter().any(|f| f == "POINTOPOINT") || l.link_type == "none"
                });
                (u.via.is_none() && !p2p).then(|| {
                    format!(
                        "{} needs a via: it is not a point-to-point interface",
                        u.interface
                    )
                })
            });
        match problem {
            None => {
                let why = if skipped.is_empty() {
                    format!("{}: the first uplink, usable now", u.interface)
                } else {
                    format!(
                        "{}: the first usable one ({} skipped: {})",
                        u.interface,
                        skipped.len(),
                        skipped.join("; ")
                    )
                };
                return Choice {
                    index: Some(i),
                    why,
                };
            }
            Some(p) => skipped.push(p),
        }
    }
    Choice {
        index: None,
        why: format!("none usable now ({})", skipped.join("; ")),
    }
}

/// Is the gateway's VPN interface there, up, and with its next hop on-link?
/// A client-only profile never waits; neither does a `[[class]]` profile,
/// whose plan routes each class through its first usable uplink.
pub fn vpn_wait(profile: &Profile, facts: &HostFacts) -> Option<Wait> {
    let g = profile.gateway.as_ref()?;
    let class = crate::profile::Class::from(g);
    wait(&class.uplinks[0], facts)
}
