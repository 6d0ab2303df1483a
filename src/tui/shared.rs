//! What every screen may read, and the few App-level things a screen may
//! change: where the wizard is, the host facts, the draft and its plan,
//! this session's transaction, the notice line. Each screen's own state
//! lives in its screen module; a screen is handed its own state and this,
//! never another screen's.

use super::draft::Draft;
use super::msg::Effect;
use super::theme::Theme;
use super::txn::{StepLog, Txn};
use super::who_lists::WhoLists;
use super::widgets::scroll::Scroll;
use crate::apply::status::Status;
use crate::plan::Plan;
use crate::probe::HostFacts;
use crate::profile::Profile;
use ratatui::crossterm::event::{Event, KeyEvent};
use std::cell::OnceCell;
use std::path::PathBuf;
use tui_input::Input;
use tui_input::backend::crossterm::EventHandler;

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
            ScreenId::Group => "Who",
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

#[cfg(test)]
thread_local! {
    /// Plans computed on this thread (each test runs on its own).
    pub static PLANS_COMPUTED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

pub struct Shared {
    pub screen: ScreenId,
    /// Where Esc returns from Learn / Status / help.
    pub back: Vec<ScreenId>,
    facts: Option<HostFacts>,
    /// No root, or planning against recorded facts: nothing can be applied.
    pub dry_run: Option<String>,
    draft: Draft,
    /// Counts the changes of the draft (and of the facts it is planned on).
    revision: u64,
    /// The plan and the revision it was made for, computed on first use;
    /// emptied by every change.
    plan: OnceCell<(u64, Result<Plan, String>)>,
    pub txn: Txn,
    pub steps: StepLog,
    /// What dscproute has in place, as last read (the status screen shows
    /// it; the countdown watches the confirm timer's work in it).
    pub report: Option<Status>,
    pub help: bool,
    pub help_scroll: Scroll,
    pub quit: bool,
    /// Started as `dscproute learn`: Esc on Learn leaves the program.
    pub alone: bool,
    /// A one-line message in the footer (saved file, refused key…).
    pub notice: Option<String>,
    pub profile_path: Option<PathBuf>,
    /// This host's users and running units, for the Who step.
    pub who_lists: WhoLists,
    /// The facts were recorded elsewhere (`--facts`): nothing of this host
    /// is asked, the marker is planned as the facts say.
    pub recorded_facts: bool,
    /// What the marker resolved to on this host (a user's uid, a unit's
    /// cgroup, a cgroup's existence), for the marker it names (`Who`'s
    /// text); the plan adds it to the facts.
    resolved: Option<(String, HostFacts)>,
    /// The marker last handed to the resolving worker.
    resolving: Option<String>,
    pub size: (u16, u16),
    pub now_unix: u64,
    pub theme: Theme,
}

impl Shared {
    pub fn new(
        profile: Option<(&Profile, PathBuf)>,
        dry_run: Option<String>,
        theme: Theme,
    ) -> Shared {
        let (draft, profile_path) = match profile {
            Some((p, path)) => (Draft::from_profile(p), Some(path)),
            None => (Draft::default(), None),
        };
        Shared {
            screen: ScreenId::Role,
            back: Vec::new(),
            facts: None,
            dry_run,
            draft,
            revision: 0,
            plan: OnceCell::new(),
            txn: Txn::Idle,
            steps: StepLog::default(),
            report: None,
            help: false,
            help_scroll: Scroll::default(),
            quit: false,
            alone: false,
            notice: None,
            profile_path,
            who_lists: WhoLists::default(),
            recorded_facts: false,
            resolved: None,
            resolving: None,
            size: (80, 24),
            now_unix: crate::apply::journal::now_unix(),
            theme,
        }
    }

    // ------------------------------------------------------------ facts, draft, plan

    pub fn facts(&self) -> Option<&HostFacts> {
        self.facts.as_ref()
    }

    /// Change the facts (the plan is made again).
    #[cfg(test)]
    pub fn facts_mut(&mut self) -> Option<&mut HostFacts> {
        self.changed();
        self.facts.as_mut()
    }

    pub fn set_facts(&mut self, facts: HostFacts) {
        self.changed();
        self.facts = Some(facts);
    }

    pub fn draft(&self) -> &Draft {
        &self.draft
    }

    /// Change the draft (the plan is made again).
    pub fn draft_mut(&mut self) -> &mut Draft {
        self.changed();
        &mut self.draft
    }

    /// Change the draft with the host facts at hand (the plan is made again).
    pub fn draft_with_facts<T>(
        &mut self,
        f: impl FnOnce(&mut Draft, Option<&HostFacts>) -> T,
    ) -> T {
        self.changed();
        f(&mut self.draft, self.facts.as_ref())
    }

    /// Feed a key to one of the draft's text fields; false when the field
    /// did not take it. The draft changes (and the plan with it) only when
    /// the text does, not when the cursor moves.
    pub fn edit_input(
        &mut self,
        field: impl FnOnce(&mut Draft) -> &mut Input,
        key: KeyEvent,
    ) -> bool {
        match field(&mut self.draft).handle_event(&Event::Key(key)) {
            None => false,
            Some(c) => {
                if c.value {
                    self.changed();
                }
                true
            }
        }
    }

    fn changed(&mut self) {
        self.revision += 1;
        self.plan.take();
    }

    /// The profile as the wizard's answers stand, or the first problem.
    pub fn draft_profile(&self) -> Result<Profile, String> {
        self.draft.profile(self.facts())
    }

    /// The draft as profile text.
    pub fn draft_toml(&self) -> String {
        self.draft.toml_text(self.facts())
    }

    /// The plan for the draft against the host facts, made once per
    /// revision: rendering, hints and keys read the same one.
    pub fn plan(&self) -> &Result<Plan, String> {
        let (made_for, plan) = self.plan.get_or_init(|| (self.revision, self.make_plan()));
        debug_assert_eq!(*made_for, self.revision, "a plan of an older draft");
        plan
    }

    fn make_plan(&self) -> Result<Plan, String> {
        #[cfg(test)]
        PLANS_COMPUTED.with(|n| n.set(n.get() + 1));
        let profile = self.draft_profile()?;
        let none = HostFacts::default();
        let facts = self.facts.as_ref().unwrap_or(&none);
        let merged;
        let facts = match self.marker_to_resolve(&profile) {
            None => facts,
            Some(who) => match &self.resolved {
                Some((k, add)) if *k == who => {
                    merged = with_resolution(facts, add);
                    &merged
                }
                _ => return Err(format!("Reading {who} on this host…")),
            },
        };
        crate::plan::plan(&profile, facts, crate::plan::PlanOptions::default())
            .map_err(|e| e.problems.join("; "))
    }

    /// The marker of `profile` when this host must be asked about it (a
    /// user name, a unit, a cgroup), as `Who` writes it.
    fn marker_to_resolve(&self, profile: &Profile) -> Option<String> {
        if self.recorded_facts {
            return None;
        }
        crate::plan::marker_query(profile)?;
        profile.marker.as_ref().map(|m| m.who.to_string())
    }

    /// The draft's marker when it must be resolved and nobody was asked
    /// yet: the worker's profile (the request is then on record).
    pub fn resolution_wanted(&mut self) -> Option<Profile> {
        self.facts.as_ref()?;
        let profile = self.draft_profile().ok()?;
        let who = self.marker_to_resolve(&profile)?;
        if self.resolving.as_ref() == Some(&who) {
            return None;
        }
        self.resolving = Some(who);
        Some(profile)
    }

    /// The worker's answer for `who` (facts with only what it resolved).
    pub fn set_resolved(&mut self, who: String, add: HostFacts) {
        self.changed();
        self.resolved = Some((who, add));
    }

    // ------------------------------------------------------------ where we are

    /// The wizard's screens for the chosen role, in order.
    pub fn wizard(&self) -> Vec<ScreenId> {
        let role = self.draft.role;
        let mut v = vec![ScreenId::Role];
        if role.marker() {
            v.push(ScreenId::Group);
        }
        v.push(ScreenId::Dscp);
        if role.gateway() {
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

    pub fn go(&mut self, screen: ScreenId) {
        self.notice = None;
        self.screen = screen;
    }

    /// The wizard's next screen (the current one is valid).
    pub fn next(&mut self) {
        let w = self.wizard();
        if let Some(i) = w.iter().position(|s| *s == self.screen)
            && let Some(next) = w.get(i + 1)
        {
            self.go(*next);
        }
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

    pub fn open_help(&mut self) {
        self.help = true;
        self.help_scroll.reset();
    }

    /// Busy applying or rolling back: quitting now would interrupt it.
    pub fn busy(&self) -> bool {
        self.txn.busy()
    }

    pub fn waiting_for_confirm(&self) -> bool {
        self.txn.waiting_for_confirm()
    }

    /// `dscproute learn` alone, nothing opened over it: Esc quits.
    pub fn leaves_on_esc(&self) -> bool {
        self.alone && self.screen == ScreenId::Learn && self.back.is_empty()
    }

    /// "recorded facts" from "dry run: recorded facts".
    pub fn dry_reason(&self) -> Option<&str> {
        self.dry_run
            .as_deref()
            .map(|d| d.strip_prefix("dry run: ").unwrap_or(d))
    }
}

/// The host's facts with what the marker's resolution found (as
/// `Host::facts_for` fills them in one go).
fn with_resolution(facts: &HostFacts, add: &HostFacts) -> HostFacts {
    let mut f = facts.clone();
    f.users.extend(add.users.iter().cloned());
    f.units
        .extend(add.units.iter().map(|(k, v)| (k.clone(), v.clone())));
    f.cgroups
        .extend(add.cgroups.iter().map(|(k, v)| (k.clone(), *v)));
    f.unreadable.extend(add.unreadable.iter().cloned());
    f
}
