//! What must hold on the host before a plan can run: the group, the VPN
//! interface and its next hops, the tools. Each problem says how to fix it.

use super::PlanOptions;
use crate::probe::{HostFacts, Link};
use crate::profile::{Gateway, GroupRef, Marker, Profile, UserRef, Who};
use std::net::{IpAddr, Ipv6Addr};

/// Tool -> Debian package that ships it.
const TOOLS: &[(&str, &str, bool)] = &[
    // (tool, package, needed by the marker too)
    ("ip", "iproute2", false),
    ("iptables", "iptables", true),
    ("ip6tables", "iptables", true),
];

pub fn check(
    profile: &Profile,
    facts: &HostFacts,
    opts: PlanOptions,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) {
    // An empty tools map means the probe did not look (e.g. recorded facts).
    if !facts.tools.is_empty() && !opts.for_script {
        for (tool, pkg, marker_too) in TOOLS {
            let needed = profile.is_gateway() || *marker_too;
            if needed && !facts.has_tool(tool) {
                problems.push(format!(
                    "{tool} is not installed: install it with `apt-get install {pkg}` (Debian \
                     package {pkg})"
                ));
            }
        }
    }
    if let Some(m) = &profile.marker {
        if let Some(GroupRef::Name(n)) = m.group()
            && m.create_group
            && !opts.for_script
            && !facts.tools.is_empty()
            && !facts.groups.is_empty()
            && facts.group_by_name(n).is_none()
            && matches!(facts.tools.get("groupadd"), Some(None))
        {
            problems.push(
                "groupadd is not installed, so marker.create_group cannot create the group: \
                 install it with `apt-get install passwd`, or create the group yourself"
                    .into(),
            );
        }
        who(m, facts, opts, problems, warnings);
        match m.group() {
            Some(GroupRef::Name(n))
                if facts.group_by_name(n).is_none()
                    && !facts.groups.is_empty()
                    && !m.create_group =>
            {
                if opts.for_script {
                    warnings.push(format!(
                        "group {n:?} does not exist on this host; the script resolves it by name \
                         where it runs"
                    ));
                } else {
                    problems.push(format!(
                        "group {n:?} does not exist: create it with `groupadd {n}` or set \
                         marker.create_group = true, or set marker.group to an existing group \
                         (see `getent group`)"
                    ));
                }
            }
            Some(GroupRef::Gid(g))
                if facts.group_by_gid(*g).is_none() && !facts.groups.is_empty() =>
            {
                warnings.push(format!(
                    "gid {g} has no group name on this host; processes must still run with that \
                     gid to be marked"
                ));
            }
            _ => {}
        }
    }
    if let Some(g) = &profile.gateway {
        gateway(g, facts, opts, problems, warnings);
    }
}

/// A user, unit or cgroup marker: what must exist for its rule to be added.
fn who(
    m: &Marker,
    facts: &HostFacts,
    opts: PlanOptions,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) {
    match &m.who {
        Who::Group(_) | Who::User(UserRef::Uid(_)) => {}
        Who::User(UserRef::Name(n)) if facts.user_by_name(n).is_none() => {
            if opts.for_script {
                warnings.push(format!(
                    "user {n:?} was not looked up here; iptables resolves the name where the \
                     script runs"
                ));
            } else {
                problems.push(format!(
                    "user {n:?} is not known on this host (`getent passwd {n}` finds nothing): \
                     set marker.user to an existing user or to a numeric uid"
                ));
            }
        }
        Who::User(_) => {}
        Who::Unit(u) => match facts.units.get(u) {
            _ if opts.for_script => problems.push(format!(
                "marker.unit: the cgroup of {u} is known only on the client while it runs, so \
                 a script cannot be planned for it; on that host take the path that \
                 `systemctl show -p ControlGroup --value {u}` prints and use marker.cgroup"
            )),
            None => problems.push(format!(
                "marker.unit: systemd could not be asked for the cgroup of {u} on this host \
                 (see the warnings): unit markers need systemd; use marker.cgroup or \
                 marker.group otherwise"
            )),
            Some(None) => problems.push(format!(
                "unit {u} is not running, so it has no cgroup to match (iptables and nftables \
                 look the cgroup up when the rule is added): start it (`systemctl start {u}`) \
                 and plan again"
            )),
            Some(Some(path)) => match crate::profile::normalize_cgroup_path(path) {
                Ok(p) if p == *path => cgroup_exists(path, facts, problems),
                _ => problems.push(format!(
                    "systemd gives {u} the cgroup {}, which dscproute does not match (it takes \
                     letters, digits, ':', '-', '_', '.', '@' and '/' only): mark a slice with a \
                     plain name, or use marker.cgroup",
                    crate::text::clip(path)
                )),
            },
        },
        Who::Cgroup(path) => {
            if opts.for_script {
                warnings.push(format!(
                    "cgroup {path} was not checked here; it must exist where the script runs \
                     (the rule cannot be added before it does)"
                ));
            } else if facts.cgroup2.is_none() {
                problems.push(
                    "marker.cgroup needs the cgroup v2 hierarchy, and none is mounted on this \
                     host (no cgroup2 line in /proc/self/mountinfo): mount it, or mark a group \
                     or a user instead"
                        .into(),
                );
            } else {
                cgroup_exists(path, facts, problems);
            }
        }
    }
}

/// The rule cannot be added before the cgroup exists: the kernel resolves
/// the path when the rule is loaded.
fn cgroup_exists(path: &str, facts: &HostFacts, problems: &mut Vec<String>) {
    if let (Some(None), Some(mount)) = (facts.cgroups.get(path), &facts.cgroup2) {
        problems.push(format!(
            "cgroup {path} does not exist under {mount} yet, and the rule matching it can only \
             be added once it does: create it (`mkdir -p {mount}/{path}`) or start what \
             creates it, then plan again"
        ));
    }
}

pub(super) fn gateway(
    g: &Gateway,
    facts: &HostFacts,
    opts: PlanOptions,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) {
    if opts.without_vpn {
        // Nothing planned needs the interface (`PlanOptions::without_vpn`).
        return;
    }
    let Some(link) = facts.link(&g.interface) else {
        if opts.for_script || facts.links.is_empty() {
            warnings.push(format!(
                "interface {} was not checked here; it must exist where the plan runs",
                g.interface
            ));
            return;
        }
        let names: Vec<&str> = facts.links.iter().map(|l| l.name.as_str()).collect();
        problems.push(format!(
            "interface {} does not exist: bring the VPN up first (e.g. `wg-quick up {}`), or \
             set gateway.interface to one of: {}",
            g.interface,
            g.interface,
            names.join(", ")
        ));
        return;
    };
    let p2p = is_point_to_point(link);
    match g.via {
        Some(via) if !on_link(link, IpAddr::V4(via)) => problems.push(format!(
            "gateway.via {via} is not on-link through {} (its IPv4 addresses: {}): use the VPN \
             peer's address inside the tunnel subnet",
            g.interface,
            addrs_of(link, "inet")
        )),
        Some(_) => {}
        None if !p2p => problems.push(format!(
            "gateway.via is required: {} is not a point-to-point interface, so the default route \
             needs a next hop (e.g. via = \"10.8.0.1\")",
            g.interface
        )),
        None => {}
    }
    if let Some(via6) = g.via6
        && !is_link_local(via6)
        && !on_link(link, IpAddr::V6(via6))
    {
        problems.push(format!(
            "gateway.via6 {via6} is not on-link through {} (its IPv6 addresses: {}): use \
             the VPN peer's IPv6 address, or a fe80:: link-local address",
            g.interface,
            addrs_of(link, "inet6")
        ));
    }
    if !link.flags.iter().any(|f| f == "UP") {
        warnings.push(format!(
            "{} is down: marked traffic will be unreachable (kill switch) until it is up",
            g.interface
        ));
    }
}

fn is_point_to_point(link: &Link) -> bool {
    link.flags.iter().any(|f| f == "POINTOPOINT") || link.link_type == "none"
}

fn is_link_local(a: Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

fn addrs_of(link: &Link, family: &str) -> String {
    let v: Vec<String> = link
        .addrs
        .iter()
        .filter(|a| a.family == family)
        .map(|a| format!("{}/{}", a.local, a.prefixlen))
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Is `ip` inside one of the link's prefixes, or its point-to-point peer?
pub fn on_link(link: &Link, ip: IpAddr) -> bool {
    link.addrs.iter().any(|a| {
        let peer_match = a
            .peer
            .as_deref()
            .and_then(|p| p.split('/').next()?.parse::<IpAddr>().ok())
            == Some(ip);
        let Ok(local) = a.local.parse::<IpAddr>() else {
            return peer_match;
        };
        peer_match || in_prefix(local, a.prefixlen, ip)
    })
}

fn in_prefix(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let len = u32::from(len.min(32));
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(n) & mask == u32::from(i) & mask && i != n
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let len = u32::from(len.min(128));
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(n) & mask == u128::from(i) & mask && i != n
        }
        _ => false,
    }
}

/// The `--gid-owner` argument: the numeric gid when known (iptables-save
/// prints numbers), otherwise the name for the target host to resolve.
pub fn group_arg(g: &GroupRef, facts: &HostFacts) -> String {
    match g {
        GroupRef::Gid(id) => id.to_string(),
        GroupRef::Name(n) => facts
            .group_by_name(n)
            .map(|g| g.gid.to_string())
            .unwrap_or_else(|| n.clone()),
    }
}

/// The `--uid-owner` argument: the numeric uid when known, else the name.
pub fn user_arg(u: &UserRef, facts: &HostFacts) -> String {
    match u {
        UserRef::Uid(id) => id.to_string(),
        UserRef::Name(n) => facts
            .user_by_name(n)
            .map(|u| u.uid.to_string())
            .unwrap_or_else(|| n.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Addr;

    fn link(addrs: &[(&str, &str, u8, Option<&str>)]) -> Link {
        Link {
            name: "wg0".into(),
            addrs: addrs
                .iter()
                .map(|(f, l, p, peer)| Addr {
                    family: (*f).into(),
                    local: (*l).into(),
                    prefixlen: *p,
                    peer: peer.map(str::to_string),
                    scope: "global".into(),
                })
                .collect(),
            ..Link::default()
        }
    }

    #[test]
    fn on_link_checks() {
        let l = link(&[
            ("inet", "10.8.0.2", 24, None),
            ("inet6", "fd00::2", 64, None),
        ]);
        assert!(on_link(&l, "10.8.0.1".parse().unwrap()));
        assert!(
            !on_link(&l, "10.8.0.2".parse().unwrap()),
            "own address is no next hop"
        );
        assert!(!on_link(&l, "10.9.0.1".parse().unwrap()));
        assert!(on_link(&l, "fd00::1".parse().unwrap()));
        assert!(!on_link(&l, "fd01::1".parse().unwrap()));
        let p2p = link(&[("inet", "10.8.0.2", 32, Some("10.8.0.1/32"))]);
        assert!(on_link(&p2p, "10.8.0.1".parse().unwrap()));
        assert!(!on_link(&p2p, "10.8.0.3".parse().unwrap()));
    }
}
