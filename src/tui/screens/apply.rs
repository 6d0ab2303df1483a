//! Screen 7: the transaction as it runs — one line per step (pending,
//! running, done, failed, undoing, undone, undo failed) with the stderr of a
//! failing step — then the confirm countdown: Enter keeps the change, any
//! other key rolls it back. When the time runs out the detached confirm
//! timer rolls it back by itself (it also does if this terminal dies); the
//! screen watches the journal until it has, and rolls back from here only if
//! the timer has not acted a few seconds after the deadline. Once the change
//! is kept, `p` persists it so the agent keeps it up, from boot on.

use super::{Handled, Hint};
use crate::apply::Event;
use crate::apply::journal::TxnState;
use crate::tui::msg::{ApplyResult, Effect, KeptUp};
use crate::tui::shared::{ScreenId, Shared};
use crate::tui::theme::Theme;
use crate::tui::txn::{CONFIRM_SECS, Decision, Outcome, StepProgress, Txn};
use crate::tui::widgets::field;
use crate::tui::widgets::scroll::Scroll;
use crate::tui::widgets::text::{clip, prose};
use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

/// Seconds past the deadline before the TUI stops waiting for the confirm
/// timer and rolls back itself (the timer polls twice a second; a rollback of
/// the largest plan takes under a second).
pub const TIMER_GRACE_SECS: u64 = 10;
/// Most stderr lines shown under the list.
const STDERR_LINES: usize = 6;

/// This screen's own state: where the step list is scrolled, and the offer
/// to keep the kept change up with the agent (the steps and the transaction
/// are shared).
#[derive(Debug, Default)]
pub struct ApplyState {
    pub scroll: Scroll,
    pub keep_up: KeepUp,
}

/// `p` after a kept apply: persist the setup for the agent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub enum KeepUp {
    /// Offered (when the change was kept), not asked for.
    #[default]
    Offered,
    Running,
    Done(Result<KeptUp, String>),
}

/// Applied and kept in this session: what the agent may keep up.
fn kept(cx: &Shared) -> bool {
    matches!(
        cx.txn,
        Txn::Settled {
            decision: Decision::Keep,
            outcome: Ok(_),
            ..
        } | Txn::Finished(Outcome::Applied { .. })
    )
}

/// The persist worker finished.
pub fn on_persisted(s: &mut ApplyState, r: Result<KeptUp, String>) {
    s.keep_up = KeepUp::Done(r);
}

/// The offer, the work under way, or what was installed and how to undo it.
fn keep_up_lines(s: &ApplyState, cx: &Shared, width: u16) -> Vec<Line<'static>> {
    let t = &cx.theme;
    match &s.keep_up {
        KeepUp::Offered => prose(
            "p keeps it up with the agent, from boot on (dscproute persist): it repairs what \
             VPN reconnects and firewall reloads undo.",
            1,
            width,
            t.title(),
        ),
        KeepUp::Running => prose("Persisting the setup for the agent…", 1, width, t.title()),
        KeepUp::Done(Ok(k)) => {
            let text = match &k.unit {
                Some(unit) => format!(
                    "✓ Persisted {name}: {unit} runs the agent on {profile}, now and at every \
                     boot. `systemctl stop {unit}` stops it and leaves the setup in place. To \
                     remove the setup: `sudo dscproute unpersist {name}`, then `sudo dscproute \
                     rollback --yes`.",
                    name = k.name,
                    profile = k.profile
                ),
                None => format!(
                    "✓ Installed {profile}. This host does not run systemd: `sudo dscproute \
                     persist --profile {profile}` prints the init script that runs the agent. \
                     Stopping the agent leaves the setup in place; `sudo dscproute rollback \
                     --yes` then removes it.",
                    profile = k.profile
                ),
            };
            prose(&text, 1, width, t.ok())
        }
        KeepUp::Done(Err(e)) => prose(&format!("✗ Not persisted: {e}"), 1, width, t.error()),
    }
}

fn symbol(p: StepProgress) -> (&'static str, &'static str) {
    match p {
        StepProgress::Pending => ("·", "pending"),
        StepProgress::Running => ("▶", "running"),
        StepProgress::Done => ("✓", "done"),
        StepProgress::Failed => ("✗", "failed"),
        StepProgress::Undoing => ("◀", "undoing"),
        StepProgress::Undone => ("↶", "undone"),
        StepProgress::UndoFailed => ("!", "undo failed"),
    }
}

fn style(t: &Theme, p: StepProgress) -> Style {
    match p {
        StepProgress::Pending => t.dim(),
        StepProgress::Running | StepProgress::Undoing => t.title(),
        StepProgress::Done => t.ok(),
        StepProgress::Failed | StepProgress::UndoFailed => t.error(),
        StepProgress::Undone => t.warning(),
    }
}

/// A worker's event: the step moves, and stays in view.
pub fn on_event(s: &mut ApplyState, cx: &mut Shared, ev: Event) {
    let index = cx.steps.on_event(ev);
    s.scroll.show(index);
}

/// The apply worker finished.
pub fn on_done(cx: &mut Shared, r: Result<ApplyResult, String>) {
    cx.txn.apply_done(r);
    if cx.waiting_for_confirm() {
        // Every key now decides: make sure the countdown is what is on screen.
        cx.help = false;
        cx.back.clear();
        if cx.screen != ScreenId::Apply {
            cx.go(ScreenId::Apply);
        }
    }
}

/// The transaction of this session, as the last status report sees it.
fn reported_state(cx: &Shared) -> Option<(TxnState, Option<&str>)> {
    let id = cx.txn.applied()?;
    let report = cx.report.as_ref()?;
    let t = report.transaction.as_ref()?;
    (t.id == id).then_some((t.state, report.advice.as_deref()))
}

/// Once a second: past the deadline, watch the confirm timer roll back;
/// take over when it has not acted in time.
pub fn tick(cx: &mut Shared) -> Vec<Effect> {
    let (decision, deadline) = match &cx.txn {
        Txn::AwaitingConfirm { deadline_unix, .. } => (None, *deadline_unix),
        Txn::Deciding {
            decision,
            deadline_unix: Some(d),
            ..
        } => (Some(*decision), *d),
        _ => return Vec::new(),
    };
    match decision {
        None if cx.now_unix >= deadline => {
            // The detached timer rolls back now; watch the journal for it.
            cx.txn.decide(Decision::TimeUp);
            vec![Effect::RefreshStatus]
        }
        Some(Decision::TimeUp) => {
            if let Some((state, advice)) = reported_state(cx)
                && !matches!(state, TxnState::PendingConfirm | TxnState::Running)
            {
                let id = cx.txn.applied().unwrap_or_default();
                let r = match (state, advice) {
                    (TxnState::RolledBack, None) => Ok(format!(
                        "Not kept in time: the confirm timer rolled back transaction {id}."
                    )),
                    (TxnState::RolledBack, Some(a)) => Err(format!(
                        "Not kept in time: the confirm timer rolled back transaction {id} only \
                         partly. {a}"
                    )),
                    (TxnState::Applied, _) => Err(format!(
                        "Transaction {id} was kept meanwhile (dscproute confirm ran elsewhere)."
                    )),
                    (other, _) => Err(format!(
                        "Transaction {id} is now {}.",
                        crate::apply::transaction::state_word(other)
                    )),
                };
                if r.is_ok() {
                    cx.steps.all_undone();
                }
                cx.txn.settle(r);
                return Vec::new();
            }
            if cx.now_unix >= deadline + TIMER_GRACE_SECS {
                cx.txn.decide(Decision::Rollback);
                cx.notice = Some("The confirm timer has not acted: rolling back from here.".into());
                return vec![Effect::RollbackLast];
            }
            vec![Effect::RefreshStatus]
        }
        _ => Vec::new(),
    }
}

/// While a change awaits confirmation: Enter keeps it, anything else rolls it back.
pub fn confirm_key(cx: &mut Shared, key: KeyEvent) -> Vec<Effect> {
    if matches!(key.code, KeyCode::Modifier(_)) {
        return Vec::new();
    }
    match cx.txn.decision() {
        Some(Decision::Keep) => {
            cx.notice = Some("Keeping the change: wait a moment.".into());
            Vec::new()
        }
        Some(Decision::Rollback) => {
            cx.notice = Some("Rolling back: wait for it to finish.".into());
            Vec::new()
        }
        Some(Decision::TimeUp) => {
            cx.notice = Some("Time is up: the confirm timer is rolling back.".into());
            Vec::new()
        }
        None if key.code == KeyCode::Enter => {
            cx.notice = None;
            cx.txn.decide(Decision::Keep);
            vec![Effect::Confirm]
        }
        None => {
            cx.notice = None;
            cx.txn.decide(Decision::Rollback);
            vec![Effect::RollbackLast]
        }
    }
}

pub fn key(s: &mut ApplyState, cx: &mut Shared, key: KeyEvent) -> Handled {
    if cx.busy() {
        if matches!(key.code, KeyCode::Esc | KeyCode::Char('q')) {
            cx.notice = Some("Busy changing the host: wait for it to finish.".into());
            return Handled::done();
        }
        return Handled::No;
    }
    if s.scroll.key(key.code) {
        return Handled::done();
    }
    match key.code {
        KeyCode::Esc => cx.go(ScreenId::Preview),
        KeyCode::Char('p') if kept(cx) && s.keep_up != KeepUp::Running => {
            if matches!(s.keep_up, KeepUp::Done(Ok(_))) {
                cx.notice = Some("Already persisted: the agent keeps it up.".into());
            } else {
                s.keep_up = KeepUp::Running;
                return Handled::Yes(vec![Effect::Persist]);
            }
        }
        _ => return Handled::No,
    }
    Handled::done()
}

/// The line above the list: where the transaction stands.
fn headline(cx: &Shared) -> (String, Style) {
    let t = &cx.theme;
    let s = &cx.steps;
    let n = s.progress.len();
    let done = s.count(StepProgress::Done);
    let failed = s.progress.iter().position(|p| *p == StepProgress::Failed);
    match &cx.txn {
        Txn::Running => {
            let i = s
                .progress
                .iter()
                .position(|p| *p == StepProgress::Running)
                .map_or(done, |i| i + 1);
            match failed {
                Some(f) => (
                    format!(
                        " ✗ Step {} of {n} failed: undoing the steps before it…",
                        f + 1
                    ),
                    t.error(),
                ),
                None => (
                    format!(" Applying {n} change(s) · step {i} of {n}"),
                    t.title(),
                ),
            }
        }
        Txn::Deciding { decision, .. } => match decision {
            Decision::Keep => (" Keeping the change…".into(), t.title()),
            Decision::Rollback => (" Rolling back…".into(), t.warning()),
            Decision::TimeUp => (
                " Time is up: the confirm timer is rolling the change back…".into(),
                t.warning(),
            ),
        },
        Txn::Settled {
            decision: Decision::Keep,
            outcome: Ok(_),
            ..
        } => (format!(" ✓ Applied {n} change(s) and kept them"), t.ok()),
        Txn::Settled { outcome: Ok(_), .. } => {
            (" ↶ Rolled back: the host is as before".into(), t.warning())
        }
        Txn::Settled {
            outcome: Err(_), ..
        } => (" ✗ The change could not be settled".into(), t.error()),
        Txn::Finished(Outcome::Noop) => (" = Nothing to do".into(), t.ok()),
        Txn::AwaitingConfirm { .. } => {
            (format!(" ✓ Applied {n} change(s) · keep them?"), t.title())
        }
        Txn::Finished(Outcome::Applied { .. }) => (format!(" ✓ Applied {n} change(s)"), t.ok()),
        Txn::Finished(Outcome::Failed(_)) => match failed {
            Some(f) => (
                format!(
                    " ✗ Step {} of {n} failed: the steps before it were undone",
                    f + 1
                ),
                t.error(),
            ),
            None => (" ✗ Nothing was applied".into(), t.error()),
        },
        Txn::Idle => (" Nothing applied yet".into(), t.dim()),
    }
}

fn countdown(cx: &Shared, deadline: u64, width: u16) -> Vec<Line<'static>> {
    let t = &cx.theme;
    let left = deadline.saturating_sub(cx.now_unix);
    let total = CONFIRM_SECS.max(left);
    let bar_w = (width as usize).saturating_sub(16).clamp(10, 50);
    let full = (left as usize * bar_w).div_ceil(total.max(1) as usize);
    let mut o = vec![
        Line::from(vec![
            Span::styled(" Keep this change? ", t.title()),
            Span::styled("Enter", t.key()),
            Span::raw(" keeps it · "),
            Span::styled("any other key", t.key()),
            Span::raw(" rolls it back"),
        ]),
        Line::from(vec![
            Span::styled(format!(" {left:>3} s left "), t.warning()),
            Span::styled(
                format!("[{}{}]", "█".repeat(full), "░".repeat(bar_w - full)),
                t.warning(),
            ),
        ]),
    ];
    o.extend(prose(
        "Lost the connection? If nobody keeps it in time, the confirm timer rolls it back by \
         itself, even when this terminal or session is gone.",
        1,
        width,
        t.dim(),
    ));
    o
}

/// Everything under the list: failure and stderr, the countdown, the outcome.
fn panel_lines(state: &ApplyState, cx: &Shared, width: u16) -> Vec<Line<'static>> {
    let t = &cx.theme;
    let s = &cx.steps;
    let mut o = Vec::new();
    if let Some(f) = s.progress.iter().position(|p| *p == StepProgress::Failed) {
        // The failing command and its stderr in full, wrapped: they say what to fix.
        let cmd = s.commands.get(f).cloned().unwrap_or_default();
        o.extend(field::message_lines(
            t.error(),
            "✗",
            &format!("step {}: {cmd}", f + 1),
            width,
        ));
        let stderr = s.failure.as_deref().unwrap_or("").trim();
        let avail = (width as usize).saturating_sub(6).max(10);
        let mut lines: Vec<String> = Vec::new();
        for l in stderr.lines() {
            lines.extend(crate::text::wrap(l, avail));
        }
        if lines.is_empty() {
            lines.push("(no error output)".into());
        }
        let cut = lines.len() > STDERR_LINES;
        for l in lines.iter().take(STDERR_LINES) {
            o.push(Line::raw(format!("    │ {}", clip(l, 0, avail))));
        }
        if cut {
            o.push(Line::styled(
                format!("    │ … {} more line(s)", lines.len() - STDERR_LINES),
                t.dim(),
            ));
        }
    }
    match &cx.txn {
        Txn::Running => {
            if o.is_empty() {
                o.extend(prose(
                    "Each step is journalled before it runs; if one fails, the steps before it \
                     are undone and the host ends as it began.",
                    1,
                    width,
                    t.dim(),
                ));
            }
        }
        Txn::AwaitingConfirm { deadline_unix, .. } => {
            o.extend(countdown(cx, *deadline_unix, width))
        }
        Txn::Deciding { decision, .. } => {
            let text = match decision {
                Decision::Keep => "Telling the confirm timer to stand down…",
                Decision::Rollback => "Undoing each step, newest first (↶ marks each one undone)…",
                Decision::TimeUp => {
                    "Nobody kept the change in time. Waiting for the confirm timer to finish \
                     rolling it back…"
                }
            };
            o.extend(prose(text, 1, width, t.warning()));
        }
        Txn::Settled {
            decision,
            outcome: Ok(m),
            ..
        } => {
            o.extend(prose(&format!("✓ {m}"), 1, width, t.ok()));
            let next = if *decision == Decision::Keep {
                "The change stays. S shows it with live counters; r there rolls it back."
            } else {
                "S shows what is in place; Esc returns to the preview."
            };
            o.extend(prose(next, 1, width, t.dim()));
            if *decision == Decision::Keep {
                o.extend(keep_up_lines(state, cx, width));
            }
        }
        Txn::Settled {
            outcome: Err(e), ..
        } => {
            o.extend(prose(&format!("✗ {e}"), 1, width, t.error()));
            o.extend(prose(
                "S shows what is in place now; `sudo dscproute rollback --all` removes \
                 everything dscproute owns.",
                1,
                width,
                t.dim(),
            ));
        }
        Txn::Finished(Outcome::Noop) => o.extend(prose(
            "= Nothing to do: the host already matches the profile.",
            1,
            width,
            t.ok(),
        )),
        Txn::Finished(Outcome::Applied { transaction }) => {
            o.extend(prose(
                &format!(
                    "✓ Applied as transaction {transaction}. No confirm timer: the change stays. \
                     S shows it with live counters; r there rolls it back."
                ),
                1,
                width,
                t.ok(),
            ));
            o.extend(keep_up_lines(state, cx, width));
        }
        Txn::Finished(Outcome::Failed(e)) => {
            let any = s.progress.iter().any(|p| *p != StepProgress::Pending);
            if any {
                o.extend(prose(
                    "The completed steps were undone: the host is as before.",
                    1,
                    width,
                    t.warning(),
                ));
            } else {
                o.extend(prose(&format!("✗ {e}"), 1, width, t.error()));
            }
        }
        Txn::Idle => {}
    }
    o
}

/// Rows of the step list in a body of `height` rows, under `head` rows and
/// over the legend and `panel` lines.
fn list_height(total: usize, height: u16, head: u16, panel: usize) -> u16 {
    let panel_h = if panel == 0 { 0 } else { panel as u16 + 1 };
    (total as u16).clamp(1, height.saturating_sub(head + 1 + panel_h).max(1))
}

pub fn render(state: &ApplyState, cx: &Shared, f: &mut Frame, area: Rect) {
    let t = &cx.theme;
    let s = &cx.steps;
    let panel = panel_lines(state, cx, area.width);
    let panel_h = if panel.is_empty() {
        0
    } else {
        panel.len() as u16 + 1
    };
    let total = s.commands.len();
    // Top down: where it stands, the steps, the legend, then what to do.
    let head_h = 1 + u16::from(!s.subject.is_empty());
    let [head, list, legend, bottom, _] = Layout::vertical([
        Constraint::Length(head_h),
        Constraint::Length(list_height(total, area.height, head_h, panel.len())),
        Constraint::Length(1),
        Constraint::Length(panel_h),
        Constraint::Min(0),
    ])
    .areas(area);
    let (text, head_style) = headline(cx);
    let mut head_lines = vec![Line::styled(text, head_style)];
    if !s.subject.is_empty() {
        head_lines.push(Line::styled(
            format!(
                "   {}",
                clip(&s.subject, 0, (area.width as usize).saturating_sub(3))
            ),
            t.dim(),
        ));
    }
    f.render_widget(Paragraph::new(head_lines), head);

    let rows = list.height as usize;
    let mut first = state.scroll.draw(total, rows);
    // Whatever is running stays in view.
    if let Some(i) = s
        .progress
        .iter()
        .position(|p| matches!(p, StepProgress::Running | StepProgress::Undoing))
    {
        if i < first {
            first = i;
        } else if i >= first + rows {
            first = i + 1 - rows;
        }
    }
    let digits = total.max(1).to_string().len();
    let avail = (area.width as usize).saturating_sub(digits + 4);
    let lines: Vec<Line> = s
        .commands
        .iter()
        .zip(&s.progress)
        .enumerate()
        .skip(first)
        .take(rows)
        .map(|(i, (cmd, p))| {
            let (sym, _) = symbol(*p);
            let cmd_style = match p {
                StepProgress::Pending | StepProgress::Undone => t.dim(),
                StepProgress::Running | StepProgress::Undoing => t.title(),
                _ => Style::new(),
            };
            Line::from(vec![
                Span::styled(format!(" {sym} "), style(t, *p)),
                Span::styled(format!("{:>digits$} ", i + 1), t.dim()),
                Span::styled(clip(cmd, 0, avail), cmd_style),
            ])
        })
        .collect();
    f.render_widget(Paragraph::new(lines), list);

    // Legend: the words for the symbols on screen, and where the list stands.
    let mut spans = Vec::new();
    for p in [
        StepProgress::Pending,
        StepProgress::Running,
        StepProgress::Done,
        StepProgress::Failed,
        StepProgress::Undoing,
        StepProgress::Undone,
        StepProgress::UndoFailed,
    ] {
        if s.progress.contains(&p) {
            let (sym, word) = symbol(p);
            spans.push(Span::styled(format!(" {sym} {word}"), t.dim()));
        }
    }
    if total > rows {
        let used: usize = spans.iter().map(|s| s.content.chars().count()).sum();
        let pos = format!("{}–{} of {total} ", first + 1, (first + rows).min(total));
        let gap = (area.width as usize).saturating_sub(used + pos.chars().count());
        if gap > 0 {
            spans.push(Span::raw(" ".repeat(gap)));
            spans.push(Span::styled(pos, t.dim()));
        }
    }
    f.render_widget(Paragraph::new(Line::from(spans)), legend);

    if panel_h > 0 {
        let block = Block::default().borders(Borders::TOP).border_style(t.dim());
        let inner = block.inner(bottom);
        f.render_widget(block, bottom);
        f.render_widget(Paragraph::new(panel), inner);
    }
}

pub fn hints(s: &ApplyState, cx: &Shared) -> Vec<Hint> {
    if cx.waiting_for_confirm() {
        return match cx.txn.decision() {
            None => vec![
                ("Enter", "keep the change"),
                ("any other key", "roll it back"),
            ],
            Some(_) => Vec::new(),
        };
    }
    if cx.busy() {
        return Vec::new();
    }
    let mut v = vec![("↑↓", "scroll")];
    if kept(cx) && !matches!(s.keep_up, KeepUp::Running | KeepUp::Done(Ok(_))) {
        v.push(("p", "keep up (agent)"));
    }
    v.extend([("S", "status"), ("Esc", "preview"), ("q", "quit")]);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::executor::Failure;
    use crate::apply::status::{Status, TxnSummary};
    use crate::tui::app::App;
    use crate::tui::msg::Msg;
    use crate::tui::testing::{app, ctrl, press, render as screen, type_str};
    use crate::tui::update::update;
    use ratatui::crossterm::event::KeyModifiers;

    const NOW: u64 = 1_800_000_000;

    /// The client walk, applied for real (no dry run), confirm timer on.
    fn applying() -> App {
        let mut a = app("client.json");
        a.dry_run = None;
        press(&mut a, KeyCode::Enter);
        type_str(&mut a, "torrent");
        press(&mut a, KeyCode::Enter);
        press(&mut a, KeyCode::Enter);
        press(&mut a, KeyCode::Char('a'));
        let e = press(&mut a, KeyCode::Enter);
        assert_eq!(
            e,
            [Effect::Apply {
                confirm_secs: Some(60)
            }]
        );
        assert_eq!(a.screen, ScreenId::Apply);
        a
    }

    fn ev(a: &mut App, e: Event) {
        assert!(update(a, Msg::Apply(e)).is_empty());
    }

    fn started(a: &mut App, index: usize) {
        let command = a.steps.commands[index].clone();
        let total = a.steps.commands.len();
        ev(
            a,
            Event::Started {
                index,
                total,
                command,
            },
        );
    }

    fn all_done(a: &mut App) {
        for i in 0..a.steps.commands.len() {
            started(a, i);
            ev(a, Event::Done { index: i });
        }
    }

    fn done(deadline: Option<u64>) -> Msg {
        Msg::ApplyDone(Ok(ApplyResult {
            transaction: "20270115-080000-1234".into(),
            noop: false,
            deadline_unix: deadline,
        }))
    }

    fn counting_down() -> App {
        let mut a = applying();
        all_done(&mut a);
        assert!(update(&mut a, done(Some(NOW + 60))).is_empty());
        assert!(a.waiting_for_confirm());
        a
    }

    fn tick(a: &mut App, now: u64) -> Vec<Effect> {
        // The real tick reads the clock; here the clock is set by hand.
        a.now_unix = now;
        super::tick(a)
    }

    fn status_with(state: TxnState, advice: Option<&str>) -> Msg {
        Msg::Status(Box::new(Status {
            transaction: Some(TxnSummary {
                id: "20270115-080000-1234".into(),
                state,
                state_text: crate::apply::transaction::state_word(state),
                profile: "tui".into(),
                created_unix: NOW,
                steps_done: 0,
                steps_total: 8,
                seconds_left: None,
                setup_changes: 0,
            }),
            advice: advice.map(str::to_string),
            ..Status::default()
        }))
    }

    #[test]
    fn events_move_the_steps() {
        let mut a = applying();
        started(&mut a, 0);
        ev(&mut a, Event::Done { index: 0 });
        started(&mut a, 1);
        assert_eq!(
            a.steps.progress[..3],
            [
                StepProgress::Done,
                StepProgress::Running,
                StepProgress::Pending
            ]
        );
        let s = screen(&a, 80, 24);
        let n = a.steps.commands.len();
        assert!(
            s.contains(&format!("Applying {n} change(s) · step 2 of {n}")),
            "{s}"
        );
        assert!(s.contains(" ✓ 1 iptables"), "{s}");
        assert!(s.contains(" ▶ 2 iptables"), "{s}");
        // Quitting now would interrupt the transaction.
        let e = press(&mut a, KeyCode::Char('q'));
        assert!(e.is_empty() && !a.quit);
        let e = ctrl(&mut a, 'c');
        assert!(e.is_empty() && !a.quit);
        insta::assert_snapshot!("apply_running_80x24", screen(&a, 80, 24));
        insta::assert_snapshot!("apply_running_120x40", screen(&a, 120, 40));
    }

    #[test]
    fn countdown_enter_keeps() {
        let mut a = counting_down();
        let s = screen(&a, 80, 24);
        assert!(s.contains("Keep this change? Enter keeps it"), "{s}");
        assert!(s.contains("60 s left"), "{s}");
        assert!(tick(&mut a, NOW + 18).is_empty());
        let s = screen(&a, 80, 24);
        assert!(s.contains("42 s left"), "{s}");
        assert!(
            !s.contains("F1 help"),
            "no global keys while every key decides: {s}"
        );
        insta::assert_snapshot!("apply_countdown_80x24", s);
        insta::assert_snapshot!("apply_countdown_120x40", screen(&a, 120, 40));

        let e = press(&mut a, KeyCode::Enter);
        assert_eq!(e, [Effect::Confirm]);
        assert!(screen(&a, 80, 24).contains("Keeping the change"));
        // A second key while it settles does nothing.
        assert!(press(&mut a, KeyCode::Char('x')).is_empty());
        assert!(ctrl(&mut a, 'c').is_empty() && !a.quit);
        update(
            &mut a,
            Msg::Settled(Ok("Kept transaction 20270115-080000-1234.".into())),
        );
        assert!(!a.waiting_for_confirm() && !a.busy());
        assert_eq!(a.txn.deadline(), None);
        let s = screen(&a, 80, 24);
        assert!(s.contains("Kept transaction 20270115-080000-1234."), "{s}");
        assert!(s.contains("S status"), "{s}");
        assert!(s.contains("q quit"), "{s}");
        // Applied and kept: the preview's facts are stale now.
        press(&mut a, KeyCode::Esc);
        assert_eq!(a.screen, ScreenId::Preview);
        press(&mut a, KeyCode::Char('a'));
        assert!(!a.preview.confirming_apply);
        assert!(a.notice.as_deref().unwrap().contains("host changed"));
    }

    /// Counted down, Enter, kept.
    fn kept_app() -> App {
        let mut a = counting_down();
        assert_eq!(press(&mut a, KeyCode::Enter), [Effect::Confirm]);
        update(
            &mut a,
            Msg::Settled(Ok("Kept transaction 20270115-080000-1234.".into())),
        );
        a
    }

    #[test]
    fn kept_offers_the_agent_and_p_persists() {
        // Not before the change is kept: p is no key during the countdown
        // (it rolls back, as any other key), nor after a rollback.
        let mut a = counting_down();
        assert_eq!(press(&mut a, KeyCode::Char('p')), [Effect::RollbackLast]);
        update(&mut a, Msg::Settled(Ok("Rolled back.".into())));
        assert!(press(&mut a, KeyCode::Char('p')).is_empty());
        assert!(
            !screen(&a, 80, 24).contains("keep"),
            "{}",
            screen(&a, 80, 24)
        );

        let mut a = kept_app();
        let s = screen(&a, 80, 24);
        assert!(s.contains("p keeps it up with the agent"), "{s}");
        assert!(s.contains("p keep up (agent)"), "{s}");
        insta::assert_snapshot!("apply_kept_offer_80x24", s);
        insta::assert_snapshot!("apply_kept_offer_120x40", screen(&a, 120, 40));

        assert_eq!(press(&mut a, KeyCode::Char('p')), [Effect::Persist]);
        assert_eq!(a.apply.keep_up, KeepUp::Running);
        // Once is enough while it runs.
        assert!(press(&mut a, KeyCode::Char('p')).is_empty());
        assert!(screen(&a, 80, 24).contains("Persisting the setup for the agent"));

        update(
            &mut a,
            Msg::Persisted(Ok(KeptUp {
                name: "client".into(),
                profile: "/etc/dscproute/client.toml".into(),
                unit: Some("dscproute@client.service".into()),
            })),
        );
        let s = screen(&a, 80, 24);
        // The panel's words, wrapping aside.
        let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat.contains("✓ Persisted client: dscproute@client.service"),
            "{s}"
        );
        assert!(
            flat.contains("`systemctl stop dscproute@client.service`"),
            "{s}"
        );
        assert!(
            flat.contains(
                "`sudo dscproute unpersist client`, then `sudo dscproute rollback --yes`"
            ),
            "{s}"
        );
        assert!(!s.contains("p keep up"), "{s}");
        insta::assert_snapshot!("apply_kept_persisted_80x24", s);
        insta::assert_snapshot!("apply_kept_persisted_120x40", screen(&a, 120, 40));
        assert!(press(&mut a, KeyCode::Char('p')).is_empty());
        assert!(a.notice.as_deref().unwrap().contains("Already persisted"));
    }

    #[test]
    fn persisting_without_systemd_or_refused() {
        let mut a = kept_app();
        press(&mut a, KeyCode::Char('p'));
        update(
            &mut a,
            Msg::Persisted(Ok(KeptUp {
                name: "client".into(),
                profile: "/etc/dscproute/client.toml".into(),
                unit: None,
            })),
        );
        let s = screen(&a, 120, 40);
        let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat.contains("This host does not run systemd"), "{s}");
        assert!(
            flat.contains("`sudo dscproute persist --profile /etc/dscproute/client.toml`"),
            "{s}"
        );

        let mut b = kept_app();
        press(&mut b, KeyCode::Char('p'));
        update(
            &mut b,
            Msg::Persisted(Err(
                "not persisting: profile \"gw\" is already persisted".into()
            )),
        );
        let s = screen(&b, 80, 24);
        let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat.contains("✗ Not persisted: not persisting: profile"),
            "{s}"
        );
        // Refused: p may try again (after `unpersist`, say).
        assert!(s.contains("p keep up (agent)"), "{s}");
        assert_eq!(press(&mut b, KeyCode::Char('p')), [Effect::Persist]);

        // Applied without the confirm timer is kept too.
        let mut c = applying();
        all_done(&mut c);
        update(&mut c, done(None));
        assert!(screen(&c, 80, 24).contains("p keeps it up with the agent"));
        assert_eq!(press(&mut c, KeyCode::Char('p')), [Effect::Persist]);
    }

    #[test]
    fn countdown_any_other_key_rolls_back() {
        for key in [
            KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE),
            KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL),
            KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE),
            KeyEvent::new(KeyCode::F(1), KeyModifiers::NONE),
        ] {
            let mut a = counting_down();
            let e = update(&mut a, Msg::Key(key));
            assert_eq!(e, [Effect::RollbackLast], "{key:?}");
            assert!(!a.quit && !a.help);
            assert!(screen(&a, 80, 24).contains("Rolling back…"));
        }
        let mut a = counting_down();
        press(&mut a, KeyCode::Char('n'));
        for i in (0..a.steps.commands.len()).rev() {
            let command = format!("undo {i}");
            ev(&mut a, Event::Undoing { index: i, command });
            ev(&mut a, Event::Undone { index: i });
        }
        assert!(a.steps.progress.iter().all(|p| *p == StepProgress::Undone));
        update(
            &mut a,
            Msg::Settled(Ok("Rolled back transaction 20270115-080000-1234.".into())),
        );
        let s = screen(&a, 80, 24);
        assert!(s.contains("↶ Rolled back: the host is as before"), "{s}");
        assert!(s.contains(" ↶ 1 iptables"), "{s}");
        insta::assert_snapshot!("apply_rolled_back_80x24", s);
        // Rolled back: the preview may apply again.
        press(&mut a, KeyCode::Esc);
        press(&mut a, KeyCode::Char('a'));
        assert!(a.preview.confirming_apply);
    }

    #[test]
    fn time_up_waits_for_the_timer_then_takes_over() {
        let mut a = counting_down();
        assert!(tick(&mut a, NOW + 59).is_empty());
        assert_eq!(tick(&mut a, NOW + 60), [Effect::RefreshStatus]);
        assert_eq!(a.txn.decision(), Some(Decision::TimeUp));
        let s = screen(&a, 80, 24);
        assert!(s.contains("Time is up"), "{s}");
        // Keys no longer decide anything.
        assert!(press(&mut a, KeyCode::Enter).is_empty());
        // Still pending: keep watching.
        update(&mut a, status_with(TxnState::PendingConfirm, None));
        assert_eq!(tick(&mut a, NOW + 61), [Effect::RefreshStatus]);
        // The timer did it.
        update(&mut a, status_with(TxnState::RolledBack, None));
        assert!(tick(&mut a, NOW + 62).is_empty());
        assert!(!a.waiting_for_confirm() && !a.busy());
        let s = screen(&a, 80, 24);
        assert!(
            s.contains("the confirm timer rolled back transaction"),
            "{s}"
        );
        assert!(a.steps.progress.iter().all(|p| *p == StepProgress::Undone));

        // A timer that never acts: the TUI rolls back itself.
        let mut b = counting_down();
        tick(&mut b, NOW + 60);
        assert_eq!(tick(&mut b, NOW + 65), [Effect::RefreshStatus]);
        assert_eq!(
            tick(&mut b, NOW + 60 + TIMER_GRACE_SECS),
            [Effect::RollbackLast]
        );
        assert!(b.busy());
        update(
            &mut b,
            Msg::Settled(Ok("Rolled back transaction x.".into())),
        );
        assert!(!b.busy() && !b.waiting_for_confirm());
    }

    #[test]
    fn countdown_comes_to_the_front() {
        let mut a = applying();
        update(
            &mut a,
            Msg::Key(KeyEvent::new(KeyCode::F(3), KeyModifiers::NONE)),
        );
        assert_eq!(a.screen, ScreenId::Status);
        all_done(&mut a);
        update(&mut a, done(Some(NOW + 60)));
        assert_eq!(a.screen, ScreenId::Apply);
        assert!(screen(&a, 80, 24).contains("Keep this change?"));
    }

    #[test]
    fn a_failed_apply_shows_stderr() {
        let mut a = applying();
        started(&mut a, 0);
        ev(&mut a, Event::Done { index: 0 });
        started(&mut a, 1);
        let command = a.steps.commands[1].clone();
        ev(
            &mut a,
            Event::Failed {
                index: 1,
                failure: Failure {
                    command: command.clone(),
                    stderr: "iptables v1.8.9 (nf_tables): Couldn't load match `owner':No such \
                             file or directory\n\nTry `iptables -h' or 'iptables --help' for \
                             more information.\n"
                        .into(),
                },
            },
        );
        let undo = "iptables -w -t mangle -X DSCPROUTE-MARK".to_string();
        ev(
            &mut a,
            Event::Undoing {
                index: 0,
                command: undo,
            },
        );
        ev(&mut a, Event::Undone { index: 0 });
        let e = update(
            &mut a,
            Msg::ApplyDone(Err(format!(
                "{command}: Couldn't load match (the completed steps were undone)"
            ))),
        );
        assert!(e.is_empty());
        assert!(!a.busy() && !a.waiting_for_confirm());
        let s = screen(&a, 80, 24);
        let n = a.steps.commands.len();
        assert!(s.contains(&format!("Step 2 of {n} failed")), "{s}");
        assert!(s.contains("Couldn't load match `owner'"), "{s}");
        assert!(s.contains("the host is as before"), "{s}");
        assert!(s.contains(" ↶ 1 iptables"), "{s}");
        assert!(s.contains(" ✗ 2 iptables"), "{s}");
        insta::assert_snapshot!("apply_failed_80x24", s);
        insta::assert_snapshot!("apply_failed_120x40", screen(&a, 120, 40));
        // The host is as before: applying again is allowed.
        assert!(!a.txn.facts_stale());
    }

    #[test]
    fn refused_before_any_step() {
        let mut a = applying();
        update(
            &mut a,
            Msg::ApplyDone(Err(
                "another dscproute apply or rollback is running (pid 42): wait for it to finish"
                    .into(),
            )),
        );
        let s = screen(&a, 80, 24);
        assert!(s.contains("Nothing was applied"), "{s}");
        assert!(s.contains("pid 42"), "{s}");
    }

    #[test]
    fn without_timer_or_with_nothing_to_do() {
        let mut a = applying();
        all_done(&mut a);
        update(&mut a, done(None));
        assert!(!a.waiting_for_confirm());
        let s = screen(&a, 80, 24);
        assert!(s.contains("No confirm timer: the change"), "{s}");
        assert!(a.txn.facts_stale());

        let mut b = applying();
        update(
            &mut b,
            Msg::ApplyDone(Ok(ApplyResult {
                transaction: String::new(),
                noop: true,
                deadline_unix: None,
            })),
        );
        assert!(screen(&b, 80, 24).contains("Nothing to do"));
        assert!(!b.txn.facts_stale());
    }

    #[test]
    fn long_plans_keep_the_running_step_in_view() {
        let mut a = app("gateway-clean.json");
        a.dry_run = None;
        press(&mut a, KeyCode::Char('2'));
        press(&mut a, KeyCode::Enter);
        press(&mut a, KeyCode::Enter);
        press(&mut a, KeyCode::Enter);
        press(&mut a, KeyCode::Tab);
        type_str(&mut a, "10.8.0.1");
        press(&mut a, KeyCode::Enter);
        press(&mut a, KeyCode::Char('a'));
        press(&mut a, KeyCode::Enter);
        let n = a.steps.commands.len();
        assert!(n > 20, "{n}");
        for i in 0..n - 2 {
            let command = a.steps.commands[i].clone();
            ev(
                &mut a,
                Event::Started {
                    index: i,
                    total: n,
                    command,
                },
            );
            if i < n - 3 {
                ev(&mut a, Event::Done { index: i });
            }
        }
        let s = screen(&a, 80, 24);
        assert!(s.contains(&format!(" ▶ {} ", n - 2)), "{s}");
        for line in s.lines() {
            assert!(line.chars().count() <= 80);
        }
        insta::assert_snapshot!("apply_gateway_running_80x24", s);
    }
}
