//! `dscproute status`: what dscproute has in place on this host (its chains
//! with packet and byte counters, its rules and routes, sysctls it changed),
//! any change awaiting confirmation (and whether its timer is alive), an
//! apply running now or one interrupted, drift since apply, and an
//! unreadable journal, each with what to run.

use super::agent_record::AgentRecord;
use super::drift::{self, Drift};
use super::journal::{Journal, Saved, StepStatus, TxnState};
use super::lock::{Lock, LockError};
use super::state_dir::StateDir;
use super::timer;
use super::transaction::state_word;
use crate::ownership::is_our_proto;
use crate::probe::{CountedRule, HostFacts, read_counters};
// The old path of these, for the doctor command and the TUI.
use crate::runner::Runner;
use serde::Serialize;
use std::fmt::Write;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Status {
    pub transaction: Option<TxnSummary>,
    /// What to do next, when something needs doing.
    pub advice: Option<String>,
    pub netfilter: Vec<CountedRule>,
    pub rules: Vec<String>,
    pub routes: Vec<String>,
    pub sysctls: Vec<SysctlChange>,
    /// Nothing of ours is in place.
    pub clean: bool,
    /// What the kept transaction put in place that is missing or changed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<Drift>,
    /// The confirm timer of a change awaiting confirmation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timer: Option<TimerReport>,
    /// Why the journal could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal_error: Option<String>,
    /// The dscproute process holding the lock (an apply, rollback or the
    /// timer at work right now).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running_pid: Option<u32>,
    /// The `dscproute agent` keeping the setup in place, if one runs.
    pub agent: Option<AgentRecord>,
    /// A `[[class]]` profile's classes, with the uplink each routes through
    /// now (`ops::status` fills it from the transaction's profile).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<ClassStatus>,
}

/// One class of the applied profile as the host has it now.
#[derive(Clone, Debug, Serialize)]
pub struct ClassStatus {
    pub name: String,
    pub dscp: u8,
    pub mark: Option<u32>,
    pub table_id: Option<u32>,
    /// The interface of our IPv4 route in the class's table; None: no route.
    pub uplink: Option<String>,
    /// No route and the kill switch on: the class's packets are refused.
    pub blocked: bool,
    /// Since when the running agent routes the class this way (null: no
    /// agent runs).
    pub since_unix: Option<u64>,
    /// The agent's reason for this uplink (the first healthy one, and why
    /// the ones before it were skipped).
    pub why: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TimerReport {
    pub pid: Option<u32>,
    /// The timer process is running.
    pub alive: bool,
    /// The systemd backstop unit is waiting (`null`: no systemd here).
    pub backstop: Option<bool>,
}

impl TimerReport {
    /// Will something roll the change back at the deadline?
    pub fn armed(&self) -> bool {
        self.alive || self.backstop == Some(true)
    }
}

impl Status {
    /// Something is wrong and needs a command: an unreadable journal,
    /// drift, a pending change nothing will roll back. (`status` exits 1.)
    pub fn needs_action(&self) -> bool {
        self.journal_error.is_some()
            || !self.drift.is_empty()
            || self
                .timer
                .as_ref()
                .is_some_and(|t| !t.armed() && self.running_pid.is_none())
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct TxnSummary {
    pub id: String,
    pub state: TxnState,
    pub state_text: &'static str,
    pub profile: String,
    pub created_unix: u64,
    pub steps_done: usize,
    pub steps_total: usize,
    pub seconds_left: Option<i64>,
    /// Changes of the whole setup (this transaction and what earlier ones
    /// left in place) that `rollback` would undo.
    pub setup_changes: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct SysctlChange {
    pub key: String,
    pub before: String,
    pub now: Option<String>,
}

pub fn gather(journal: Option<&Journal>, facts: &HostFacts, runner: &dyn Runner) -> Status {
    let mut s = Status::default();
    if let Some(j) = journal {
        // The setup as it stands: what earlier transactions left in place
        // folded with this one's steps (the same boot: nothing dropped).
        let mut whole = j.clone();
        whole.steps = j.carried(j.boot_id.as_deref());
        whole.setup.clear();
        s.transaction = Some(TxnSummary {
            id: j.id.clone(),
            state: j.state,
            state_text: state_word(j.state),
            profile: j.profile.clone(),
            created_unix: j.created_unix,
            steps_done: j
                .steps
                .iter()
                .filter(|s| s.status == StepStatus::Done)
                .count(),
            steps_total: j.steps.len(),
            seconds_left: (j.state == TxnState::PendingConfirm)
                .then(|| j.seconds_left().unwrap_or(0)),
            setup_changes: whole.steps.iter().filter(|s| s.in_effect()).count(),
        });
        s.advice = match j.state {
            TxnState::Running => Some(
                "The last apply was interrupted: run `dscproute rollback` to restore the state \
                 before it."
                    .into(),
            ),
            TxnState::PendingConfirm => {
                let t = timer_report(j);
                let advice = pending_advice(&t, j.seconds_left().unwrap_or(0));
                s.timer = Some(t);
                Some(advice)
            }
            _ if whole.steps.iter().any(|s| s.status == StepStatus::UndoFailed) => Some(
                "Some undo steps failed: run `dscproute rollback --all` to remove what is left."
                    .into(),
            ),
            _ => None,
        };
        // An interrupted transaction's steps may or may not be in place.
        if j.state != TxnState::Running {
            s.drift = drift::find(&whole, facts, std::path::Path::new("/"));
            if !s.drift.is_empty() && s.advice.is_none() {
                s.advice = Some(format!(
                    "What the setup put in place is missing or changed (below): run \
                     `dscproute apply --profile {}` to put it back, or `dscproute rollback` to \
                     remove the rest.",
                    crate::plan::sh_quote(&j.profile)
                ));
            }
        }
        // The first value on record per key is the one from before
        // dscproute; undone steps restored theirs already.
        for st in &whole.steps {
            if let (StepStatus::Done, Some(Saved::Sysctl { key, old })) = (st.status, &st.saved)
                && !s.sysctls.iter().any(|c| &c.key == key)
            {
                s.sysctls.push(SysctlChange {
                    key: key.clone(),
                    before: old.clone(),
                    now: facts.sysctl(key).map(str::to_string),
                });
            }
        }
    }
    s.netfilter = read_counters(runner);
    s.netfilter
        .extend(crate::backend::nft::read_counters(runner));
    for (fam, rules) in [("", &facts.rules_v4), ("-6 ", &facts.rules_v6)] {
        for r in rules.iter().filter(|r| is_our_proto(r.protocol.as_deref())) {
            let target = match (&r.action, &r.table) {
                (Some(a), _) => a.clone(),
                (None, Some(t)) => match r.suppress_prefixlength {
                    Some(n) => format!("lookup {t} suppress_prefixlength {n}"),
                    None => format!("lookup {t}"),
                },
                _ => String::new(),
            };
            let mark = r
                .fwmark
                .map(|m| format!("fwmark {m:#x}/{:#x} ", r.fwmask.unwrap_or(u32::MAX)))
                .unwrap_or_default();
            let dscp = r
                .dscp
                .as_deref()
                .map(|d| format!("dscp {d} "))
                .unwrap_or_default();
            s.rules
                .push(format!("ip {fam}rule {}: {mark}{dscp}{target}", r.priority));
        }
    }
    for (fam, routes) in [("", &facts.routes_v4), ("-6 ", &facts.routes_v6)] {
        for r in routes
            .iter()
            .filter(|r| is_our_proto(r.protocol.as_deref()))
        {
            let via = r
                .gateway
                .as_deref()
                .map(|g| format!(" via {g}"))
                .unwrap_or_default();
            let dev = r
                .dev
                .as_deref()
                .map(|d| format!(" dev {d}"))
                .unwrap_or_default();
            s.routes.push(format!(
                "ip {fam}route: {}{via}{dev} table {}",
                r.dst, r.table
            ));
        }
    }
    s.clean = s.netfilter.is_empty() && s.rules.is_empty() && s.routes.is_empty();
    s
}

/// The timer of a pending transaction, as it is now.
fn timer_report(j: &Journal) -> TimerReport {
    TimerReport {
        pid: j.timer_pid,
        alive: j.timer_pid.is_some_and(|p| timer::alive(p, &j.id)),
        backstop: timer::backstop_active(&j.id),
    }
}

/// What a pending change needs, by the truth about its timer.
fn pending_advice(t: &TimerReport, left: i64) -> String {
    let pid = t.pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
    let unit = "its systemd timer unit";
    match (t.alive, t.backstop == Some(true), left > 0) {
        (true, _, true) => {
            format!("This change is rolled back in {left} s unless you run `dscproute confirm`.")
        }
        (true, _, false) => format!(
            "The confirm deadline passed {} s ago: the timer{pid} is rolling this change back now.",
            -left
        ),
        (false, true, true) => format!(
            "The confirm timer process{pid} is gone; {unit} rolls this change back in about \
             {left} s unless you run `dscproute confirm`."
        ),
        (false, true, false) => format!(
            "The confirm deadline passed {} s ago and the timer process{pid} is gone; {unit} \
             rolls the change back in a moment (or run `dscproute rollback`).",
            -left
        ),
        (false, false, true) => format!(
            "The confirm timer{pid} is gone: nothing will roll this change back at the deadline \
             ({left} s from now). Run `dscproute confirm` to keep it or `dscproute rollback` to \
             undo it."
        ),
        (false, false, false) => format!(
            "The confirm deadline passed {} s ago, but the timer{pid} is gone and nothing was \
             rolled back: run `dscproute rollback` to undo the change (or `dscproute confirm` \
             to keep it).",
            -left
        ),
    }
}

/// One line: what is wrong with the journal and what to run (a user who
/// may not read it is sent to root first).
fn unreadable_advice(e: &str, root: bool) -> String {
    if root {
        format!(
            "{e}. Run `dscproute rollback --all` to remove everything of dscproute's by its tags \
             (the journal is kept aside)."
        )
    } else {
        format!("{e}: run `dscproute status` as root")
    }
}

/// `status` for a state directory: loads the journal (an unreadable one is
/// reported with what to run) and tries the lock, so that an apply at work
/// is not called interrupted.
pub fn gather_dir(state: &StateDir, facts: &HostFacts, runner: &dyn Runner) -> Status {
    let (journal, error) = match Journal::load(state) {
        Ok(j) => (j, None),
        Err(e) => (None, Some(e)),
    };
    let mut s = gather(journal.as_ref(), facts, runner);
    s.agent = AgentRecord::running(state);
    if let Some(e) = error {
        let e = e.to_string().replace('\n', " ");
        s.advice = Some(unreadable_advice(&e, crate::runner::is_root()));
        s.journal_error = Some(e);
        return s;
    }
    let Some(j) = journal else { return s };
    // Only with a journal: the state dir exists, so trying the lock creates
    // nothing new. Held a moment at most, when free.
    if let Err(LockError::Busy(pid)) = Lock::try_acquire(&state.lock_file()) {
        s.running_pid = pid;
        let who = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
        s.advice = Some(match j.state {
            TxnState::Running => format!(
                "An apply is running{who}: it holds the lock. Run `dscproute status` again when \
                 it is done."
            ),
            _ => format!(
                "dscproute is at work on transaction {}{who} (a rollback, the confirm timer or \
                 a confirm): run `dscproute status` again in a moment.",
                j.id
            ),
        });
    }
    s
}

/// One line on the agent, for `status` and the TUI.
pub fn agent_line(a: &AgentRecord) -> String {
    let age = super::journal::now_unix().saturating_sub(a.since_unix);
    let last = match &a.last_repair {
        Some(r) => format!(
            ", the last {} s ago: {}",
            super::journal::now_unix().saturating_sub(r.at_unix),
            r.line
        ),
        None => String::new(),
    };
    format!(
        "Agent running (pid {}) for {age} s, keeping {} in place: {} repairs{last}",
        a.pid, a.profile, a.repairs
    )
}

pub fn render(s: &Status) -> String {
    let mut o = String::new();
    match &s.transaction {
        Some(t) => {
            let _ = writeln!(
                o,
                "Last transaction {} from {}: {} ({} of {} steps done)",
                t.id, t.profile, t.state_text, t.steps_done, t.steps_total
            );
            let earlier = t.setup_changes.saturating_sub(t.steps_done);
            if earlier > 0 {
                let _ = writeln!(
                    o,
                    "The setup holds {} changes ({earlier} from earlier transactions); \
                     `dscproute rollback` undoes them all.",
                    t.setup_changes
                );
            }
        }
        None if s.journal_error.is_some() => {
            let _ = writeln!(o, "The journal of the last transaction is unreadable.");
        }
        None => {
            let _ = writeln!(o, "No transaction on record.");
        }
    }
    if let Some(a) = &s.advice {
        let _ = writeln!(o, "! {a}");
    }
    if let Some(a) = &s.agent {
        let _ = writeln!(o, "{}", agent_line(a));
    }
    if s.clean {
        let _ = writeln!(o, "Nothing of dscproute's is in place on this host.");
    }
    if !s.drift.is_empty() {
        let _ = writeln!(o, "\nDrift since apply");
        for d in &s.drift {
            let _ = writeln!(o, "  {d}");
        }
    }
    if !s.netfilter.is_empty() {
        let _ = writeln!(o, "\nNetfilter (packets / bytes)");
        for r in &s.netfilter {
            let _ = writeln!(
                o,
                "  {:>10} {:>12}  {} {} {} {}",
                r.packets, r.bytes, r.family, r.table, r.chain, r.spec
            );
        }
    }
    if !s.classes.is_empty() {
        let _ = writeln!(o, "\nClasses");
        for c in &s.classes {
            let mark = c
                .mark
                .map(|m| format!(" → mark {m:#x}"))
                .unwrap_or_default();
            let table = c
                .table_id
                .map(|t| format!(" → table {t}"))
                .unwrap_or_default();
            let via = match (&c.uplink, c.blocked) {
                (Some(u), _) => u.clone(),
                (None, true) => "blocked (kill switch)".into(),
                (None, false) => "no route: the main table".into(),
            };
            let _ = writeln!(o, "  {}: DSCP {}{mark}{table} → {via}", c.name, c.dscp);
            if let (Some(since), Some(why)) = (c.since_unix, &c.why) {
                let ago = super::journal::now_unix().saturating_sub(since);
                let _ = writeln!(o, "    agent: for {ago} s: {why}");
            }
        }
    }
    if !s.rules.is_empty() {
        let _ = writeln!(o, "\nPolicy rules");
        for r in &s.rules {
            let _ = writeln!(o, "  {r}");
        }
    }
    if !s.routes.is_empty() {
        let _ = writeln!(o, "\nRoutes");
        for r in &s.routes {
            let _ = writeln!(o, "  {r}");
        }
    }
    if !s.sysctls.is_empty() {
        let _ = writeln!(o, "\nSysctls changed (before → now)");
        for c in &s.sysctls {
            let _ = writeln!(
                o,
                "  {} = {} → {}",
                c.key,
                c.before,
                c.now.as_deref().unwrap_or("?")
            );
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timer(alive: bool, backstop: Option<bool>) -> TimerReport {
        TimerReport {
            pid: Some(4242),
            alive,
            backstop,
        }
    }

    #[test]
    fn pending_advice_tells_the_truth_about_the_timer() {
        let a = pending_advice(&timer(true, None), 30);
        assert!(a.contains("rolled back in 30 s"), "{a}");
        let a = pending_advice(&timer(true, None), -3);
        assert!(a.contains("rolling this change back now"), "{a}");
        // The timer was killed (SIGKILL): nothing will roll back.
        let a = pending_advice(&timer(false, None), 30);
        assert!(
            a.contains("timer (pid 4242) is gone: nothing will roll this change back"),
            "{a}"
        );
        assert!(a.contains("`dscproute rollback`"), "{a}");
        let a = pending_advice(&timer(false, Some(false)), -7);
        assert!(
            a.contains("passed 7 s ago") && a.contains("nothing was rolled back"),
            "{a}"
        );
        assert!(a.contains("run `dscproute rollback`"), "{a}");
        let a = pending_advice(&timer(false, Some(true)), 30);
        assert!(
            a.contains("systemd timer unit rolls this change back"),
            "{a}"
        );
        assert!(!timer(false, Some(false)).armed());
        assert!(timer(false, Some(true)).armed());
    }

    fn state_dir() -> (tempfile::TempDir, StateDir) {
        let t = tempfile::tempdir().unwrap();
        let d = StateDir::resolve(Some(t.path()));
        d.ensure().unwrap();
        (t, d)
    }

    #[test]
    fn a_class_says_since_when_and_why_the_agent_routes_it_so() {
        let class = |since_unix, why: Option<&str>| ClassStatus {
            name: "torrent".into(),
            dscp: 7,
            mark: Some(1),
            table_id: Some(100),
            uplink: Some("wg1".into()),
            blocked: false,
            since_unix,
            why: why.map(str::to_string),
        };
        let now = super::super::journal::now_unix();
        let s = Status {
            classes: vec![class(
                Some(now - 12),
                Some("wg1: the first usable one (1 skipped: wg0 is down)"),
            )],
            ..Status::default()
        };
        let text = render(&s);
        assert!(
            text.contains("torrent: DSCP 7 → mark 0x1 → table 100 → wg1\n    agent: for 1"),
            "{text}"
        );
        assert!(text.contains("s: wg1: the first usable one (1 skipped: wg0 is down)"));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["classes"][0]["since_unix"], now - 12);
        // Without an agent: no line, nulls in the JSON.
        let s = Status {
            classes: vec![class(None, None)],
            ..Status::default()
        };
        assert!(!render(&s).contains("agent:"));
        let json = serde_json::to_value(&s).unwrap();
        assert!(json["classes"][0]["why"].is_null());
    }

    #[test]
    fn an_unreadable_journal_is_named_with_what_to_run() {
        let (_t, dir) = state_dir();
        std::fs::write(dir.current(), "{\"version\": 1, \"id\": \"17").unwrap();
        let runner = crate::runner::FakeRunner::new();
        let s = gather_dir(&dir, &HostFacts::default(), &runner);
        assert!(s.journal_error.is_some());
        assert!(s.needs_action());
        let text = render(&s);
        let advice = text.lines().find(|l| l.starts_with("! ")).unwrap();
        assert!(advice.contains("current.json is unreadable"), "{text}");
        assert!(!text.contains("No transaction on record"), "{text}");
        let root = unreadable_advice("journal J is unreadable: EOF", true);
        assert_eq!(
            root,
            "journal J is unreadable: EOF. Run `dscproute rollback --all` to remove everything \
             of dscproute's by its tags (the journal is kept aside)."
        );
        let user = unreadable_advice("cannot read journal J: Permission denied", false);
        assert!(user.ends_with("run `dscproute status` as root"), "{user}");
    }

    #[test]
    fn a_running_apply_holding_the_lock_is_not_called_interrupted() {
        let (_t, dir) = state_dir();
        let mut j = Journal::new("gw.toml", vec![]);
        j.state = TxnState::Running;
        j.save(&dir).unwrap();
        let runner = crate::runner::FakeRunner::new();
        let held = Lock::try_acquire(&dir.lock_file()).unwrap();
        let s = gather_dir(&dir, &HostFacts::default(), &runner);
        let advice = s.advice.clone().unwrap();
        assert!(
            advice.contains(&format!("An apply is running (pid {})", std::process::id())),
            "{advice}"
        );
        assert!(!advice.contains("interrupted"), "{advice}");
        assert!(!s.needs_action());
        drop(held);
        let s = gather_dir(&dir, &HostFacts::default(), &runner);
        assert!(s.advice.unwrap().contains("interrupted"));
    }
}
