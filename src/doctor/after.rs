//! Checks once the profile is applied: its steps in place, its counters
//! moving, the VPN route, the kernel's route lookups for a marked packet
//! (local and forwarded from the LAN), the kill switch (modelled, the VPN
//! stays up), IPv6 routed or blocked, and who the marker covers (the
//! processes in its group, user or cgroup).

mod mark_path;

use super::fib::{self, Flow, Verdict};
use super::host::Proc;
use super::{Check, Inputs, TARGET4, TARGET6};
use crate::backend::{Op, nft};
use crate::ownership::{CHAIN_MARK, CHAIN_ROUTE};
use crate::plan::{Plan, Step, StepState};
use crate::probe::{CountedRule, HostFacts, Link};
use crate::profile::{Gateway, MatchMode, Who};
use crate::runner::Runner;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub fn is_sysctl(s: &Step) -> bool {
    matches!(s.apply, Op::Sysctl { .. })
}

/// A step removing a leftover of an earlier setup.
pub fn is_stale(s: &Step) -> bool {
    s.state == StepState::Change && s.apply.is_removal()
}

pub fn checks(i: &Inputs, plan: &Plan, runner: &dyn Runner) -> Vec<Check> {
    let mut out = vec![applied(i, plan)];
    if let Some(c) = counters(i) {
        out.push(c);
    }
    match i.profile.marker.as_ref().map(|m| &m.who) {
        Some(Who::Group(_)) => out.push(group(i, plan)),
        Some(who) => out.push(who_check(i, plan, who)),
        None => {}
    }
    out.extend(mark_path::check(i, plan));
    for v in i.gateways() {
        let mut checks = class_checks(i, &v, plan, runner);
        if let Some(name) = &v.class {
            for c in &mut checks {
                c.detail = format!("class {name}: {}", c.detail);
            }
        }
        out.extend(checks);
    }
    out
}

/// The route checks for one class (or `[gateway]`), through the uplink the
/// plan routes it by.
fn class_checks(
    i: &Inputs,
    v: &super::GatewayView,
    plan: &Plan,
    runner: &dyn Runner,
) -> Vec<Check> {
    let g = &v.gateway;
    let r = &v.resolved;
    if v.blocked {
        return vec![Check::warn(
            "uplink",
            format!(
                "none of its uplinks is usable, so its table has no route: its packets are \
                 {} ({})",
                if g.kill_switch {
                    "refused (kill switch)"
                } else {
                    "routed by the main table (kill_switch = false)"
                },
                v.why
            ),
            "the links, their state and addresses (ip link, ip addr)",
            format!(
                "bring an uplink of the class up, then apply again: {}",
                i.apply_cmd()
            ),
        )];
    }
    let Some(table) = r.table_id else {
        return Vec::new();
    };
    // Why this uplink: the first one up, with its next hop, and not held
    // down by its active check (a running agent's).
    let mut out = Vec::new();
    if v.class.is_some() && !v.why.is_empty() {
        out.push(Check::pass(
            "uplink",
            format!("routed through {}", v.why),
            "the class's uplinks in order: links, addresses, next hops and the running              agent's active checks",
        ));
    }
    // What selects our packets: the mark, or (match = "dscp-rule") the
    // DS byte, which `ip route get … tos` hands to the `dscp` rules.
    let (mark, sel, rule_sel) = match (g.match_mode, r.mark) {
        (MatchMode::DscpRule, _) => {
            let d = g.dscp.value();
            (0, format!("tos {:#04x}", d << 2), format!("dscp {d}"))
        }
        (MatchMode::Mark, Some(m)) => (
            m,
            format!("mark {m:#x}"),
            format!("fwmark {m:#x}/{:#x}", r.mask.unwrap_or(u32::MAX)),
        ),
        (MatchMode::Mark, None) => return out,
    };
    let ctx = GwCtx {
        i,
        g,
        mark,
        sel,
        rule_sel,
        table,
        table_label: match &r.table_name {
            Some(n) => format!("{table} ({n})"),
            None => table.to_string(),
        },
        lans: lan_links(i.facts, &g.interface),
    };
    // The kill-switch check reads the class's own priority.
    let mut view = plan.clone();
    view.resolved = r.clone();
    let route = vpn_route(&ctx);
    let lookups = Lookups::ask(&ctx, runner);
    out.extend([
        route,
        route_lookup(&ctx, &lookups),
        kill_switch(&ctx, &lookups, &view),
        ipv6(&ctx, &lookups),
    ]);
    out
}

fn applied(i: &Inputs, plan: &Plan) -> Check {
    let looked = "the plan for this profile against iptables-save, ip6tables-save, ip rule, \
                  ip route and rt_tables.d";
    let creating: Vec<&Step> = plan
        .steps
        .iter()
        .filter(|s| !is_sysctl(s) && !is_stale(s))
        .collect();
    let missing: Vec<&&Step> = creating
        .iter()
        .filter(|s| s.state != StepState::InPlace)
        .collect();
    let stale: Vec<&Step> = plan.pending().filter(|s| is_stale(s)).collect();
    if !missing.is_empty() {
        let shown: Vec<String> = missing
            .iter()
            .take(8)
            .map(|s| format!("`{}` ({})", s.apply.display(), s.reason))
            .collect();
        return Check::fail(
            "applied",
            format!(
                "missing: {} of the {} steps of this profile: {}{}",
                missing.len(),
                creating.len(),
                shown.join("; "),
                if missing.len() > 8 { "; …" } else { "" }
            ),
            looked,
            format!(
                "apply again: {} adds only what is missing. Then find what removed it: a \
                 firewall reload (iptables-restore, firewalld, ufw), a network restart, the VPN \
                 restarting (its routes go with it)",
                i.apply_cmd()
            ),
        );
    }
    if !stale.is_empty() {
        let shown: Vec<String> = stale.iter().take(5).map(|s| s.apply.display()).collect();
        return Check::warn(
            "applied",
            format!(
                "all {} steps are in place, and {} leftover{} of an earlier dscproute setup \
                 remain: {}",
                creating.len(),
                stale.len(),
                if stale.len() == 1 { "" } else { "s" },
                shown.join("; ")
            ),
            looked,
            format!(
                "{} removes them (they are listed as `~` in its preview)",
                i.apply_cmd()
            ),
        );
    }
    let what = if i.is_gateway() {
        "chains, rules, policy rules, routes"
    } else {
        "chains and rules"
    };
    Check::pass(
        "applied",
        format!(
            "all {} steps of this profile are in place ({what})",
            creating.len()
        ),
        looked,
    )
}

/// (IPv4, IPv6) packets of our rules in `chain` whose spec contains `needle`.
fn sum(rules: &[CountedRule], chain: &str, needle: &str) -> (u64, u64) {
    rules
        .iter()
        .filter(|r| r.chain == chain && r.spec.contains(needle))
        .fold((0, 0), |(a, b), r| {
            // One inet table holds both families; its IPv6 rules say `ip6`.
            if r.family == "IPv6" || (r.family == nft::FAMILY && r.spec.contains("ip6 ")) {
                (a, b + r.packets)
            } else {
                (a + r.packets, b)
            }
        })
}

fn counters(i: &Inputs) -> Option<Check> {
    let (before, after) = i.counters.as_ref()?;
    let secs = i.wire.map_or(0.0, |w| w.seconds);
    let mut parts = Vec::new();
    // In dscp-rule mode only policy rules route, and they count nothing.
    // The nft backend's rules (table inet dscproute), when that is what counted.
    let nft = before.iter().chain(after).any(|r| r.family == nft::FAMILY);
    if i.gateway().is_some_and(|g| g.match_mode == MatchMode::Mark) {
        parts.push(if nft {
            ("prerouting", "iifname != ", "marked for the VPN")
        } else {
            (CHAIN_ROUTE, "--set-xmark", "marked for the VPN")
        });
    }
    if i.is_marker() {
        parts.push(if nft {
            ("output", "dscp set", "given the DSCP")
        } else {
            (CHAIN_MARK, "--set-dscp", "given the DSCP")
        });
    }
    let mut moved_any = false;
    let mut detail = Vec::new();
    for (chain, needle, what) in parts {
        let (b4, b6) = sum(before, chain, needle);
        let (a4, a6) = sum(after, chain, needle);
        let (d4, d6) = (a4.saturating_sub(b4), a6.saturating_sub(b6));
        moved_any |= d4 + d6 > 0;
        detail.push(format!(
            "{chain}: {} packets {what} during the {secs:.1} s sample (IPv4 {d4}, IPv6 {d6}), {} \
             since apply",
            d4 + d6,
            a4 + a6
        ));
    }
    let looked = if nft {
        "nft list table inet dscproute, before and after the sample"
    } else {
        "iptables-save -c and ip6tables-save -c, before and after the sample"
    };
    Some(if moved_any {
        Check::pass("counters", detail.join("; "), looked)
    } else {
        Check::warn(
            "counters",
            format!(
                "no packet matched dscproute's rules during the sample: {}",
                detail.join("; ")
            ),
            looked,
            "make the group's program send something while doctor runs (a download), then run \
             doctor again; counters that never move mean the traffic is not there, not marked, \
             or accepted by an earlier rule before ours",
        )
    })
}

fn group(i: &Inputs, plan: &Plan) -> Check {
    let looked = "getent group, /proc/*/status (each process's fsgid, what the owner match tests)";
    let name = i
        .profile
        .marker
        .as_ref()
        .and_then(|m| m.group())
        .map(ToString::to_string)
        .unwrap_or_default();
    let Some(gid) = plan
        .resolved
        .group
        .as_deref()
        .and_then(|g| g.parse::<u32>().ok())
    else {
        return Check::fail(
            "group",
            format!("group {name:?} does not exist on this host"),
            looked,
            format!("create it (groupadd {name}) or set marker.create_group = true and apply"),
        );
    };
    let label = if name == gid.to_string() {
        format!("gid {gid}")
    } else {
        format!("{name} (gid {gid})")
    };
    let procs: Vec<&Proc> = i
        .extras
        .processes
        .iter()
        .filter(|p| p.fsgid == Some(gid))
        .collect();
    if procs.is_empty() {
        return Check::warn(
            "group",
            format!("no process runs in group {label} now: nothing is marked until one does"),
            looked,
            format!(
                "start the program in the group: `sg {name} -c CMD`, `setpriv --regid {gid} \
                 --clear-groups CMD`, or Group={name} in its systemd unit (a supplementary group \
                 is not enough: the owner match tests the socket's fsgid)"
            ),
        );
    }
    Check::pass(
        "group",
        format!(
            "{} in group {label}: {}",
            count(procs.len()),
            listing(&procs)
        ),
        looked,
    )
}

/// How many processes, as a phrase: "1 process runs", "3 processes run".
fn count(n: usize) -> String {
    if n == 1 {
        "1 process runs".into()
    } else {
        format!("{n} processes run")
    }
}

/// At most this many processes are named.
const LISTED: usize = 10;

/// "PID comm, PID comm, … and N more".
fn listing(procs: &[&Proc]) -> String {
    let mut s: Vec<String> = procs
        .iter()
        .take(LISTED)
        .map(|p| format!("{} {}", p.pid, p.comm))
        .collect();
    if procs.len() > LISTED {
        s.push(format!("and {} more", procs.len() - LISTED));
    }
    s.join(", ")
}

/// A user, unit or cgroup marker: which processes it covers now, so the
/// admin sees whether the program is really in it.
fn who_check(i: &Inputs, plan: &Plan, who: &Who) -> Check {
    let r = &plan.resolved;
    let (looked, label, procs): (&str, String, Vec<&Proc>) = match who {
        Who::User(u) => {
            let looked = "getent passwd, /proc/*/status (each process's fsuid, what the owner \
                          match tests)";
            let Some(uid) = r.user.as_deref().and_then(|u| u.parse::<u32>().ok()) else {
                return Check::fail(
                    "user",
                    format!("user {u} does not exist on this host"),
                    looked,
                    "set marker.user to an existing user or a numeric uid, and apply",
                );
            };
            let procs = i
                .extras
                .processes
                .iter()
                .filter(|p| p.fsuid == Some(uid))
                .collect();
            (looked, format!("as user {u} (uid {uid})"), procs)
        }
        _ => {
            let looked = "systemctl show -p ControlGroup, /proc/*/cgroup (each process's cgroup \
                          v2, what the cgroup match tests)";
            let Some(path) = r.cgroup.as_deref() else {
                return Check::fail(
                    who.kind(),
                    format!("{who} has no cgroup now (is it running?)"),
                    looked,
                    format!("start it, then run `{}` again", i.apply_cmd()),
                );
            };
            let inside = |p: &&Proc| {
                p.cgroup.as_deref().is_some_and(|c| {
                    c == path || c.strip_prefix(path).is_some_and(|r| r.starts_with('/'))
                })
            };
            let procs = i.extras.processes.iter().filter(inside).collect();
            let label = match who {
                Who::Unit(_) => format!("in {who} (cgroup {path})"),
                _ => format!("in {who}"),
            };
            (looked, label, procs)
        }
    };
    if procs.is_empty() {
        let how = match who {
            Who::User(u) => format!("start the program as {u} (`User=` in its unit, `sudo -u`)"),
            Who::Unit(u) => format!("start {u}, or a program in it (`dscproute exec` for a slice)"),
            _ => format!(
                "start the program in the cgroup (`dscproute exec --profile {} -- CMD`)",
                i.profile_path
            ),
        };
        return Check::warn(
            who.kind(),
            format!("no process runs {label} now: nothing is marked until one does"),
            looked,
            how,
        );
    }
    Check::pass(
        who.kind(),
        format!("{} {label}: {}", count(procs.len()), listing(&procs)),
        looked,
    )
}

struct GwCtx<'a> {
    i: &'a Inputs<'a>,
    g: &'a Gateway,
    /// 0 when routing goes by DSCP.
    mark: u32,
    /// `mark 0x3` or `tos 0x1c`: the words `ip route get` takes.
    sel: String,
    /// `fwmark 0x3/0xff` or `dscp 7`: what our policy rules select.
    rule_sel: String,
    table: u32,
    table_label: String,
    lans: Vec<Lan>,
}

/// A LAN interface and an address on it that is not ours, to look up from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lan {
    pub name: String,
    pub client4: Option<Ipv4Addr>,
    pub client6: Option<Ipv6Addr>,
}

/// A host address of `net/len` other than `own` (the first, else the second).
fn neighbour4(own: Ipv4Addr, len: u8) -> Option<Ipv4Addr> {
    if len > 30 {
        return None;
    }
    let mask = u32::MAX << (32 - u32::from(len));
    let net = u32::from(own) & mask;
    let first = net + 1;
    Some(Ipv4Addr::from(if first == u32::from(own) {
        first + 1
    } else {
        first
    }))
}

fn neighbour6(own: Ipv6Addr, len: u8) -> Option<Ipv6Addr> {
    if len > 126 {
        return None;
    }
    let mask = u128::MAX << (128 - u32::from(len));
    let net = u128::from(own) & mask;
    let first = net + 1;
    Some(Ipv6Addr::from(if first == u128::from(own) {
        first + 1
    } else {
        first
    }))
}

fn is_uplink(f: &HostFacts, dev: &str) -> bool {
    f.routes_v4
        .iter()
        .chain(&f.routes_v6)
        .any(|r| r.dst == "default" && r.table == "main" && r.dev.as_deref() == Some(dev))
}

/// Interfaces that look like LANs: up, not loopback, not the VPN, not
/// carrying a default route of main, with a global address.
pub fn lan_links(f: &HostFacts, vpn: &str) -> Vec<Lan> {
    let is_lan = |l: &&Link| {
        l.name != vpn
            && l.link_type != "loopback"
            && l.name != "lo"
            && l.flags.iter().any(|x| x == "UP")
            && !is_uplink(f, &l.name)
    };
    f.links
        .iter()
        .filter(is_lan)
        .filter_map(|l| {
            let global = |fam: &str| {
                l.addrs
                    .iter()
                    .find(|a| a.family == fam && a.scope == "global")
            };
            let client4 =
                global("inet").and_then(|a| neighbour4(a.local.parse().ok()?, a.prefixlen));
            let client6 =
                global("inet6").and_then(|a| neighbour6(a.local.parse().ok()?, a.prefixlen));
            (client4.is_some() || client6.is_some()).then(|| Lan {
                name: l.name.clone(),
                client4,
                client6,
            })
        })
        .collect()
}

/// What `ip -j route get` answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Route {
        dev: String,
        via: Option<String>,
        table: Option<String>,
    },
    Error(String),
}

impl Answer {
    fn describe(&self) -> String {
        match self {
            Answer::Route { dev, via, table } => {
                let via = via
                    .as_deref()
                    .map(|v| format!("via {v} "))
                    .unwrap_or_default();
                let table = table
                    .as_deref()
                    .map(|t| format!(" (table {t})"))
                    .unwrap_or_default();
                format!("{via}dev {dev}{table}")
            }
            Answer::Error(e) => format!("error: {e}"),
        }
    }

    fn refused(&self) -> bool {
        matches!(self, Answer::Error(e) if e.contains("unreachable") || e.contains("prohibited"))
    }
}

fn route_get(runner: &dyn Runner, args: &[String]) -> Answer {
    let mut argv: Vec<String> = vec!["ip".into(), "-j".into()];
    argv.extend(args.iter().cloned());
    match runner.run(&argv) {
        Ok(out) if out.success() => {
            let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
            let r = &v[0];
            match r["dev"].as_str() {
                Some(dev) => Answer::Route {
                    dev: dev.to_string(),
                    via: r["gateway"].as_str().map(str::to_string),
                    table: r["table"].as_str().map(str::to_string),
                },
                None => Answer::Error(format!("unexpected answer: {}", out.stdout.trim())),
            }
        }
        Ok(out) => Answer::Error(
            out.stderr
                .trim()
                .trim_start_matches("RTNETLINK answers: ")
                .to_string(),
        ),
        Err(e) => Answer::Error(e.to_string()),
    }
}

fn v(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The kernel's answers for a marked packet.
struct Lookups {
    sel_text: String,
    /// `ip route get TARGET4 mark M` (the gateway's own packets).
    local4: (String, Answer),
    /// `ip route get TARGET4 from CLIENT iif LAN mark M`, per LAN.
    forwarded4: Vec<(String, Answer)>,
    /// `ip route get CLIENT mark M`: marked traffic to the LAN stays there.
    lan_local: Vec<(String, String, Answer)>,
    local6: (String, Answer),
}

impl Lookups {
    fn ask(c: &GwCtx, runner: &dyn Runner) -> Lookups {
        let sel_text = c.sel.clone();
        let sel: Vec<&str> = c.sel.split(' ').collect();
        let get = |args: Vec<String>| {
            let shown = format!("ip route get {}", args[2..].join(" "));
            (shown, route_get(runner, &args))
        };
        let local4 = get(v(&[&["route", "get", TARGET4][..], &sel].concat()));
        let mut forwarded4 = Vec::new();
        let mut lan_local = Vec::new();
        for lan in &c.lans {
            let Some(client) = lan.client4 else { continue };
            let client = client.to_string();
            forwarded4.push(get(v(&[
                &["route", "get", TARGET4, "from", &client, "iif", &lan.name][..],
                &sel,
            ]
            .concat())));
            let (shown, answer) = get(v(&[&["route", "get", &client][..], &sel].concat()));
            lan_local.push((shown, lan.name.clone(), answer));
        }
        let (s6, a6) = {
            let args = v(&[&["-6", "route", "get", TARGET6][..], &sel].concat());
            (
                format!("ip -6 route get {TARGET6} {sel_text}"),
                route_get(runner, &args),
            )
        };
        Lookups {
            sel_text,
            local4,
            forwarded4,
            lan_local,
            local6: (s6, a6),
        }
    }
}

fn vpn_route(c: &GwCtx) -> Check {
    let f = c.i.facts;
    let dev = c.g.interface.as_str();
    let looked = format!(
        "ip addr show {dev}, ip route show table {}, ip -6 route show table {}",
        c.table, c.table
    );
    let fix_up = format!(
        "bring the VPN up (e.g. `wg-quick up {dev}`), then {} to put the route back; to make it \
         automatic, run that from the VPN's up hook (wg-quick: PostUp = dscproute apply \
         --profile … --yes)",
        c.i.apply_cmd()
    );
    let consequence = if c.g.kill_switch {
        "marked traffic is refused meanwhile (kill switch)"
    } else {
        "marked traffic falls back to the main uplink meanwhile (kill_switch = false)"
    };
    let Some(link) = f.link(dev) else {
        return Check::fail(
            "vpn-route",
            format!("{dev} does not exist: the VPN is down; {consequence}"),
            looked,
            fix_up,
        );
    };
    if !link.flags.iter().any(|x| x == "UP") {
        return Check::fail(
            "vpn-route",
            format!("{dev} is down; {consequence}"),
            looked,
            fix_up,
        );
    }
    let via4 = c.g.via.map(|a| a.to_string());
    let via6 = c.g.via6.map(|a| a.to_string());
    let find = |routes: &[crate::probe::Route], via: &Option<String>| {
        routes.iter().any(|r| {
            r.dst == "default"
                && (r.kind.is_empty() || r.kind == "unicast")
                && f.table_id(&r.table) == Some(c.table)
                && r.dev.as_deref() == Some(dev)
                && (via.is_none() || r.gateway == *via)
        })
    };
    let describe = |via: &Option<String>| match via {
        Some(v) => format!("default via {v} dev {dev}"),
        None => format!("default dev {dev}"),
    };
    let mut missing = Vec::new();
    if !find(&f.routes_v4, &via4) {
        missing.push(format!("IPv4 `{}`", describe(&via4)));
    }
    if via6.is_some() && !find(&f.routes_v6, &via6) {
        missing.push(format!("IPv6 `{}`", describe(&via6)));
    }
    if !missing.is_empty() {
        return Check::fail(
            "vpn-route",
            format!(
                "table {} lacks its route through the VPN: {}. A VPN restart (wg-quick down/up, \
                 a reconnect) removes routes through {dev}; {consequence}",
                c.table_label,
                missing.join(", ")
            ),
            looked,
            format!(
                "{} puts it back; run that from the VPN's up hook so it comes back by itself \
                 (wg-quick: PostUp = dscproute apply --profile … --yes)",
                c.i.apply_cmd()
            ),
        );
    }
    let mut present = vec![format!("{} (IPv4)", describe(&via4))];
    if via6.is_some() {
        present.push(format!("{} (IPv6)", describe(&via6)));
    }
    Check::pass(
        "vpn-route",
        format!(
            "{dev} is up; table {}: {}",
            c.table_label,
            present.join(", ")
        ),
        looked,
    )
}

fn via_vpn(c: &GwCtx, a: &Answer, via: Option<String>) -> bool {
    matches!(a, Answer::Route { dev, via: got, .. }
        if dev == &c.g.interface && (via.is_none() || *got == via))
}

fn route_lookup(c: &GwCtx, l: &Lookups) -> Check {
    let dev = &c.g.interface;
    let via4 = c.g.via.map(|a| a.to_string());
    let mut looked: Vec<String> = vec![l.local4.0.clone()];
    let mut problems = Vec::new();
    let mut good = Vec::new();
    let forwarding_off = c.i.facts.sysctl("net.ipv4.ip_forward") != Some("1");
    let explain = |a: &Answer| -> String {
        if a.refused() {
            format!(
                "{}: refused, the lookup in table {} found no route and the kill switch answered \
                 (see vpn-route)",
                a.describe(),
                c.table_label
            )
        } else if forwarding_off && matches!(a, Answer::Error(e) if e.contains("No route to host"))
        {
            format!("{}: forwarding is off (see forwarding)", a.describe())
        } else {
            format!("{}, not the VPN", a.describe())
        }
    };
    if via_vpn(c, &l.local4.1, via4.clone()) {
        good.push(format!("{TARGET4} → {}", l.local4.1.describe()));
    } else {
        problems.push(format!(
            "the gateway's own marked packets: {}",
            explain(&l.local4.1)
        ));
    }
    for (shown, a) in &l.forwarded4 {
        looked.push(shown.clone());
        if via_vpn(c, a, via4.clone()) {
            good.push(format!(
                "forwarded from the LAN ({shown}) → {}",
                a.describe()
            ));
        } else {
            problems.push(format!("forwarded from the LAN ({shown}): {}", explain(a)));
        }
    }
    for (shown, lan, a) in &l.lan_local {
        looked.push(shown.clone());
        match a {
            Answer::Route { dev: d, .. } if d == lan => {
                good.push(format!("to the LAN stays on {lan}"));
            }
            other => problems.push(format!(
                "marked traffic to the LAN ({shown}) should stay on {lan}, got {}: the rule \
                 `lookup main suppress_prefixlength 0` is missing or overridden",
                other.describe()
            )),
        }
    }
    if c.lans.is_empty() {
        good.push("no LAN interface found for the forwarded lookup".into());
    }
    let looked = looked.join("; ");
    if problems.is_empty() {
        Check::pass(
            "route-lookup",
            format!(
                "a packet with {} goes through {dev}: {}",
                l.sel_text,
                good.join("; ")
            ),
            looked,
        )
    } else {
        Check::fail(
            "route-lookup",
            format!(
                "a packet with {} does not take the VPN path: {}",
                l.sel_text,
                problems.join("; ")
            ),
            looked,
            format!(
                "compare `ip rule` with the plan ({}); a rule with a lower priority than {} \
                 that matches everything can take the packets first",
                c.i.apply_cmd(),
                c.i.plan
                    .ok()
                    .and_then(|p| p.resolved.priority)
                    .map_or("ours".into(), |p| (p - 1).to_string())
            ),
        )
    }
}

fn kill_switch(c: &GwCtx, l: &Lookups, plan: &Plan) -> Check {
    let f = c.i.facts;
    let dev = c.g.interface.as_str();
    let pref = plan.resolved.priority.unwrap_or(0);
    let looked = format!(
        "ip rule and the routes of every table, replayed without {dev}'s routes (the VPN stays up)"
    );
    let lan = c.lans.iter().find(|l| l.client4.is_some());
    let flow4 = |iif: &'static str| Flow {
        dst: TARGET4.parse().expect("address"),
        src: None,
        iif,
        mark: c.mark,
        tos: c.g.dscp.value() << 2,
    };
    let mut flows: Vec<(String, bool, Flow)> =
        vec![("the gateway's own IPv4".into(), false, flow4("lo"))];
    if let Some(lan) = lan {
        flows.push((
            format!("IPv4 forwarded from {}", lan.name),
            false,
            Flow {
                src: lan.client4.map(IpAddr::V4),
                iif: &lan.name,
                ..flow4("lo")
            },
        ));
    }
    if c.g.via6.is_some() {
        flows.push((
            "IPv6".into(),
            true,
            Flow {
                dst: TARGET6.parse().expect("address"),
                ..flow4("lo")
            },
        ));
    }
    // The model must agree with the kernel while the VPN is up.
    let model_up = fib::lookup(f, false, &flows[0].2, None);
    if let Answer::Route { dev: kdev, .. } = &l.local4.1
        && model_up.dev() != Some(kdev.as_str())
    {
        return Check::warn(
            "kill-switch",
            format!(
                "could not model this host's rules: the kernel sends marked packets through \
                 {kdev}, the model says {}",
                model_up.describe()
            ),
            looked,
            format!(
                "test it for real in a quiet moment: `ip link set {dev} down`, then `ip route \
                 get {TARGET4} {}` must say unreachable",
                l.sel_text
            ),
        );
    }
    let mut leaks = Vec::new();
    let mut refused = Vec::new();
    for (what, v6, flow) in &flows {
        let verdict = fib::lookup(f, *v6, flow, Some(dev));
        match &verdict {
            Verdict::Route { dev: Some(out), .. } if out != dev => {
                leaks.push(format!(
                    "{what} would leave through {out} ({})",
                    verdict.describe()
                ));
            }
            other => refused.push(format!("{what}: {}", other.describe())),
        }
    }
    if leaks.is_empty() {
        return Check::pass(
            "kill-switch",
            format!(
                "with {dev} down and its routes gone, marked packets are refused, not leaked: {}",
                refused.join("; ")
            ),
            looked,
        );
    }
    let detail = format!("with {dev} down, {}", leaks.join("; "));
    if !c.g.kill_switch {
        return Check::warn(
            "kill-switch",
            format!("{detail}: the profile turns the kill switch off (kill_switch = false)"),
            looked,
            "set kill_switch = true (the default) and apply again, unless leaking through the \
             ISP while the VPN is down is what you want",
        );
    }
    Check::fail(
        "kill-switch",
        format!(
            "{detail}. The unreachable rule at priority {} ({}) is missing or something \
             before it catches the packets",
            pref + 1,
            c.rule_sel,
        ),
        looked,
        format!(
            "{} restores the rule; then check `ip rule` for a rule before {} that catches \
             every packet (a catch-all lookup of another table)",
            c.i.apply_cmd(),
            pref + 1
        ),
    )
}

fn ipv6(c: &GwCtx, l: &Lookups) -> Check {
    let f = c.i.facts;
    let (shown, a) = &l.local6;
    let looked = format!("{shown}; ip -6 rule; net.ipv6.conf.*.disable_ipv6");
    let all_off = !f
        .links
        .iter()
        .filter(|l| l.name != "lo")
        .any(|l| f.conf_sysctl("ipv6", &l.name, "disable_ipv6") != Some("1"));
    if all_off {
        return Check::pass("ipv6", "IPv6 is disabled on every interface", looked);
    }
    match c.g.via6 {
        Some(via6) => {
            if via_vpn(c, a, Some(via6.to_string())) {
                Check::pass(
                    "ipv6",
                    format!(
                        "marked IPv6 is routed through the VPN: {TARGET6} → {}",
                        a.describe()
                    ),
                    looked,
                )
            } else {
                Check::fail(
                    "ipv6",
                    format!(
                        "marked IPv6 does not take the VPN: {TARGET6} → {}{}",
                        a.describe(),
                        if a.refused() {
                            " (refused: table has no IPv6 route, see vpn-route)"
                        } else {
                            ""
                        }
                    ),
                    looked,
                    format!("{} restores the IPv6 route and rules", c.i.apply_cmd()),
                )
            }
        }
        None => {
            if a.refused() {
                Check::pass(
                    "ipv6",
                    format!(
                        "marked IPv6 is blocked (the profile has no via6): {TARGET6} → {}",
                        a.describe()
                    ),
                    looked,
                )
            } else {
                Check::fail(
                    "ipv6",
                    format!(
                        "the profile has no IPv6 path (via6), so marked IPv6 must be refused, but \
                         {TARGET6} → {}: it leaks",
                        a.describe()
                    ),
                    looked,
                    format!(
                        "{} restores the IPv6 unreachable rule; or give gateway.via6 to route it",
                        c.i.apply_cmd()
                    ),
                )
            }
        }
    }
}
