use super::*;

const TWO: &str = r#"
[[class]]
name = "torrent"
dscp = "7"
uplinks = [ { interface = "wg0", via = "10.8.0.1", via6 = "fd00::1" },
            { interface = "tun1", check = { ping = "10.9.0.1", every = "500ms", fails = 2 } } ]

[[class]]
name = "streaming"
dscp = 11
uplinks = [ { interface = "wg1" }, { interface = "eth1", via = "192.0.2.1" } ]
kill_switch = false
"#;

fn parse(text: &str) -> Result<Profile, ProfileError> {
    Profile::parse(text, "p.toml")
}

fn err(text: &str) -> String {
    parse(text).expect_err(text).to_string()
}

fn with_second(second: &str) -> String {
    format!(
        "[[class]]\nname = \"a\"\ndscp = 7\nmark = 1\ntable = 100\npriority = 1000\n\
         uplinks = [{{ interface = \"wg0\" }}]\n\n[[class]]\nname = \"b\"\n\
         uplinks = [{{ interface = \"wg1\" }}]\n{second}"
    )
}

#[test]
fn two_classes_parse_in_order() {
    let p = parse(TWO).unwrap();
    assert!(p.gateway.is_none() && p.is_gateway());
    let c = p.classes();
    assert_eq!(c.len(), 2);
    assert_eq!((c[0].name.as_str(), c[0].dscp.value()), ("torrent", 7));
    let names: Vec<&str> = c[0].uplinks.iter().map(|u| u.interface.as_str()).collect();
    assert_eq!(names, ["wg0", "tun1"]);
    assert_eq!(c[0].uplinks[0].via6, Some("fd00::1".parse().unwrap()));
    assert_eq!(
        c[0].uplinks[1].check,
        Some(HealthCheck {
            ping: "10.9.0.1".parse().unwrap(),
            every_ms: 500,
            fails: 2
        })
    );
    assert!(c[0].kill_switch && !c[1].kill_switch);
    assert_eq!(c[1].uplinks[1].via, Some("192.0.2.1".parse().unwrap()));
}

#[test]
fn gateway_is_one_class_named_gateway() {
    let p =
        parse("[gateway]\ndscp = 7\ninterface = \"wg0\"\nvia = \"10.8.0.1\"\nmark = 3\n").unwrap();
    let c = p.classes();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].name, GATEWAY_CLASS);
    assert_eq!(c[0].uplinks.len(), 1);
    // Routed through its one uplink, the class is the `[gateway]` itself.
    assert_eq!(&c[0].through(&c[0].uplinks[0]), p.gateway.as_ref().unwrap());
    assert!(p.classes.is_empty(), "[gateway] keeps its own form");
}

#[test]
fn round_trips_through_toml() {
    let p = parse(TWO).unwrap();
    let again = parse(&p.to_toml()).unwrap();
    assert_eq!(p, again);
}

#[test]
fn every_problem_between_classes_has_its_line_key_and_fix() {
    let cases: &[(&str, &str)] = &[
        // (second class, expected fragment); line 11 is the second class's first key after uplinks
        (
            "dscp = 7\n",
            "p.toml:12: class.b.dscp = 7: class a already routes DSCP 7",
        ),
        (
            "dscp = 11\nmark = 1\n",
            "p.toml:13: class.b.mark = 1: class a already uses mark 0x1/0xff",
        ),
        (
            "dscp = 11\nmask = \"0xfff\"\n",
            "p.toml:13: class.b.mask = \"0xfff\": mask 0xfff shares bits with class a's mask 0xff",
        ),
        (
            "dscp = 11\ntable = 100\n",
            "p.toml:13: class.b.table = 100: the same table number 100 as class a",
        ),
        (
            "dscp = 11\npriority = 1002\n",
            "p.toml:13: class.b.priority = 1002: its rules (1001–1003) overlap class a's (999–1001)",
        ),
    ];
    for (second, want) in cases {
        let e = err(&with_second(second));
        assert!(e.starts_with(want), "{second:?}: {e}");
    }
    // Different masks without shared bits, and the same mask with other values, pass.
    parse(&with_second("dscp = 11\nmask = \"0xff00\"\n")).unwrap();
    parse(&with_second(
        "dscp = 11\nmark = 2\npriority = 1003\ntable = 101\n",
    ))
    .unwrap();
}

#[test]
fn names_uplinks_and_checks_are_validated() {
    let one = |body: &str| format!("[[class]]\n{body}");
    let cases: &[(String, &str)] = &[
        (
            one("name = \"a b\"\ndscp = 7\nuplinks = [{ interface = \"wg0\" }]\n"),
            "p.toml:2: class.name = \"a b\": not a valid class name",
        ),
        (
            one("name = \"sixteen-chars-xx\"\ndscp = 7\nuplinks = [{ interface = \"wg0\" }]\n"),
            "not a valid class name: use 1–15",
        ),
        (
            one("name = \"a\"\ndscp = 7\nuplinks = []\n"),
            "p.toml:4: class.a.uplinks = []: needs at least one uplink",
        ),
        (
            one("name = \"a\"\ndscp = 7\nuplinks = [{ interface = \"wg+\" }]\n"),
            "p.toml:4: class.a.interface = \"wg+\": not a valid interface name",
        ),
        (
            one(
                "name = \"a\"\ndscp = 7\nuplinks = [{ interface = \"wg0\" }, { interface = \"x/y\" }]\n",
            ),
            "p.toml:4: class.a.uplinks.interface = \"x/y\": not a valid interface name",
        ),
        (
            one(
                "name = \"a\"\ndscp = 7\nuplinks = [{ interface = \"wg0\" }, { interface = \"wg0\" }]\n",
            ),
            "class.a.uplinks.interface = \"wg0\": wg0 is listed twice",
        ),
        (
            one("name = \"a\"\ndscp = 7\nuplinks = [{ interface = \"wg0\", via = \"fd00::1\" }]\n"),
            "class.a.via = \"fd00::1\": not an IPv4 address",
        ),
        (
            one(
                "name = \"a\"\ndscp = 7\nuplinks = [{ interface = \"wg0\", check = { ping = \"x\" } }]\n",
            ),
            "class.a.uplinks.check.ping = \"x\": not an address",
        ),
        (
            one(
                "name = \"a\"\ndscp = 7\nuplinks = [{ interface = \"wg0\", check = { ping = \"10.0.0.1\", every = \"2h\" } }]\n",
            ),
            "class.a.uplinks.check.every = \"2h\": use a duration from 100ms to 10m",
        ),
        (
            one(
                "name = \"a\"\ndscp = 7\nuplinks = [{ interface = \"wg0\", check = { ping = \"10.0.0.1\", fails = 0 } }]\n",
            ),
            "class.a.uplinks.check.fails = 0: use a count from 1 to 100",
        ),
        (
            format!(
                "{}\n{}",
                one("name = \"a\"\ndscp = 7\nuplinks = [{ interface = \"wg0\" }]\n"),
                one("name = \"a\"\ndscp = 11\nuplinks = [{ interface = \"wg1\" }]\n")
            ),
            "p.toml:7: class.name = \"a\": a class named \"a\" comes earlier",
        ),
        (
            format!(
                "[gateway]\ndscp = 7\ninterface = \"wg0\"\n\n{}",
                one("name = \"a\"\ndscp = 11\nuplinks = [{ interface = \"wg1\" }]\n")
            ),
            "p.toml:6: class.name = \"a\": [gateway] and [[class]] in one profile",
        ),
        (
            format!(
                "[marker]\ngroup = 1\ndscp = 3\n\n{}",
                one("name = \"a\"\ndscp = 11\nuplinks = [{ interface = \"wg1\" }]\n")
            ),
            "marker.dscp (3) is none of the classes' DSCPs (a (11))",
        ),
    ];
    for (text, want) in cases {
        let e = err(text);
        assert!(e.contains(want), "{text}\n=> {e}\nwanted {want}");
    }
}

#[test]
fn durations() {
    assert_eq!(parse_duration_ms("2s"), Some(2000));
    assert_eq!(parse_duration_ms("500ms"), Some(500));
    assert_eq!(parse_duration_ms("1m"), Some(60_000));
    assert_eq!(parse_duration_ms("2"), None);
    assert_eq!(parse_duration_ms("s"), None);
}
