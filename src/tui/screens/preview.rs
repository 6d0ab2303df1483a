//! Screen 6: the plan as it will run — each command with its reason, what is
//! already in place, the errors that block apply, warnings — scrollable. `w`
//! saves the profile, `e` exports the sh script, `a` applies after one more
//! explicit confirmation (Enter alone never applies).

use super::{Handled, Hint};
use crate::plan::{Plan, Role, StepState};
use crate::tui::app::{App, ApplyState, Effect, PromptKind, ScreenId, StepProgress};
use crate::tui::theme::Theme;
use crate::tui::widgets::field;
use ratatui::Frame;
use ratatui::crossterm::event::{Event, KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use std::path::PathBuf;
use tui_input::Input;
use tui_input::backend::crossterm::EventHandler;

/// The confirm timer's length when it is on (the default).
pub const CONFIRM_SECS: u64 = 60;
const DEFAULT_PROFILE: &str = "./dscproute.toml";
const DEFAULT_SCRIPT: &str = "./dscproute-plan.sh";
/// Columns ←/→ move the command lines by. Each long command pans up to its
/// own end (marked `…` where cut), so → reveals the tails of all of them.
const PAN_STEP: u16 = 8;

/// `width` characters of `text` starting at `skip`; an ellipsis marks each
/// side where something is cut off. Never wraps.
pub fn clip(text: &str, skip: usize, width: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    if width == 0 {
        return String::new();
    }
    let skip = skip.min(chars.len().saturating_sub(width));
    let mut out: Vec<char> = chars.iter().skip(skip).take(width).copied().collect();
    if skip > 0 {
        out[0] = '…';
    }
    if skip + width < chars.len() {
        *out.last_mut().expect("width > 0") = '…';
    }
    out.into_iter().collect()
}

/// Prose wrapped to `width`, each line indented by `indent` (a word longer
/// than the line is clipped, never spilled).
pub fn prose(text: &str, indent: usize, width: u16, style: Style) -> Vec<Line<'static>> {
    let avail = (width as usize).saturating_sub(indent).max(10);
    crate::text::wrap(text, avail)
        .into_iter()
        .map(|l| Line::styled(format!("{:indent$}{}", "", clip(&l, 0, avail)), style))
        .collect()
}

/// "recorded facts" from "dry run: recorded facts".
pub fn dry_reason(app: &App) -> Option<&str> {
    app.dry_run
        .as_deref()
        .map(|d| d.strip_prefix("dry run: ").unwrap_or(d))
}

/// Why `a` may not apply now (a footer notice), or None when it may.
pub fn refusal(app: &App, plan: &Result<Plan, String>) -> Option<String> {
    if let Some(why) = dry_reason(app) {
        return Some(format!(
            "Not applied (dry run: {why}). w saves the profile, e exports a script."
        ));
    }
    if app.facts.is_none() {
        return Some("Still reading the host: wait a moment.".into());
    }
    if app.busy() {
        return Some("Busy changing the host: wait for it to finish.".into());
    }
    if super::apply::facts_stale(app) {
        return Some(
            "The host changed in this session: restart dscproute to plan from a fresh read.".into(),
        );
    }
    match plan {
        Err(e) => Some(format!("Cannot apply: {e}")),
        Ok(p) if !p.errors.is_empty() => Some(format!(
            "Cannot apply: fix the {} error(s) listed at the top first.",
            p.errors.len()
        )),
        Ok(p) if p.is_noop() => Some("Nothing to apply: this host already matches.".into()),
        Ok(_) => None,
    }
}

fn role_word(r: Role) -> &'static str {
    match r {
        Role::Marker => "client",
        Role::Gateway => "gateway",
    }
}

/// The client's group by name and gid (`torrent (gid 1001)`), when the
/// plan marks a group.
pub fn group_shown(app: &App, plan: &Plan) -> Option<String> {
    plan.roles
        .contains(&Role::Marker)
        .then(|| super::group::label(app))
        .flatten()
}

/// The signal path (`group torrent (gid 1001) → DSCP 7 → …`), with the
/// group by name and gid where the plan has only the number.
pub fn signal_path(app: &App, plan: &Plan) -> String {
    let mut r = plan.resolved.clone();
    if let (Some(label), Some(_)) = (group_shown(app, plan), &r.group) {
        r.group = Some(label);
    }
    crate::plan::signal_path(&r)
}

/// The scrollable plan: resolved values, errors (first: they block apply),
/// steps by role with their reasons, the summary, warnings, notes. Returns
/// the lines and how far the command lines can pan.
fn plan_lines(app: &App, plan: &Plan, width: u16, pan: usize) -> (Vec<Line<'static>>, usize) {
    let t = &app.theme;
    let mut o = Vec::new();
    o.extend(prose(&signal_path(app, plan), 1, width, t.title()));
    if !plan.errors.is_empty() {
        o.push(Line::default());
        o.push(Line::styled(
            " ✗ Errors: apply refuses until they are fixed",
            t.error(),
        ));
        for e in &plan.errors {
            o.extend(field::message_lines(t.error(), "✗", e, width));
        }
    }
    let avail = (width as usize).saturating_sub(4);
    let mut max_pan = 0;
    for role in &plan.roles {
        o.push(Line::default());
        o.push(Line::styled(format!(" {}", role.title()), t.title()));
        for step in plan.steps.iter().filter(|s| s.role == *role) {
            let mut text = step.apply.display();
            if let (Some(c), StepState::Change) = (&step.change, step.state) {
                text.push_str(&format!("   ({} → {})", c.from, c.to));
            }
            max_pan = max_pan.max(text.chars().count().saturating_sub(avail));
            let (sym_style, cmd_style) = match step.state {
                StepState::Add => (t.ok(), t.command()),
                StepState::Change => (t.warning(), t.command()),
                StepState::InPlace => (t.dim(), t.dim()),
            };
            o.push(Line::from(vec![
                Span::styled(format!("  {} ", step.state.symbol()), sym_style),
                Span::styled(clip(&text, pan, avail), cmd_style),
            ]));
            o.extend(prose(&step.reason, 6, width, t.dim()));
        }
    }
    let s = &plan.summary;
    let whose = group_shown(app, plan)
        .map(|g| format!(" for group {g}"))
        .unwrap_or_default();
    o.push(Line::default());
    o.extend(prose(
        &format!(
            "Plan{whose}: {} to add, {} to change, {} already in place.",
            s.add, s.change, s.in_place
        ),
        1,
        width,
        t.title(),
    ));
    if plan.is_noop() {
        o.push(Line::styled(
            " = Nothing to do: this host already matches the profile.",
            t.ok(),
        ));
    }
    if !plan.warnings.is_empty() {
        o.push(Line::default());
        o.push(Line::styled(" ! Warnings", t.warning()));
        for w in &plan.warnings {
            o.extend(field::message_lines(t.warning(), "!", w, width));
        }
    }
    if !plan.notes.is_empty() {
        o.push(Line::default());
        o.push(Line::styled(" Notes", t.title()));
        for n in &plan.notes {
            o.extend(field::message_lines(t.dim(), "-", n, width));
        }
    }
    (o, max_pan)
}

/// Everything above the bottom bar, for a plan that could not be built.
fn problem_lines(t: &Theme, problem: &str, width: u16) -> Vec<Line<'static>> {
    let mut o = vec![Line::styled(
        " ✗ No plan: the answers cannot be settled",
        t.error(),
    )];
    for p in problem.split("; ") {
        o.extend(field::message_lines(t.error(), "✗", p, width));
    }
    o.push(Line::default());
    o.extend(prose(
        "Esc goes back through the wizard to fix it.",
        1,
        width,
        t.dim(),
    ));
    o
}

fn content(app: &App, plan: &Result<Plan, String>, width: u16) -> (Vec<Line<'static>>, usize) {
    let t = &app.theme;
    if app.facts.is_none() {
        return (vec![Line::styled(" Reading the host…", t.dim())], 0);
    }
    match plan {
        Ok(plan) => plan_lines(app, plan, width, app.preview.pan as usize),
        Err(e) => (problem_lines(t, e, width), 0),
    }
}

/// The bar under the plan: a prompt, the apply question, or what to do next.
fn bar_lines(app: &App, plan: &Result<Plan, String>, width: u16) -> Vec<Line<'static>> {
    let t = &app.theme;
    let p = &app.preview;
    if let Some((kind, _)) = &p.prompt {
        let what = match kind {
            PromptKind::SaveProfile => "Enter saves the profile (TOML) there · Esc cancels",
            PromptKind::ExportScript => {
                "Enter writes the sh script (sh FILE apply | undo) · Esc cancels"
            }
        };
        // Row 0 is the field, drawn by `field::render`.
        return vec![Line::default(), Line::styled(format!(" {what}"), t.dim())];
    }
    if p.confirming_apply {
        let n = plan.as_ref().map_or(0, |p| p.pending().count());
        let timer = if p.confirm_timer {
            format!(
                "[x] confirm timer: unless you keep it within {CONFIRM_SECS} s, it is rolled \
                 back, even if this terminal dies"
            )
        } else {
            "[ ] confirm timer off: the change stays at once (rollback undoes it)".to_string()
        };
        let mut o = vec![Line::styled(
            format!(" Apply {n} change(s) to this host now?"),
            t.title(),
        )];
        o.extend(prose(&timer, 1, width, Style::new()));
        o.push(Line::from(vec![
            Span::styled(" Enter", t.key()),
            Span::raw(" apply · "),
            Span::styled("t", t.key()),
            Span::raw(" toggle the timer · "),
            Span::styled("Esc", t.key()),
            Span::raw(" cancel"),
        ]));
        return o;
    }
    if let Some(why) = dry_reason(app) {
        return prose(
            &format!(
                "Dry run ({why}): nothing is applied from here. w saves the profile: run `sudo \
                 dscproute apply --profile FILE` on the host; e exports an sh script."
            ),
            1,
            width,
            t.warning(),
        );
    }
    let (text, style) = match (plan, refusal(app, plan)) {
        (Ok(p), None) => (
            format!(
                "a applies these {} change(s), after one more confirmation. w saves the profile, \
                 e exports an sh script.",
                p.pending().count()
            ),
            Style::new(),
        ),
        (Ok(p), Some(_)) if !p.errors.is_empty() => (
            "✗ Apply refuses until the errors at the top are fixed (each says how). w saves \
             the profile meanwhile."
                .to_string(),
            t.error(),
        ),
        (_, Some(why)) => (why, t.dim()),
        (Err(_), None) => (String::new(), Style::new()),
    };
    prose(&text, 1, width, style)
}

/// Rows of the scrolled plan in a body of `height` rows.
/// (rows shown, total lines, max pan) for the current terminal size.
fn extent(app: &App, plan: &Result<Plan, String>) -> (usize, usize, usize) {
    let (w, h) = app.size;
    let body = h.saturating_sub(3);
    let (lines, max_pan) = content(app, plan, w);
    let bar = bar_lines(app, plan, w).len() as u16 + 1;
    (body.saturating_sub(1 + bar) as usize, lines.len(), max_pan)
}

fn open_prompt(app: &mut App, kind: PromptKind) {
    let default = match kind {
        PromptKind::SaveProfile => app
            .profile_path
            .as_ref()
            .map_or(DEFAULT_PROFILE.to_string(), |p| p.display().to_string()),
        PromptKind::ExportScript => DEFAULT_SCRIPT.to_string(),
    };
    app.preview.prompt = Some((kind, Input::new(default)));
    app.notice = None;
}

/// `~/x` → `$HOME/x`; anything else as typed.
fn expand(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

fn prompt_key(app: &mut App, key: KeyEvent) -> Handled {
    let Some((kind, input)) = &mut app.preview.prompt else {
        return Handled::No;
    };
    match key.code {
        KeyCode::Esc => app.preview.prompt = None,
        KeyCode::Enter => {
            let path = input.value().trim().to_string();
            if path.is_empty() {
                app.notice = Some("Type a file path, or Esc to cancel.".into());
                return Handled::done();
            }
            let kind = *kind;
            app.preview.prompt = None;
            let path = expand(&path);
            return Handled::Yes(vec![match kind {
                PromptKind::SaveProfile => Effect::SaveProfile(path),
                PromptKind::ExportScript => Effect::ExportScript(path),
            }]);
        }
        _ => {
            input.handle_event(&Event::Key(key));
        }
    }
    Handled::done()
}

fn confirm_key(app: &mut App, key: KeyEvent) -> Handled {
    match key.code {
        KeyCode::Enter => return Handled::Yes(start_apply(app)),
        KeyCode::Char('t' | 'T') => app.preview.confirm_timer = !app.preview.confirm_timer,
        KeyCode::Esc | KeyCode::Char('n' | 'N' | 'q') => {
            app.preview.confirming_apply = false;
            app.notice = Some("Not applied.".into());
        }
        // ? L S and the rest keep their global meaning (the question stays).
        _ => return Handled::No,
    }
    Handled::done()
}

/// The confirmation was given: hand the plan to the apply worker.
fn start_apply(app: &mut App) -> Vec<Effect> {
    app.preview.confirming_apply = false;
    let plan = app.plan();
    if let Some(why) = refusal(app, &plan) {
        app.notice = Some(why);
        return Vec::new();
    }
    let Ok(plan) = plan else { return Vec::new() };
    let commands: Vec<String> = plan.pending().map(|s| s.apply.display()).collect();
    app.apply = ApplyState {
        progress: vec![StepProgress::Pending; commands.len()],
        subject: signal_path(app, &plan),
        commands,
        running: true,
        ..ApplyState::default()
    };
    app.go(ScreenId::Apply);
    vec![Effect::Apply {
        confirm_secs: app.preview.confirm_timer.then_some(CONFIRM_SECS),
    }]
}

pub fn key(app: &mut App, key: KeyEvent) -> Handled {
    if app.preview.prompt.is_some() {
        return prompt_key(app, key);
    }
    if app.preview.confirming_apply {
        return confirm_key(app, key);
    }
    let plan = app.plan();
    let (rows, total, max_pan) = extent(app, &plan);
    let max_scroll = total.saturating_sub(rows) as u16;
    let page = rows.saturating_sub(1).max(1) as u16;
    let p = &mut app.preview;
    p.scroll = p.scroll.min(max_scroll);
    match key.code {
        KeyCode::Up | KeyCode::Char('k') => p.scroll = p.scroll.saturating_sub(1),
        KeyCode::Down | KeyCode::Char('j') => p.scroll = (p.scroll + 1).min(max_scroll),
        KeyCode::PageUp => p.scroll = p.scroll.saturating_sub(page),
        KeyCode::PageDown | KeyCode::Char(' ') => p.scroll = (p.scroll + page).min(max_scroll),
        KeyCode::Home | KeyCode::Char('g') => p.scroll = 0,
        KeyCode::End | KeyCode::Char('G') => p.scroll = max_scroll,
        KeyCode::Left | KeyCode::Char('h') => p.pan = p.pan.saturating_sub(PAN_STEP),
        KeyCode::Right | KeyCode::Char('l') => {
            p.pan = (p.pan + PAN_STEP).min(max_pan as u16);
        }
        KeyCode::Char('w') => open_prompt(app, PromptKind::SaveProfile),
        KeyCode::Char('e') => open_prompt(app, PromptKind::ExportScript),
        KeyCode::Char('a') => match refusal(app, &plan) {
            Some(why) => app.notice = Some(why),
            None => {
                app.notice = None;
                app.preview.confirming_apply = true;
            }
        },
        // The global Enter means "next step"; this is the last one, and
        // applying always takes `a` and a confirmation.
        KeyCode::Enter => {
            app.notice = Some(if app.dry_run.is_some() {
                "Last step (dry run): w saves the profile, e exports a script.".into()
            } else {
                "Last step: a applies (you confirm once more), w saves, e exports a script.".into()
            });
        }
        _ => return Handled::No,
    }
    Handled::done()
}

pub fn render(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let plan = app.plan();
    let bar = bar_lines(app, &plan, area.width);
    let [head, body, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(bar.len() as u16 + 1),
    ])
    .areas(area);
    let (lines, _) = content(app, &plan, area.width);
    let rows = body.height as usize;
    let scroll = (app.preview.scroll as usize).min(lines.len().saturating_sub(rows));

    // Head: the summary, what blocks apply, where we are in the plan.
    let mut spans = Vec::new();
    if let (Ok(p), Some(_)) = (&plan, &app.facts) {
        // The client role is named by its group: `group torrent (gid 1001)`.
        let roles: Vec<String> = p
            .roles
            .iter()
            .map(|r| match (r, group_shown(app, p)) {
                (Role::Marker, Some(g)) => format!("group {g}"),
                _ => role_word(*r).to_string(),
            })
            .collect();
        let s = &p.summary;
        spans.push(Span::styled(
            format!(
                " Plan: {} to add, {} to change, {} in place · {}",
                s.add,
                s.change,
                s.in_place,
                roles.join(" + ")
            ),
            t.title(),
        ));
        if !p.errors.is_empty() {
            spans.push(Span::styled(
                format!("  ✗ {} error(s) block apply", p.errors.len()),
                t.error(),
            ));
        }
    }
    let used: usize = spans.iter().map(|s| s.content.chars().count()).sum();
    if lines.len() > rows {
        let pos = format!(
            "{}–{} of {} ",
            scroll + 1,
            (scroll + rows).min(lines.len()),
            lines.len()
        );
        let gap = (area.width as usize).saturating_sub(used + pos.chars().count());
        if gap > 0 {
            spans.push(Span::raw(" ".repeat(gap)));
            spans.push(Span::styled(pos, t.dim()));
        }
    }
    f.render_widget(Paragraph::new(Line::from(spans)), head);

    let shown: Vec<Line> = lines.into_iter().skip(scroll).take(rows).collect();
    f.render_widget(Paragraph::new(shown), body);

    let block = Block::default().borders(Borders::TOP).border_style(t.dim());
    let inner = block.inner(bottom);
    f.render_widget(block, bottom);
    f.render_widget(Paragraph::new(bar), inner);
    if let Some((kind, input)) = &app.preview.prompt {
        let label = match kind {
            PromptKind::SaveProfile => "Profile to",
            PromptKind::ExportScript => "Script to",
        };
        let row = Rect::new(inner.x, inner.y, inner.width, 1);
        field::render(f, row, t, label, input, true, "");
    }
}

pub fn hints(app: &App) -> Vec<Hint> {
    let p = &app.preview;
    if let Some((kind, _)) = &p.prompt {
        let what = match kind {
            PromptKind::SaveProfile => "save",
            PromptKind::ExportScript => "write",
        };
        return vec![("type", "path"), ("Enter", what), ("Esc", "cancel")];
    }
    if p.confirming_apply {
        return vec![("Enter", "apply"), ("t", "timer on/off"), ("Esc", "cancel")];
    }
    let plan = app.plan();
    let mut v = vec![("↑↓ PgUp/Dn", "scroll")];
    if content(app, &plan, app.size.0).1 > 0 {
        v.push(("←→", "pan"));
    }
    if refusal(app, &plan).is_none() {
        v.push(("a", "apply"));
    }
    v.extend([("w", "save profile"), ("e", "export script")]);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::testing::{app, press, render as screen, type_str};

    /// Client fixture walked to the preview.
    pub fn client_preview() -> App {
        let mut a = app("client.json");
        press(&mut a, KeyCode::Enter);
        type_str(&mut a, "torrent");
        press(&mut a, KeyCode::Enter);
        press(&mut a, KeyCode::Enter);
        assert_eq!(a.screen, ScreenId::Preview);
        a
    }

    fn gateway_preview() -> App {
        let mut a = app("gateway-clean.json");
        press(&mut a, KeyCode::Char('2'));
        press(&mut a, KeyCode::Enter);
        press(&mut a, KeyCode::Enter);
        press(&mut a, KeyCode::Enter);
        press(&mut a, KeyCode::Tab);
        type_str(&mut a, "10.8.0.1");
        press(&mut a, KeyCode::Enter);
        assert_eq!(a.screen, ScreenId::Preview);
        a
    }

    #[test]
    fn clip_marks_cut_sides() {
        assert_eq!(clip("abcdef", 0, 10), "abcdef");
        assert_eq!(clip("abcdef", 0, 4), "abc…");
        assert_eq!(clip("abcdef", 1, 4), "…cd…");
        assert_eq!(clip("abcdef", 9, 4), "…def");
        assert_eq!(clip("abc", 0, 0), "");
    }

    #[test]
    fn dry_run_refuses_apply_and_says_why() {
        let mut a = client_preview();
        let e = press(&mut a, KeyCode::Char('a'));
        assert!(e.is_empty());
        assert!(!a.preview.confirming_apply);
        assert_eq!(a.screen, ScreenId::Preview);
        let n = a.notice.clone().unwrap_or_default();
        assert!(n.contains("dry run") && n.contains("w saves"), "{n}");
        let s = screen(&a, 80, 24);
        assert!(s.contains("nothing is applied from here"), "{s}");
    }

    #[test]
    fn enter_alone_never_applies() {
        let mut a = client_preview();
        a.dry_run = None;
        for _ in 0..3 {
            assert!(press(&mut a, KeyCode::Enter).is_empty());
        }
        assert_eq!(a.screen, ScreenId::Preview);
        assert!(!a.preview.confirming_apply);
        assert!(a.notice.as_deref().unwrap_or("").contains("a applies"));
    }

    #[test]
    fn apply_takes_a_and_a_confirmation() {
        let mut a = client_preview();
        a.dry_run = None;
        assert!(press(&mut a, KeyCode::Char('a')).is_empty());
        assert!(a.preview.confirming_apply);
        let n = a.plan().unwrap().pending().count();
        let s = screen(&a, 80, 24);
        assert!(
            s.contains(&format!("Apply {n} change(s) to this host now?")),
            "{s}"
        );
        assert!(s.contains("[x] confirm timer"), "{s}");
        let e = press(&mut a, KeyCode::Enter);
        assert_eq!(
            e,
            [Effect::Apply {
                confirm_secs: Some(60)
            }]
        );
        assert_eq!(a.screen, ScreenId::Apply);
        assert!(a.apply.running && a.busy());
        assert_eq!(a.apply.commands.len(), n);
        assert!(a.apply.commands[0].starts_with("iptables -w -t mangle -N DSCPROUTE-MARK"));
        assert!(a.apply.progress.iter().all(|p| *p == StepProgress::Pending));
    }

    #[test]
    fn t_turns_the_timer_off_and_esc_cancels() {
        let mut a = client_preview();
        a.dry_run = None;
        press(&mut a, KeyCode::Char('a'));
        press(&mut a, KeyCode::Char('t'));
        assert!(screen(&a, 80, 24).contains("[ ] confirm timer off"));
        press(&mut a, KeyCode::Esc);
        assert!(!a.preview.confirming_apply);
        assert_eq!(a.screen, ScreenId::Preview, "Esc cancels, does not go back");
        press(&mut a, KeyCode::Char('a'));
        let e = press(&mut a, KeyCode::Enter);
        assert_eq!(e, [Effect::Apply { confirm_secs: None }]);
    }

    #[test]
    fn errors_block_apply() {
        let mut a = gateway_preview();
        a.dry_run = None;
        // Kill switch without via6 is fine; a conflicting fixture is not.
        let mut b = app("gateway-conflicts.json");
        b.dry_run = None;
        press(&mut b, KeyCode::Char('2'));
        press(&mut b, KeyCode::Enter);
        press(&mut b, KeyCode::Enter);
        for _ in 0..4 {
            press(&mut b, KeyCode::Tab);
        }
        type_str(&mut b, "10000");
        // The mark screen refuses to advance over a conflict: go straight to
        // the preview to check that apply refuses too.
        b.go(ScreenId::Preview);
        let plan = b.plan().unwrap();
        assert!(!plan.errors.is_empty());
        press(&mut b, KeyCode::Char('a'));
        assert!(!b.preview.confirming_apply);
        assert!(b.notice.as_deref().unwrap().contains("error(s)"));
        let s = screen(&b, 80, 24);
        assert!(s.contains("✗ Errors: apply refuses"), "{s}");
        assert!(s.contains("block apply"), "{s}");
        insta::assert_snapshot!("preview_gateway_errors_80x24", s);
        // The clean gateway applies.
        press(&mut a, KeyCode::Char('a'));
        assert!(a.preview.confirming_apply);
    }

    #[test]
    fn prompts_save_and_export_with_the_typed_path() {
        let mut a = client_preview();
        press(&mut a, KeyCode::Char('w'));
        assert!(screen(&a, 80, 24).contains("./dscproute.toml"));
        for _ in 0.."./dscproute.toml".len() {
            press(&mut a, KeyCode::Backspace);
        }
        // q and a are typed, not taken as keys.
        type_str(&mut a, "/tmp/qa.toml");
        assert!(!a.quit);
        let e = press(&mut a, KeyCode::Enter);
        assert_eq!(e, [Effect::SaveProfile("/tmp/qa.toml".into())]);
        assert!(a.preview.prompt.is_none());
        assert_eq!(a.screen, ScreenId::Preview, "Enter was the prompt's");

        press(&mut a, KeyCode::Char('e'));
        let e = press(&mut a, KeyCode::Enter);
        assert_eq!(e, [Effect::ExportScript(DEFAULT_SCRIPT.into())]);

        press(&mut a, KeyCode::Char('e'));
        let e = press(&mut a, KeyCode::Esc);
        assert!(e.is_empty());
        assert!(a.preview.prompt.is_none());
        assert_eq!(a.screen, ScreenId::Preview, "Esc closed the prompt only");
    }

    #[test]
    fn scrolls_and_pans_within_bounds() {
        let mut a = gateway_preview();
        press(&mut a, KeyCode::End);
        let (rows, total, max_pan) = extent(&a, &a.plan());
        assert!(total > rows);
        assert_eq!(a.preview.scroll as usize, total - rows);
        press(&mut a, KeyCode::Down);
        assert_eq!(a.preview.scroll as usize, total - rows);
        assert!(screen(&a, 80, 24).contains("Plan: "));
        press(&mut a, KeyCode::Home);
        assert_eq!(a.preview.scroll, 0);
        for _ in 0..50 {
            press(&mut a, KeyCode::Right);
        }
        assert_eq!(a.preview.pan as usize, max_pan);
        assert!(max_pan > 0, "gateway commands are wider than 80 columns");
    }

    #[test]
    fn small_terminals_do_not_break() {
        let mut a = gateway_preview();
        a.dry_run = None;
        for (w, h) in [(40, 15), (20, 6), (10, 3)] {
            screen(&a, w, h);
        }
        press(&mut a, KeyCode::Char('a'));
        for (w, h) in [(40, 15), (20, 6), (10, 3)] {
            screen(&a, w, h);
        }
        press(&mut a, KeyCode::Enter);
        assert_eq!(a.screen, ScreenId::Apply);
        for (w, h) in [(40, 15), (20, 6), (10, 3)] {
            screen(&a, w, h);
        }
        press(&mut a, KeyCode::F(3));
        for (w, h) in [(40, 15), (20, 6), (10, 3)] {
            screen(&a, w, h);
        }
    }

    /// Render at a size the app knows about (hints and scrolling use it).
    fn sized(a: &mut App, w: u16, h: u16) -> String {
        a.size = (w, h);
        screen(a, w, h)
    }

    #[test]
    fn snapshots_preview() {
        let mut a = client_preview();
        insta::assert_snapshot!("preview_client_80x24", sized(&mut a, 80, 24));
        insta::assert_snapshot!("preview_client_120x40", sized(&mut a, 120, 40));
        a.dry_run = None;
        press(&mut a, KeyCode::Char('a'));
        insta::assert_snapshot!("preview_client_confirm_80x24", sized(&mut a, 80, 24));
        let mut g = gateway_preview();
        insta::assert_snapshot!("preview_gateway_80x24", sized(&mut g, 80, 24));
        insta::assert_snapshot!("preview_gateway_120x40", sized(&mut g, 120, 40));
        g.size = (80, 24);
        press(&mut g, KeyCode::PageDown);
        press(&mut g, KeyCode::Right);
        press(&mut g, KeyCode::Right);
        insta::assert_snapshot!("preview_gateway_scrolled_80x24", sized(&mut g, 80, 24));
        press(&mut g, KeyCode::Char('e'));
        insta::assert_snapshot!("preview_gateway_prompt_80x24", sized(&mut g, 80, 24));
    }
}
