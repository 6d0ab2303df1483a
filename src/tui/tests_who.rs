//! The Who step (group, user, unit, cgroup), the preview planning with the
//! marker resolved by a worker, and the client recipe chooser.

use super::app::{App, ScreenId};
use super::draft::WhoKind;
use super::msg::{Effect, Msg};
use super::testing::{app, app_with_profile, ctrl, press, render, type_str};
use super::update::update;
use super::who_lists::{UnitEntry, WhoLists};
use crate::probe::{HostFacts, User};
use crate::recipe::{Request, Target};
use ratatui::crossterm::event::KeyCode;

fn user(name: &str, uid: u32) -> User {
    User {
        name: name.into(),
        uid,
    }
}

fn unit(name: &str, description: &str) -> UnitEntry {
    UnitEntry {
        name: name.into(),
        description: description.into(),
    }
}

/// Users and running units as the worker reads them on a systemd host.
fn lists() -> WhoLists {
    WhoLists {
        users: Some(Ok(vec![user("root", 0), user("alice", 1001)])),
        units: Some(Ok(vec![
            unit(
                "cron.service",
                "Regular background program processing daemon",
            ),
            unit("qbittorrent-nox.service", "qBittorrent-nox service"),
            unit("vpn.slice", "Slice for VPN programs"),
        ])),
    }
}

/// The client walk at the Who step, with the lists (if any) arrived.
fn at_who(l: Option<WhoLists>) -> App {
    let mut a = app("client.json");
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.screen, ScreenId::Group);
    if let Some(l) = l {
        assert!(update(&mut a, Msg::WhoLists(Box::new(l))).is_empty());
    }
    a
}

fn erase(a: &mut App, n: usize) {
    for _ in 0..n {
        press(a, KeyCode::Backspace);
    }
}

/// Tab and Shift-Tab cycle the kinds (wrapping); each kind keeps what was
/// typed in it, and the profile takes the kind on show.
#[test]
fn tab_cycles_the_kinds_and_each_keeps_its_text() {
    let mut a = at_who(Some(lists()));
    assert_eq!(a.draft().who.kind, WhoKind::Group);
    type_str(&mut a, "torrent");
    press(&mut a, KeyCode::Tab);
    assert_eq!(a.draft().who.kind, WhoKind::User);
    type_str(&mut a, "alice");
    assert!(
        a.draft_toml().contains("user = \"alice\""),
        "{}",
        a.draft_toml()
    );
    press(&mut a, KeyCode::Tab);
    assert_eq!(a.draft().who.kind, WhoKind::Unit);
    press(&mut a, KeyCode::BackTab);
    assert_eq!(a.draft().who.user.value(), "alice");
    press(&mut a, KeyCode::Tab);
    press(&mut a, KeyCode::Tab);
    assert_eq!(a.draft().who.kind, WhoKind::Cgroup);
    press(&mut a, KeyCode::Tab);
    assert_eq!(a.draft().who.kind, WhoKind::Group, "wraps around");
    assert_eq!(a.draft().group.input.value(), "torrent");
    assert!(a.draft_toml().contains("group = \"torrent\""));
    press(&mut a, KeyCode::BackTab);
    assert_eq!(a.draft().who.kind, WhoKind::Cgroup, "wraps backwards");
    // The tabs show which kind is on.
    assert!(render(&a, 80, 24).contains("[cgroup]"));
}

/// A user name is checked against the host's users as it is typed; Enter
/// refuses an unknown name, takes a known one or any uid (written bare).
#[test]
fn a_user_is_checked_against_the_hosts_users() {
    let mut a = at_who(Some(lists()));
    press(&mut a, KeyCode::Tab);
    type_str(&mut a, "bob");
    assert!(render(&a, 80, 24).contains("! no user \"bob\" on this host"));
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.screen, ScreenId::Group);
    assert!(
        a.notice
            .as_deref()
            .unwrap_or("")
            .contains("no user \"bob\"")
    );
    erase(&mut a, 3);
    type_str(&mut a, "4242");
    assert!(render(&a, 80, 24).contains("→ uid 4242 (no user on this host has it"));
    assert!(
        a.draft_toml().contains("user = 4242\n"),
        "{}",
        a.draft_toml()
    );
    erase(&mut a, 4);
    type_str(&mut a, "alice");
    let s = render(&a, 80, 24);
    assert!(s.contains("→ alice (uid 1001)"), "{s}");
    insta::assert_snapshot!("who_user_80x24", s);
    insta::assert_snapshot!("who_user_120x40", render(&a, 120, 40));
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.screen, ScreenId::Dscp);
    // Where the users cannot be read, the name is taken (the plan judges it).
    let mut b = at_who(Some(WhoLists::not_this_host("recorded facts")));
    press(&mut b, KeyCode::Tab);
    type_str(&mut b, "bob");
    assert!(render(&b, 80, 24).contains("! not checked: recorded facts"));
    press(&mut b, KeyCode::Enter);
    assert_eq!(b.screen, ScreenId::Dscp);
    // A name the profile reader refuses is refused here, in its words.
    let mut c = at_who(Some(lists()));
    press(&mut c, KeyCode::Tab);
    type_str(&mut c, "9bad");
    press(&mut c, KeyCode::Enter);
    assert_eq!(c.screen, ScreenId::Group);
    assert!(
        c.notice
            .as_deref()
            .unwrap_or("")
            .contains("not a valid user name"),
        "{:?}",
        c.notice
    );
}

/// The running units are filtered as typed; ↓ picks one, ↑ from the top
/// goes back to the field, typing drops the pick.
#[test]
fn a_unit_is_picked_from_the_running_ones() {
    let mut a = at_who(Some(lists()));
    press(&mut a, KeyCode::Tab);
    press(&mut a, KeyCode::Tab);
    let s = render(&a, 80, 24);
    assert!(s.contains("Running units (3 of 3)"), "{s}");
    type_str(&mut a, "qbit");
    let s = render(&a, 80, 24);
    assert!(
        s.contains("Running units (1 of 3)") && !s.contains("cron.service"),
        "{s}"
    );
    // "qbit" is no unit name: Enter says what is accepted.
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.screen, ScreenId::Group);
    assert!(a.notice.as_deref().unwrap_or("").contains(".service"));
    press(&mut a, KeyCode::Down);
    assert_eq!(a.draft().who.unit_name(), "qbittorrent-nox.service");
    let s = render(&a, 80, 24);
    assert!(
        s.contains("→ qbittorrent-nox.service — running: qBittorrent-nox service"),
        "{s}"
    );
    insta::assert_snapshot!("who_unit_80x24", s);
    insta::assert_snapshot!("who_unit_120x40", render(&a, 120, 40));
    press(&mut a, KeyCode::Up);
    assert_eq!(a.draft().who.unit_pick, None);
    press(&mut a, KeyCode::Down);
    type_str(&mut a, "x");
    assert_eq!(a.draft().who.unit_pick, None, "typing drops the pick");
    press(&mut a, KeyCode::Backspace);
    press(&mut a, KeyCode::Down);
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.screen, ScreenId::Dscp);
    assert!(
        a.draft_toml()
            .contains("unit = \"qbittorrent-nox.service\""),
        "{}",
        a.draft_toml()
    );
}

/// Without systemd the step says so and still takes a typed unit name.
#[test]
fn without_systemd_a_typed_unit_is_taken() {
    let mut l = lists();
    l.units = Some(Err("no systemd here (systemctl: not found)".into()));
    let mut a = at_who(Some(l));
    press(&mut a, KeyCode::Tab);
    press(&mut a, KeyCode::Tab);
    type_str(&mut a, "app.service");
    let s = render(&a, 80, 24);
    assert!(s.contains("systemd is not there"), "{s}");
    assert!(s.contains("! no systemd here (systemctl: not found): the name typed is taken"));
    insta::assert_snapshot!("who_unit_no_systemd_80x24", s);
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.screen, ScreenId::Dscp);
}

/// A cgroup path is checked live below the cgroup v2 mount of the facts.
#[test]
fn a_cgroup_is_checked_below_the_cgroup2_mount() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("dscproute/dl")).unwrap();
    let mut a = at_who(Some(lists()));
    a.recorded_facts = false;
    a.facts_mut().unwrap().cgroup2 = Some(dir.path().display().to_string());
    for _ in 0..3 {
        press(&mut a, KeyCode::Tab);
    }
    type_str(&mut a, "dscproute/dl");
    let mount = dir.path().display().to_string();
    let s = render(&a, 200, 24);
    assert!(s.contains(&format!("→ {mount}/dscproute/dl exists")), "{s}");
    type_str(&mut a, "x");
    let s = render(&a, 200, 24);
    assert!(
        s.contains("/dscproute/dlx does not exist: create it"),
        "{s}"
    );
    press(&mut a, KeyCode::Enter);
    assert_eq!(
        a.screen,
        ScreenId::Dscp,
        "a missing cgroup is the plan's to refuse"
    );
    press(&mut a, KeyCode::Esc);
    erase(&mut a, 20);
    type_str(&mut a, "../etc");
    assert!(render(&a, 120, 24).contains("✗ has an empty, '.' or '..' component"));
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.screen, ScreenId::Group);
    // Recorded facts: what was resolved where they were recorded (the
    // snapshot needs a path that does not change).
    let mut b = at_who(Some(lists()));
    let f = b.facts_mut().unwrap();
    f.cgroup2 = Some("/sys/fs/cgroup".into());
    f.cgroups.insert("dscproute/dl".into(), Some(4711));
    for _ in 0..3 {
        press(&mut b, KeyCode::Tab);
    }
    type_str(&mut b, "dscproute/dl");
    let s = render(&b, 80, 24);
    assert!(s.contains("→ /sys/fs/cgroup/dscproute/dl exists"), "{s}");
    insta::assert_snapshot!("who_cgroup_80x24", s);
    insta::assert_snapshot!("who_cgroup_120x40", render(&b, 120, 40));
}

/// create_group goes with a group only: switching to a user drops it.
#[test]
fn create_group_only_for_groups() {
    let mut a = at_who(Some(lists()));
    type_str(&mut a, "newgrp");
    ctrl(&mut a, 'g');
    assert!(a.draft_toml().contains("create_group = true"));
    press(&mut a, KeyCode::Tab);
    type_str(&mut a, "alice");
    let toml = a.draft_toml();
    assert!(
        !toml.contains("create_group") && toml.contains("user = \"alice\""),
        "{toml}"
    );
    assert!(a.draft_profile().is_ok(), "{:?}", a.draft_profile());
}

/// A profile of each kind loads into the Who step on its tab.
#[test]
fn a_loaded_profile_opens_on_its_kind() {
    let a = app_with_profile("client.json", "[marker]\nunit = \"vpn.slice\"\ndscp = 10\n");
    assert_eq!(a.draft().who.kind, WhoKind::Unit);
    assert_eq!(a.draft().who.unit.value(), "vpn.slice");
    assert_eq!(a.draft().dscp.value(), 10);
}

/// Not on recorded facts: the preview asks a worker (once per marker) to
/// resolve the marker, says it is reading meanwhile, and plans with the
/// answer; with recorded facts the marker is planned as they say.
#[test]
fn the_preview_plans_with_the_marker_resolved_by_a_worker() {
    let mut a = at_who(Some(lists()));
    a.recorded_facts = false;
    press(&mut a, KeyCode::Tab);
    type_str(&mut a, "alice");
    assert!(
        press(&mut a, KeyCode::Enter).is_empty(),
        "nothing asked before the preview"
    );
    let e = press(&mut a, KeyCode::Enter);
    assert_eq!(a.screen, ScreenId::Preview);
    let [Effect::ResolveMarker(p)] = e.as_slice() else {
        panic!("{e:?}");
    };
    assert_eq!(p.marker.as_ref().unwrap().who.to_string(), "user alice");
    assert_eq!(
        a.plan().as_ref().unwrap_err(),
        "Reading user alice on this host…"
    );
    assert!(render(&a, 80, 24).contains("Reading user alice on this host…"));
    assert!(press(&mut a, KeyCode::Down).is_empty(), "asked once");
    let found = HostFacts {
        users: vec![user("alice", 1001)],
        ..HostFacts::default()
    };
    update(&mut a, Msg::Resolved("user alice".into(), Box::new(found)));
    let plan = a.plan().as_ref().expect("a plan");
    assert!(plan.errors.is_empty(), "{:?}", plan.errors);
    assert!(render(&a, 120, 40).contains("Plan for user alice"));
    // Another marker is asked again.
    press(&mut a, KeyCode::Esc);
    press(&mut a, KeyCode::Esc);
    erase(&mut a, 5);
    type_str(&mut a, "root");
    press(&mut a, KeyCode::Enter);
    let e = press(&mut a, KeyCode::Enter);
    assert!(matches!(e.as_slice(), [Effect::ResolveMarker(_)]), "{e:?}");
    // Recorded facts: nothing asked; the facts know no alice.
    let mut b = at_who(Some(lists()));
    press(&mut b, KeyCode::Tab);
    type_str(&mut b, "alice");
    press(&mut b, KeyCode::Enter);
    assert!(press(&mut b, KeyCode::Enter).is_empty());
    let plan = b.plan().as_ref().expect("a plan");
    assert!(
        plan.errors
            .iter()
            .any(|e| e.contains("user \"alice\" is not known")),
        "{:?}",
        plan.errors
    );
}

/// The client walk at the preview (group torrent).
fn client_preview() -> App {
    let mut a = app("client.json");
    press(&mut a, KeyCode::Enter);
    type_str(&mut a, "torrent");
    press(&mut a, KeyCode::Enter);
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.screen, ScreenId::Preview);
    a.size = (80, 24);
    a
}

/// `c` opens the chooser; windows asks for the program with the recipe's
/// own error as typed, then for the path (next to the profile), then
/// writes it.
#[test]
fn the_recipe_chooser_asks_what_windows_needs_then_where() {
    let mut a = client_preview();
    press(&mut a, KeyCode::Char('c'));
    assert_eq!(a.preview.recipe_choice, Some(0));
    let s = render(&a, 80, 24);
    for t in Target::ALL {
        assert!(s.contains(t.name()), "{s}");
    }
    assert!(s.contains("→ Enter asks where to write it (./dscproute-client-linux-sh.sh)"));
    insta::assert_snapshot!("recipe_chooser_80x24", s);
    insta::assert_snapshot!("recipe_chooser_120x40", render(&a, 120, 40));
    press(&mut a, KeyCode::Down);
    press(&mut a, KeyCode::Down);
    assert!(render(&a, 80, 24).contains("Enter asks for the program, then where"));
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.preview.recipe_choice, None);
    type_str(&mut a, "qbittorrent");
    let s = render(&a, 80, 24);
    assert!(
        s.contains("✗ --app \"qbittorrent\" does not end in .exe"),
        "{s}"
    );
    insta::assert_snapshot!("recipe_value_error_80x24", s);
    insta::assert_snapshot!("recipe_value_error_120x40", render(&a, 120, 40));
    press(&mut a, KeyCode::Enter);
    assert!(
        a.notice.as_deref().unwrap_or("").contains(".exe"),
        "refused"
    );
    type_str(&mut a, ".exe");
    assert!(render(&a, 80, 24).contains("→ accepted: Enter asks where"));
    assert!(press(&mut a, KeyCode::Enter).is_empty());
    let (_, input) = a.preview.prompt.as_ref().expect("the path prompt");
    assert_eq!(input.value(), "./dscproute-client-windows.ps1");
    let e = press(&mut a, KeyCode::Enter);
    assert_eq!(
        e,
        [Effect::WriteRecipe {
            path: "./dscproute-client-windows.ps1".into(),
            target: Target::Windows,
            req: Request {
                app: Some("qbittorrent.exe".into()),
                src: Vec::new(),
            },
        }]
    );
    // Esc closes the chooser without anything written.
    press(&mut a, KeyCode::Char('c'));
    assert!(press(&mut a, KeyCode::Esc).is_empty());
    assert_eq!(a.preview.recipe_choice, None);
}

/// openwrt takes several prefixes apart by spaces or commas; the recipe is
/// written next to the profile and the notice says how to use it.
#[test]
fn an_openwrt_recipe_is_written_next_to_the_profile() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = client_preview();
    a.profile_path = Some(dir.path().join("vpn.toml"));
    press(&mut a, KeyCode::Char('c'));
    for _ in 0..5 {
        press(&mut a, KeyCode::Down);
    }
    press(&mut a, KeyCode::Enter);
    type_str(&mut a, "192.168.1.0/24, fd00:1::/64");
    press(&mut a, KeyCode::Enter);
    let path = dir.path().join("dscproute-client-openwrt.nft");
    let e = press(&mut a, KeyCode::Enter);
    let want = Request {
        app: None,
        src: vec!["192.168.1.0/24".into(), "fd00:1::/64".into()],
    };
    assert_eq!(
        e,
        [Effect::WriteRecipe {
            path: path.clone(),
            target: Target::Openwrt,
            req: want.clone(),
        }]
    );
    let done = super::recipes::write(&a, &path, Target::Openwrt, &want).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("192.168.1.0/24") && text.contains("fd00:1::/64"),
        "{text}"
    );
    assert!(
        done.contains(&path.display().to_string()) && done.contains("fw4 reload"),
        "{done}"
    );
    // Shown over the preview's bar, wrapped, until the next prompt.
    a.preview.recipe_written = Some(done);
    let s = render(&a, 80, 24);
    assert!(
        s.contains("✓ Wrote the openwrt recipe to") && s.contains("fw4 reload"),
        "{s}"
    );
    let d = dir.path().display().to_string();
    insta::assert_snapshot!(
        "recipe_written_120x40",
        render(&a, 120, 40).replace(&d, "DIR")
    );
    press(&mut a, KeyCode::Char('w'));
    assert!(a.preview.recipe_written.is_none());
    // A file that cannot be written says so in one line.
    let gone = dir.path().join("no/such/dir/x.nft");
    let e = super::recipes::write(&a, &gone, Target::Openwrt, &want).unwrap_err();
    assert!(e.starts_with("Could not write"), "{e}");
}

/// A unit marker has no linux-sh recipe (the chooser says why, Enter
/// refuses); a gateway-only draft has no client recipe at all.
#[test]
fn the_chooser_says_what_cannot_be_written() {
    let mut a = app_with_profile("client.json", "[marker]\nunit = \"vpn.slice\"\ndscp = 10\n");
    a.go(ScreenId::Preview);
    press(&mut a, KeyCode::Char('c'));
    let s = render(&a, 120, 40);
    assert!(
        s.contains("✗ a `unit` marker is known only on its own host"),
        "{s}"
    );
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.preview.recipe_choice, Some(0), "stays open");
    assert!(
        a.notice
            .as_deref()
            .unwrap_or("")
            .contains("known only on its own host")
    );
    let mut g = app("gateway-clean.json");
    press(&mut g, KeyCode::Char('2'));
    g.go(ScreenId::Preview);
    press(&mut g, KeyCode::Char('c'));
    assert_eq!(g.preview.recipe_choice, None);
    assert!(g.notice.as_deref().unwrap_or("").contains("client role"));
}
