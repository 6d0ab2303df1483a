//! What doctor reads besides the probe's facts: resolv.conf, the running
//! processes (their names and fsgid), the kernel's module list, legacy
//! x_tables tables, the nftables ruleset. And the DNS check built on them.

use super::fib::{contains, parse_prefix};
use super::{Check, Inputs};
use crate::probe::HostFacts;
use crate::runner::Runner;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Proc {
    pub pid: u32,
    /// /proc/PID/comm (at most 15 characters).
    pub comm: String,
    /// The filesystem gid, what `-m owner --gid-owner` tests.
    pub fsgid: Option<u32>,
    /// The filesystem uid, what `-m owner --uid-owner` tests.
    pub fsuid: Option<u32>,
    /// Its cgroup v2 path (the `0::` line of /proc/PID/cgroup), without the
    /// leading '/': what `-m cgroup --path` tests for new sockets.
    pub cgroup: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostExtras {
    pub resolv_conf: Option<String>,
    pub processes: Vec<Proc>,
    /// Kernel module names (modules.dep and modules.builtin, `-` read as
    /// `_`); None when /lib/modules/KVER cannot be read.
    pub modules: Option<BTreeSet<String>>,
    /// /proc/net/ip_tables_names + ip6_tables_names: legacy tables in use.
    pub legacy_tables: Vec<String>,
    /// `-A` lines of iptables-legacy-save and ip6tables-legacy-save, when
    /// legacy tables exist.
    pub legacy_rules: Option<usize>,
    /// `nft list ruleset`.
    pub nft_ruleset: Option<String>,
}

/// Module names from modules.dep / modules.builtin text.
pub fn parse_module_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.split(':').next())
        .filter_map(|path| path.rsplit('/').next())
        .filter_map(|file| file.split(".ko").next())
        .filter(|n| !n.is_empty())
        .map(|n| n.replace('-', "_"))
        .collect()
}

/// comm, fsgid and fsuid from /proc/PID/status text (pid and cgroup unset).
pub fn parse_proc_status(text: &str) -> Proc {
    let mut p = Proc::default();
    for l in text.lines() {
        // real, effective, saved, filesystem
        let fs = |ids: &str| ids.split_whitespace().nth(3).and_then(|x| x.parse().ok());
        if let Some(n) = l.strip_prefix("Name:") {
            p.comm = n.trim().to_string();
        } else if let Some(g) = l.strip_prefix("Gid:") {
            p.fsgid = fs(g);
        } else if let Some(u) = l.strip_prefix("Uid:") {
            p.fsuid = fs(u);
        }
    }
    p
}

/// The cgroup v2 path from /proc/PID/cgroup text (`0::/a/b` -> `a/b`,
/// the root -> "").
pub fn parse_cgroup(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim().trim_start_matches('/').to_string())
}

fn read(root: &Path, rel: &str) -> Option<String> {
    std::fs::read_to_string(root.join(rel)).ok()
}

/// The kernel's module names (modules.dep and modules.builtin), when readable.
pub fn kernel_modules(root: &Path, facts: &HostFacts) -> Option<BTreeSet<String>> {
    let k = facts.kernel.as_ref()?;
    let dir = format!("lib/modules/{k}");
    let dep = read(root, &format!("{dir}/modules.dep"));
    let builtin = read(root, &format!("{dir}/modules.builtin"));
    if dep.is_none() && builtin.is_none() {
        return None;
    }
    let mut m = parse_module_names(dep.as_deref().unwrap_or_default());
    m.extend(parse_module_names(builtin.as_deref().unwrap_or_default()));
    Some(m)
}

pub fn gather(root: &Path, facts: &HostFacts, runner: &dyn Runner) -> HostExtras {
    let mut x = HostExtras {
        resolv_conf: read(root, "etc/resolv.conf"),
        ..HostExtras::default()
    };
    if let Ok(entries) = std::fs::read_dir(root.join("proc")) {
        for e in entries.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if let Some(text) = read(root, &format!("proc/{pid}/status")) {
                let cgroup =
                    read(root, &format!("proc/{pid}/cgroup")).and_then(|t| parse_cgroup(&t));
                x.processes.push(Proc {
                    pid,
                    cgroup,
                    ..parse_proc_status(&text)
                });
            }
        }
    }
    x.processes.sort_by_key(|p| p.pid);
    x.modules = kernel_modules(root, facts);
    for f in ["proc/net/ip_tables_names", "proc/net/ip6_tables_names"] {
        if let Some(t) = read(root, f) {
            x.legacy_tables
                .extend(t.split_whitespace().map(str::to_string));
        }
    }
    x.legacy_tables.sort();
    x.legacy_tables.dedup();
    if facts.is_root && !x.legacy_tables.is_empty() {
        let mut n = None;
        for tool in ["iptables-legacy-save", "ip6tables-legacy-save"] {
            if let Ok(out) = runner.run_args(&[tool])
                && out.success()
            {
                *n.get_or_insert(0) += out.stdout.lines().filter(|l| l.starts_with("-A ")).count();
            }
        }
        x.legacy_rules = n;
    }
    if facts.is_root
        && facts.has_tool("nft")
        && let Ok(out) = runner.run_args(&["nft", "list", "ruleset"])
        && out.success()
    {
        x.nft_ruleset = Some(out.stdout);
    }
    x
}

/// Resolver daemons: they send queries as themselves, so never marked.
const RESOLVERS: &[&str] = &[
    "systemd-resolve",
    "dnsmasq",
    "unbound",
    "named",
    "kresd",
    "pdns_recursor",
    "dnscrypt-proxy",
    "stubby",
    "coredns",
    "AdGuardHome",
    "pihole-FTL",
    "nscd",
];
/// Those that only serve the host itself by default.
const HOST_ONLY: &[&str] = &["systemd-resolve", "nscd"];

pub fn nameservers(resolv_conf: &str) -> Vec<IpAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.split_whitespace().next())
        // A zone index (fe80::1%eth0) is not part of the address.
        .filter_map(|a| a.split('%').next()?.parse().ok())
        .collect()
}

fn own_addrs(f: &HostFacts) -> Vec<(IpAddr, u8)> {
    f.links
        .iter()
        .flat_map(|l| &l.addrs)
        .filter_map(|a| Some((a.local.parse().ok()?, a.prefixlen)))
        .collect()
}

pub fn dns_check(i: &Inputs) -> Check {
    let looked = "/etc/resolv.conf, the running processes (/proc/*/status)";
    let running: Vec<&str> = {
        let mut v: Vec<&str> = i
            .extras
            .processes
            .iter()
            .map(|p| p.comm.as_str())
            .filter(|c| RESOLVERS.contains(c))
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let mut parts: Vec<(super::Status, String)> = Vec::new();
    if i.is_marker() && !i.is_gateway() {
        parts.push(marker_dns(i, &running));
    }
    if i.is_gateway() {
        parts.push(gateway_dns(i, &running));
        if i.is_marker() {
            // The group lives here too: its queries go to this host's resolver.
            parts.push(marker_dns(i, &running));
        }
    }
    let status = parts
        .iter()
        .map(|p| p.0)
        .max()
        .unwrap_or(super::Status::Pass);
    let detail = parts.into_iter().map(|p| p.1).collect::<Vec<_>>().join(" ");
    match status {
        super::Status::Pass => Check::pass("dns", detail, looked),
        s => Check {
            name: "dns",
            status: s,
            detail,
            looked_at: looked.into(),
            fix: Some(
                "give the program a DNS server it queries itself (its own DNS-over-HTTPS/TLS \
                 setting, or a nameserver reached through the VPN), so the queries leave from \
                 the group's own sockets and are marked; otherwise the names it looks up leave \
                 by your ISP"
                    .into(),
            ),
        },
    }
}

fn marker_dns(i: &Inputs, running: &[&str]) -> (super::Status, String) {
    let Some(conf) = i.extras.resolv_conf.as_deref() else {
        return (
            super::Status::Warn,
            "/etc/resolv.conf could not be read: where the group's DNS queries go is unknown."
                .into(),
        );
    };
    let ns = nameservers(conf);
    let own = own_addrs(i.facts);
    let d = i.dscp();
    let local: Vec<&IpAddr> = ns
        .iter()
        .filter(|a| a.is_loopback() || own.iter().any(|(o, _)| o == *a))
        .collect();
    if let Some(a) = local.first() {
        let who = if running.is_empty() {
            "a local resolver".to_string()
        } else {
            running.join(", ")
        };
        return (
            super::Status::Warn,
            format!(
                "the group's DNS queries go to {a} on this host, where {who} sends them upstream \
                 as its own user: unmarked, they take the normal path, not the VPN."
            ),
        );
    }
    let on_lan: Vec<&IpAddr> = ns
        .iter()
        .filter(|a| {
            own.iter().any(|(o, len)| {
                parse_prefix(&format!("{o}/{len}"), o.is_ipv6())
                    .is_some_and(|(net, l)| l > 0 && contains(net, l, **a))
            })
        })
        .collect();
    if let Some(a) = on_lan.first() {
        return (
            super::Status::Warn,
            format!(
                "the group's DNS queries go to {a} on the local network, marked with DSCP {d}; \
                 if that is the gateway, its resolver answers them and forwards them unmarked \
                 through the main uplink."
            ),
        );
    }
    match ns.first() {
        Some(a) => (
            super::Status::Pass,
            format!(
                "the group's DNS queries go straight to {a} from its own sockets: they carry \
                 DSCP {d} and take the VPN (programs with their own resolver settings may differ)."
            ),
        ),
        None => (
            super::Status::Warn,
            "/etc/resolv.conf names no nameserver.".into(),
        ),
    }
}

fn gateway_dns(_i: &Inputs, running: &[&str]) -> (super::Status, String) {
    let serving: Vec<&str> = running
        .iter()
        .copied()
        .filter(|c| !HOST_ONLY.contains(c))
        .collect();
    if serving.is_empty() {
        return (
            super::Status::Pass,
            "no DNS resolver serving the LAN runs on this gateway.".into(),
        );
    }
    (
        super::Status::Warn,
        format!(
            "{} runs on this gateway: LAN clients that use it for DNS have the group's queries \
             answered here and forwarded unmarked through the main uplink.",
            serving.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_from_dep_and_builtin() {
        let dep = "kernel/net/netfilter/xt_dscp.ko.zst: kernel/net/netfilter/x_tables.ko.zst\n\
                   kernel/net/netfilter/xt_DSCP.ko:\n\
                   kernel/drivers/net/wireguard/wireguard.ko.xz: kernel/lib/crypto/libchacha.ko\n";
        let m = parse_module_names(dep);
        assert!(m.contains("xt_dscp") && m.contains("xt_DSCP") && m.contains("wireguard"));
        let builtin = "kernel/net/netfilter/xt-mark.ko\n";
        assert!(parse_module_names(builtin).contains("xt_mark"));
    }

    #[test]
    fn status_gives_name_fsgid_and_fsuid() {
        let t = "Name:\tqbittorrent\nUmask:\t0022\nUid:\t0\t0\t0\t1001\n\
                 Gid:\t1000\t1000\t1000\t4242\nGroups:\t27\n";
        let p = parse_proc_status(t);
        assert_eq!(
            (p.comm.as_str(), p.fsgid, p.fsuid),
            ("qbittorrent", Some(4242), Some(1001))
        );
    }

    #[test]
    fn the_cgroup_v2_line() {
        let hybrid = "9:name=systemd:/\n4:memory:/x\n0::/system.slice/app.service\n";
        assert_eq!(
            parse_cgroup(hybrid).as_deref(),
            Some("system.slice/app.service")
        );
        assert_eq!(parse_cgroup("0::/\n").as_deref(), Some(""));
        assert_eq!(parse_cgroup("4:memory:/x\n"), None);
    }

    #[test]
    fn nameserver_lines() {
        let c = "# comment\nnameserver 127.0.0.53\noptions edns0\nnameserver fe80::1%eth0\n\
                 nameserver  192.168.1.1 \n";
        assert_eq!(
            nameservers(c),
            [
                "127.0.0.53".parse::<IpAddr>().unwrap(),
                "fe80::1".parse().unwrap(),
                "192.168.1.1".parse().unwrap()
            ]
        );
    }
}
