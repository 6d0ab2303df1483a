//! State and snapshot tests of the wizard frame and the Role, Group, Mark and
//! Gateway screens. (Each other screen keeps its tests in its own module.)

use super::app::{Effect, RoleChoice, ScreenId};
use super::testing::*;
use ratatui::crossterm::event::KeyCode;

#[test]
fn wizard_order_follows_the_role() {
    let mut a = app("both.json");
    assert_eq!(
        a.wizard(),
        [
            ScreenId::Role,
            ScreenId::Group,
            ScreenId::Dscp,
            ScreenId::Preview
        ]
    );
    press(&mut a, KeyCode::Down);
    assert_eq!(a.role, RoleChoice::Gateway);
    assert_eq!(
        a.wizard(),
        [
            ScreenId::Role,
            ScreenId::Dscp,
            ScreenId::Mark,
            ScreenId::Gateway,
            ScreenId::Preview
        ]
    );
    press(&mut a, KeyCode::Char('3'));
    assert_eq!(a.wizard().len(), 6);
}

#[test]
fn group_screen_filters_and_refuses_a_missing_group() {
    let mut a = app("client.json");
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.screen, ScreenId::Group);
    type_str(&mut a, "torr");
    assert_eq!(
        super::screens::group::chosen(&a).as_deref(),
        Some("torrent")
    );
    // Backspace all, type a name that does not exist.
    for _ in 0..4 {
        press(&mut a, KeyCode::Backspace);
    }
    type_str(&mut a, "nosuchgroupx");
    press(&mut a, KeyCode::Enter);
    assert_eq!(
        a.screen,
        ScreenId::Group,
        "never advances past an invalid step"
    );
    assert!(
        a.notice.as_deref().unwrap_or("").contains("does not exist"),
        "{:?}",
        a.notice
    );
    ctrl(&mut a, 'g');
    assert!(a.group.create);
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.screen, ScreenId::Dscp);
    assert!(super::draft::toml_text(&a).contains("create_group = true"));
}

#[test]
fn typing_q_in_a_field_types_it_and_ctrl_c_quits() {
    let mut a = app("client.json");
    press(&mut a, KeyCode::Enter);
    type_str(&mut a, "q");
    assert!(!a.quit);
    assert_eq!(a.group.input.value(), "q");
    let e = ctrl(&mut a, 'c');
    assert!(a.quit && e.contains(&Effect::Quit));
}

#[test]
fn gateway_screen_validates_via_on_link() {
    let mut a = app("gateway-clean.json");
    press(&mut a, KeyCode::Char('2'));
    press(&mut a, KeyCode::Enter); // Dscp
    press(&mut a, KeyCode::Enter); // Mark
    assert_eq!(a.screen, ScreenId::Mark);
    press(&mut a, KeyCode::Enter); // Gateway
    assert_eq!(a.screen, ScreenId::Gateway);
    assert_eq!(
        super::screens::gateway::chosen_link(&a).as_deref(),
        Some("wg0")
    );
    press(&mut a, KeyCode::Tab);
    type_str(&mut a, "10.9.9.9");
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.screen, ScreenId::Gateway);
    assert!(
        a.notice.as_deref().unwrap_or("").contains("not on-link"),
        "{:?}",
        a.notice
    );
    for _ in 0..8 {
        press(&mut a, KeyCode::Backspace);
    }
    type_str(&mut a, "10.8.0.1");
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.screen, ScreenId::Preview);
}

#[test]
fn mark_screen_reports_conflicts_as_typed() {
    let mut a = app("gateway-conflicts.json");
    press(&mut a, KeyCode::Char('2'));
    press(&mut a, KeyCode::Enter);
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.screen, ScreenId::Mark);
    // Priority field is the fifth.
    for _ in 0..4 {
        press(&mut a, KeyCode::Tab);
    }
    type_str(&mut a, "10000");
    let screen = render(&a, 120, 40);
    assert!(screen.contains("priority 10000 is taken"), "{screen}");
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.screen, ScreenId::Mark);
}

#[test]
fn dry_run_is_said_on_every_screen() {
    let mut a = app("both.json");
    press(&mut a, KeyCode::Char('3'));
    for _ in 0..4 {
        let s = render(&a, 80, 24);
        assert!(s.lines().next().unwrap().contains("DRY RUN"), "{s}");
        press(&mut a, KeyCode::Enter);
    }
}

#[test]
fn snapshots_role_group_mark_gateway() {
    let mut a = app("both.json");
    insta::assert_snapshot!("role_80x24", render(&a, 80, 24));
    insta::assert_snapshot!("role_120x40", render(&a, 120, 40));
    press(&mut a, KeyCode::Char('3'));
    press(&mut a, KeyCode::Enter);
    type_str(&mut a, "torrent");
    insta::assert_snapshot!("group_80x24", render(&a, 80, 24));
    insta::assert_snapshot!("group_120x40", render(&a, 120, 40));
    press(&mut a, KeyCode::Enter);
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.screen, ScreenId::Mark);
    insta::assert_snapshot!("mark_80x24", render(&a, 80, 24));
    insta::assert_snapshot!("mark_120x40", render(&a, 120, 40));
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.screen, ScreenId::Gateway);
    insta::assert_snapshot!("gateway_80x24", render(&a, 80, 24));
    insta::assert_snapshot!("gateway_120x40", render(&a, 120, 40));
}
