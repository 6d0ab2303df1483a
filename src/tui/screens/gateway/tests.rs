use super::{CLASSES, LINK, NAME, UPLINKS};
use crate::tui::app::{App, ScreenId};
use crate::tui::testing::{app, app_with_profile, press, render, type_str};
use ratatui::crossterm::event::KeyCode;

const TWO: &str = "[[class]]
name = \"torrent\"
dscp = 7
uplinks = [{ interface = \"wg0\", via = \"10.8.0.1\" }, { interface = \"uplink\", via = \"203.0.113.1\" }]
table = \"vpn\"
priority = 100

[[class]]
name = \"streaming\"
dscp = 11
uplinks = [{ interface = \"uplink\", via = \"203.0.113.1\" }]
mark = \"0x20\"
kill_switch = false
";

/// A gateway walked to this step; the interface list has the keyboard.
fn at_gateway(mut a: App) -> App {
    if a.draft().role == crate::tui::draft::RoleChoice::Client {
        press(&mut a, KeyCode::Char('2'));
    }
    while a.screen != ScreenId::Gateway {
        press(&mut a, KeyCode::Enter);
    }
    assert_eq!(a.gateway.focus, LINK);
    a
}

fn focus(a: &mut App, want: usize) {
    while a.gateway.focus != want {
        press(a, KeyCode::BackTab);
    }
}

fn names(a: &App) -> Vec<String> {
    a.draft()
        .class_views(a.facts())
        .iter()
        .map(|c| c.name.clone())
        .collect()
}

/// `a` adds a class (named, with a free DSCP) and edits it; ↑↓ move
/// between classes, carrying the DSCP step along; `d` asks, and only `y`
/// removes; the last class stays.
#[test]
fn class_list_keys_add_edit_remove_and_move() {
    let mut a = at_gateway(app("gateway-clean.json"));
    focus(&mut a, CLASSES);
    press(&mut a, KeyCode::Char('a'));
    assert_eq!(names(&a), ["gateway", "class2"]);
    assert_eq!(a.draft().classes.current, 1);
    assert_eq!(a.gateway.focus, NAME, "the new class is being edited");
    assert_eq!(
        a.dscp.input.value(),
        "3",
        "the DSCP step shows the new class"
    );
    for _ in 0..6 {
        press(&mut a, KeyCode::Backspace);
    }
    type_str(&mut a, "stream");
    assert_eq!(names(&a), ["gateway", "stream"]);
    focus(&mut a, CLASSES);
    press(&mut a, KeyCode::Up);
    assert_eq!(a.draft().classes.current, 0);
    assert_eq!(a.draft().classes.name.value(), "gateway");
    assert_eq!(a.dscp.input.value(), "7");
    press(&mut a, KeyCode::Char('j'));
    assert_eq!(a.draft().classes.name.value(), "stream");
    press(&mut a, KeyCode::Char('e'));
    assert_eq!(a.gateway.focus, NAME);
    focus(&mut a, CLASSES);
    press(&mut a, KeyCode::Char('d'));
    assert!(render(&a, 80, 24).contains("Remove class stream? y removes it"));
    press(&mut a, KeyCode::Char('n'));
    assert_eq!(names(&a), ["gateway", "stream"], "only y removes");
    press(&mut a, KeyCode::Delete);
    press(&mut a, KeyCode::Char('y'));
    assert_eq!(names(&a), ["gateway"]);
    press(&mut a, KeyCode::Char('d'));
    assert!(!a.gateway.confirm_remove);
    assert!(
        a.notice
            .as_deref()
            .unwrap_or("")
            .contains("the last one stays")
    );
    assert!(a.draft_toml().contains("[gateway]\n"));
}

/// On the uplink row: `a` adds one after the shown one (on a link the class
/// does not use yet), ←→ move, `<` `>` reorder, `d` removes (never the last).
#[test]
fn uplink_keys_add_remove_reorder() {
    let mut a = at_gateway(app("gateway-clean.json"));
    press(&mut a, KeyCode::Tab);
    type_str(&mut a, "10.8.0.1");
    focus(&mut a, UPLINKS);
    press(&mut a, KeyCode::Char('a'));
    assert_eq!(a.gateway.focus, LINK, "the new uplink's interface is next");
    assert_eq!(a.draft().classes.uplink, 1);
    assert_eq!(super::chosen_link(&a).as_deref(), Some("eth0"));
    press(&mut a, KeyCode::Down);
    assert_eq!(super::chosen_link(&a).as_deref(), Some("uplink"));
    press(&mut a, KeyCode::Tab);
    type_str(&mut a, "203.0.113.1");
    // The uplinks in the saved order, one a line.
    let order = |a: &App| {
        let t = a.draft_toml();
        let from = t.find("uplinks = [").expect("uplinks");
        let to = from + t[from..].find("\n]").expect("end of uplinks");
        t[from..to].replace("\n    ", " ")
    };
    assert_eq!(
        order(&a),
        "uplinks = [ { interface = \"wg0\", via = \"10.8.0.1\" }, { interface = \"uplink\", via = \"203.0.113.1\" },"
    );
    focus(&mut a, UPLINKS);
    press(&mut a, KeyCode::Char('<'));
    assert_eq!(a.draft().classes.uplink, 0);
    assert_eq!(
        order(&a),
        "uplinks = [ { interface = \"uplink\", via = \"203.0.113.1\" }, { interface = \"wg0\", via = \"10.8.0.1\" },"
    );
    press(&mut a, KeyCode::Left);
    assert_eq!(a.draft().classes.uplink, 0, "no uplink before the first");
    press(&mut a, KeyCode::Right);
    assert_eq!(super::chosen_link(&a).as_deref(), Some("wg0"));
    assert_eq!(a.draft().gateway.via.value(), "10.8.0.1");
    press(&mut a, KeyCode::Char('>'));
    assert_eq!(a.draft().classes.uplink, 1, "already last");
    press(&mut a, KeyCode::Char('d'));
    assert_eq!(a.draft().classes.uplink_count(), 1);
    assert_eq!(super::chosen_link(&a).as_deref(), Some("uplink"));
    press(&mut a, KeyCode::Char('d'));
    assert!(
        a.notice
            .as_deref()
            .unwrap_or("")
            .contains("the last one stays")
    );
    // One uplink, the default name: back to [gateway].
    let t = a.draft_toml();
    assert!(
        t.contains("[gateway]\n") && t.contains("interface = \"uplink\""),
        "{t}"
    );
}

/// A problem between classes shows under the list as it is typed, and
/// blocks the step until it is gone.
#[test]
fn overlaps_between_classes_show_live() {
    let mut a = at_gateway(app_with_profile("gateway-clean.json", TWO));
    assert!(!render(&a, 80, 24).contains('✗'), "{}", render(&a, 80, 24));
    focus(&mut a, CLASSES);
    press(&mut a, KeyCode::Down);
    a.draft_mut().mark.priority = tui_input::Input::new("101".into());
    let s = render(&a, 80, 24);
    assert!(s.contains("overlap class torrent's"), "{s}");
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.screen, ScreenId::Gateway);
    a.draft_mut().mark.priority = tui_input::Input::new("110".into());
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.screen, ScreenId::Preview, "{:?}", a.notice);
}

#[test]
fn snapshots_class_list_and_editor() {
    let mut a = at_gateway(app_with_profile("gateway-clean.json", TWO));
    focus(&mut a, CLASSES);
    insta::assert_snapshot!("class_list_80x24", render(&a, 80, 24));
    insta::assert_snapshot!("class_list_120x40", render(&a, 120, 40));
    focus(&mut a, UPLINKS);
    press(&mut a, KeyCode::Right);
    insta::assert_snapshot!("class_editor_80x24", render(&a, 80, 24));
    insta::assert_snapshot!("class_editor_120x40", render(&a, 120, 40));
}

/// The preview shows one path per class (its uplink and why), where a
/// `[gateway]` profile shows its one signal path.
#[test]
fn the_preview_shows_each_class() {
    let mut a = at_gateway(app_with_profile("gateway-clean.json", TWO));
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.screen, ScreenId::Preview, "{:?}", a.notice);
    let s = render(&a, 120, 40);
    assert!(
        s.contains("class torrent: DSCP 7 → mark 0x1/0xff → table 100 (vpn) at priority 100 → wg0"),
        "{s}"
    );
    assert!(
        s.contains("class streaming: DSCP 11 → mark 0x20/0xff"),
        "{s}"
    );
    assert!(s.contains("uplink "), "{s}");
}

/// Esc from the list leads to the Mark step of the class picked there, which
/// says which class it edits and fills its free values from that class.
#[test]
fn the_mark_step_edits_the_picked_class() {
    let mut a = at_gateway(app_with_profile("gateway-clean.json", TWO));
    focus(&mut a, CLASSES);
    press(&mut a, KeyCode::Down);
    press(&mut a, KeyCode::Esc);
    assert_eq!(a.screen, ScreenId::Mark);
    let s = render(&a, 100, 30);
    assert!(s.contains("Class streaming: The gateway turns"), "{s}");
    assert!(s.contains("[0x20"), "{s}");
    assert_eq!(a.draft().mark.mark.value(), "0x20");
}

/// Each uplink's next hop is checked as it is typed: a class whose first
/// uplink cannot be used says why, and which one it takes instead.
#[test]
fn an_unusable_uplink_is_explained_live() {
    let mut a = at_gateway(app_with_profile("gateway-clean.json", TWO));
    let s = render(&a, 120, 40);
    assert!(
        s.contains("✓ uplink wg0: the first uplink, usable now"),
        "{s}"
    );
    press(&mut a, KeyCode::Tab);
    for _ in 0.."10.8.0.1".len() {
        press(&mut a, KeyCode::Backspace);
    }
    type_str(&mut a, "10.9.9.9");
    let s = render(&a, 120, 40);
    assert!(s.contains("! uplink "), "{s}");
    assert!(
        s.contains("wg0 has no address its next hop is on-link with"),
        "{s}"
    );
    // Not a profile error: the class moves on to its next uplink.
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.screen, ScreenId::Preview, "{:?}", a.notice);
}

/// The DSCP step, reached back from the list, asks for the picked class.
#[test]
fn the_dscp_step_names_the_picked_class() {
    let mut a = at_gateway(app_with_profile("gateway-clean.json", TWO));
    focus(&mut a, CLASSES);
    press(&mut a, KeyCode::Down);
    press(&mut a, KeyCode::Esc);
    press(&mut a, KeyCode::Esc);
    assert_eq!(a.screen, ScreenId::Dscp);
    let s = render(&a, 80, 24);
    assert!(s.contains("Class streaming: which DSCP selects it?"), "{s}");
    assert!(s.contains("[11"), "{s}");
}
