//! The TUI's state and its one update function. `update` holds the logic
//! and returns effects (work for the main loop: probe, apply, save…);
//! rendering only reads the state. Workers never touch it: their results
//! come back as messages.

use super::screens;
use crate::apply::Event as ApplyEvent;
use crate::apply::status::Status;
use crate::plan::Plan;
use crate::probe::HostFacts;
use crate::profile::Profile;
use crate::tos::{DsByte, Dscp};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseEvent};
use std::path::PathBuf;
use std::time::Instant;
use tui_input::Input;

/// Everything that can happen to the app.
#[derive(Debug)]
pub enum Msg {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Resize(u16, u16),
    /// Once a second, and whenever a worker has nothing to say.
    Tick(Instant),
    Facts(Box<HostFacts>),
    Apply(ApplyEvent),
    /// The apply worker finished: Ok(transaction id, confirm deadline) or a
    /// one-line error (already undone).
    ApplyDone(Result<ApplyResult, String>),
    /// Confirm or rollback finished, with a one-line report.
    Settled(Result<String, String>),
    Status(Box<Status>),
    /// A watch table (once a second) or the watch's error.
    Watch(Result<String, String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyResult {
    pub transaction: String,
    pub noop: bool,
    pub deadline_unix: Option<u64>,
}

/// Work the main loop does for `update`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Probe,
    /// Apply the current plan; with a confirm timer of that many seconds.
    Apply {
        confirm_secs: Option<u64>,
    },
    Confirm,
    Rollback,
    RefreshStatus,
    SaveProfile(PathBuf),
    ExportScript(PathBuf),
    /// Start watching this interface (selected DSCP), or stop (None).
    Watch(Option<(String, u8)>),
    Quit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScreenId {
    Role,
    Group,
    Dscp,
    Mark,
    Gateway,
    Preview,
    Apply,
    Status,
    Learn,
}

impl ScreenId {
    pub fn title(self) -> &'static str {
        match self {
            ScreenId::Role => "Role",
            ScreenId::Group => "Group",
            ScreenId::Dscp => "DSCP",
            ScreenId::Mark => "Mark and table",
            ScreenId::Gateway => "Gateway",
            ScreenId::Preview => "Preview",
            ScreenId::Apply => "Apply",
            ScreenId::Status => "Status",
            ScreenId::Learn => "Learn the DS byte",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RoleChoice {
    #[default]
    Client,
    Gateway,
    Both,
}

impl RoleChoice {
    pub const ALL: [RoleChoice; 3] = [RoleChoice::Client, RoleChoice::Gateway, RoleChoice::Both];

    pub fn marker(self) -> bool {
        matches!(self, RoleChoice::Client | RoleChoice::Both)
    }

    pub fn gateway(self) -> bool {
        matches!(self, RoleChoice::Gateway | RoleChoice::Both)
    }
}

#[derive(Debug, Default)]
pub struct GroupState {
    /// Typed filter, or a group name / gid of one's own.
    pub input: Input,
    /// Index into the filtered list, once the admin moved into it (↓);
    /// None while the keyboard is in the field.
    pub selected: Option<usize>,
    /// Create the group as a plan step when it does not exist.
    pub create: bool,
    pub error: Option<String>,
}

/// Which part of the DSCP screen has the keyboard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DscpFocus {
    #[default]
    Input,
    Bits,
    Classes,
}

#[derive(Debug)]
pub struct DscpState {
    pub input: Input,
    /// The byte shown; in the wizard its ECN bits are always 0.
    pub byte: DsByte,
    /// Bit under the cursor, 7 (left) .. 0 (right).
    pub cursor: u8,
    pub focus: DscpFocus,
    /// Index into the class list.
    pub class: usize,
    pub error: Option<String>,
}

impl DscpState {
    pub fn new(dscp: Dscp) -> DscpState {
        DscpState {
            input: Input::new(dscp.value().to_string()),
            byte: dscp.to_byte(),
            cursor: 7,
            focus: DscpFocus::Input,
            class: 0,
            error: None,
        }
    }
}

/// The mark-and-table form: text fields in focus order.
#[derive(Debug, Default)]
pub struct MarkState {
    pub mark: Input,
    pub mask: Input,
    pub table: Input,
    pub table_id: Input,
    pub priority: Input,
    pub focus: usize,
    pub error: Option<String>,
}

impl MarkState {
    pub const FIELDS: usize = 5;
}

#[derive(Debug)]
pub struct GatewayState {
    /// Index into the host's links.
    pub link: usize,
    /// Interface named by a preloaded profile, selected once links are known.
    pub wanted: Option<String>,
    pub via: Input,
    pub via6: Input,
    pub kill_switch: bool,
    pub masquerade: bool,
    pub scrub_dscp: bool,
    pub rp_loose: bool,
    /// 0 links, 1 via, 2 via6, 3..=6 the options.
    pub focus: usize,
    pub error: Option<String>,
}

impl Default for GatewayState {
    fn default() -> Self {
        GatewayState {
            link: 0,
            wanted: None,
            via: Input::default(),
            via6: Input::default(),
            kill_switch: true,
            masquerade: true,
            scrub_dscp: true,
            rp_loose: true,
            focus: 0,
            error: None,
        }
    }
}

/// A one-line text prompt over the preview (save profile / export script).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptKind {
    SaveProfile,
    ExportScript,
}

#[derive(Debug, Default)]
pub struct PreviewState {
    pub scroll: u16,
    /// Horizontal offset of the command lines (←/→), in characters.
    pub pan: u16,
    pub prompt: Option<(PromptKind, Input)>,
    /// Asking "apply now?" with the confirm timer on or off.
    pub confirming_apply: bool,
    pub confirm_timer: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepProgress {
    Pending,
    Running,
    Done,
    Failed,
    Undoing,
    Undone,
    UndoFailed,
}

/// What happens to a change that awaits confirmation, once decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Enter: Effect::Confirm sent.
    Keep,
    /// Any other key, or `r` on the status screen: Effect::Rollback sent.
    Rollback,
    /// The deadline passed: the detached confirm timer rolls it back.
    TimeUp,
}

#[derive(Debug, Default)]
pub struct ApplyState {
    /// What is being applied, one line: the signal path with the group by
    /// name and gid (fixed when the apply starts).
    pub subject: String,
    pub commands: Vec<String>,
    pub progress: Vec<StepProgress>,
    pub failure: Option<String>,
    pub running: bool,
    pub result: Option<Result<ApplyResult, String>>,
    /// Set while waiting for the admin to keep the change.
    pub deadline_unix: Option<u64>,
    pub settled: Option<Result<String, String>>,
    /// Confirm or rollback under way (until `settled`).
    pub decision: Option<Decision>,
    pub scroll: u16,
}

#[derive(Debug, Default)]
pub struct StatusState {
    pub report: Option<Status>,
    pub asking_rollback: bool,
    pub message: Option<Result<String, String>>,
    pub scroll: u16,
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

pub struct App {
    pub screen: ScreenId,
    /// Where Esc returns from Learn / Status / help.
    pub back: Vec<ScreenId>,
    pub facts: Option<HostFacts>,
    /// No root, or planning against recorded facts: nothing can be applied.
    pub dry_run: Option<String>,
    pub role: RoleChoice,
    pub group: GroupState,
    pub dscp: DscpState,
    pub mark: MarkState,
    pub gateway: GatewayState,
    pub preview: PreviewState,
    pub apply: ApplyState,
    pub status: StatusState,
    /// Learn mode keeps its own byte (ECN bits included).
    pub learn: DscpState,
    pub help: bool,
    pub quit: bool,
    /// Started as `dscproute learn`: Esc on Learn leaves the program.
    pub alone: bool,
    /// A one-line message in the footer (saved file, refused key…).
    pub notice: Option<String>,
    pub profile_path: Option<PathBuf>,
    pub size: (u16, u16),
    pub now_unix: u64,
    pub theme: super::theme::Theme,
}

impl App {
    pub fn new(
        profile: Option<(&Profile, PathBuf)>,
        dry_run: Option<String>,
        theme: super::theme::Theme,
    ) -> App {
        let seven = Dscp::new(7).expect("7 is a DSCP");
        let mut app = App {
            screen: ScreenId::Role,
            back: Vec::new(),
            facts: None,
            dry_run,
            role: RoleChoice::default(),
            group: GroupState::default(),
            dscp: DscpState::new(seven),
            mark: MarkState::default(),
            gateway: GatewayState::default(),
            preview: PreviewState {
                confirm_timer: true,
                ..PreviewState::default()
            },
            apply: ApplyState::default(),
            status: StatusState::default(),
            learn: DscpState::new(seven),
            help: false,
            quit: false,
            alone: false,
            notice: None,
            profile_path: None,
            size: (80, 24),
            now_unix: crate::apply::journal::now_unix(),
            theme,
        };
        if let Some((p, path)) = profile {
            super::draft::preload(&mut app, p);
            app.profile_path = Some(path);
        }
        app
    }

    /// The wizard's screens for the chosen role, in order.
    pub fn wizard(&self) -> Vec<ScreenId> {
        let mut v = vec![ScreenId::Role];
        if self.role.marker() {
            v.push(ScreenId::Group);
        }
        v.push(ScreenId::Dscp);
        if self.role.gateway() {
            v.push(ScreenId::Mark);
            v.push(ScreenId::Gateway);
        }
        v.push(ScreenId::Preview);
        v
    }

    /// "Step 3 of 6" for wizard screens.
    pub fn step_of(&self) -> Option<(usize, usize)> {
        let w = self.wizard();
        w.iter()
            .position(|s| *s == self.screen)
            .map(|i| (i + 1, w.len()))
    }

    /// The profile as the wizard's answers stand, or the first problem.
    pub fn draft_profile(&self) -> Result<Profile, String> {
        super::draft::profile(self)
    }

    /// The plan for the draft against the host facts.
    pub fn plan(&self) -> Result<Plan, String> {
        let profile = self.draft_profile()?;
        let facts = self.facts.clone().unwrap_or_default();
        crate::plan::plan(&profile, &facts, crate::plan::PlanOptions::default())
            .map_err(|e| e.problems.join("; "))
    }

    pub fn go(&mut self, screen: ScreenId) {
        self.notice = None;
        self.screen = screen;
    }

    /// Enter on a wizard screen: validate it, then move on.
    pub fn advance(&mut self) -> Vec<Effect> {
        if let Err(e) = screens::validate(self) {
            self.notice = Some(e);
            return Vec::new();
        }
        let w = self.wizard();
        if let Some(i) = w.iter().position(|s| *s == self.screen)
            && let Some(next) = w.get(i + 1)
        {
            self.go(*next);
        }
        Vec::new()
    }

    pub fn previous(&mut self) {
        if let Some(back) = self.back.pop() {
            self.go(back);
            return;
        }
        let w = self.wizard();
        if let Some(i) = w.iter().position(|s| *s == self.screen)
            && i > 0
        {
            self.go(w[i - 1]);
        }
    }

    /// Open Learn or Status over the current screen; Esc comes back.
    pub fn open(&mut self, screen: ScreenId) -> Vec<Effect> {
        if self.screen == screen {
            return Vec::new();
        }
        self.back.push(self.screen);
        self.go(screen);
        if screen == ScreenId::Status {
            return vec![Effect::RefreshStatus];
        }
        Vec::new()
    }

    /// Busy applying or rolling back: quitting now would interrupt it.
    pub fn busy(&self) -> bool {
        self.apply.running || (self.apply.decision.is_some() && self.apply.settled.is_none())
    }

    /// `dscproute learn` alone, nothing opened over it: Esc quits.
    pub fn leaves_on_esc(&self) -> bool {
        self.alone && self.screen == ScreenId::Learn && self.back.is_empty()
    }

    pub fn waiting_for_confirm(&self) -> bool {
        self.apply.deadline_unix.is_some() && self.apply.settled.is_none()
    }
}

/// The one place state changes.
pub fn update(app: &mut App, msg: Msg) -> Vec<Effect> {
    match msg {
        Msg::Key(key) => on_key(app, key),
        Msg::Mouse(m) => screens::mouse(app, m),
        Msg::Resize(w, h) => {
            app.size = (w, h);
            Vec::new()
        }
        Msg::Tick(_) => {
            app.now_unix = crate::apply::journal::now_unix();
            screens::tick(app)
        }
        Msg::Facts(f) => {
            screens::facts_arrived(app, *f);
            Vec::new()
        }
        Msg::Apply(ev) => {
            screens::apply::on_event(app, ev);
            Vec::new()
        }
        Msg::ApplyDone(r) => screens::apply::on_done(app, r),
        Msg::Settled(r) => {
            screens::apply::on_settled(app, r);
            Vec::new()
        }
        Msg::Status(s) => {
            app.status.report = Some(*s);
            app.status.last_refresh = Some(Instant::now());
            Vec::new()
        }
        Msg::Watch(r) => {
            if let Some(w) = &mut app.status.watch {
                w.text = Some(r);
            }
            Vec::new()
        }
    }
}

fn on_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    use ratatui::crossterm::event::KeyEventKind;
    if key.kind == KeyEventKind::Release {
        return Vec::new();
    }
    let ctrl_c = key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
    if app.waiting_for_confirm() {
        // Enter keeps the change; anything else rolls it back (Ctrl-C included).
        return screens::apply::confirm_key(app, key);
    }
    if ctrl_c {
        return quit(app);
    }
    if app.help {
        if matches!(
            key.code,
            KeyCode::Esc | KeyCode::F(1) | KeyCode::Char('?') | KeyCode::Char('q')
        ) {
            app.help = false;
        }
        return Vec::new();
    }
    // Function keys work everywhere, text fields included; their letter
    // twins (? L S, and q) only reach here when no field took the key.
    match key.code {
        KeyCode::F(1) => {
            app.help = true;
            return Vec::new();
        }
        KeyCode::F(2) => return app.open(ScreenId::Learn),
        KeyCode::F(3) => return app.open(ScreenId::Status),
        _ => {}
    }
    if let screens::Handled::Yes(effects) = screens::key(app, key) {
        return effects;
    }
    match key.code {
        KeyCode::Char('q') => quit(app),
        KeyCode::Char('?') => {
            app.help = true;
            Vec::new()
        }
        KeyCode::Char('L') => app.open(ScreenId::Learn),
        KeyCode::Char('S') => app.open(ScreenId::Status),
        KeyCode::Esc if app.leaves_on_esc() => quit(app),
        KeyCode::Esc => {
            app.previous();
            Vec::new()
        }
        KeyCode::Enter => app.advance(),
        _ => Vec::new(),
    }
}

fn quit(app: &mut App) -> Vec<Effect> {
    if app.busy() {
        app.notice = Some(
            "Busy changing the host: wait for it to finish (quitting now would interrupt it)."
                .into(),
        );
        return Vec::new();
    }
    app.quit = true;
    vec![Effect::Quit]
}
