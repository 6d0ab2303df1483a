//! State and snapshot tests of the wizard frame and the Role, Group, Mark and
//! Gateway screens. (Each other screen keeps its tests in its own module.)

use super::app::ScreenId;
use super::draft::RoleChoice;
use super::msg::Effect;
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
    assert_eq!(a.draft().role, RoleChoice::Gateway);
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
    assert_eq!(super::screens::group::filtered(&a)[0].name, "torrent");
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
        a.notice
            .as_deref()
            .unwrap_or("")
            .contains("Ctrl-G creates it"),
        "{:?}",
        a.notice
    );
    ctrl(&mut a, 'g');
    assert!(a.draft().group.create);
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.screen, ScreenId::Dscp);
    assert!(a.draft_toml().contains("create_group = true"));
}

/// The host of the issue: `hltorrent` (gid 4343) and no `torrent`.
fn hltorrent_host() -> super::app::App {
    let mut a = app("client.json");
    let g = a
        .facts_mut()
        .unwrap()
        .groups
        .iter_mut()
        .find(|g| g.name == "torrent")
        .unwrap();
    g.name = "hltorrent".into();
    g.gid = 4343;
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.screen, ScreenId::Group);
    a
}

#[test]
fn enter_never_takes_another_group_silently() {
    let mut a = hltorrent_host();
    // An empty filter takes nothing (it took the first group, `_ssh`).
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.screen, ScreenId::Group);
    assert!(
        a.notice.as_deref().unwrap_or("").contains("choose one"),
        "{:?}",
        a.notice
    );
    // A name that only matches part of a group takes nothing either: it
    // says what Enter would do instead.
    type_str(&mut a, "torrent");
    assert_eq!(
        super::screens::group::chosen(&a).as_deref(),
        Some("torrent")
    );
    assert!(!a.draft_toml().contains("hltorrent"));
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.screen, ScreenId::Group, "took a group silently");
    let n = a.notice.clone().unwrap_or_default();
    assert!(
        n.contains("no group \"torrent\"") && n.contains("Ctrl-G") && n.contains("hltorrent"),
        "{n}"
    );
    let s = render(&a, 80, 24);
    assert!(s.contains("✗ no group \"torrent\" on this host"), "{s}");
    insta::assert_snapshot!("group_partial_80x24", s);
    insta::assert_snapshot!("group_partial_120x40", render(&a, 120, 40));
    // ↓ moves into the list; Enter then takes the entry under ▸.
    press(&mut a, KeyCode::Down);
    assert_eq!(
        super::screens::group::chosen(&a).as_deref(),
        Some("hltorrent")
    );
    assert!(render(&a, 80, 24).contains("→ hltorrent (gid 4343)"));
    // ↑ at the top goes back to the field: nothing chosen again.
    press(&mut a, KeyCode::Up);
    assert_eq!(a.draft().group.selected, None);
    press(&mut a, KeyCode::Down);
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.screen, ScreenId::Dscp);
    assert!(a.draft_toml().contains("group = \"hltorrent\""));
    // Name and gid on the preview's header and summary, and on the apply screen.
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.screen, ScreenId::Preview);
    a.size = (80, 24);
    let s = render(&a, 80, 24);
    let head = s.lines().nth(1).unwrap();
    assert!(head.contains("group hltorrent (gid 4343)"), "{s}");
    assert!(
        s.contains("group hltorrent (gid 4343) → DSCP 7"),
        "the signal path names the group: {s}"
    );
    a.dry_run = None;
    press(&mut a, KeyCode::Char('a'));
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.screen, ScreenId::Apply);
    let s = render(&a, 80, 24);
    assert!(s.contains("group hltorrent (gid 4343) → DSCP 7"), "{s}");
}

#[test]
fn an_exact_name_or_gid_wins_over_partial_matches() {
    let mut a = app("client.json");
    press(&mut a, KeyCode::Enter);
    // `sys` is also part of `systemd-journal`…; the exact name is taken.
    type_str(&mut a, "sys");
    assert_eq!(super::screens::group::chosen(&a).as_deref(), Some("sys"));
    for _ in 0..3 {
        press(&mut a, KeyCode::Backspace);
    }
    type_str(&mut a, "1001");
    assert_eq!(
        super::screens::group::label(&a).as_deref(),
        Some("torrent (gid 1001)")
    );
    // A gid typed as a number stays a number in the profile.
    assert!(a.draft_toml().contains("group = \"1001\""));
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.screen, ScreenId::Dscp);
}

#[test]
fn typing_q_in_a_field_types_it_and_ctrl_c_quits() {
    let mut a = app("client.json");
    press(&mut a, KeyCode::Enter);
    type_str(&mut a, "q");
    assert!(!a.quit);
    assert_eq!(a.draft().group.input.value(), "q");
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
fn a_profiles_missing_interface_is_kept_and_shown_missing() {
    let mut a = app_with_profile(
        "gateway-clean.json",
        "[gateway]\ndscp = 7\ninterface = \"wg9\"\nvia = \"10.8.0.1\"\n",
    );
    for _ in 0..3 {
        press(&mut a, KeyCode::Enter);
    }
    assert_eq!(a.screen, ScreenId::Gateway);
    assert_eq!(
        super::screens::gateway::chosen_link(&a).as_deref(),
        Some("wg9"),
        "the profile's interface was swapped for a link of this host"
    );
    assert!(a.draft_toml().contains("interface = \"wg9\""));
    let s = render(&a, 80, 24);
    assert!(s.contains("▸ wg9          MISSING"), "{s}");
    assert!(s.contains("bring the VPN up first"), "{s}");
    insta::assert_snapshot!("gateway_missing_80x24", s);
    insta::assert_snapshot!("gateway_missing_120x40", render(&a, 120, 40));
    // It blocks the step; the admin may pick a link of the host instead.
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.screen, ScreenId::Gateway);
    assert!(
        a.notice
            .as_deref()
            .unwrap_or("")
            .contains("wg9 does not exist"),
        "{:?}",
        a.notice
    );
    for _ in 0..4 {
        press(&mut a, KeyCode::Down);
    }
    assert_eq!(
        super::screens::gateway::chosen_link(&a).as_deref(),
        Some("wg0")
    );
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.screen, ScreenId::Preview);
}

/// A gateway walked to the mark screen.
fn at_mark(facts_file: &str) -> super::app::App {
    let mut a = app(facts_file);
    press(&mut a, KeyCode::Char('2'));
    press(&mut a, KeyCode::Enter);
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.screen, ScreenId::Mark);
    a
}

#[test]
fn mark_screen_reports_conflicts_as_typed() {
    let mut a = at_mark("gateway-conflicts.json");
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

#[test]
fn mark_screen_shows_the_mask_really_used_or_no_rule() {
    let mut a = at_mark("gateway-clean.json");
    type_str(&mut a, "0x100");
    let s = render(&a, 80, 24);
    assert!(s.contains("outside the default mask 0xff"), "{s}");
    // The mask shown is the one the error talks about, and no rule is
    // shown for a mark the plan refuses (it showed `fwmark 0x100/0x0`).
    assert!(
        s.contains("mask bits  0000 0000 0000 0000 0000 0000 1111 1111"),
        "{s}"
    );
    assert!(!s.contains("/0x0"), "{s}");
    assert!(!s.contains("rule: fwmark"), "{s}");
    insta::assert_snapshot!("mark_invalid_80x24", s);
    insta::assert_snapshot!("mark_invalid_120x40", render(&a, 120, 40));
    // A wider mask makes it valid: the rule shows exactly what will be used.
    press(&mut a, KeyCode::Tab);
    type_str(&mut a, "0x1ff");
    let s = render(&a, 80, 24);
    assert!(s.contains("rule: fwmark 0x100/0x1ff"), "{s}");
    // A mask that is no number shows no mask bits at all.
    press(&mut a, KeyCode::Char('z'));
    let s = render(&a, 80, 24);
    assert!(s.contains("mask bits  —"), "{s}");
    assert!(!s.contains("rule: fwmark"), "{s}");
}

#[test]
fn learn_alone_leaves_on_esc_and_says_so() {
    let alone = || {
        let mut a = app("client.json");
        a.screen = ScreenId::Learn;
        a.alone = true;
        a
    };
    let mut a = alone();
    let s = render(&a, 80, 24);
    let footer = s.lines().last().unwrap();
    assert!(footer.contains("Esc quit"), "{footer}");
    // In the field, q is typed (as in `nqb`); Esc leaves.
    type_str(&mut a, "q");
    assert!(!a.quit && a.learn.input.value().ends_with('q'));
    assert_eq!(press(&mut a, KeyCode::Esc), [Effect::Quit]);
    assert!(a.quit);
    // Off the field (the bits), q quits too.
    let mut b = alone();
    press(&mut b, KeyCode::Tab);
    assert_eq!(press(&mut b, KeyCode::Char('q')), [Effect::Quit]);
    // Over another screen, Esc comes back first.
    let mut c = alone();
    press(&mut c, KeyCode::F(3));
    assert_eq!(c.screen, ScreenId::Status);
    assert!(!render(&c, 80, 24).contains("Esc quit"));
    press(&mut c, KeyCode::Esc);
    assert_eq!(c.screen, ScreenId::Learn);
    assert!(!c.quit);
    assert_eq!(press(&mut c, KeyCode::Esc), [Effect::Quit]);
    // Opened from the wizard, Esc goes back to it.
    let mut d = app("client.json");
    press(&mut d, KeyCode::F(2));
    press(&mut d, KeyCode::Esc);
    assert_eq!(d.screen, ScreenId::Role);
    assert!(!d.quit);
}

/// Walk to every text field; in each, F1 F2 F3 do their job and `? L S q`
/// are typed.
#[test]
fn function_keys_work_in_every_text_field_and_letters_are_typed() {
    use super::app::App;
    let group = || {
        let mut a = app("client.json");
        press(&mut a, KeyCode::Enter);
        (a, "group")
    };
    let dscp = || {
        let mut a = app("client.json");
        press(&mut a, KeyCode::Enter);
        type_str(&mut a, "torrent");
        press(&mut a, KeyCode::Enter);
        (a, "dscp")
    };
    let mark = || {
        let mut a = app("gateway-clean.json");
        press(&mut a, KeyCode::Char('2'));
        press(&mut a, KeyCode::Enter);
        press(&mut a, KeyCode::Enter);
        (a, "mark")
    };
    let via = || {
        let mut a = app("gateway-clean.json");
        press(&mut a, KeyCode::Char('2'));
        for _ in 0..3 {
            press(&mut a, KeyCode::Enter);
        }
        press(&mut a, KeyCode::Tab);
        (a, "via")
    };
    let prompt = || {
        let mut a = app("client.json");
        press(&mut a, KeyCode::Enter);
        type_str(&mut a, "torrent");
        press(&mut a, KeyCode::Enter);
        press(&mut a, KeyCode::Enter);
        press(&mut a, KeyCode::Char('w'));
        (a, "prompt")
    };
    let learn = || {
        let mut a = app("client.json");
        press(&mut a, KeyCode::F(2));
        (a, "learn")
    };
    let value = |a: &App, field: &str| -> String {
        match field {
            "group" => a.draft().group.input.value().into(),
            "dscp" => a.dscp.input.value().into(),
            "mark" => a.draft().mark.mark.value().into(),
            "via" => a.draft().gateway.via.value().into(),
            "prompt" => a.preview.prompt.as_ref().unwrap().1.value().into(),
            _ => a.learn.input.value().into(),
        }
    };
    let walks: [&dyn Fn() -> (App, &'static str); 6] =
        [&group, &dscp, &mark, &via, &prompt, &learn];
    for walk in walks {
        let (mut a, field) = walk();
        let screen = a.screen;
        press(&mut a, KeyCode::F(1));
        assert!(a.help, "{field}: F1");
        press(&mut a, KeyCode::F(1));
        assert!(!a.help, "{field}: F1 closes the help");
        if screen != ScreenId::Learn {
            press(&mut a, KeyCode::F(2));
            assert_eq!(a.screen, ScreenId::Learn, "{field}: F2");
            press(&mut a, KeyCode::Esc);
            assert_eq!(a.screen, screen, "{field}: back from Learn");
        }
        press(&mut a, KeyCode::F(3));
        assert_eq!(a.screen, ScreenId::Status, "{field}: F3");
        press(&mut a, KeyCode::Esc);
        assert_eq!(a.screen, screen, "{field}: back from Status");
        type_str(&mut a, "?LSq");
        let v = value(&a, field);
        assert!(v.ends_with("?LSq"), "{field}: {v:?}");
        assert!(!a.help && !a.quit && a.screen == screen, "{field}");
    }
    // Where nothing is typed, the letters are the shortcuts.
    let mut a = app("client.json");
    press(&mut a, KeyCode::Char('?'));
    assert!(a.help);
    press(&mut a, KeyCode::Esc);
    press(&mut a, KeyCode::Char('L'));
    assert_eq!(a.screen, ScreenId::Learn);
    press(&mut a, KeyCode::Esc);
    press(&mut a, KeyCode::Char('S'));
    assert_eq!(a.screen, ScreenId::Status);
}

/// README's key table is the help's table, row for row.
#[test]
fn readme_key_table_is_the_help() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let rows: Vec<&str> = readme
        .lines()
        .skip_while(|l| *l != "| key | where | does |")
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .collect();
    let want: Vec<String> = super::frame::KEYS
        .iter()
        .map(|(k, w, d)| format!("| {k} | {w} | {d} |"))
        .collect();
    assert_eq!(rows, want, "README's key table differs from the help");
}

#[test]
fn snapshots_help() {
    let mut a = app("client.json");
    press(&mut a, KeyCode::Enter);
    press(&mut a, KeyCode::F(1));
    let s = render(&a, 80, 24);
    assert!(s.contains("help, learn, status (in a field: typed)"), "{s}");
    insta::assert_snapshot!("help_80x24", s);
    insta::assert_snapshot!("help_120x40", render(&a, 120, 40));
}

/// Plans made on this test's thread so far.
fn plans() -> usize {
    super::shared::PLANS_COMPUTED.with(std::cell::Cell::get)
}

/// Draw the way the main loop does after every message, at two sizes.
fn draw(a: &super::app::App) {
    render(a, 80, 24);
    render(a, 120, 40);
}

/// The plan is made once per change of the draft: drawing, hints, moving
/// the focus or a text cursor and scrolling reuse it.
#[test]
fn the_plan_is_made_once_per_draft_change() {
    let mut a = at_mark("gateway-clean.json");
    draw(&a);
    let n = plans();
    // No change of the draft: focus, cursor, drawing again.
    for key in [KeyCode::Tab, KeyCode::BackTab, KeyCode::Left, KeyCode::Home] {
        press(&mut a, key);
        draw(&a);
    }
    assert_eq!(plans(), n, "recomputed without a change");
    // Each edit, one plan, however often it is drawn.
    type_str(&mut a, "0x2");
    draw(&a);
    assert_eq!(plans(), n + 1, "typed three characters, drew once");
    press(&mut a, KeyCode::Backspace);
    draw(&a);
    press(&mut a, KeyCode::Left);
    draw(&a);
    assert_eq!(plans(), n + 2);
    for _ in 0..2 {
        press(&mut a, KeyCode::Backspace);
        draw(&a);
    }
    assert_eq!(
        plans(),
        n + 3,
        "the cursor was at the start: one delete took"
    );
    press(&mut a, KeyCode::Delete);
    assert_eq!(a.draft().mark.mark.value(), "");
    // On to the preview: validating, the next screens and every scroll key
    // read the same plan until the via changes.
    press(&mut a, KeyCode::Enter);
    press(&mut a, KeyCode::Tab);
    draw(&a);
    let n = plans();
    type_str(&mut a, "10.8.0.1");
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.screen, ScreenId::Preview);
    draw(&a);
    assert_eq!(plans(), n + 1, "one plan for the typed via");
    for key in [
        KeyCode::Down,
        KeyCode::PageDown,
        KeyCode::End,
        KeyCode::Char('k'),
        KeyCode::Home,
        KeyCode::Right,
        KeyCode::Left,
        KeyCode::Char('a'),
    ] {
        press(&mut a, key);
        draw(&a);
    }
    assert_eq!(plans(), n + 1, "scrolling and panning made the plan again");
    // A toggled option is a change; going back and forth is not.
    press(&mut a, KeyCode::Esc);
    for _ in 0..3 {
        press(&mut a, KeyCode::Tab);
    }
    press(&mut a, KeyCode::Char(' '));
    press(&mut a, KeyCode::Enter);
    press(&mut a, KeyCode::Esc);
    press(&mut a, KeyCode::Enter);
    draw(&a);
    assert_eq!(plans(), n + 2);
    // New facts: the plan is made against them.
    let facts = facts("gateway-clean.json");
    super::update::facts_arrived(&mut a, facts);
    draw(&a);
    assert_eq!(plans(), n + 3);
}

/// The preview, the status report, the apply log and the help scroll with
/// the same keys, within what was drawn.
#[test]
fn every_scrolling_view_takes_the_same_keys() {
    use super::app::App;
    type Top = fn(&App) -> usize;
    fn check(a: &mut App, top: Top, what: &str) {
        press(a, KeyCode::End);
        let last = top(a);
        assert!(last > 0, "{what}: nothing to scroll");
        for (key, want) in [
            (KeyCode::Down, last),
            (KeyCode::Char('j'), last),
            (KeyCode::Up, last - 1),
            (KeyCode::Char('k'), last - 2),
            (KeyCode::Home, 0),
            (KeyCode::Char('G'), last),
            (KeyCode::Char('g'), 0),
            (KeyCode::PageDown, 1.max(top(a))),
        ] {
            press(a, key);
            if key != KeyCode::PageDown {
                assert_eq!(top(a), want, "{what}: {key:?}");
            }
        }
        assert!(top(a) > 0, "{what}: PgDn");
        press(a, KeyCode::PageUp);
        assert_eq!(top(a), 0, "{what}: PgUp");
    }
    let walk_gateway = |a: &mut App| {
        press(a, KeyCode::Char('2'));
        for _ in 0..3 {
            press(a, KeyCode::Enter);
        }
        press(a, KeyCode::Tab);
        type_str(a, "10.8.0.1");
        press(a, KeyCode::Enter);
    };
    // The preview.
    let mut a = app("gateway-clean.json");
    walk_gateway(&mut a);
    check(&mut a, |a| a.preview.scroll.top(), "preview");
    // The apply log, once the apply is over.
    a.dry_run = None;
    press(&mut a, KeyCode::Char('a'));
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.screen, ScreenId::Apply);
    super::update::update(
        &mut a,
        super::msg::Msg::ApplyDone(Err("refused before any step".into())),
    );
    check(&mut a, |a| a.apply.scroll.top(), "apply log");
    // The status report, on a short terminal.
    let mut s = app("gateway-clean.json");
    s.size = (80, 12);
    press(&mut s, KeyCode::F(3));
    let report = crate::apply::status::Status {
        routes: (0..30)
            .map(|i| format!("ip route: 10.0.{i}.0/24 dev wg0"))
            .collect(),
        ..Default::default()
    };
    super::update::update(&mut s, super::msg::Msg::Status(Box::new(report)));
    check(&mut s, |a| a.status.scroll.top(), "status");
    // The help, where it does not fit.
    let mut h = app("client.json");
    h.size = (60, 12);
    press(&mut h, KeyCode::F(1));
    check(&mut h, |a| a.help_scroll.top(), "help");
    assert!(h.help, "scrolling kept the help open");
    let shown = render(&h, 60, 12);
    assert!(shown.contains("Keys (Esc closes)"), "{shown}");
}

/// Imports point one way: screens, and what they build on, see the shared
/// state and never the app, the dispatchers or each other; only `app`,
/// `update` and `frame` see the screens.
#[test]
fn screens_and_state_never_import_upward() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/tui");
    let code = |path: &str| -> String {
        let text = std::fs::read_to_string(format!("{dir}/{path}")).expect(path);
        // Tests may drive the whole app.
        text.split("#[cfg(test)]")
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let mut files: Vec<String> = ["shared.rs", "draft.rs", "txn.rs", "msg.rs"]
        .map(String::from)
        .to_vec();
    for sub in ["screens", "widgets"] {
        for e in std::fs::read_dir(format!("{dir}/{sub}")).expect(sub) {
            let name = e.expect("entry").file_name().into_string().expect("utf-8");
            if name.ends_with(".rs") {
                files.push(format!("{sub}/{name}"));
            }
        }
    }
    assert!(files.len() > 15, "{files:?}");
    for f in &files {
        let c = code(f);
        for up in [
            "tui::app",
            "tui::update",
            "tui::frame",
            "super::app",
            "super::update",
        ] {
            assert!(!c.contains(up), "{f} imports {up}");
        }
        // A screen's own module, and the list of them, may name it.
        let own = f
            .strip_prefix("screens/")
            .and_then(|n| n.strip_suffix(".rs"));
        let screens = [
            "apply", "dscp", "gateway", "group", "learn", "mark", "preview", "role", "status",
        ];
        for other in screens {
            if own == Some(other) || own == Some("mod") {
                continue;
            }
            for path in [format!("screens::{other}"), format!("super::{other}::")] {
                assert!(!c.contains(&path), "{f} reaches into the {other} screen");
            }
        }
    }
}
