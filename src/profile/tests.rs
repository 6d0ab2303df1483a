use super::*;

const GATEWAY: &str = r#"
[gateway]
dscp = "7"
interface = "wg0"
via = "10.8.0.1"
via6 = "fd00::1"
mark = "0x3"
mask = "0xff"
table = "vpn"
table_id = 100
priority = 10000
kill_switch = true
masquerade = true
scrub_dscp = true
rp_filter = "loose"
"#;

fn parse(text: &str) -> Result<Profile, ProfileError> {
    Profile::parse(text, "p.toml")
}

fn err(text: &str) -> String {
    parse(text).expect_err(text).to_string()
}

#[test]
fn full_gateway_profile() {
    let p = parse(GATEWAY).unwrap();
    assert!(p.marker.is_none());
    let g = p.gateway.unwrap();
    assert_eq!(g.dscp.value(), 7);
    assert_eq!(g.interface, "wg0");
    assert_eq!(g.via, Some("10.8.0.1".parse().unwrap()));
    assert_eq!(g.via6, Some("fd00::1".parse().unwrap()));
    assert_eq!((g.mark, g.mask), (Some(3), Some(0xff)));
    assert_eq!(g.table, Some(TableRef::Name("vpn".into())));
    assert_eq!((g.table_id, g.priority), (Some(100), Some(10000)));
    assert_eq!(g.rp_filter, RpFilterPolicy::Loose);
}

#[test]
fn defaults_and_notations() {
    let p = parse("[marker]\ngroup = 1001\ndscp = 7\n").unwrap();
    let m = p.marker.unwrap();
    assert_eq!(m.who, Who::Group(GroupRef::Gid(1001)));
    let p = parse("[marker]\ngroup = \"torrent\"\ndscp = \"AF41\"\n").unwrap();
    assert_eq!(p.marker.unwrap().dscp.value(), 34);
    let p = parse("[gateway]\ndscp = 7\ninterface = \"wg0\"\n").unwrap();
    let g = p.gateway.unwrap();
    assert!(g.kill_switch && g.masquerade && g.scrub_dscp);
    assert_eq!(g.rp_filter, RpFilterPolicy::Loose);
    assert_eq!(
        (g.mark, g.mask, g.table.clone(), g.priority),
        (None, None, None, None)
    );
    let p = parse("[gateway]\ndscp = 7\ninterface = \"wg0\"\ntable = 100\n").unwrap();
    assert_eq!(p.gateway.unwrap().table, Some(TableRef::Id(100)));
    let p = parse("[gateway]\ndscp = 7\ninterface = \"wg0\"\ntable = \"0x64\"\n").unwrap();
    assert_eq!(p.gateway.unwrap().table, Some(TableRef::Id(100)));
}

#[test]
fn both_roles_need_the_same_dscp() {
    let ok = "[marker]\ngroup = \"t\"\ndscp = 7\n[gateway]\ndscp = \"0x07\"\ninterface = \"wg0\"\n";
    assert!(parse(ok).is_ok());
    let bad = "[marker]\ngroup = \"t\"\ndscp = 7\n[gateway]\ndscp = 11\ninterface = \"wg0\"\n";
    assert!(err(bad).contains("differ"));
}

/// Every validation path: (profile text, expected line, words the message must hold).
#[test]
fn every_invalid_value_names_key_line_given_and_accepted() {
    let g = |extra: &str| format!("[gateway]\ndscp = 7\ninterface = \"wg0\"\n{extra}\n");
    let cases: Vec<(String, usize, Vec<&str>)> = vec![
        ("".into(), 1, vec!["neither [marker] nor [gateway]"]),
        (
            "[marker]\ngroup = \"t\"\ndscp = 64\n".into(),
            3,
            vec!["marker.dscp = 64", "0–63"],
        ),
        (
            "[marker]\ngroup = \"t\"\ndscp = \"cs10\"\n".into(),
            3,
            vec!["marker.dscp = \"cs10\"", "af41"],
        ),
        (
            "[marker]\ngroup = \"t\"\ndscp = -1\n".into(),
            3,
            vec!["marker.dscp = -1", "0–63"],
        ),
        (
            "[marker]\ngroup = \"t\"\ndscp = \"be\"\n".into(),
            3,
            vec!["marker.dscp = \"be\"", "unmarked", "pool 2"],
        ),
        (
            g("mark = \"0x100\""),
            4,
            vec!["gateway.mark = \"0x100\"", "the default mask 0xff"],
        ),
        (g("interface2 = 1"), 4, vec!["unknown field"]),
        (
            "[gateway]\ndscp = 7\ninterface = \"wg+\"\n".into(),
            3,
            vec!["gateway.interface = \"wg+\"", "'+'"],
        ),
        (
            "[gateway]\ndscp = 7\ninterface = \"-wg0\"\n".into(),
            3,
            vec!["gateway.interface = \"-wg0\"", "'-'"],
        ),
        (
            "[gateway]\ndscp = 0\ninterface = \"wg0\"\n".into(),
            2,
            vec!["gateway.dscp = 0", "every packet would match"],
        ),
        (
            "[marker]\ngroup = \"bad name\"\ndscp = 7\n".into(),
            2,
            vec!["marker.group = \"bad name\"", "group name"],
        ),
        (
            "[marker]\ngroup = -5\ndscp = 7\n".into(),
            2,
            vec!["marker.group = -5", "gid"],
        ),
        (
            "[marker]\ngroup = \"\"\ndscp = 7\n".into(),
            2,
            vec!["marker.group", "group name"],
        ),
        (
            "[marker]\ndscp = 7\n".into(),
            2,
            vec!["names nobody to mark", "group, user, unit"],
        ),
        (
            "[marker]\ngroup = \"t\"\ndscp = 7\ncolour = 1\n".into(),
            4,
            vec!["unknown field `colour`"],
        ),
        (
            "[markr]\ngroup = \"t\"\n".into(),
            1,
            vec!["unknown field `markr`", "marker"],
        ),
        (
            "[gateway]\ndscp = 7\n".into(),
            1,
            vec!["missing field `interface`"],
        ),
        (
            "[gateway]\ndscp = 7\ninterface = \"wg0/x\"\n".into(),
            3,
            vec!["gateway.interface = \"wg0/x\"", "1–15"],
        ),
        (
            "[gateway]\ndscp = 7\ninterface = \"averyveryverylongname\"\n".into(),
            3,
            vec!["gateway.interface", "1–15"],
        ),
        (
            g("via = \"10.8.0\""),
            4,
            vec!["gateway.via = \"10.8.0\"", "IPv4"],
        ),
        (g("via = \"fd00::1\""), 4, vec!["gateway.via", "IPv4"]),
        (
            g("via6 = \"10.8.0.1\""),
            4,
            vec!["gateway.via6 = \"10.8.0.1\"", "IPv6"],
        ),
        (g("mark = \"0\""), 4, vec!["gateway.mark = \"0\"", "not 0"]),
        (g("mark = \"0xzz\""), 4, vec!["gateway.mark", "0x-hex"]),
        (
            g("mark = 4294967296"),
            4,
            vec!["gateway.mark = 4294967296", "32 bits"],
        ),
        (g("mask = \"0\""), 4, vec!["gateway.mask = \"0\"", "not 0"]),
        (
            g("mark = \"0x100\"\nmask = \"0xff\""),
            4,
            vec!["gateway.mark = \"0x100\"", "outside gateway.mask"],
        ),
        (
            g("table = \"main\""),
            4,
            vec!["gateway.table = \"main\"", "reserved"],
        ),
        (g("table = 254"), 4, vec!["gateway.table = 254", "reserved"]),
        (g("table = 0"), 4, vec!["gateway.table = 0", "reserved"]),
        (
            g("table = \"9vpn\""),
            4,
            vec!["gateway.table = \"9vpn\"", "table name"],
        ),
        (g("table = -3"), 4, vec!["gateway.table = -3", "1–252"]),
        (
            g("table_id = 100"),
            4,
            vec!["gateway.table_id = 100", "table name"],
        ),
        (
            g("table = \"vpn\"\ntable_id = 255"),
            5,
            vec!["gateway.table_id = 255", "reserved"],
        ),
        (
            g("priority = 1"),
            4,
            vec!["gateway.priority = 1", "2–32764"],
        ),
        (
            g("priority = 32766"),
            4,
            vec!["gateway.priority = 32766", "main"],
        ),
        (
            g("rp_filter = \"strict\""),
            4,
            vec!["gateway.rp_filter = \"strict\"", "loose", "keep"],
        ),
        (
            g("kill_switch = \"yes\""),
            4,
            vec!["gateway.kill_switch = \"yes\"", "true or false"],
        ),
        (
            g("priority = \"high\""),
            4,
            vec!["gateway.priority = \"high\"", "integer"],
        ),
        ("[gateway\n".into(), 1, vec!["p.toml:1"]),
        (
            "[marker]\ngroup = \"t\"\ndscp = true\n".into(),
            3,
            vec!["marker.dscp = true", "number or a string"],
        ),
    ];
    for (text, line, words) in cases {
        let e = parse(&text).expect_err(&text);
        let msg = e.to_string();
        assert!(!msg.contains('\n'), "one line: {msg}");
        assert_eq!(e.line, line, "{text:?} -> {msg}");
        for w in words {
            assert!(msg.contains(w), "{text:?}: {msg:?} lacks {w:?}");
        }
    }
}

#[test]
fn round_trips_through_toml() {
    let p = parse(GATEWAY).unwrap();
    let again = parse(&p.to_toml()).unwrap();
    assert_eq!(p, again);
    let both =
        "[marker]\ngroup = \"torrent\"\ndscp = 7\n[gateway]\ndscp = 7\ninterface = \"wg0\"\n";
    let p = parse(both).unwrap();
    assert_eq!(parse(&p.to_toml()).unwrap(), p);
}

#[test]
fn u32_notations() {
    assert_eq!(parse_u32("0x3"), Some(3));
    assert_eq!(parse_u32("255"), Some(255));
    assert_eq!(parse_u32("0xffffffff"), Some(u32::MAX));
    assert_eq!(parse_u32("0x1ffffffff"), None);
    assert_eq!(parse_u32("0x"), None);
    assert_eq!(parse_u32("-1"), None);
    assert_eq!(parse_u32(""), None);
}

/// Inside a profile there is no --tos: the DSCP message lists every class
/// name (nqb too) and says which DSCP a ToS byte would be.
#[test]
fn dscp_errors_speak_to_a_profile() {
    for (value, extra) in [
        (
            "64",
            Some("(if 64 is a whole ToS byte, its DSCP is 16: write 16)"),
        ),
        ("\"0x70\"", Some("its DSCP is 28: write 28")),
        ("\"cs10\"", None),
        ("\"7x\"", None),
    ] {
        for section in [
            "[marker]\ngroup = \"t\"\n",
            "[gateway]\ninterface = \"wg0\"\n",
        ] {
            let e = err(&format!("{section}dscp = {value}\n"));
            assert!(!e.contains("--tos"), "{e}");
            assert!(e.contains("nqb") && e.contains("0–63"), "{e}");
            if let Some(x) = extra {
                assert!(e.contains(x), "{e}");
            }
        }
    }
    assert_eq!(
        parse("[marker]\ngroup = \"t\"\ndscp = \"NQB\"\n")
            .unwrap()
            .marker
            .unwrap()
            .dscp
            .value(),
        45
    );
}

/// A huge value is quoted back clipped to 40 characters, wherever the
/// error comes from (the TOML reader or validation).
#[test]
fn huge_values_are_clipped_in_errors() {
    let huge = "y".repeat(100_000);
    for text in [
        format!("[gateway]\ndscp = 7\ninterface = \"{huge}\"\n"),
        format!("[gateway]\ndscp = 7\ninterface = \"wg0\"\nvia = \"{huge}\"\n"),
        format!("[gateway]\ndscp = 7\ninterface = \"wg0\"\nmasquerade = \"{huge}\"\n"),
        format!("[gateway]\ndscp = 7\ninterface = \"wg0\"\n{huge} = 1\n"),
        format!("[{huge}]\na = 1\n"),
    ] {
        let e = err(&text);
        assert!(e.len() < 500, "{} bytes: {}", e.len(), &e[..200]);
        assert!(!e.contains(&"y".repeat(41)), "{e}");
    }
}

#[test]
fn match_mode_defaults_to_the_mark_and_round_trips() {
    let base = "[gateway]\ndscp = 7\ninterface = \"wg0\"\n";
    assert_eq!(
        parse(base).unwrap().gateway.unwrap().match_mode,
        MatchMode::Mark
    );
    let p = parse(&format!("{base}match = \"dscp-rule\"\n")).unwrap();
    assert_eq!(p.gateway.as_ref().unwrap().match_mode, MatchMode::DscpRule);
    assert!(p.to_toml().contains("match = \"dscp-rule\"\n"));
    assert_eq!(parse(&p.to_toml()).unwrap(), p);
    // The default is not written, so existing profiles read back unchanged.
    assert!(!parse(base).unwrap().to_toml().contains("match"));
    let e = err(&format!("{base}match = \"dscp\"\n"));
    assert_eq!(
        e,
        "p.toml:4: gateway.match = \"dscp\": unknown mode: use \"mark\" (a firewall mark routes \
         the DSCP; any kernel) or \"dscp-rule\" (`ip rule dscp`, Linux ≥ 6.12 and iproute2 ≥ \
         6.13)"
    );
}

#[test]
fn markers_other_than_a_group() {
    let who =
        |body: &str| parse(&format!("[marker]\n{body}\ndscp = 7\n")).map(|p| p.marker.unwrap().who);
    assert_eq!(
        who("user = \"alice\""),
        Ok(Who::User(UserRef::Name("alice".into())))
    );
    assert_eq!(who("user = 1001"), Ok(Who::User(UserRef::Uid(1001))));
    assert_eq!(who("user = \"1001\""), Ok(Who::User(UserRef::Uid(1001))));
    assert_eq!(
        who("unit = \"qbittorrent-nox.service\""),
        Ok(Who::Unit("qbittorrent-nox.service".into()))
    );
    assert_eq!(
        who("unit = \"vpn.slice\""),
        Ok(Who::Unit("vpn.slice".into()))
    );
    assert_eq!(
        who("unit = \"getty@tty1.service\""),
        Ok(Who::Unit("getty@tty1.service".into()))
    );
    // Stored without the leading or trailing '/', as iptables-save prints it back.
    assert_eq!(
        who("cgroup = \"/dscproute/dl/\""),
        Ok(Who::Cgroup("dscproute/dl".into()))
    );
    assert_eq!(
        who("cgroup = \"system.slice/app.service\""),
        Ok(Who::Cgroup("system.slice/app.service".into()))
    );
}

#[test]
fn bad_markers_name_key_line_given_and_accepted() {
    let cases: &[(&str, &[&str])] = &[
        (
            "user = \"bad name\"",
            &["marker.user = \"bad name\"", "user name"],
        ),
        ("user = -1", &["marker.user = -1", "uid"]),
        (
            "unit = \"foo\"",
            &["marker.unit = \"foo\"", ".service, .slice or .scope"],
        ),
        (
            "unit = \"foo.timer\"",
            &["marker.unit", "not a unit that runs processes"],
        ),
        (
            "unit = \"a b.service\"",
            &["marker.unit", "not a valid unit name"],
        ),
        (
            "unit = \"x\\\\x2d.service\"",
            &["marker.unit", "not a valid unit name"],
        ),
        (
            "cgroup = \"a/../b\"",
            &["marker.cgroup = \"a/../b\"", "'..'"],
        ),
        ("cgroup = \"..\"", &["marker.cgroup", "'..'"]),
        ("cgroup = \"a//b\"", &["marker.cgroup", "empty"]),
        ("cgroup = \"/\"", &["marker.cgroup", "cgroup root"]),
        ("cgroup = \"\"", &["marker.cgroup", "cgroup root"]),
        ("cgroup = \"a b\"", &["marker.cgroup", "characters"]),
        ("cgroup = \"a\\\"b\"", &["marker.cgroup", "characters"]),
        (
            "group = \"t\"\nuser = \"u\"",
            &["more than one of group, user, unit and cgroup"],
        ),
        (
            "unit = \"a.service\"\ncreate_group = true",
            &["marker.create_group", "only goes with marker.group"],
        ),
    ];
    for (body, needles) in cases {
        let text = format!("[marker]\n{body}\ndscp = 7\n");
        let e = err(&text);
        assert!(e.starts_with("p.toml:"), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
        for n in *needles {
            assert!(e.contains(n), "{body}: {e:?} lacks {n:?}");
        }
    }
    let long = format!("[marker]\ncgroup = \"{}\"\ndscp = 7\n", "a/".repeat(600));
    let e = err(&long);
    assert!(e.contains("longer than") && e.len() < 400, "{e}");
    // Two markers: the line of the second one.
    assert!(err("[marker]\ngroup = \"t\"\nuser = \"u\"\ndscp = 7\n").starts_with("p.toml:3:"));
}

#[test]
fn every_marker_round_trips_through_toml() {
    for body in [
        "user = \"alice\"",
        "user = 7",
        "unit = \"vpn.slice\"",
        "cgroup = \"a/b.c\"",
        "group = \"t\"\ncreate_group = true",
    ] {
        let p = parse(&format!("[marker]\n{body}\ndscp = 7\n")).unwrap();
        assert_eq!(parse(&p.to_toml()).unwrap(), p, "{body}");
    }
}

#[test]
fn marker_json_names_its_kind_where_the_group_was() {
    let p = parse("[marker]\ngroup = \"t\"\ndscp = 7\n").unwrap();
    let v = serde_json::to_value(&p).unwrap();
    assert_eq!(v["marker"]["group"], "t");
    let p = parse("[marker]\nunit = \"vpn.slice\"\ndscp = 7\n").unwrap();
    let v = serde_json::to_value(&p).unwrap();
    assert_eq!(v["marker"]["unit"], "vpn.slice");
    assert!(v["marker"].get("group").is_none());
}
