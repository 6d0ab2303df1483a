//! Screen 7: the transaction as it runs — one line per step (pending,
//! running, done, failed, undoing, undone, undo failed) with the stderr of a
//! failing step — then the confirm countdown: Enter keeps the change, any
//! other key rolls it back. When the time runs out the detached confirm
//! timer rolls it back by itself (it also does if this terminal dies); the
//! screen watches the journal until it has, and rolls back from here only if
//! the timer has not acted a few seconds after the deadline.

use super::preview::{clip, prose};
use super::{Handled, Hint};
use crate::apply::Event;
use crate::apply::journal::TxnState;
use crate::tui::app::{App, ApplyResult, Decision, Effect, ScreenId, StepProgress};
use crate::tui::theme::Theme;
use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use std::time::{Duration, Instant};

/// Seconds past the deadline before the TUI stops waiting for the confirm
/// timer and rolls back itself (the timer polls twice a second; a rollback of
/// the largest plan takes under a second).
pub const TIMER_GRACE_SECS: u64 = 10;
/// Most stderr lines shown under the list.
const STDERR_LINES: usize = 6;

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

/// Has the host changed since its facts were read (applied, or a rollback
/// other than of this session's own apply)? Then the preview's plan is stale
/// and must not be applied.
pub fn facts_stale(app: &App) -> bool {
    let s = &app.apply;
    let applied = matches!(&s.result, Some(Ok(r)) if !r.noop);
    let rolled_back =
        matches!(s.decision, Some(Decision::Rollback | Decision::TimeUp)) && s.settled.is_some();
    match (applied, rolled_back) {
        (false, false) => false,
        (true, false) => true,
        // This session's change undone: as before, unless only partly.
        (true, true) => !matches!(s.settled, Some(Ok(_))),
        // A rollback of an earlier transaction.
        (false, true) => true,
    }
}

/// Make room for step `index` (events of a rollback started elsewhere).
fn ensure(app: &mut App, index: usize, command: Option<&str>) {
    let s = &mut app.apply;
    while s.progress.len() <= index {
        s.progress.push(StepProgress::Pending);
    }
    while s.commands.len() <= index {
        s.commands.push(String::new());
    }
    if let Some(c) = command
        && s.commands[index].is_empty()
    {
        s.commands[index] = c.to_string();
    }
}

/// Rows above the list: where it stands, and what is applied (when known).
fn head_height(app: &App) -> u16 {
    1 + u16::from(!app.apply.subject.is_empty())
}

/// Rows of the step list for the current terminal size (for scrolling).
fn list_rows(app: &App) -> usize {
    let (w, h) = app.size;
    let panel = panel_lines(app, w).len();
    list_height(
        app.apply.commands.len(),
        h.saturating_sub(3),
        head_height(app),
        panel,
    ) as usize
}

/// Keep step `index` in view.
fn follow(app: &mut App, index: usize) {
    let rows = list_rows(app).max(1);
    let s = &mut app.apply;
    let first = s.scroll as usize;
    if index < first {
        s.scroll = index as u16;
    } else if index >= first + rows {
        s.scroll = (index + 1 - rows) as u16;
    }
}

pub fn on_event(app: &mut App, ev: Event) {
    let (index, progress) = match ev {
        Event::Started {
            index,
            total,
            command,
        } => {
            ensure(app, total.saturating_sub(1).max(index), None);
            ensure(app, index, Some(&command));
            (index, StepProgress::Running)
        }
        Event::Done { index } => (index, StepProgress::Done),
        Event::Failed { index, failure } => {
            app.apply.failure = Some(failure.stderr.trim().to_string());
            (index, StepProgress::Failed)
        }
        Event::Undoing { index, command } => {
            ensure(app, index, Some(&command));
            (index, StepProgress::Undoing)
        }
        Event::Undone { index } => (index, StepProgress::Undone),
        Event::UndoFailed { index, failure } => {
            let line = format!("undo of step {} failed: {failure}", index + 1);
            let f = &mut app.apply.failure;
            *f = Some(match f.take() {
                Some(prev) if !prev.is_empty() => format!("{prev}\n{line}"),
                _ => line,
            });
            (index, StepProgress::UndoFailed)
        }
    };
    ensure(app, index, None);
    app.apply.progress[index] = progress;
    follow(app, index);
}

pub fn on_done(app: &mut App, r: Result<ApplyResult, String>) -> Vec<Effect> {
    let s = &mut app.apply;
    s.running = false;
    if let Ok(res) = &r {
        s.deadline_unix = res.deadline_unix.filter(|_| !res.noop);
    }
    s.result = Some(r);
    if app.waiting_for_confirm() {
        // Every key now decides: make sure the countdown is what is on screen.
        app.help = false;
        app.back.clear();
        if app.screen != ScreenId::Apply {
            app.go(ScreenId::Apply);
        }
    }
    Vec::new()
}

/// Confirm or rollback finished (from the countdown or the status screen).
pub fn on_settled(app: &mut App, r: Result<String, String>) {
    app.status.message = Some(r.clone());
    app.status.asking_rollback = false;
    // Read the status again at the next tick.
    app.status.last_refresh = Instant::now().checked_sub(Duration::from_secs(60));
    let s = &mut app.apply;
    if s.decision.is_none() && s.deadline_unix.is_none() {
        return;
    }
    if s.decision.is_none() {
        s.decision = Some(Decision::Rollback);
    }
    s.deadline_unix = None;
    s.settled = Some(r);
}

/// The transaction of this session, as the last status report sees it.
fn reported_state(app: &App) -> Option<(TxnState, Option<&str>)> {
    let id = match &app.apply.result {
        Some(Ok(r)) => &r.transaction,
        _ => return None,
    };
    let report = app.status.report.as_ref()?;
    let t = report.transaction.as_ref()?;
    (&t.id == id).then_some((t.state, report.advice.as_deref()))
}

pub fn tick(app: &mut App) -> Vec<Effect> {
    let Some(deadline) = app.apply.deadline_unix else {
        return Vec::new();
    };
    if app.apply.settled.is_some() {
        return Vec::new();
    }
    match app.apply.decision {
        None if app.now_unix >= deadline => {
            // The detached timer rolls back now; watch the journal for it.
            app.apply.decision = Some(Decision::TimeUp);
            vec![Effect::RefreshStatus]
        }
        Some(Decision::TimeUp) => {
            if let Some((state, advice)) = reported_state(app)
                && !matches!(state, TxnState::PendingConfirm | TxnState::Running)
            {
                let id = app.apply.result.as_ref().map_or(String::new(), |r| {
                    r.as_ref()
                        .map(|r| r.transaction.clone())
                        .unwrap_or_default()
                });
                let r = match (state, advice) {
                    (TxnState::RolledBack, None) => {
                        for p in app.apply.progress.iter_mut() {
                            if *p == StepProgress::Done {
                                *p = StepProgress::Undone;
                            }
                        }
                        Ok(format!(
                            "Not kept in time: the confirm timer rolled back transaction {id}."
                        ))
                    }
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
                app.apply.deadline_unix = None;
                app.apply.settled = Some(r);
                return Vec::new();
            }
            if app.now_unix >= deadline + TIMER_GRACE_SECS {
                app.apply.decision = Some(Decision::Rollback);
                app.notice =
                    Some("The confirm timer has not acted: rolling back from here.".into());
                return vec![Effect::Rollback];
            }
            vec![Effect::RefreshStatus]
        }
        _ => Vec::new(),
    }
}

/// While a change awaits confirmation: Enter keeps it, anything else rolls it back.
pub fn confirm_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    if matches!(key.code, KeyCode::Modifier(_)) {
        return Vec::new();
    }
    match app.apply.decision {
        Some(Decision::Keep) => {
            app.notice = Some("Keeping the change: wait a moment.".into());
            Vec::new()
        }
        Some(Decision::Rollback) => {
            app.notice = Some("Rolling back: wait for it to finish.".into());
            Vec::new()
        }
        Some(Decision::TimeUp) => {
            app.notice = Some("Time is up: the confirm timer is rolling back.".into());
            Vec::new()
        }
        None if key.code == KeyCode::Enter => {
            app.notice = None;
            app.apply.decision = Some(Decision::Keep);
            vec![Effect::Confirm]
        }
        None => {
            app.notice = None;
            app.apply.decision = Some(Decision::Rollback);
            vec![Effect::Rollback]
        }
    }
}

pub fn key(app: &mut App, key: KeyEvent) -> Handled {
    if app.busy() {
        if matches!(key.code, KeyCode::Esc | KeyCode::Char('q')) {
            app.notice = Some("Busy changing the host: wait for it to finish.".into());
            return Handled::done();
        }
        return Handled::No;
    }
    let total = app.apply.commands.len();
    let rows = list_rows(app).max(1);
    let max = total.saturating_sub(rows) as u16;
    let s = &mut app.apply;
    s.scroll = s.scroll.min(max);
    match key.code {
        KeyCode::Up | KeyCode::Char('k') => s.scroll = s.scroll.saturating_sub(1),
        KeyCode::Down | KeyCode::Char('j') => s.scroll = (s.scroll + 1).min(max),
        KeyCode::PageUp => s.scroll = s.scroll.saturating_sub(rows as u16),
        KeyCode::PageDown => s.scroll = (s.scroll + rows as u16).min(max),
        KeyCode::Home => s.scroll = 0,
        KeyCode::End => s.scroll = max,
        KeyCode::Esc => app.go(ScreenId::Preview),
        _ => return Handled::No,
    }
    Handled::done()
}

fn count(app: &App, p: StepProgress) -> usize {
    app.apply.progress.iter().filter(|x| **x == p).count()
}

/// The line above the list: where the transaction stands.
fn headline(app: &App) -> (String, Style) {
    let t = &app.theme;
    let s = &app.apply;
    let n = s.progress.len();
    let done = count(app, StepProgress::Done);
    let failed = s.progress.iter().position(|p| *p == StepProgress::Failed);
    if s.running {
        let i = s
            .progress
            .iter()
            .position(|p| *p == StepProgress::Running)
            .map_or(done, |i| i + 1);
        return match failed {
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
        };
    }
    if let Some(d) = s.decision
        && s.settled.is_none()
    {
        return match d {
            Decision::Keep => (" Keeping the change…".into(), t.title()),
            Decision::Rollback => (" Rolling back…".into(), t.warning()),
            Decision::TimeUp => (
                " Time is up: the confirm timer is rolling the change back…".into(),
                t.warning(),
            ),
        };
    }
    match (&s.result, &s.settled) {
        (_, Some(Ok(_))) if matches!(s.decision, Some(Decision::Keep)) => {
            (format!(" ✓ Applied {n} change(s) and kept them"), t.ok())
        }
        (_, Some(Ok(_))) => (" ↶ Rolled back: the host is as before".into(), t.warning()),
        (_, Some(Err(_))) => (" ✗ The change could not be settled".into(), t.error()),
        (Some(Ok(r)), None) if r.noop => (" = Nothing to do".into(), t.ok()),
        (Some(Ok(_)), None) if s.deadline_unix.is_some() => {
            (format!(" ✓ Applied {n} change(s) · keep them?"), t.title())
        }
        (Some(Ok(_)), None) => (format!(" ✓ Applied {n} change(s)"), t.ok()),
        (Some(Err(_)), None) => match failed {
            Some(f) => (
                format!(
                    " ✗ Step {} of {n} failed: the steps before it were undone",
                    f + 1
                ),
                t.error(),
            ),
            None => (" ✗ Nothing was applied".into(), t.error()),
        },
        (None, None) => (" Nothing applied yet".into(), t.dim()),
    }
}

fn countdown(app: &App, deadline: u64, width: u16) -> Vec<Line<'static>> {
    let t = &app.theme;
    let left = deadline.saturating_sub(app.now_unix);
    let total = super::preview::CONFIRM_SECS.max(left);
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
fn panel_lines(app: &App, width: u16) -> Vec<Line<'static>> {
    let t = &app.theme;
    let s = &app.apply;
    let mut o = Vec::new();
    if let Some(f) = s.progress.iter().position(|p| *p == StepProgress::Failed) {
        // The failing command and its stderr in full, wrapped: they say what to fix.
        let cmd = s.commands.get(f).cloned().unwrap_or_default();
        o.extend(crate::tui::widgets::field::message_lines(
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
    if s.running {
        if o.is_empty() {
            o.extend(prose(
                "Each step is journalled before it runs; if one fails, the steps before it are \
                 undone and the host ends as it began.",
                1,
                width,
                t.dim(),
            ));
        }
        return o;
    }
    if let (Some(d), None, None) = (s.deadline_unix, s.decision, &s.settled) {
        o.extend(countdown(app, d, width));
        return o;
    }
    if let (Some(d), None) = (s.decision, &s.settled) {
        let text = match d {
            Decision::Keep => "Telling the confirm timer to stand down…",
            Decision::Rollback => "Undoing each step, newest first (↶ marks each one undone)…",
            Decision::TimeUp => {
                "Nobody kept the change in time. Waiting for the confirm timer to finish rolling \
                 it back…"
            }
        };
        o.extend(prose(text, 1, width, t.warning()));
        return o;
    }
    match (&s.result, &s.settled) {
        (_, Some(Ok(m))) => {
            o.extend(prose(&format!("✓ {m}"), 1, width, t.ok()));
            let next = if s.decision == Some(Decision::Keep) {
                "The change stays. S shows it with live counters; r there rolls it back."
            } else {
                "S shows what is in place; Esc returns to the preview."
            };
            o.extend(prose(next, 1, width, t.dim()));
        }
        (_, Some(Err(e))) => {
            o.extend(prose(&format!("✗ {e}"), 1, width, t.error()));
            o.extend(prose(
                "S shows what is in place now; `sudo dscproute rollback --all` removes \
                 everything dscproute owns.",
                1,
                width,
                t.dim(),
            ));
        }
        (Some(Ok(r)), None) if r.noop => o.extend(prose(
            "= Nothing to do: the host already matches the profile.",
            1,
            width,
            t.ok(),
        )),
        (Some(Ok(r)), None) => o.extend(prose(
            &format!(
                "✓ Applied as transaction {}. No confirm timer: the change stays. S shows it \
                 with live counters; r there rolls it back.",
                r.transaction
            ),
            1,
            width,
            t.ok(),
        )),
        (Some(Err(e)), None) => {
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
        (None, None) => {}
    }
    o
}

/// Rows of the step list in a body of `height` rows, under `head` rows and
/// over the legend and `panel` lines.
fn list_height(total: usize, height: u16, head: u16, panel: usize) -> u16 {
    let panel_h = if panel == 0 { 0 } else { panel as u16 + 1 };
    (total as u16).clamp(1, height.saturating_sub(head + 1 + panel_h).max(1))
}

pub fn render(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let s = &app.apply;
    let panel = panel_lines(app, area.width);
    let panel_h = if panel.is_empty() {
        0
    } else {
        panel.len() as u16 + 1
    };
    let total = s.commands.len();
    // Top down: where it stands, the steps, the legend, then what to do.
    let head_h = head_height(app);
    let [head, list, legend, bottom, _] = Layout::vertical([
        Constraint::Length(head_h),
        Constraint::Length(list_height(total, area.height, head_h, panel.len())),
        Constraint::Length(1),
        Constraint::Length(panel_h),
        Constraint::Min(0),
    ])
    .areas(area);
    let (text, head_style) = headline(app);
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
    let mut first = (s.scroll as usize).min(total.saturating_sub(rows));
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

pub fn hints(app: &App) -> Vec<Hint> {
    let s = &app.apply;
    if app.waiting_for_confirm() {
        return match s.decision {
            None => vec![
                ("Enter", "keep the change"),
                ("any other key", "roll it back"),
            ],
            Some(_) => Vec::new(),
        };
    }
    if app.busy() {
        return Vec::new();
    }
    vec![
        ("↑↓", "scroll"),
        ("S", "status"),
        ("Esc", "preview"),
        ("q", "quit"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::executor::Failure;
    use crate::apply::status::{Status, TxnSummary};
    use crate::tui::app::{Msg, update};
    use crate::tui::testing::{app, ctrl, press, render as screen, type_str};
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
        let command = a.apply.commands[index].clone();
        let total = a.apply.commands.len();
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
        for i in 0..a.apply.commands.len() {
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
            a.apply.progress[..3],
            [
                StepProgress::Done,
                StepProgress::Running,
                StepProgress::Pending
            ]
        );
        let s = screen(&a, 80, 24);
        let n = a.apply.commands.len();
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
        assert_eq!(a.apply.deadline_unix, None);
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
            assert_eq!(e, [Effect::Rollback], "{key:?}");
            assert!(!a.quit && !a.help);
            assert!(screen(&a, 80, 24).contains("Rolling back…"));
        }
        let mut a = counting_down();
        press(&mut a, KeyCode::Char('n'));
        for i in (0..a.apply.commands.len()).rev() {
            let command = format!("undo {i}");
            ev(&mut a, Event::Undoing { index: i, command });
            ev(&mut a, Event::Undone { index: i });
        }
        assert!(a.apply.progress.iter().all(|p| *p == StepProgress::Undone));
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
        assert_eq!(a.apply.decision, Some(Decision::TimeUp));
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
        assert!(a.apply.progress.iter().all(|p| *p == StepProgress::Undone));

        // A timer that never acts: the TUI rolls back itself.
        let mut b = counting_down();
        tick(&mut b, NOW + 60);
        assert_eq!(tick(&mut b, NOW + 65), [Effect::RefreshStatus]);
        assert_eq!(
            tick(&mut b, NOW + 60 + TIMER_GRACE_SECS),
            [Effect::Rollback]
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
        let command = a.apply.commands[1].clone();
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
        let n = a.apply.commands.len();
        assert!(s.contains(&format!("Step 2 of {n} failed")), "{s}");
        assert!(s.contains("Couldn't load match `owner'"), "{s}");
        assert!(s.contains("the host is as before"), "{s}");
        assert!(s.contains(" ↶ 1 iptables"), "{s}");
        assert!(s.contains(" ✗ 2 iptables"), "{s}");
        insta::assert_snapshot!("apply_failed_80x24", s);
        insta::assert_snapshot!("apply_failed_120x40", screen(&a, 120, 40));
        // The host is as before: applying again is allowed.
        assert!(!facts_stale(&a));
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
        assert!(facts_stale(&a));

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
        assert!(!facts_stale(&b));
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
        let n = a.apply.commands.len();
        assert!(n > 20, "{n}");
        for i in 0..n - 2 {
            let command = a.apply.commands[i].clone();
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
