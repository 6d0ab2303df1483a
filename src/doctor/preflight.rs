//! Checks that hold before anything is applied: root, tools, kernel
//! support, forwarding, reverse-path filtering, src_valid_mark, the
//! iptables backend, what the plan says (conflicts), other nftables users
//! of marks and DSCP.

use super::{Check, Inputs};
use crate::backend::iptables;
use crate::ownership::CHAIN_PREFIX;
use crate::probe::{HostFacts, IptablesBackend, conf_key};
use crate::profile::RpFilterPolicy;
use crate::runner::Runner;

pub fn checks(i: &Inputs, _runner: &dyn Runner) -> Vec<Check> {
    let mut out = vec![root(i.facts), tools(i), kernel(i)];
    let views = i.gateways();
    if !views.is_empty() {
        out.push(forwarding(
            i.facts,
            views.iter().any(|v| v.gateway.via6.is_some()),
        ));
    }
    // Per interface a class routes through (classes may share one).
    let mut seen = Vec::new();
    for v in views.iter().filter(|v| !v.blocked) {
        let g = &v.gateway;
        if seen.contains(&g.interface) {
            continue;
        }
        seen.push(g.interface.clone());
        out.push(rp_filter(i, &g.interface, g.rp_filter));
        out.push(src_valid_mark(i.facts, &g.interface));
        out.extend(super::firewalls::forward(i.facts, &g.interface));
    }
    out.push(backend(i));
    out.push(plan(i));
    if let Some(c) = nftables(i) {
        out.push(c);
    }
    out
}

fn root(f: &HostFacts) -> Check {
    if f.is_root {
        Check::pass("root", "running as root", "the effective user id")
    } else {
        Check::fail(
            "root",
            "not running as root: the firewall rules, their counters and the wire cannot be \
             read, so the checks after apply were skipped",
            "the effective user id",
            "run it as root: sudo dscproute doctor --profile …",
        )
    }
}

/// Debian package shipping each tool.
fn package(tool: &str) -> &'static str {
    match tool {
        "ip" => "iproute2",
        "nft" => "nftables",
        "setpriv" => "util-linux",
        "getent" => "libc-bin",
        _ => "iptables",
    }
}

fn tools(i: &Inputs) -> Check {
    let f = i.facts;
    let looked = "PATH and /usr/sbin, /sbin (the tools dscproute runs)";
    if f.tools.is_empty() {
        return Check::warn(
            "tools",
            "the tools were not looked for (recorded facts?)",
            looked,
            "run doctor on the host itself",
        );
    }
    let mut needed = vec![
        "ip",
        "iptables",
        "ip6tables",
        "iptables-save",
        "ip6tables-save",
    ];
    // The nft backend's one transaction.
    let nft_backend = i.plan.is_ok_and(|p| {
        p.steps
            .iter()
            .any(|s| matches!(s.apply, crate::backend::Op::NftTable { .. }))
    });
    if nft_backend {
        needed.push("nft");
    }
    let missing: Vec<&str> = needed.iter().copied().filter(|t| !f.has_tool(t)).collect();
    if !missing.is_empty() {
        let mut pkgs: Vec<&str> = missing.iter().map(|t| package(t)).collect();
        pkgs.dedup();
        return Check::fail(
            "tools",
            format!(
                "missing: {} (Debian package{} {})",
                missing.join(", "),
                if pkgs.len() == 1 { "" } else { "s" },
                pkgs.join(", ")
            ),
            looked,
            format!("apt-get install {}", pkgs.join(" ")),
        );
    }
    let nft_needed = f.iptables_backend == Some(IptablesBackend::NfTables);
    if nft_needed && !f.has_tool("nft") {
        return Check::warn(
            "tools",
            format!(
                "{} present; nft is missing: rollback cannot drop the empty nftables tables \
                 iptables-nft created for dscproute (they stay, empty and harmless)",
                needed.join(", ")
            ),
            looked,
            "apt-get install nftables",
        );
    }
    Check::pass("tools", format!("{} present", needed.join(", ")), looked)
}

/// The kernel module providing an iptables extension.
fn module_of(ext: &str, target: bool) -> String {
    match (ext, target) {
        ("MARK", true) | ("mark", false) => "xt_mark".into(),
        ("CONNMARK", true) | ("connmark", false) => "xt_connmark".into(),
        ("TOS", true) => "xt_DSCP".into(),
        ("tos", false) => "xt_dscp".into(),
        _ => format!("xt_{ext}"),
    }
}

/// (extension, is a target, kernel module) for every `-m`/`-j` in the
/// plan's iptables commands (our own chains aside), or a fixed list when
/// there is no plan.
fn needed_extensions(i: &Inputs) -> Vec<(String, bool, String)> {
    let mut found: Vec<(String, bool)> = Vec::new();
    match i.plan {
        Ok(plan) => {
            for step in &plan.steps {
                for e in iptables::extensions(&step.apply) {
                    if !found.contains(&e) {
                        found.push(e);
                    }
                }
            }
        }
        Err(_) => {
            found.push(("comment".into(), false));
            if i.is_gateway() {
                found.extend([("dscp".into(), false), ("MARK".into(), true)]);
            }
            if let Some(m) = &i.profile.marker {
                let by = match m.who {
                    crate::profile::Who::Unit(_) | crate::profile::Who::Cgroup(_) => "cgroup",
                    _ => "owner",
                };
                found.extend([(by.into(), false), ("DSCP".into(), true)]);
            }
        }
    }
    found
        .into_iter()
        .map(|(e, t)| {
            let m = module_of(&e, t);
            (e, t, m)
        })
        .collect()
}

/// Does one of our rules already use this extension (then it works)?
fn in_use_by_us(f: &HostFacts, ext: &str, target: bool) -> bool {
    let needle = if target {
        format!("-j {ext}")
    } else {
        format!("-m {ext}")
    };
    [&f.iptables_save, &f.ip6tables_save]
        .into_iter()
        .flatten()
        .flat_map(|s| s.lines())
        .any(|l| {
            (l.starts_with(&format!("-A {CHAIN_PREFIX}")) || l.contains("--comment dscproute"))
                && l.contains(&needle)
        })
}

/// For `plan` and `apply`: the kernel support the plan needs and this
/// kernel definitely lacks (the doctor's `kernel` check, as one line).
pub fn kernel_gap(
    profile: &crate::profile::Profile,
    facts: &crate::probe::HostFacts,
    plan: &crate::plan::Plan,
    root: &std::path::Path,
) -> Option<String> {
    let extras = super::host::HostExtras {
        modules: super::host::kernel_modules(root, facts),
        ..Default::default()
    };
    let i = Inputs {
        profile,
        profile_path: "",
        facts,
        plan: Ok(plan),
        extras: &extras,
        counters: None,
        wire: None,
    };
    let c = kernel(&i);
    (c.status == super::Status::Fail)
        .then(|| format!("{}: {}", c.detail, c.fix.unwrap_or_default()))
}

fn kernel(i: &Inputs) -> Check {
    let f = i.facts;
    let kver = f.kernel.as_deref().unwrap_or("?");
    let looked = format!(
        "/proc/net/ip_tables_matches, /proc/net/ip_tables_targets, /lib/modules/{kver}/\
         modules.dep and modules.builtin, ip rule"
    );
    let mut missing = Vec::new();
    let mut unknown = Vec::new();
    let needed = needed_extensions(i);
    for (ext, target, module) in &needed {
        let (ext, target) = (ext.as_str(), *target);
        let list = if target { &f.xt_targets } else { &f.xt_matches };
        let loaded = list.iter().any(|e| e == ext);
        let available = i
            .extras
            .modules
            .as_ref()
            .map(|m| m.contains(module.as_str()));
        if loaded || available == Some(true) || in_use_by_us(f, ext, target) {
            continue;
        }
        let what = format!(
            "{} {ext} ({module})",
            if target { "target" } else { "match" }
        );
        match available {
            Some(false) => missing.push(what),
            _ => unknown.push(what),
        }
    }
    let mut policy = Vec::new();
    if i.is_gateway() && !f.rules_v4.is_empty() && f.rules_v6.is_empty() && ipv6_on(f) {
        policy.push(
            "IPv6 policy routing (CONFIG_IPV6_MULTIPLE_TABLES): `ip -6 rule` lists nothing, so \
             marked IPv6 can be neither routed nor blocked"
                .to_string(),
        );
    }
    if !missing.is_empty() || !policy.is_empty() {
        let mut all = missing.clone();
        all.extend(policy);
        return Check::fail(
            "kernel",
            format!("this kernel ({kver}) lacks: {}", all.join("; ")),
            looked,
            "install the kernel's extra modules (Debian/Ubuntu: linux-modules-extra-$(uname -r) \
             or the full linux-image package), or use a kernel built with the netfilter \
             xtables extensions and policy routing",
        );
    }
    if !unknown.is_empty() {
        return Check::warn(
            "kernel",
            format!(
                "not loaded now and no module list to check: {}; they load on first use if the \
                 kernel has them, otherwise apply fails at the first rule using one",
                unknown.join(", ")
            ),
            looked,
            "check with `modinfo xt_dscp` (and the others named), or just apply: a missing \
             extension makes apply stop and undo what it did",
        );
    }
    let names: Vec<&str> = needed.iter().map(|e| e.0.as_str()).collect();
    let routing = if i.is_gateway() {
        " and policy routing"
    } else {
        ""
    };
    Check::pass(
        "kernel",
        format!(
            "{kver} has the iptables extensions the plan uses ({}){routing}",
            names.join(", ")
        ),
        looked,
    )
}

/// IPv6 is on for at least one interface (or unknown).
fn ipv6_on(f: &HostFacts) -> bool {
    let mut seen = false;
    for l in f.links.iter().filter(|l| l.name != "lo") {
        if let Some(v) = f.conf_sysctl("ipv6", &l.name, "disable_ipv6") {
            seen = true;
            if v == "0" {
                return true;
            }
        }
    }
    !seen
}

fn forwarding(f: &HostFacts, v6: bool) -> Check {
    let v4 = f.sysctl("net.ipv4.ip_forward");
    let v6v = f.sysctl("net.ipv6.conf.all.forwarding");
    let looked = if v6 {
        "net.ipv4.ip_forward, net.ipv6.conf.all.forwarding (/proc/sys)"
    } else {
        "net.ipv4.ip_forward (/proc/sys)"
    };
    let mut off = Vec::new();
    match v4 {
        Some("1") => {}
        Some(v) => off.push(format!("net.ipv4.ip_forward = {v}")),
        None => {
            return Check::warn(
                "forwarding",
                "could not read net.ipv4.ip_forward",
                looked,
                "check it with `sysctl net.ipv4.ip_forward`: it must be 1 on a gateway",
            );
        }
    }
    if v6 && v6v != Some("1") {
        off.push(format!(
            "net.ipv6.conf.all.forwarding = {}",
            v6v.unwrap_or("unknown")
        ));
    }
    if off.is_empty() {
        let detail = if v6 {
            "IPv4 and IPv6 forwarding are on"
        } else {
            "IPv4 forwarding is on (IPv6 is not routed by this profile: no via6)"
        };
        return Check::pass("forwarding", detail, looked);
    }
    let fixes: Vec<String> = off
        .iter()
        .map(|o| format!("sysctl -w {}=1", o.split(" = ").next().unwrap_or_default()))
        .collect();
    Check::fail(
        "forwarding",
        format!(
            "{}: this gateway drops every packet it should route, marked or not",
            off.join(", ")
        ),
        looked,
        format!(
            "{} (dscproute apply sets it; if it was switched off after apply, find who: a \
             file in /etc/sysctl.d, NetworkManager, a firewall script)",
            fixes.join("; ")
        ),
    )
}

fn rp_filter(i: &Inputs, dev: &str, policy: RpFilterPolicy) -> Check {
    let f = i.facts;
    let key = conf_key("ipv4", dev, "rp_filter");
    let looked = format!("net.ipv4.conf.all.rp_filter, {key} (/proc/sys)");
    let parse = |v: Option<&str>| v.and_then(|v| v.parse::<u8>().ok());
    let all = parse(f.sysctl("net.ipv4.conf.all.rp_filter"));
    let iface = parse(f.sysctl(&key));
    let (Some(all), Some(iface)) = (all, iface) else {
        return Check::warn(
            "rp_filter",
            format!(
                "could not read rp_filter for all and {dev} ({dev} may not exist): replies from \
                 the VPN are dropped if max(all, {dev}) is 1"
            ),
            looked,
            format!("bring {dev} up and run doctor again"),
        );
    };
    let effective = all.max(iface);
    let word = match effective {
        0 => "off",
        1 => "strict",
        _ => "loose",
    };
    let calc = format!("max(all={all}, {dev}={iface}) = {effective} ({word})");
    if effective != 1 {
        return Check::pass(
            "rp_filter",
            format!(
                "reverse-path filtering on {dev}: {calc}; the kernel uses the larger of the two, \
                 and anything but 1 lets the VPN's unmarked replies in"
            ),
            looked,
        );
    }
    let fix = match policy {
        RpFilterPolicy::Keep => format!(
            "set rp_filter = \"loose\" in the profile and apply again (dscproute then sets \
             {key}=2 and restores it on rollback), or by hand: sysctl -w {key}=2"
        ),
        RpFilterPolicy::Loose => format!(
            "apply again ({}): it sets {key}=2; if something reset it, find what (a file in \
             /etc/sysctl.d, the VPN's own scripts)",
            i.apply_cmd()
        ),
    };
    let why_keep = if policy == RpFilterPolicy::Keep {
        " The profile says rp_filter = \"keep\", so dscproute left it alone."
    } else {
        ""
    };
    Check::fail(
        "rp_filter",
        format!(
            "strict reverse-path filtering on {dev}: {calc}. Replies from the VPN arrive on {dev} \
             unmarked, the reverse lookup in main points at another uplink, and the kernel drops \
             them (netstat's IPReversePathFilter counter rises): marked IPv4 connections hang.\
             {why_keep}"
        ),
        looked,
        fix,
    )
}

fn src_valid_mark(f: &HostFacts, dev: &str) -> Check {
    let key = conf_key("ipv4", dev, "src_valid_mark");
    let all = f.sysctl("net.ipv4.conf.all.src_valid_mark").unwrap_or("?");
    let iface = f.sysctl(&key).unwrap_or("?");
    let meaning = if all == "1" || iface == "1" {
        "reverse-path lookups take the packet's mark into account; fine here: marked packets \
         from the LAN still validate through the LAN-stays-local rule"
    } else {
        "reverse-path lookups ignore marks; dscproute does not need them to (it loosens \
         rp_filter on the VPN interface instead of restoring marks on replies)"
    };
    Check::pass(
        "src_valid_mark",
        format!("all = {all}, {dev} = {iface}: {meaning}"),
        format!("net.ipv4.conf.all.src_valid_mark, {key} (/proc/sys)"),
    )
}

fn backend(i: &Inputs) -> Check {
    let f = i.facts;
    let looked = "iptables -V, /proc/net/ip_tables_names, iptables-legacy-save";
    let Some(b) = f.iptables_backend else {
        return Check::warn(
            "backend",
            "could not tell which iptables backend is in use",
            looked,
            "check `iptables -V`: it prints (nf_tables) or (legacy)",
        );
    };
    let name = match b {
        IptablesBackend::NfTables => "iptables-nft (nf_tables)",
        IptablesBackend::Legacy => "iptables-legacy (x_tables)",
    };
    if b == IptablesBackend::NfTables
        && let Some(n) = i.extras.legacy_rules
        && n > 0
    {
        return Check::warn(
            "backend",
            format!(
                "dscproute's rules go to {name}, but legacy x_tables tables ({}) hold {n} rule{} \
                 too: both run, in an order you do not see in either listing",
                i.extras.legacy_tables.join(", "),
                if n == 1 { "" } else { "s" }
            ),
            looked,
            "inspect them with iptables-legacy-save; move them to one backend \
             (iptables-legacy-save | iptables-nft-restore) or remove them",
        );
    }
    Check::pass(
        "backend",
        format!("{name}; no rules in the other backend"),
        looked,
    )
}

fn plan(i: &Inputs) -> Check {
    let looked = "`dscproute plan` for this profile: other users of mark bits, rule priorities, \
                  tables and the DSCP (iptables-save, ip rule, ip route, rt_tables)";
    let plan = match i.plan {
        Ok(p) => p,
        Err(e) => {
            return Check::fail(
                "plan",
                format!("no plan can be made: {}", e.problems.join("; ")),
                looked,
                "fix the profile or the host as each problem says, then run doctor again",
            );
        }
    };
    let r = &plan.resolved;
    let mut chosen = Vec::new();
    if let (Some(m), Some(k)) = (r.mark, r.mask) {
        chosen.push(format!("mark {m:#x}/{k:#x}"));
    }
    if let Some(p) = r.priority {
        chosen.push(format!("rule priorities {}–{}", p - 1, p + 1));
    }
    if let Some(t) = r.table_id {
        chosen.push(match &r.table_name {
            Some(n) => format!("table {t} ({n})"),
            None => format!("table {t}"),
        });
    }
    chosen.push(format!("DSCP {}", r.dscp));
    if !plan.errors.is_empty() {
        return Check::fail(
            "plan",
            format!("the plan cannot be applied: {}", plan.errors.join(" ")),
            looked,
            "each problem above says what to change (usually gateway.mark, gateway.priority or \
             gateway.table in the profile)",
        );
    }
    if !plan.warnings.is_empty() {
        return Check::warn(
            "plan",
            format!(
                "no conflict stops it ({}), but: {}",
                chosen.join(", "),
                plan.warnings.join(" ")
            ),
            looked,
            "read each warning; `dscproute plan --profile …` shows them with the commands",
        );
    }
    Check::pass(
        "plan",
        format!(
            "no conflicts: {} are used by nothing else",
            chosen.join(", ")
        ),
        looked,
    )
}

/// Native nftables rules (not iptables-nft's) that set a mark or a DSCP:
/// invisible to iptables-save, so the plan cannot see them.
pub fn foreign_nft_setters(ruleset: &str, marks: bool) -> Vec<String> {
    use crate::backend::nft;
    // Our own table (nft backend), when it holds only what we write.
    let ours = matches!(nft::parse_table(ruleset), Ok(Some(_)));
    let mut out = Vec::new();
    let mut table: Option<(String, String)> = None;
    for line in ruleset.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("table ") {
            let mut w = rest.split_whitespace();
            table = Some((
                w.next().unwrap_or_default().to_string(),
                w.next().unwrap_or_default().to_string(),
            ));
            continue;
        }
        let Some((family, name)) = &table else {
            continue;
        };
        if crate::probe::is_xtables_table(family, name)
            || (ours && family == nft::FAMILY && name == nft::TABLE)
        {
            continue;
        }
        let sets_mark = marks && (t.contains("meta mark set") || t.contains("ct mark set"));
        let sets_dscp = t.contains("dscp set");
        if sets_mark || sets_dscp {
            out.push(format!("table {family} {name}: {t}"));
        }
    }
    out
}

fn nftables(i: &Inputs) -> Option<Check> {
    let ruleset = i.extras.nft_ruleset.as_deref()?;
    let looked = "nft list ruleset (tables other than iptables-nft's)";
    let found = foreign_nft_setters(ruleset, i.is_gateway());
    if found.is_empty() {
        let what = if i.is_gateway() {
            "a mark or a DSCP"
        } else {
            "a DSCP"
        };
        return Some(Check::pass(
            "nftables",
            format!("no native nftables rule sets {what}"),
            looked,
        ));
    }
    let ours = i
        .plan
        .ok()
        .and_then(|p| Some(format!("{:#x}/{:#x}", p.resolved.mark?, p.resolved.mask?)))
        .unwrap_or_else(|| "ours".into());
    let shown: Vec<&str> = found.iter().take(5).map(String::as_str).collect();
    Some(Check::warn(
        "nftables",
        format!(
            "native nftables rules set marks or DSCP values, unseen by the plan's conflict \
             checks: {}{}",
            shown.join("; "),
            if found.len() > 5 { "; …" } else { "" }
        ),
        looked,
        format!(
            "make sure none of them sets bits of mark {ours} or rewrites DSCP {}; if one does, \
             choose another gateway.mark/gateway.mask or DSCP",
            i.dscp()
        ),
    ))
}
