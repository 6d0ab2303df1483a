//! Screen 6: the plan as it will run — each command with its reason, what is
//! already in place, the errors that block apply, warnings — scrollable. `w`
//! saves the profile, `e` exports the sh script, `c` writes a client recipe
//! (chooser, then the value it needs, then the path), `a` applies after one
//! more explicit confirmation (Enter alone never applies).

use super::{Handled, Hint};
use crate::plan::{Plan, Role, StepState};
use crate::recipe::Target;
use crate::tui::draft::WhoKind;
use crate::tui::msg::Effect;
use crate::tui::recipes;
use crate::tui::shared::{ScreenId, Shared};
use crate::tui::theme::Theme;
use crate::tui::txn::{CONFIRM_SECS, StepLog, Txn};
use crate::tui::widgets::field;
use crate::tui::widgets::scroll::Scroll;
use crate::tui::widgets::text::{clip, prose};
use ratatui::Frame;
use ratatui::crossterm::event::{Event, KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use std::cell::Cell;
use std::path::PathBuf;
use tui_input::Input;
use tui_input::backend::crossterm::EventHandler;

const DEFAULT_PROFILE: &str = "./dscproute.toml";
const DEFAULT_SCRIPT: &str = "./dscproute-plan.sh";
/// Columns ←/→ move the command lines by. Each long command pans up to its
/// own end (marked `…` where cut), so → reveals the tails of all of them.
const PAN_STEP: u16 = 8;

/// A one-line text prompt over the preview (save profile / export script).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptKind {
    SaveProfile,
    ExportScript,
    /// The value a client recipe needs (windows' program, openwrt's prefix).
    RecipeValue(Target),
    /// Where to write the client recipe.
    RecipePath(Target),
}

#[derive(Debug)]
pub struct PreviewState {
    pub scroll: Scroll,
    /// Horizontal offset of the command lines (←/→), in characters.
    pub pan: u16,
    /// How far the command lines could pan at the last draw.
    pub max_pan: Cell<usize>,
    pub prompt: Option<(PromptKind, Input)>,
    /// Asking "apply now?" with the confirm timer on or off.
    pub confirming_apply: bool,
    pub confirm_timer: bool,
    /// Dry run, `p`: the commands that keep the setup up with the agent.
    pub keep_up_shown: bool,
    /// `c`: the client recipe chooser is open, on this entry of `Target::ALL`.
    pub recipe_choice: Option<usize>,
    /// The value given for the recipe being written (program, prefixes).
    pub recipe_value: String,
    /// What the last recipe written was and how to use it (over the bar).
    pub recipe_written: Option<String>,
}

impl Default for PreviewState {
    fn default() -> Self {
        PreviewState {
            scroll: Scroll::default(),
            pan: 0,
            max_pan: Cell::new(0),
            prompt: None,
            confirming_apply: false,
            confirm_timer: true,
            keep_up_shown: false,
            recipe_choice: None,
            recipe_value: String::new(),
            recipe_written: None,
        }
    }
}

/// Why `a` may not apply now (a footer notice), or None when it may.
pub fn refusal(cx: &Shared) -> Option<String> {
    if let Some(why) = cx.dry_reason() {
        return Some(format!(
            "Not applied (dry run: {why}). w saves the profile, e exports a script."
        ));
    }
    if cx.facts().is_none() {
        return Some("Still reading the host: wait a moment.".into());
    }
    if cx.busy() {
        return Some("Busy changing the host: wait for it to finish.".into());
    }
    if cx.txn.facts_stale() {
        return Some(
            "The host changed in this session: restart dscproute to plan from a fresh read.".into(),
        );
    }
    match cx.plan() {
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
pub fn group_shown(cx: &Shared, plan: &Plan) -> Option<String> {
    (plan.roles.contains(&Role::Marker) && cx.draft().who.kind == WhoKind::Group)
        .then(|| cx.draft().group.label(cx.facts()))
        .flatten()
}

/// Whom the client marks, when the plan has a client role: `group torrent
/// (gid 1001)`, `user alice`, `unit app.service`.
pub fn whom_shown(cx: &Shared, plan: &Plan) -> Option<String> {
    if let Some(g) = group_shown(cx, plan) {
        return Some(format!("group {g}"));
    }
    if !plan.roles.contains(&Role::Marker) {
        return None;
    }
    let marker = cx.draft_profile().ok()?.marker?;
    Some(marker.who.to_string())
}

/// The signal path (`group torrent (gid 1001) → DSCP 7 → …`), with the
/// group by name and gid where the plan has only the number.
pub fn signal_path(cx: &Shared, plan: &Plan) -> String {
    let mut r = plan.resolved.clone();
    if let (Some(label), Some(_)) = (group_shown(cx, plan), &r.group) {
        r.group = Some(label);
    }
    crate::plan::signal_path(&r)
}

/// The scrollable plan: resolved values, errors (first: they block apply),
/// steps by role with their reasons, the summary, warnings, notes. Returns
/// the lines and how far the command lines can pan.
fn plan_lines(cx: &Shared, plan: &Plan, width: u16, pan: usize) -> (Vec<Line<'static>>, usize) {
    let t = &cx.theme;
    let mut o = Vec::new();
    if plan.resolved.classes.is_empty() {
        o.extend(prose(&signal_path(cx, plan), 1, width, t.title()));
    }
    // A `[[class]]` profile: one path per class, with why that uplink.
    for c in &plan.resolved.classes {
        o.extend(prose(&crate::plan::class_path(c), 1, width, t.title()));
        o.extend(prose(
            &format!("uplink {}", c.uplink_why),
            5,
            width,
            t.dim(),
        ));
    }
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
            // Inside the one nft transaction: each rule and why.
            if let crate::backend::Op::NftTable { ruleset, .. } = &step.apply {
                for (hook, rule) in ruleset.rules() {
                    let text = format!("| {}", rule.text());
                    max_pan =
                        max_pan.max(text.chars().count().saturating_sub(avail.saturating_sub(4)));
                    o.push(Line::from(vec![
                        Span::raw("      "),
                        Span::styled(clip(&text, pan, avail.saturating_sub(4)), t.command()),
                    ]));
                    o.extend(prose(
                        &crate::plan::nft::why(hook, rule),
                        10,
                        width,
                        t.dim(),
                    ));
                }
            }
        }
    }
    let s = &plan.summary;
    let whose = whom_shown(cx, plan)
        .map(|g| format!(" for {g}"))
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

fn content(s: &PreviewState, cx: &Shared, width: u16) -> (Vec<Line<'static>>, usize) {
    let t = &cx.theme;
    if cx.facts().is_none() {
        return (vec![Line::styled(" Reading the host…", t.dim())], 0);
    }
    match cx.plan() {
        Ok(plan) => plan_lines(cx, plan, width, s.pan as usize),
        Err(e) => (problem_lines(t, e, width), 0),
    }
}

/// The bar under the plan: a prompt, the apply question, or what to do next.
fn bar_lines(p: &PreviewState, cx: &Shared, width: u16) -> Vec<Line<'static>> {
    let t = &cx.theme;
    let plan = cx.plan();
    if let Some(i) = p.recipe_choice {
        return chooser_lines(cx, i, width);
    }
    if let Some((kind, input)) = &p.prompt {
        let what = match kind {
            PromptKind::SaveProfile => "Enter saves the profile (TOML) there · Esc cancels",
            PromptKind::ExportScript => {
                "Enter writes the sh script (sh FILE apply | undo) · Esc cancels"
            }
            PromptKind::RecipeValue(target) => {
                // Row 0 is the field; row 1 judges the value as it is typed.
                let value = input.value();
                let mut o = vec![Line::default()];
                o.extend(if value.trim().is_empty() {
                    field::message_lines(t.dim(), " ", recipes::value_hint(*target), width)
                } else {
                    match recipes::make(cx, *target, &recipes::request(*target, value)) {
                        Ok(_) => field::message_lines(
                            t.ok(),
                            "→",
                            "accepted: Enter asks where to write the recipe",
                            width,
                        ),
                        Err(e) => field::message_lines(t.error(), "✗", &e, width),
                    }
                });
                o.push(Line::styled(" Enter takes it · Esc cancels", t.dim()));
                return o;
            }
            PromptKind::RecipePath(target) => {
                return vec![
                    Line::default(),
                    Line::styled(
                        format!(
                            " Enter writes the {} recipe there · Esc cancels",
                            target.name()
                        ),
                        t.dim(),
                    ),
                ];
            }
        };
        // Row 0 is the field, drawn by `field::render`.
        return vec![Line::default(), Line::styled(format!(" {what}"), t.dim())];
    }
    if let Some(done) = &p.recipe_written {
        return prose(done, 1, width, t.ok());
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
    if let Some(why) = cx.dry_reason() {
        if p.keep_up_shown {
            return prose(
                &crate::tui::keep_up::commands(cx.profile_path.as_deref()),
                1,
                width,
                t.warning(),
            );
        }
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
    let (text, style) = match (plan, refusal(cx)) {
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

/// The chooser of client recipes, entry `at` highlighted, with what Enter
/// does on it (or why it cannot).
fn chooser_lines(cx: &Shared, at: usize, width: u16) -> Vec<Line<'static>> {
    let t = &cx.theme;
    let mut o = vec![Line::styled(
        " Client recipe: the client role for a host that cannot run dscproute",
        t.title(),
    )];
    for (i, target) in Target::ALL.iter().enumerate() {
        let style = if i == at { t.selected() } else { Style::new() };
        let text = format!(
            "{} {:<9} {}",
            if i == at { "▸" } else { " " },
            target.name(),
            target.summary()
        );
        o.push(Line::styled(
            clip(&text, 0, (width as usize).saturating_sub(1)),
            style,
        ));
    }
    let target = Target::ALL[at];
    o.extend(
        match (recipes::refusal(cx, target), recipes::asks_for(target)) {
            (Some(e), _) => field::message_lines(t.error(), "✗", &e, width),
            (None, Some(what)) => field::message_lines(
                t.dim(),
                "→",
                &format!(
                    "Enter asks for the {}, then where to write it",
                    what.to_lowercase()
                ),
                width,
            ),
            (None, None) => field::message_lines(
                t.dim(),
                "→",
                &format!(
                    "Enter asks where to write it ({})",
                    recipes::default_path(cx, target).display()
                ),
                width,
            ),
        },
    );
    o
}

/// `c`: the chooser, for a draft with a client role.
fn open_chooser(s: &mut PreviewState, cx: &mut Shared) {
    if !cx.draft().role.marker() {
        cx.notice = Some(
            "A client recipe writes the client role: choose client (or both) on the first step."
                .into(),
        );
        return;
    }
    s.recipe_choice = Some(0);
    s.recipe_written = None;
    cx.notice = None;
}

fn chooser_key(s: &mut PreviewState, cx: &mut Shared, key: KeyEvent) -> Handled {
    let Some(at) = s.recipe_choice else {
        return Handled::No;
    };
    let last = Target::ALL.len() - 1;
    match key.code {
        KeyCode::Up | KeyCode::Char('k') => s.recipe_choice = Some(at.saturating_sub(1)),
        KeyCode::Down | KeyCode::Char('j') => s.recipe_choice = Some((at + 1).min(last)),
        KeyCode::Esc => s.recipe_choice = None,
        KeyCode::Enter => {
            let target = Target::ALL[at];
            if let Some(e) = recipes::refusal(cx, target) {
                cx.notice = Some(e);
                return Handled::done();
            }
            s.recipe_choice = None;
            s.recipe_value.clear();
            match recipes::asks_for(target) {
                Some(_) => {
                    s.prompt = Some((PromptKind::RecipeValue(target), Input::default()));
                    cx.notice = None;
                }
                None => open_prompt(s, cx, PromptKind::RecipePath(target)),
            }
        }
        _ => return Handled::No,
    }
    Handled::done()
}

fn open_prompt(s: &mut PreviewState, cx: &mut Shared, kind: PromptKind) {
    let default = match kind {
        PromptKind::SaveProfile => cx
            .profile_path
            .as_ref()
            .map_or(DEFAULT_PROFILE.to_string(), |p| p.display().to_string()),
        PromptKind::ExportScript => DEFAULT_SCRIPT.to_string(),
        PromptKind::RecipeValue(_) => String::new(),
        PromptKind::RecipePath(t) => recipes::default_path(cx, t).display().to_string(),
    };
    s.prompt = Some((kind, Input::new(default)));
    s.recipe_written = None;
    cx.notice = None;
}

/// `~/x` → `$HOME/x`; anything else as typed.
fn expand(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

fn prompt_key(s: &mut PreviewState, cx: &mut Shared, key: KeyEvent) -> Handled {
    let Some((kind, input)) = &mut s.prompt else {
        return Handled::No;
    };
    match key.code {
        KeyCode::Esc => s.prompt = None,
        KeyCode::Enter if matches!(kind, PromptKind::RecipeValue(_)) => {
            let PromptKind::RecipeValue(target) = *kind else {
                return Handled::done();
            };
            let value = input.value().trim().to_string();
            match recipes::make(cx, target, &recipes::request(target, &value)) {
                Err(e) => cx.notice = Some(e),
                Ok(_) => {
                    s.recipe_value = value;
                    open_prompt(s, cx, PromptKind::RecipePath(target));
                }
            }
        }
        KeyCode::Enter => {
            let path = input.value().trim().to_string();
            if path.is_empty() {
                cx.notice = Some("Type a file path, or Esc to cancel.".into());
                return Handled::done();
            }
            let kind = *kind;
            s.prompt = None;
            let path = expand(&path);
            return Handled::Yes(vec![match kind {
                PromptKind::SaveProfile => Effect::SaveProfile(path),
                PromptKind::ExportScript => Effect::ExportScript(path),
                PromptKind::RecipeValue(target) | PromptKind::RecipePath(target) => {
                    Effect::WriteRecipe {
                        path,
                        target,
                        req: recipes::request(target, &s.recipe_value),
                    }
                }
            }]);
        }
        _ => {
            input.handle_event(&Event::Key(key));
        }
    }
    Handled::done()
}

fn confirm_key(s: &mut PreviewState, cx: &mut Shared, key: KeyEvent) -> Handled {
    match key.code {
        KeyCode::Enter => return Handled::Yes(start_apply(s, cx)),
        KeyCode::Char('t' | 'T') => s.confirm_timer = !s.confirm_timer,
        KeyCode::Esc | KeyCode::Char('n' | 'N' | 'q') => {
            s.confirming_apply = false;
            cx.notice = Some("Not applied.".into());
        }
        // ? L S and the rest keep their global meaning (the question stays).
        _ => return Handled::No,
    }
    Handled::done()
}

/// The confirmation was given: the transaction starts with the plan's
/// pending steps, and the apply worker gets the plan.
fn start_apply(s: &mut PreviewState, cx: &mut Shared) -> Vec<Effect> {
    s.confirming_apply = false;
    if let Some(why) = refusal(cx) {
        cx.notice = Some(why);
        return Vec::new();
    }
    let Ok(plan) = cx.plan() else {
        return Vec::new();
    };
    let commands: Vec<String> = plan.pending().map(|s| s.apply.display()).collect();
    let subject = signal_path(cx, plan);
    cx.steps = StepLog::planned(subject, commands);
    cx.txn = Txn::Running;
    cx.go(ScreenId::Apply);
    vec![Effect::Apply {
        confirm_secs: s.confirm_timer.then_some(CONFIRM_SECS),
    }]
}

pub fn key(s: &mut PreviewState, cx: &mut Shared, key: KeyEvent) -> Handled {
    if s.prompt.is_some() {
        return prompt_key(s, cx, key);
    }
    if s.recipe_choice.is_some() {
        return chooser_key(s, cx, key);
    }
    if s.confirming_apply {
        return confirm_key(s, cx, key);
    }
    if s.scroll.key(key.code) {
        return Handled::done();
    }
    let max_pan = s.max_pan.get() as u16;
    match key.code {
        KeyCode::Left | KeyCode::Char('h') => s.pan = s.pan.saturating_sub(PAN_STEP),
        KeyCode::Right | KeyCode::Char('l') => s.pan = (s.pan + PAN_STEP).min(max_pan),
        KeyCode::Char('w') => open_prompt(s, cx, PromptKind::SaveProfile),
        KeyCode::Char('e') => open_prompt(s, cx, PromptKind::ExportScript),
        KeyCode::Char('c') => open_chooser(s, cx),
        // Nothing is applied from a dry run: say what root would run.
        KeyCode::Char('p') if cx.dry_run.is_some() => s.keep_up_shown = !s.keep_up_shown,
        // The netfilter backend: iptables → nft → auto → iptables.
        KeyCode::Char('b') => {
            use crate::profile::Backend;
            let next = match cx.draft().backend {
                Backend::Iptables => Backend::Nft,
                Backend::Nft => Backend::Auto,
                Backend::Auto => Backend::Iptables,
            };
            cx.draft_mut().backend = next;
            cx.notice = Some(format!(
                "Netfilter backend: {} (b changes it).",
                next.name()
            ));
        }
        KeyCode::Char('a') => match refusal(cx) {
            Some(why) => cx.notice = Some(why),
            None => {
                cx.notice = None;
                s.recipe_written = None;
                s.confirming_apply = true;
            }
        },
        // The global Enter means "next step"; this is the last one, and
        // applying always takes `a` and a confirmation.
        KeyCode::Enter => {
            cx.notice = Some(if cx.dry_run.is_some() {
                "Last step (dry run): w saves the profile, e exports a script, c writes a client \
                 recipe, p shows how to keep it up with the agent."
                    .into()
            } else {
                "Last step: a applies (you confirm once more), w saves, e exports a script, c \
                 writes a client recipe."
                    .into()
            });
        }
        _ => return Handled::No,
    }
    Handled::done()
}

pub fn render(s: &PreviewState, cx: &Shared, f: &mut Frame, area: Rect) {
    let t = &cx.theme;
    let plan = cx.plan();
    let bar = bar_lines(s, cx, area.width);
    let [head, body, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(bar.len() as u16 + 1),
    ])
    .areas(area);
    let (lines, max_pan) = content(s, cx, area.width);
    s.max_pan.set(max_pan);
    let rows = body.height as usize;
    let scroll = s.scroll.draw(lines.len(), rows);

    // Head: the summary, what blocks apply, where we are in the plan.
    let mut spans = Vec::new();
    if let (Ok(p), Some(_)) = (plan, cx.facts()) {
        // The client role is named by its group: `group torrent (gid 1001)`.
        let roles: Vec<String> = p
            .roles
            .iter()
            .map(|r| match (r, whom_shown(cx, p)) {
                (Role::Marker, Some(g)) => g,
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
    if let Some(pos) = s.scroll.position() {
        let pos = format!("{pos} ");
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
    if let Some((kind, input)) = &s.prompt {
        let label = match kind {
            PromptKind::SaveProfile => "Profile to",
            PromptKind::ExportScript => "Script to",
            PromptKind::RecipeValue(t) => recipes::asks_for(*t).unwrap_or("Value"),
            PromptKind::RecipePath(_) => "Recipe to",
        };
        let row = Rect::new(inner.x, inner.y, inner.width, 1);
        field::render(f, row, t, label, input, true, "");
    }
}

pub fn hints(p: &PreviewState, cx: &Shared) -> Vec<Hint> {
    if p.recipe_choice.is_some() {
        return vec![("↑↓", "choose"), ("Enter", "take"), ("Esc", "cancel")];
    }
    if let Some((kind, _)) = &p.prompt {
        let (typed, what) = match kind {
            PromptKind::SaveProfile => ("path", "save"),
            PromptKind::ExportScript | PromptKind::RecipePath(_) => ("path", "write"),
            PromptKind::RecipeValue(_) => ("value", "take"),
        };
        return vec![("type", typed), ("Enter", what), ("Esc", "cancel")];
    }
    if p.confirming_apply {
        return vec![("Enter", "apply"), ("t", "timer on/off"), ("Esc", "cancel")];
    }
    let mut v = vec![("↑↓ PgUp/Dn", "scroll")];
    if p.max_pan.get() > 0 {
        v.push(("←→", "pan"));
    }
    if refusal(cx).is_none() {
        v.push(("a", "apply"));
    }
    v.extend([("w", "save profile"), ("e", "export script")]);
    if cx.draft().role.marker() {
        v.push(("c", "client recipe"));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::app::App;
    use crate::tui::testing::{app, press, render as screen, type_str};
    use crate::tui::txn::StepProgress;

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

    /// `b` cycles the backend; the plan follows and the saved profile keeps it.
    #[test]
    fn b_switches_the_backend() {
        let mut a = client_preview();
        assert!(!screen(&a, 120, 40).contains("nft -f -"));
        press(&mut a, KeyCode::Char('b'));
        assert_eq!(a.draft().backend, crate::profile::Backend::Nft);
        let s = screen(&a, 120, 40);
        assert!(s.contains("nft -f - <<EOF"), "{s}");
        assert!(a.draft_toml().starts_with("backend = \"nft\"\n"));
        press(&mut a, KeyCode::Char('b'));
        assert_eq!(a.draft().backend, crate::profile::Backend::Auto);
        press(&mut a, KeyCode::Char('b'));
        assert_eq!(a.draft().backend, crate::profile::Backend::Iptables);
        assert!(!a.draft_toml().contains("backend"));
    }

    /// On the nft backend the one transaction shows each rule and why.
    #[test]
    fn the_nft_step_lists_its_rules() {
        let profile = "backend = \"nft\"\n[marker]\ngroup = \"torrent\"\ndscp = 7\n";
        let mut a = crate::tui::testing::app_with_profile("client.json", profile);
        for _ in 0..3 {
            press(&mut a, KeyCode::Enter);
        }
        assert_eq!(a.screen, ScreenId::Preview);
        let s = screen(&a, 120, 40);
        assert!(s.contains("nft -f - <<EOF"), "{s}");
        assert!(s.contains("| meta skgid "), "{s}");
        assert!(
            s.contains("output: connections opened by sockets of group"),
            "{s}"
        );
    }

    #[test]
    fn dry_run_p_shows_how_to_keep_it_up_with_the_agent() {
        let mut a = client_preview();
        let before = screen(&a, 80, 24);
        assert!(press(&mut a, KeyCode::Char('p')).is_empty());
        let s = screen(&a, 80, 24);
        let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat.contains("`sudo dscproute persist --profile FILE`"),
            "{s}"
        );
        assert!(flat.contains("(w saves the profile)"), "{s}");
        insta::assert_snapshot!("preview_dry_keep_up_80x24", s);
        a.profile_path = Some("/root/torrent.toml".into());
        let s = screen(&a, 120, 40);
        let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat.contains("`sudo dscproute apply --profile /root/torrent.toml --yes`"),
            "{s}"
        );
        insta::assert_snapshot!("preview_dry_keep_up_120x40", s);
        // p again hides it; with root, p is no key here.
        press(&mut a, KeyCode::Char('p'));
        a.profile_path = None;
        assert_eq!(screen(&a, 80, 24), before);
        a.dry_run = None;
        press(&mut a, KeyCode::Char('p'));
        assert!(!screen(&a, 80, 24).contains("persist --profile"));
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
        let n = a.plan().as_ref().unwrap().pending().count();
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
        assert!(matches!(a.txn, Txn::Running) && a.busy());
        assert_eq!(a.steps.commands.len(), n);
        assert!(a.steps.commands[0].starts_with("iptables -w -t mangle -N DSCPROUTE-MARK"));
        assert!(a.steps.progress.iter().all(|p| *p == StepProgress::Pending));
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
        let plan = b.plan().as_ref().unwrap();
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
        let s = &a.preview.scroll;
        let (rows, total, max_pan) = (s.rows(), s.total(), a.preview.max_pan.get());
        assert!(total > rows);
        assert_eq!(a.preview.scroll.top(), total - rows);
        press(&mut a, KeyCode::Down);
        assert_eq!(a.preview.scroll.top(), total - rows);
        assert!(screen(&a, 80, 24).contains("Plan: "));
        press(&mut a, KeyCode::Home);
        assert_eq!(a.preview.scroll.top(), 0);
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
