//! The ToS model (`dscproute::tos::Expressions`) against the real tools:
//! tcpdump, iptables/ip6tables, nft and the kernel's `ip rule tos`, each in a
//! scratch network namespace (see tests/common). Needs root; skips otherwise.

mod common;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

use dscproute::tos::{Dscp, Expressions};

fn every_dscp() -> impl Iterator<Item = (u8, Expressions)> {
    Dscp::all().map(|d| (d.value(), Expressions::of(d)))
}

/// The DS byte each test packet carries: ECN varies with the DSCP (d % 4) so
/// every filter is also shown to ignore the two ECN bits.
fn sent_byte(d: u8) -> u8 {
    (d << 2) | (d % 4)
}

/// Destination ports name the packet: 40407 is IPv4 DSCP 7, 40607 IPv6 DSCP 7.
fn port(family: u8, d: u8) -> u16 {
    40000 + u16::from(family) * 100 + u16::from(d)
}

fn set_int_opt(sock: &UdpSocket, level: libc::c_int, name: libc::c_int, value: u8) {
    let v = libc::c_int::from(value);
    // SAFETY: valid socket fd, pointer and length of a live c_int.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(
        rc,
        0,
        "setsockopt({level}, {name}, {value:#04x}): {}",
        std::io::Error::last_os_error()
    );
}

/// One UDP packet per DSCP and family to the loopback addresses. Nothing
/// listens; the ICMP errors this causes are left out by the capture filter.
fn send_every_dscp() {
    let v4 = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1");
    let v6 = UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).expect("bind ::1");
    for d in 0..=Dscp::MAX {
        set_int_opt(&v4, libc::IPPROTO_IP, libc::IP_TOS, sent_byte(d));
        let to = SocketAddr::from((Ipv4Addr::LOCALHOST, port(4, d)));
        v4.send_to(&[d], to).expect("send IPv4");
        set_int_opt(&v6, libc::IPPROTO_IPV6, libc::IPV6_TCLASS, sent_byte(d));
        let to = SocketAddr::from((Ipv6Addr::LOCALHOST, port(6, d)));
        v6.send_to(&[d], to).expect("send IPv6");
    }
}

/// Destination port of a `tcpdump -nn` line such as
/// `... IP6 ::1.51234 > ::1.40607: UDP, length 1`.
fn dst_port(line: &str) -> u16 {
    line.split(" > ")
        .nth(1)
        .and_then(|rest| rest.split(": ").next())
        .and_then(|addr| addr.rsplit('.').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no destination port in tcpdump line: {line}"))
}

fn ports(lines: &[String]) -> BTreeSet<u16> {
    lines.iter().map(|l| dst_port(l)).collect()
}

/// (DS byte, destination port) of every UDP packet in a pcap file with
/// Ethernet framing (what tcpdump writes for `lo`). An independent check that
/// the packets really carry the bytes we set, ECN included.
fn ds_bytes_by_port(pcap: &Path) -> Vec<(u8, u16)> {
    let data = std::fs::read(pcap).expect("read pcap");
    let le = match data[..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => panic!("{} is not a pcap file", pcap.display()),
    };
    let u32_at = |at: usize| {
        let b: [u8; 4] = data[at..at + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    assert_eq!(u32_at(20), 1, "link type must be Ethernet");
    let be16 = |f: &[u8], at: usize| u16::from_be_bytes([f[at], f[at + 1]]);
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= data.len() {
        let len = u32_at(off + 8) as usize;
        let frame = &data[off + 16..off + 16 + len];
        off += 16 + len;
        let ip = &frame[14..];
        match be16(frame, 12) {
            0x0800 if ip[9] == 17 => out.push((ip[1], be16(ip, usize::from(ip[0] & 0xf) * 4 + 2))),
            0x86dd if ip[6] == 17 => out.push((((ip[0] & 0x0f) << 4) | (ip[1] >> 4), be16(ip, 42))),
            _ => {}
        }
    }
    out
}

#[test]
fn tcpdump_filters_match_exactly_their_dscp() {
    let Some(lab) = common::lab("tcpdump_filters_match_exactly_their_dscp", &["tcpdump"]) else {
        return;
    };
    let ns = lab.netns();
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("every-dscp.pcap");
    let mut capture = ns.capture("lo", &pcap, "udp");
    ns.run(send_every_dscp);
    let total = 2 * (usize::from(Dscp::MAX) + 1);
    capture.wait_for_packets(total, Duration::from_secs(10));
    let stats = capture.stop();
    assert!(
        stats.iter().any(|l| l == "0 packets dropped by kernel"),
        "tcpdump lost packets:\n{}",
        stats.join("\n")
    );

    let all = common::read_capture(&pcap, "");
    let expected_all: BTreeSet<u16> = (0..=Dscp::MAX)
        .flat_map(|d| [port(4, d), port(6, d)])
        .collect();
    assert_eq!(all.len(), total, "captured packets:\n{}", all.join("\n"));
    assert_eq!(
        ports(&all),
        expected_all,
        "captured packets:\n{}",
        all.join("\n")
    );
    let bytes = ds_bytes_by_port(&pcap);
    assert_eq!(bytes.len(), total, "UDP packets parsed from the pcap file");
    for (byte, p) in bytes {
        let d = u8::try_from(p % 100).unwrap();
        assert_eq!(
            byte,
            sent_byte(d),
            "packet to port {p} carries DS byte {byte:#04x}"
        );
    }

    let mut mismatches = String::new();
    for (d, x) in every_dscp() {
        let cases = [
            ("tcpdump_v4", &x.tcpdump_v4, vec![port(4, d)]),
            ("tcpdump_v6", &x.tcpdump_v6, vec![port(6, d)]),
            ("tcpdump", &x.tcpdump, vec![port(4, d), port(6, d)]),
        ];
        for (field, filter, expected) in cases {
            let expected: BTreeSet<u16> = expected.into_iter().collect();
            let got = ports(&common::read_capture(&pcap, filter));
            if got != expected {
                let _ = writeln!(
                    mismatches,
                    "DSCP {d} {field}: tcpdump -r FILE -nn '{filter}'\n  expected ports {expected:?}\n  matched  ports {got:?}"
                );
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "filters matched the wrong packets (port 404NN = IPv4 DSCP NN, 406NN = IPv6):\n{mismatches}"
    );
}

/// `(rule as fed to *tables-restore, the form *tables-save prints back)`,
/// the canonical form written out independently of the model.
fn iptables_rules(d: u8, x: &Expressions) -> Vec<(String, String)> {
    let set = format!("-A OUTPUT -j DSCP --set-dscp 0x{d:02x}");
    let mut rules = vec![(format!("-A OUTPUT {}", x.iptables_set), set.clone())];
    if let Some(class) = &x.iptables_set_class {
        // iptables stores the class as its value, so this proves the name.
        rules.push((format!("-A OUTPUT {class}"), set));
    }
    rules.push((
        format!("-A OUTPUT {} -j RETURN", x.iptables_match),
        format!("-A OUTPUT -m dscp --dscp 0x{d:02x} -j RETURN"),
    ));
    rules.push((
        format!("-A OUTPUT {}", x.iptables_set_tos),
        format!("-A OUTPUT -j TOS --set-tos 0x{:02x}/0xfc", d << 2),
    ));
    rules
}

#[test]
fn iptables_and_ip6tables_accept_every_expression() {
    let tools = [
        "iptables",
        "iptables-restore",
        "iptables-save",
        "ip6tables",
        "ip6tables-restore",
        "ip6tables-save",
    ];
    let Some(lab) = common::lab("iptables_and_ip6tables_accept_every_expression", &tools) else {
        return;
    };
    let ns = lab.netns();
    let dir = tempfile::tempdir().unwrap();
    let rules: Vec<(String, String)> = every_dscp()
        .flat_map(|(d, x)| iptables_rules(d, &x))
        .collect();

    // The model prints exactly what iptables-save prints (class form aside).
    for (input, canonical) in &rules {
        assert!(
            input == canonical || input.contains("--set-dscp-class"),
            "model form differs from iptables-save's:\n  model: {input}\n  saved: {canonical}"
        );
    }

    let mut restore = String::from("*mangle\n");
    for (input, _) in &rules {
        restore.push_str(input);
        restore.push('\n');
    }
    restore.push_str("COMMIT\n");
    let file = dir.path().join("mangle.rules");
    std::fs::write(&file, &restore).unwrap();
    let file = file.to_str().unwrap();
    let expected: Vec<&str> = rules.iter().map(|(_, c)| c.as_str()).collect();

    for family in ["iptables", "ip6tables"] {
        ns.exec_ok(&[&format!("{family}-restore"), file]);
        let out = ns.exec_ok(&[&format!("{family}-save"), "-t", "mangle"]);
        let saved = String::from_utf8(out.stdout).unwrap();
        let got: Vec<&str> = saved.lines().filter(|l| l.starts_with("-A ")).collect();
        if got != expected {
            let diff: Vec<String> = expected
                .iter()
                .zip(&got)
                .filter(|(e, g)| e != g)
                .map(|(e, g)| format!("  expected {e}\n  saved    {g}"))
                .take(10)
                .collect();
            panic!(
                "{family}-save -t mangle differs ({} rules expected, {} saved):\n{}\nfull output:\n{saved}",
                expected.len(),
                got.len(),
                diff.join("\n")
            );
        }
    }

    // docs/design.md §4.1: DSCP and TOS targets are mangle-only.
    for family in ["iptables", "ip6tables"] {
        for target in [
            &["-j", "DSCP", "--set-dscp", "7"][..],
            &["-j", "TOS", "--set-tos", "0x1c/0xfc"],
        ] {
            let argv: Vec<&str> = [family, "-A", "OUTPUT"]
                .iter()
                .chain(target)
                .copied()
                .collect();
            let out = ns.exec(&argv);
            assert!(
                !out.status.success(),
                "filter table accepted a mangle-only target: {}",
                argv.join(" ")
            );
        }
        let out = ns.exec_ok(&[&format!("{family}-save"), "-t", "filter"]);
        let saved = String::from_utf8_lossy(&out.stdout);
        assert!(
            !saved.lines().any(|l| l.starts_with("-A ")),
            "refused rules left traces:\n{saved}"
        );
    }
}

#[test]
fn nft_accepts_every_expression() {
    let Some(lab) = common::lab("nft_accepts_every_expression", &["nft"]) else {
        return;
    };
    let ns = lab.netns();
    let dir = tempfile::tempdir().unwrap();

    // Every rule carries a comment "<dscp> <field>" to find it again.
    let mut body = String::new();
    let mut count = 0;
    for (d, x) in every_dscp() {
        let mut rules = vec![
            ("nft_match", x.nft_match.clone()),
            ("nft_match_v6", x.nft_match_v6.clone()),
            ("nft_set", x.nft_set.clone()),
            ("nft_set_v6", x.nft_set_v6.clone()),
        ];
        if let Some(name) = &x.nft_name {
            rules.push(("name", format!("ip dscp {name}")));
            rules.push(("name_v6", format!("ip6 dscp {name}")));
        }
        for (field, rule) in rules {
            let _ = writeln!(body, "    {rule} comment \"{d} {field}\"");
            count += 1;
        }
    }
    let ruleset = format!(
        "table inet dscpr_lab {{\n  chain out {{\n    type route hook output priority mangle; policy accept;\n{body}  }}\n}}\n"
    );
    let file = dir.path().join("dscp.nft");
    std::fs::write(&file, &ruleset).unwrap();
    ns.exec_ok(&["nft", "-f", file.to_str().unwrap()]);

    let listing = ns.exec_ok(&["nft", "list", "table", "inet", "dscpr_lab"]);
    let listing = String::from_utf8(listing.stdout).unwrap();
    let json = ns.exec_ok(&["nft", "-j", "list", "table", "inet", "dscpr_lab"]);
    let json: serde_json::Value =
        serde_json::from_slice(&json.stdout).expect("nft -j output is JSON");
    let rules: Vec<&serde_json::Value> = json["nftables"]
        .as_array()
        .expect("nftables array")
        .iter()
        .filter_map(|item| item.get("rule"))
        .collect();
    assert_eq!(
        rules.len(),
        count,
        "nft list table inet dscpr_lab:\n{listing}"
    );

    // A name must mean the same value as the number: same stored expression.
    let expr_of = |comment: &str| {
        rules
            .iter()
            .find(|r| r["comment"] == comment)
            .map(|r| r["expr"].clone())
            .unwrap_or_else(|| panic!("no rule with comment {comment:?}:\n{listing}"))
    };
    for (d, x) in every_dscp() {
        if let Some(name) = &x.nft_name {
            for (by_name, by_number) in [("name", "nft_match"), ("name_v6", "nft_match_v6")] {
                let (n, v) = (
                    expr_of(&format!("{d} {by_name}")),
                    expr_of(&format!("{d} {by_number}")),
                );
                assert_eq!(n, v, "nft name {name} is not DSCP {d}");
            }
        }
    }
}

/// Table id of `ip route get` output (`... dev lo table 1007 ...`); `None`
/// when the lookup failed, i.e. no rule of ours matched.
fn route_table(out: &std::process::Output) -> Option<u32> {
    let text = String::from_utf8_lossy(&out.stdout);
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[0] == "table")
        .map(|w| w[1].parse().expect("numeric table id"))
}

#[test]
fn ip_rule_tos_selectors_behave_as_modelled() {
    let Some(lab) = common::lab("ip_rule_tos_selectors_behave_as_modelled", &[]) else {
        return;
    };
    let ns = lab.netns();
    let table = |base: u32, d: u8| (base + u32::from(d)).to_string();
    let mut problems = String::new();

    // IPv4: the kernel accepts exactly the selectors the model offers. Each
    // accepted DSCP d gets its own table 1000+d, reached by its rule.
    let mut accepted = Vec::new();
    for (d, x) in every_dscp() {
        let selector = x
            .ip_rule
            .v4_selector
            .clone()
            .unwrap_or_else(|| format!("tos {:#04x}", d << 2));
        let t = table(1000, d);
        let mut argv = vec!["ip", "rule", "add"];
        argv.extend(selector.split_whitespace());
        argv.extend(["lookup", &t]);
        let out = ns.exec(&argv);
        if out.status.success() != x.ip_rule.v4_selector.is_some() {
            let _ = writeln!(
                problems,
                "DSCP {d}: model v4_selector {:?}, but `{}` {} (stderr: {})",
                x.ip_rule.v4_selector,
                argv.join(" "),
                if out.status.success() {
                    "was accepted"
                } else {
                    "was refused"
                },
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        if out.status.success() {
            ns.exec_ok(&[
                "ip",
                "route",
                "add",
                "198.51.100.0/24",
                "dev",
                "lo",
                "table",
                &t,
            ]);
            accepted.push((d, x));
        }
    }
    // Which rule catches a packet of DSCP p (ECN bits set too)? The model: the
    // rule of d where p == d or p is in d's v4_also_matches; else none.
    for p in 0..=Dscp::MAX {
        let expected = accepted
            .iter()
            .find(|(d, x)| *d == p || x.ip_rule.v4_also_matches.contains(&p))
            .map(|(d, _)| 1000 + u32::from(*d));
        let tos = format!("{:#04x}", sent_byte(p));
        let out = ns.exec(&["ip", "route", "get", "198.51.100.1", "tos", &tos]);
        let got = route_table(&out);
        if got != expected {
            let _ = writeln!(
                problems,
                "IPv4 DSCP {p} (tos {tos}): expected table {expected:?}, kernel chose {got:?} ({})",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }

    // IPv6: every selector is accepted and matches its DSCP exactly.
    for (d, x) in every_dscp() {
        let t = table(2000, d);
        let mut argv = vec!["ip", "-6", "rule", "add"];
        argv.extend(x.ip_rule.v6_selector.split_whitespace());
        argv.extend(["lookup", &t]);
        ns.exec_ok(&argv);
        ns.exec_ok(&[
            "ip",
            "-6",
            "route",
            "add",
            "2001:db8::/64",
            "dev",
            "lo",
            "table",
            &t,
        ]);
    }
    for p in 0..=Dscp::MAX {
        let tos = format!("{:#04x}", sent_byte(p));
        let out = ns.exec(&["ip", "-6", "route", "get", "2001:db8::1", "tos", &tos]);
        let got = route_table(&out);
        if got != Some(2000 + u32::from(p)) {
            let _ = writeln!(
                problems,
                "IPv6 DSCP {p} (tos {tos}): expected table {}, kernel chose {got:?} ({})",
                2000 + u32::from(p),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    assert!(
        problems.is_empty(),
        "ip rule tos disagrees with the model:\n{problems}"
    );
}
