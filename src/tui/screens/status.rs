//! Screen 8: what dscproute has in place on this host — the last
//! transaction (pending confirmation, interrupted) with what to do, its
//! netfilter rules with packet and byte counters read every two seconds, its
//! policy rules, routes and changed sysctls — and rollback after one
//! confirmation.

use super::{Handled, Hint};
use crate::apply::journal::TxnState;
use crate::apply::status::Status;
use crate::tui::msg::Effect;
use crate::tui::shared::{ScreenId, Shared};
use crate::tui::theme::Theme;
use crate::tui::txn::{Decision, StepProgress, Txn};
use crate::tui::widgets::scroll::Scroll;
use crate::tui::widgets::text::{clip, prose};
use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use std::time::{Duration, Instant};

/// How often the counters are read again while this screen is shown.
pub const REFRESH: Duration = Duration::from_secs(2);

/// This screen's own state (the report itself is shared: the countdown
/// reads it too).
#[derive(Debug, Default)]
pub struct StatusState {
    pub asking_rollback: bool,
    /// The outcome of the last confirm or rollback.
    pub message: Option<Result<String, String>>,
    pub scroll: Scroll,
    pub last_refresh: Option<Instant>,
    /// The live per-DSCP watch panel, while it runs.
    pub watch: Option<WatchPanel>,
}

/// `dscproute watch` as a panel of the status screen.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WatchPanel {
    pub interface: String,
    /// The latest table (watch's text), or why there is none.
    pub text: Option<Result<String, String>>,
}

/// A status report arrived.
pub fn on_report(s: &mut StatusState) {
    s.last_refresh = Some(Instant::now());
}

/// A watch table, or the watch's error.
pub fn on_watch(s: &mut StatusState, r: Result<String, String>) {
    if let Some(w) = &mut s.watch {
        w.text = Some(r);
    }
}

/// Confirm or rollback finished (from the countdown or from here).
pub fn on_settled(s: &mut StatusState, r: Result<String, String>) {
    s.message = Some(r);
    s.asking_rollback = false;
    // Read the status again at the next tick.
    s.last_refresh = Instant::now().checked_sub(Duration::from_secs(60));
}

/// 1234567 → "1.2M": counters stay one short column.
fn short(n: u64) -> String {
    const UNITS: [&str; 5] = ["", "k", "M", "G", "T"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        n.to_string()
    } else if v < 10.0 {
        format!("{v:.1}{}", UNITS[u])
    } else {
        format!("{v:.0}{}", UNITS[u])
    }
}

fn section(t: &Theme, o: &mut Vec<Line<'static>>, title: &str) {
    o.push(Line::default());
    o.push(Line::styled(format!(" {title}"), t.title()));
}

/// What is in place, as scrollable lines.
fn report_lines(t: &Theme, s: &Status, width: u16, now_unix: u64) -> Vec<Line<'static>> {
    let w = width as usize;
    let mut o = Vec::new();
    if s.clean {
        o.push(Line::styled(
            " ✓ Nothing of dscproute's is in place on this host.",
            t.ok(),
        ));
    }
    if !s.classes.is_empty() {
        section(
            t,
            &mut o,
            &format!(
                "Classes ({}): the uplink each routes through now",
                s.classes.len()
            ),
        );
        for c in &s.classes {
            let (via, style) = match (&c.uplink, c.blocked) {
                (Some(u), _) => (u.clone(), t.ok()),
                (None, true) => ("blocked (kill switch)".into(), t.warning()),
                (None, false) => ("no route: the main table".into(), t.warning()),
            };
            let mark = c.mark.map(|m| format!("{m:#x}")).unwrap_or("-".into());
            let table = c.table_id.map(|t| t.to_string()).unwrap_or("-".into());
            let left = format!(
                "  {:<15} DSCP {:<3} mark {mark:<6} table {table:<6} → ",
                c.name, c.dscp
            );
            let rest = w.saturating_sub(left.chars().count());
            o.push(Line::from(vec![
                Span::raw(left),
                Span::styled(clip(&via, 0, rest), style),
            ]));
            // The agent's last switch of this class: why, and how long ago.
            if let Some(why) = &c.why {
                let ago = c
                    .since_unix
                    .map(|t| format!(" ({} s ago)", now_unix.saturating_sub(t)))
                    .unwrap_or_default();
                let text = format!("    {why}{ago}");
                o.push(Line::from(Span::styled(clip(&text, 0, w), t.dim())));
            }
        }
    }
    if !s.netfilter.is_empty() {
        section(
            t,
            &mut o,
            &format!(
                "Netfilter rules ({}), read every {} s",
                s.netfilter.len(),
                REFRESH.as_secs()
            ),
        );
        o.push(Line::styled(
            format!("  {:>7} {:>7}  rule", "packets", "bytes"),
            t.dim(),
        ));
        for r in &s.netfilter {
            let rule = format!("{} {} {} {}", r.family, r.table, r.chain, r.spec);
            let counts = format!("  {:>7} {:>7}  ", short(r.packets), short(r.bytes));
            let rest = w.saturating_sub(counts.chars().count());
            let style = if r.packets > 0 { t.ok() } else { Style::new() };
            o.push(Line::from(vec![
                Span::styled(counts, style),
                Span::styled(clip(&rule, 0, rest), t.command()),
            ]));
        }
    }
    for (title, items) in [("Policy rules", &s.rules), ("Routes", &s.routes)] {
        if !items.is_empty() {
            section(t, &mut o, &format!("{title} ({})", items.len()));
            for r in items {
                o.push(Line::styled(
                    format!("  {}", clip(r, 0, w.saturating_sub(2))),
                    t.command(),
                ));
            }
        }
    }
    if !s.sysctls.is_empty() {
        section(t, &mut o, "Sysctls changed (before → now)");
        for c in &s.sysctls {
            let line = format!(
                "  {} = {} → {}",
                c.key,
                c.before,
                c.now.as_deref().unwrap_or("?")
            );
            o.push(Line::raw(clip(&line, 0, w)));
        }
    }
    o
}

/// The fixed lines above the report: the transaction, advice, the outcome
/// of the last confirm or rollback.
fn head_lines(s: &StatusState, cx: &Shared, width: u16) -> Vec<Line<'static>> {
    let t = &cx.theme;
    let mut o = Vec::new();
    match &cx.report {
        None => o.push(Line::styled(
            " Reading what dscproute has in place…",
            t.dim(),
        )),
        Some(s) => match &s.transaction {
            None => o.push(Line::styled(" No transaction on record.", t.title())),
            Some(x) => {
                let mark = match x.state {
                    TxnState::Applied => "✓",
                    TxnState::PendingConfirm | TxnState::Running => "!",
                    TxnState::Failed | TxnState::RolledBack => "↶",
                };
                o.extend(prose(
                    &format!(
                        "{mark} Last transaction {} from {}: {} ({} of {} steps done)",
                        x.id, x.profile, x.state_text, x.steps_done, x.steps_total
                    ),
                    1,
                    width,
                    t.title(),
                ));
            }
        },
    }
    if let Some(a) = cx.report.as_ref().and_then(|s| s.advice.as_ref()) {
        o.extend(prose(&format!("! {a}"), 1, width, t.warning()));
    }
    if let Some(a) = cx.report.as_ref().and_then(|s| s.agent.as_ref()) {
        o.extend(prose(
            &crate::apply::status::agent_line(a),
            1,
            width,
            t.dim(),
        ));
    }
    match &cx.txn {
        Txn::Deciding {
            decision: Decision::Rollback,
            ..
        } => {
            let undone = cx.steps.count(StepProgress::Undone);
            o.push(Line::styled(
                format!(" ↶ Rolling back… {undone} step(s) undone so far"),
                t.warning(),
            ));
        }
        Txn::Deciding {
            decision: Decision::Keep,
            ..
        } => o.push(Line::styled(" Keeping the change…", t.title())),
        _ => match &s.message {
            Some(Ok(m)) => o.extend(prose(&format!("✓ {m}"), 1, width, t.ok())),
            Some(Err(e)) => o.extend(prose(&format!("✗ {e}"), 1, width, t.error())),
            None => {}
        },
    }
    if let Some(why) = cx.dry_reason() {
        o.extend(prose(
            &format!(
                "Dry run ({why}): read-only here; netfilter counters need root. `sudo \
                 dscproute rollback` undoes the last transaction."
            ),
            1,
            width,
            t.dim(),
        ));
    }
    o
}

fn pending_confirm(cx: &Shared) -> bool {
    cx.report
        .as_ref()
        .and_then(|s| s.transaction.as_ref())
        .is_some_and(|x| x.state == TxnState::PendingConfirm)
}

fn question(cx: &Shared) -> String {
    match cx.report.as_ref().and_then(|s| s.transaction.as_ref()) {
        Some(x) if x.setup_changes > x.steps_done => format!(
            "Roll back the whole setup ({} changes, the last transaction {} {})? The host \
             returns to how it was before dscproute changed it.",
            x.setup_changes, x.id, x.state_text
        ),
        Some(x) => format!(
            "Roll back transaction {} ({}, {} step(s))? The host returns to how it was before it.",
            x.id, x.state_text, x.steps_done
        ),
        None => "Roll back the setup?".into(),
    }
}

fn ask_lines(s: &StatusState, cx: &Shared, width: u16) -> Vec<Line<'static>> {
    if !s.asking_rollback {
        return Vec::new();
    }
    let t = &cx.theme;
    let mut o = prose(&question(cx), 1, width, t.title());
    o.push(Line::from(vec![
        Span::styled(" y", t.key()),
        Span::raw(" roll back · "),
        Span::styled("n", t.key()),
        Span::raw(" or "),
        Span::styled("Esc", t.key()),
        Span::raw(" keep it"),
    ]));
    o
}

pub fn key(s: &mut StatusState, cx: &mut Shared, key: KeyEvent) -> Handled {
    if s.asking_rollback {
        match key.code {
            KeyCode::Char('y' | 'Y') => {
                s.asking_rollback = false;
                s.message = None;
                cx.txn.decide(Decision::Rollback);
                return Handled::Yes(vec![Effect::Rollback]);
            }
            KeyCode::Char('n' | 'N') | KeyCode::Esc => {
                s.asking_rollback = false;
                cx.notice = Some("Nothing rolled back.".into());
            }
            _ => {}
        }
        return Handled::done();
    }
    if s.scroll.key(key.code) {
        return Handled::done();
    }
    match key.code {
        KeyCode::Char('r') => {
            if let Some(why) = cx.dry_reason() {
                cx.notice = Some(format!(
                    "Dry run ({why}): roll back with `sudo dscproute rollback` on the host."
                ));
            } else if cx.busy() {
                cx.notice = Some("Busy changing the host: wait for it to finish.".into());
            } else if cx.report.as_ref().is_some_and(|s| s.transaction.is_none()) {
                cx.notice = Some("Nothing to roll back: no transaction on record.".into());
            } else {
                cx.notice = None;
                s.asking_rollback = true;
            }
        }
        KeyCode::Char('w') => return Handled::Yes(toggle_watch(s, cx)),
        KeyCode::Char('i') if s.watch.is_some() => {
            return Handled::Yes(next_watch_interface(s, cx));
        }
        KeyCode::Char('c') if pending_confirm(cx) => {
            if let Some(why) = cx.dry_reason() {
                cx.notice = Some(format!(
                    "Dry run ({why}): keep it with `sudo dscproute confirm` on the host."
                ));
            } else if !cx.busy() {
                s.message = None;
                cx.txn.decide(Decision::Keep);
                return Handled::Yes(vec![Effect::Confirm]);
            }
        }
        _ => return Handled::No,
    }
    Handled::done()
}

/// Does this host route by DSCP (a gateway): the wizard's role, or our
/// routing chain in place (in the host's rulesets or the status report)?
fn is_gateway(cx: &Shared) -> bool {
    use crate::ownership::CHAIN_ROUTE;
    let in_rulesets = cx.facts().is_some_and(|f| {
        [&f.iptables_save, &f.ip6tables_save]
            .iter()
            .any(|s| s.as_deref().is_some_and(|s| s.contains(CHAIN_ROUTE)))
    });
    let in_report = cx
        .report
        .as_ref()
        .is_some_and(|r| r.netfilter.iter().any(|n| n.chain == CHAIN_ROUTE));
    cx.draft().role.gateway() || in_rulesets || in_report
}

/// Interfaces the watch panel offers, best first. A client's signal leaves
/// by its default route. A gateway's arrives on the LAN side: not on the
/// uplink (the default route) and not on the VPN (where it is scrubbed),
/// so those come last. `i` steps through the list.
pub fn watch_interfaces(cx: &Shared) -> Vec<String> {
    let Some(facts) = cx.facts() else {
        return Vec::new();
    };
    let defaults = |table: &dyn Fn(&str) -> bool| -> Vec<String> {
        facts
            .routes_v4
            .iter()
            .chain(&facts.routes_v6)
            .filter(|r| r.dst == "default" && table(&r.table))
            .filter_map(|r| r.dev.clone())
            .collect()
    };
    let uplinks = defaults(&|t| t == "main" || t.is_empty());
    let links: Vec<String> = facts
        .links
        .iter()
        .filter(|l| l.name != "lo")
        .map(|l| l.name.clone())
        .collect();
    let mut out: Vec<String> = if is_gateway(cx) {
        // The VPN: the wizard's interface, or the way out of our own table.
        let mut vpn = defaults(&|t| !matches!(t, "main" | "local" | "default" | ""));
        if cx.draft().role.gateway() {
            // Every class's uplinks, the one being edited included.
            let d = cx.draft();
            vpn.extend(
                d.class_views(cx.facts())
                    .iter()
                    .flat_map(|c| c.uplinks.iter().filter_map(|u| u.interface.clone())),
            );
        }
        let lan = links
            .iter()
            .filter(|l| !uplinks.contains(l) && !vpn.contains(l));
        lan.chain(&uplinks).chain(&vpn).cloned().collect()
    } else {
        uplinks.clone()
    };
    out.extend(links);
    let mut seen = std::collections::HashSet::new();
    out.retain(|l| facts.link(l).is_some() && seen.insert(l.clone()));
    out
}

/// The interface the panel starts on.
pub fn watch_interface(cx: &Shared) -> Option<String> {
    watch_interfaces(cx).into_iter().next()
}

fn start_watch(s: &mut StatusState, cx: &Shared, iface: String) -> Vec<Effect> {
    let dscp = cx.draft().dscp.value();
    s.watch = Some(WatchPanel {
        interface: iface.clone(),
        text: None,
    });
    vec![Effect::Watch(Some((iface, dscp)))]
}

/// `w`: start or stop the live per-DSCP view (needs CAP_NET_RAW).
fn toggle_watch(s: &mut StatusState, cx: &mut Shared) -> Vec<Effect> {
    if s.watch.take().is_some() {
        cx.notice = None;
        return vec![Effect::Watch(None)];
    }
    if let Some(why) = cx.dry_reason() {
        cx.notice = Some(format!(
            "Dry run ({why}): watching needs root (CAP_NET_RAW); run `sudo dscproute watch \
             --interface IFACE`."
        ));
        return Vec::new();
    }
    let Some(iface) = watch_interface(cx) else {
        cx.notice = Some("No interface to watch: no links read on this host (yet).".into());
        return Vec::new();
    };
    start_watch(s, cx, iface)
}

/// `i` while watching: the next interface.
fn next_watch_interface(s: &mut StatusState, cx: &Shared) -> Vec<Effect> {
    let Some(w) = &s.watch else {
        return Vec::new();
    };
    let all = watch_interfaces(cx);
    let next = all
        .iter()
        .position(|l| *l == w.interface)
        .map_or(0, |i| (i + 1) % all.len().max(1));
    match all.get(next) {
        Some(l) if *l != w.interface => start_watch(s, cx, l.clone()),
        _ => Vec::new(),
    }
}

/// Read the counters again every two seconds while the screen is shown.
pub fn tick(s: &mut StatusState, cx: &Shared) -> Vec<Effect> {
    if cx.screen != ScreenId::Status {
        return Vec::new();
    }
    let due = s.last_refresh.is_none_or(|t| t.elapsed() >= REFRESH);
    if !due {
        return Vec::new();
    }
    // Counted from the request, so a slow read is not asked for twice.
    s.last_refresh = Some(Instant::now());
    vec![Effect::RefreshStatus]
}

pub fn render(s: &StatusState, cx: &Shared, f: &mut Frame, area: Rect) {
    let t = &cx.theme;
    let head = head_lines(s, cx, area.width);
    let ask = ask_lines(s, cx, area.width);
    let ask_h = if ask.is_empty() {
        0
    } else {
        ask.len() as u16 + 1
    };
    let watch_h = if s.watch.is_some() {
        (area.height / 2).clamp(4, 14)
    } else {
        0
    };
    let [top, body, panel, bottom] = Layout::vertical([
        Constraint::Length(head.len() as u16),
        Constraint::Min(1),
        Constraint::Length(watch_h),
        Constraint::Length(ask_h),
    ])
    .areas(area);
    if let Some(w) = &s.watch {
        let block = Block::default()
            .borders(Borders::TOP)
            .border_style(t.dim())
            .title(format!(
                " watch {} · DSCP {} (i: next interface · w stops) ",
                w.interface,
                cx.draft().dscp
            ));
        let inner = block.inner(panel);
        f.render_widget(block, panel);
        let lines: Vec<Line> = match &w.text {
            None => vec![Line::styled(
                " capturing… the first table comes within a second",
                t.dim(),
            )],
            Some(Err(e)) => vec![Line::styled(format!(" ✗ {e}"), t.error())],
            Some(Ok(text)) => text
                .lines()
                .map(|l| Line::from(l.chars().take(inner.width as usize).collect::<String>()))
                .collect(),
        };
        f.render_widget(Paragraph::new(lines), inner);
    }
    f.render_widget(Paragraph::new(head), top);
    if let Some(report) = &cx.report {
        let lines = report_lines(t, report, area.width, cx.now_unix);
        let more = lines.len() > body.height as usize;
        // A last row says where the list stands when it does not fit.
        let rows = body.height.saturating_sub(u16::from(more)) as usize;
        let scroll = s.scroll.draw(lines.len(), rows);
        let shown: Vec<Line> = lines.into_iter().skip(scroll).take(rows).collect();
        f.render_widget(Paragraph::new(shown), body);
        if let Some(pos) = s.scroll.position() {
            let pos = format!(" ↑↓ lines {pos}");
            let r = Rect::new(body.x, body.bottom() - 1, body.width, 1);
            f.render_widget(Paragraph::new(Line::styled(pos, t.dim())), r);
        }
    }
    if ask_h > 0 {
        let block = Block::default().borders(Borders::TOP).border_style(t.dim());
        let inner = block.inner(bottom);
        f.render_widget(block, bottom);
        f.render_widget(Paragraph::new(ask), inner);
    }
}

pub fn hints(s: &StatusState, cx: &Shared) -> Vec<Hint> {
    if s.asking_rollback {
        return vec![("y", "roll back"), ("n", "keep it"), ("Esc", "keep it")];
    }
    let mut v = vec![("↑↓", "scroll")];
    if cx.dry_run.is_none() && !cx.busy() {
        if pending_confirm(cx) {
            v.push(("c", "keep"));
        }
        v.push(("r", "roll back"));
        v.push((
            "w",
            if s.watch.is_some() {
                "stop watch"
            } else {
                "watch DSCP"
            },
        ));
        if s.watch.is_some() {
            v.push(("i", "next interface"));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::status::{SysctlChange, TxnSummary};
    use crate::probe::CountedRule;
    use crate::tui::app::App;
    use crate::tui::msg::Msg;
    use crate::tui::testing::{app, press, render as screen};
    use crate::tui::update::update;

    fn report(state: TxnState) -> Status {
        let rule = |family, chain: &str, spec: &str, packets, bytes| CountedRule {
            family,
            table: "mangle".into(),
            chain: chain.into(),
            spec: spec.into(),
            packets,
            bytes,
        };
        Status {
            transaction: Some(TxnSummary {
                id: "20270115-080000-1234".into(),
                state,
                state_text: crate::apply::transaction::state_word(state),
                profile: "/etc/dscproute/gateway.toml".into(),
                created_unix: 1_800_000_000,
                steps_done: 30,
                steps_total: 30,
                seconds_left: (state == TxnState::PendingConfirm).then_some(42),
                setup_changes: 30,
            }),
            advice: (state == TxnState::PendingConfirm).then(|| {
                "This change is rolled back in 42 s unless you run `dscproute confirm`.".into()
            }),
            netfilter: vec![
                rule(
                    "IPv4",
                    "PREROUTING",
                    "-m comment --comment dscproute -j DSCPROUTE-ROUTE",
                    18_234,
                    21_877_112,
                ),
                rule(
                    "IPv4",
                    "DSCPROUTE-ROUTE",
                    "! -i wg0 -m dscp --dscp 0x07 -j MARK --set-xmark 0x1/0xff",
                    1_204,
                    98_113,
                ),
                rule(
                    "IPv6",
                    "PREROUTING",
                    "-m comment --comment dscproute -j DSCPROUTE-ROUTE",
                    0,
                    0,
                ),
            ],
            rules: vec![
                "ip rule 9999: lookup main suppress_prefixlength 0".into(),
                "ip rule 10000: fwmark 0x1/0xff lookup 100".into(),
                "ip rule 10001: fwmark 0x1/0xff unreachable".into(),
                "ip -6 rule 10001: fwmark 0x1/0xff unreachable".into(),
            ],
            routes: vec!["ip route: default via 10.8.0.1 dev wg0 table 100".into()],
            sysctls: vec![SysctlChange {
                key: "net.ipv4.ip_forward".into(),
                before: "0".into(),
                now: Some("1".into()),
            }],
            clean: false,
            ..Status::default()
        }
    }

    fn on_status(state: TxnState) -> App {
        let mut a = app("gateway-clean.json");
        a.dry_run = None;
        let e = press(&mut a, KeyCode::Char('S'));
        assert_eq!(e, [Effect::RefreshStatus]);
        assert_eq!(a.screen, ScreenId::Status);
        update(&mut a, Msg::Status(Box::new(report(state))));
        a
    }

    #[test]
    fn shows_what_is_in_place_with_counters() {
        let a = on_status(TxnState::PendingConfirm);
        let s = screen(&a, 80, 24);
        assert!(s.contains("awaiting confirmation"), "{s}");
        assert!(s.contains("rolled back in 42 s unless"), "{s}");
        assert!(s.contains("18k"), "{s}");
        assert!(s.contains("22M"), "{s}");
        assert!(
            s.contains("ip rule 10000: fwmark 0x1/0xff lookup 100"),
            "{s}"
        );
        assert!(s.contains("c keep"), "{s}");
        insta::assert_snapshot!("status_pending_80x24", s);
        insta::assert_snapshot!("status_pending_120x40", screen(&a, 120, 40));
    }

    /// A `[[class]]` setup: each class on its own row, with the uplink its
    /// table routes through now (or blocked), before the rules.
    #[test]
    fn shows_the_uplink_of_each_class() {
        use crate::apply::status::ClassStatus;
        let mut a = on_status(TxnState::Applied);
        let class = |name: &str, dscp, uplink: Option<&str>| ClassStatus {
            name: name.into(),
            dscp,
            mark: Some(u32::from(dscp)),
            table_id: Some(100 + u32::from(dscp)),
            uplink: uplink.map(Into::into),
            blocked: uplink.is_none(),
            since_unix: uplink.map(|_| a.now_unix - 42),
            why: uplink.map(|u| format!("{u}: the first usable one (1 skipped: wg1 is down)")),
        };
        let mut r = report(TxnState::Applied);
        r.classes = vec![
            class("torrent", 7, Some("wg0")),
            class("streaming", 11, None),
        ];
        update(&mut a, Msg::Status(Box::new(r)));
        let s = screen(&a, 80, 24);
        assert!(
            s.contains("Classes (2): the uplink each routes through now"),
            "{s}"
        );
        assert!(
            s.contains("torrent         DSCP 7   mark 0x7    table 107    → wg0"),
            "{s}"
        );
        assert!(
            s.contains("wg0: the first usable one (1 skipped: wg1 is down) (42 s ago)"),
            "{s}"
        );
        assert!(
            s.contains("streaming       DSCP 11  mark 0xb    table 111    → blocked (kill switch)"),
            "{s}"
        );
        let (classes, rules) = (s.find("Classes (2)"), s.find("Netfilter rules"));
        assert!(classes < rules, "classes come first\n{s}");
    }

    #[test]
    fn counters_refresh_every_two_seconds_while_shown() {
        let mut a = on_status(TxnState::Applied);
        assert!(tick(&mut a.status, &a.shared).is_empty(), "just read");
        a.status.last_refresh = Instant::now().checked_sub(Duration::from_secs(3));
        assert_eq!(tick(&mut a.status, &a.shared), [Effect::RefreshStatus]);
        assert!(tick(&mut a.status, &a.shared).is_empty(), "not asked twice");
        a.status.last_refresh = Instant::now().checked_sub(Duration::from_secs(3));
        press(&mut a, KeyCode::Esc);
        assert_ne!(a.screen, ScreenId::Status);
        assert!(
            update(&mut a, Msg::Tick(Instant::now())).is_empty(),
            "not when hidden"
        );
    }

    #[test]
    fn rollback_takes_one_confirmation() {
        let mut a = on_status(TxnState::Applied);
        assert!(press(&mut a, KeyCode::Char('r')).is_empty());
        assert!(a.status.asking_rollback);
        let s = screen(&a, 80, 24);
        assert!(
            s.contains("Roll back transaction 20270115-080000-1234"),
            "{s}"
        );
        insta::assert_snapshot!("status_ask_80x24", s);
        // n cancels; other keys keep asking.
        assert!(press(&mut a, KeyCode::Char('x')).is_empty());
        assert!(a.status.asking_rollback);
        assert!(press(&mut a, KeyCode::Char('n')).is_empty());
        assert!(!a.status.asking_rollback);
        assert_eq!(a.screen, ScreenId::Status);
        press(&mut a, KeyCode::Char('r'));
        assert_eq!(press(&mut a, KeyCode::Char('y')), [Effect::Rollback]);
        assert!(a.busy());
        assert!(screen(&a, 80, 24).contains("Rolling back…"));
        // Quitting mid-rollback is refused.
        press(&mut a, KeyCode::Char('q'));
        assert!(!a.quit);
        update(
            &mut a,
            Msg::Settled(Ok("Rolled back transaction 20270115-080000-1234.".into())),
        );
        assert!(!a.busy());
        let s = screen(&a, 80, 24);
        assert!(
            s.contains("✓ Rolled back transaction 20270115-080000-1234."),
            "{s}"
        );
        // A refresh follows at the next tick.
        assert_eq!(tick(&mut a.status, &a.shared), [Effect::RefreshStatus]);
        // The host changed under the preview: it may not apply any more.
        assert!(a.txn.facts_stale());
    }

    #[test]
    fn esc_cancels_the_question_only() {
        let mut a = on_status(TxnState::Applied);
        press(&mut a, KeyCode::Char('r'));
        press(&mut a, KeyCode::Esc);
        assert!(!a.status.asking_rollback);
        assert_eq!(a.screen, ScreenId::Status);
    }

    #[test]
    fn pending_change_can_be_kept_here() {
        let mut a = on_status(TxnState::PendingConfirm);
        assert_eq!(press(&mut a, KeyCode::Char('c')), [Effect::Confirm]);
        update(
            &mut a,
            Msg::Settled(Err("nothing awaits confirmation".into())),
        );
        let s = screen(&a, 80, 24);
        assert!(s.contains("✗ nothing awaits confirmation"), "{s}");
    }

    #[test]
    fn dry_run_refuses_rollback() {
        let mut a = on_status(TxnState::Applied);
        a.dry_run = Some("dry run: not root".into());
        assert!(press(&mut a, KeyCode::Char('r')).is_empty());
        assert!(!a.status.asking_rollback);
        assert!(a.notice.as_deref().unwrap().contains("Dry run (not root)"));
        let s = screen(&a, 80, 24);
        assert!(s.contains("DRY RUN: NOT ROOT"), "{s}");
        assert!(!s.contains("r roll back"), "{s}");
    }

    #[test]
    fn clean_host_and_no_report_yet() {
        let mut a = app("client.json");
        press(&mut a, KeyCode::F(3));
        assert!(screen(&a, 80, 24).contains("Reading what dscproute has in place"));
        update(
            &mut a,
            Msg::Status(Box::new(Status {
                clean: true,
                ..Status::default()
            })),
        );
        let s = screen(&a, 80, 24);
        assert!(s.contains("No transaction on record."), "{s}");
        assert!(s.contains("Nothing of dscproute's is in place"), "{s}");
        insta::assert_snapshot!("status_clean_80x24", s);
    }

    #[test]
    fn short_counts() {
        assert_eq!(short(0), "0");
        assert_eq!(short(999), "999");
        assert_eq!(short(1_234), "1.2k");
        assert_eq!(short(21_877_112), "22M");
    }

    #[test]
    fn watch_panel_is_refused_in_a_dry_run_and_toggles_otherwise() {
        let mut a = app("gateway-applied.json");
        a.screen = ScreenId::Status;
        assert!(press(&mut a, KeyCode::Char('w')).is_empty());
        assert!(
            a.notice.as_deref().unwrap_or("").contains("CAP_NET_RAW"),
            "{:?}",
            a.notice
        );
        a.dry_run = None;
        let e = press(&mut a, KeyCode::Char('w'));
        let iface = watch_interface(&a).expect("an interface");
        assert_eq!(e, [Effect::Watch(Some((iface.clone(), 7)))]);
        let s = screen(&a, 80, 24);
        assert!(s.contains(&format!("watch {iface}")), "{s}");
        // A gateway (our routing chain is in place): the LAN side, where
        // the DSCP arrives; not the uplink, not the VPN.
        assert_eq!(iface, "eth0");
        update(
            &mut a,
            Msg::Watch(Ok("eth0: 3 IP packets\n    7 -      3".into())),
        );
        assert!(screen(&a, 80, 24).contains("eth0: 3 IP packets"));
        update(&mut a, Msg::Watch(Err("watch needs CAP_NET_RAW".into())));
        assert!(screen(&a, 120, 40).contains("✗ watch needs CAP_NET_RAW"));
        assert_eq!(press(&mut a, KeyCode::Char('w')), [Effect::Watch(None)]);
        assert!(a.status.watch.is_none());
    }

    #[test]
    fn watch_on_a_gateway_starts_on_the_lan_side_and_switches() {
        // The wizard's role is gateway, nothing applied yet.
        let mut a = app("gateway-clean.json");
        a.dry_run = None;
        press(&mut a, KeyCode::Char('2'));
        assert_eq!(
            crate::tui::screens::gateway::chosen_link(&a).as_deref(),
            Some("wg0")
        );
        press(&mut a, KeyCode::F(3));
        assert_eq!(watch_interfaces(&a), ["eth0", "uplink", "wg0"]);
        assert_eq!(
            press(&mut a, KeyCode::Char('w')),
            [Effect::Watch(Some(("eth0".into(), 7)))]
        );
        let s = screen(&a, 80, 24);
        assert!(s.contains("watch eth0 · DSCP 7 (i: next interface"), "{s}");
        assert!(s.contains("i next interface"), "{s}");
        insta::assert_snapshot!("status_watch_80x24", s);
        insta::assert_snapshot!("status_watch_120x40", screen(&a, 120, 40));
        for next in ["uplink", "wg0", "eth0"] {
            assert_eq!(
                press(&mut a, KeyCode::Char('i')),
                [Effect::Watch(Some((next.into(), 7)))]
            );
            assert_eq!(a.status.watch.as_ref().unwrap().interface, next);
        }
        // A client host watches where its signal leaves: the default route.
        let mut c = app("client.json");
        c.dry_run = None;
        let out = c
            .facts()
            .unwrap()
            .routes_v4
            .iter()
            .find(|r| r.dst == "default" && r.table == "main")
            .and_then(|r| r.dev.clone())
            .unwrap();
        assert_eq!(watch_interface(&c), Some(out));
    }
}
