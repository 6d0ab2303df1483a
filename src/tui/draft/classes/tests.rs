use crate::profile::Profile;
use crate::tui::testing::{app, app_with_profile};

/// A `[gateway]` profile as the wizard writes it.
const GATEWAY: &str = "[gateway]
dscp = 7
interface = \"wg0\"
via = \"10.8.0.1\"
mark = \"0x10\"
table = \"vpn\"
kill_switch = true
masquerade = false
scrub_dscp = true
rp_filter = \"loose\"
";

/// Two classes as the wizard writes them: ordered uplinks, a health check
/// and every per-class value.
const CLASSES: &str = "[[class]]
name = \"torrent\"
dscp = 7
uplinks = [
    { interface = \"wg0\", via = \"10.8.0.1\", check = { ping = \"10.8.0.1\", every = \"2000ms\", fails = 3 } },
    { interface = \"uplink\", via = \"203.0.113.1\" },
]
mark = \"0x10\"
table = \"vpn\"
table_id = 100
priority = 100
kill_switch = true
masquerade = true
scrub_dscp = true
rp_filter = \"loose\"

[[class]]
name = \"streaming\"
dscp = 11
uplinks = [{ interface = \"uplink\", via = \"203.0.113.1\" }]
kill_switch = false
masquerade = false
scrub_dscp = false
rp_filter = \"keep\"
";

/// Existing `[gateway]` profiles come back byte for byte: one class, one
/// uplink, the default name.
#[test]
fn a_gateway_profile_round_trips_byte_stable() {
    let a = app_with_profile("gateway-clean.json", GATEWAY);
    assert_eq!(a.draft().classes.len(), 1);
    assert!(a.draft().is_plain_gateway());
    assert_eq!(a.draft_toml(), GATEWAY);
}

/// `[[class]]` profiles come back byte for byte (as the wizard writes them)
/// and as the same profile: names, order, uplinks, checks, options.
#[test]
fn a_classes_profile_round_trips() {
    let a = app_with_profile("gateway-clean.json", CLASSES);
    assert_eq!(a.draft().classes.len(), 2);
    assert_eq!(a.draft().role, super::super::RoleChoice::Gateway);
    let text = a.draft_toml();
    assert_eq!(text, CLASSES);
    assert_eq!(
        Profile::parse(&text, "again.toml").unwrap(),
        Profile::parse(CLASSES, "first.toml").unwrap()
    );
}

/// Editing another class and coming back loses nothing of either.
#[test]
fn switching_classes_keeps_both() {
    let mut a = app_with_profile("gateway-clean.json", CLASSES);
    a.draft_with_facts(|d, f| d.select_class(1, f));
    assert_eq!(a.draft().classes.name.value(), "streaming");
    assert_eq!(a.draft().dscp.value(), 11);
    assert!(!a.draft().gateway.kill_switch);
    a.draft_with_facts(|d, f| d.select_uplink(0, f));
    a.draft_with_facts(|d, f| d.select_class(0, f));
    assert_eq!(a.draft().dscp.value(), 7);
    assert_eq!(a.draft().gateway.via.value(), "10.8.0.1");
    assert_eq!(a.draft_toml(), CLASSES);
}

/// One class left with one uplink and the default name: `[gateway]` again;
/// a second uplink, or another name, makes it a `[[class]]`.
#[test]
fn the_shape_follows_the_classes() {
    let mut a = app("gateway-clean.json");
    a.draft_mut().role = super::super::RoleChoice::Gateway;
    assert!(a.draft_toml().contains("[gateway]\n"));
    a.draft_with_facts(|d, f| d.add_uplink(f));
    let t = a.draft_toml();
    assert!(t.starts_with("[[class]]\nname = \"gateway\"\n"), "{t}");
    assert!(
        t.contains("uplinks = [\n    { interface = \"wg0\" },\n    { interface = \"eth0\" },\n]\n"),
        "{t}"
    );
    assert!(a.draft_with_facts(|d, f| d.remove_uplink(f)));
    assert!(
        !a.draft_with_facts(|d, f| d.remove_uplink(f)),
        "the last uplink stays"
    );
    assert!(a.draft_toml().contains("[gateway]\n"));
    a.draft_with_facts(|d, f| d.add_class(f));
    let t = a.draft_toml();
    assert!(t.contains("name = \"class2\"\ndscp = 3\n"), "{t}");
    assert_eq!(t.matches("[[class]]").count(), 2, "{t}");
    assert!(a.draft_with_facts(|d, f| d.remove_class(f)));
    assert!(
        !a.draft_with_facts(|d, f| d.remove_class(f)),
        "the last class stays"
    );
    assert!(a.draft_toml().contains("[gateway]\n"), "{}", a.draft_toml());
}

/// On a host that is client and gateway, the marker keeps the DSCP of the
/// class it marked for, whichever class is being edited.
#[test]
fn the_marker_keeps_its_class() {
    let both = format!("[marker]\ngroup = \"torrent\"\ndscp = 11\n\n{CLASSES}");
    let mut a = app_with_profile("both.json", &both);
    assert_eq!(a.draft().role, super::super::RoleChoice::Both);
    a.draft_with_facts(|d, f| d.select_class(1, f));
    a.draft_with_facts(|d, f| d.select_class(0, f));
    let t = a.draft_toml();
    assert!(
        t.starts_with("[marker]\ngroup = \"torrent\"\ndscp = 11\n"),
        "{t}"
    );
    assert!(a.draft_profile().is_ok(), "{:?}", a.draft_profile());
}
