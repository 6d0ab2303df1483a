//! The interactive configurator. The main thread owns the terminal: it polls
//! input, drains worker messages, updates the state, runs effects, and draws
//! when something changed. Workers (probe, apply, rollback, status) talk
//! back only through messages.

pub mod app;
pub mod draft;
pub mod frame;
pub mod hangup;
pub mod msg;
pub mod screens;
pub mod shared;
pub mod theme;
pub mod txn;
pub mod update;
pub mod widgets;

#[cfg(test)]
pub mod testing;
#[cfg(test)]
mod tests;

use crate::apply::{ApplyOutcome, Engine, RollbackOutcome, StateDir};
use crate::probe::HostFacts;
use crate::profile::Profile;
use crate::runner::SystemRunner;
use app::{App, ScreenId};
use msg::{ApplyResult, Effect, Msg};
use ratatui::crossterm::event::{self, DisableMouseCapture, EnableMouseCapture};
use ratatui::crossterm::execute;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

pub struct Options {
    pub profile: Option<(Profile, PathBuf)>,
    /// Recorded facts instead of probing (always a dry run).
    pub facts: Option<HostFacts>,
    pub state: StateDir,
    pub start: ScreenId,
}

/// Why nothing can be applied from here, if so.
fn dry_run_reason(facts_given: bool) -> Option<String> {
    if facts_given {
        return Some("dry run: recorded facts".into());
    }
    if !crate::runner::is_root() {
        return Some("dry run: not root".into());
    }
    None
}

/// How the wizard ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// The admin quit.
    Quit,
    /// The terminal went away (or SIGHUP came); a change under way was
    /// finished first.
    Gone(hangup::Gone),
}

/// How long the loop waits for a message before it checks the terminal
/// and the watch again.
const WAKE: Duration = Duration::from_millis(50);
/// How long the input thread waits in one read before it checks whether to
/// stop (this also bounds how long it can spin on a dead terminal).
const INPUT_WAKE: Duration = Duration::from_millis(100);

pub fn run(opts: Options) -> std::io::Result<Ended> {
    hangup::prepare()?;
    let dry = dry_run_reason(opts.facts.is_some());
    let profile = opts.profile.as_ref().map(|(p, path)| (p, path.clone()));
    let mut app = App::new(profile, dry, theme::Theme::from_env());
    app.screen = opts.start;
    app.alone = opts.start == ScreenId::Learn;
    let (tx, rx) = channel();
    match opts.facts {
        Some(f) => update::facts_arrived(&mut app, f),
        None => spawn_probe(tx.clone()),
    }
    let mut terminal = ratatui::init();
    let _ = execute!(std::io::stdout(), EnableMouseCapture);
    let stop = Arc::new(AtomicBool::new(false));
    let input = spawn_input(tx.clone(), stop.clone());
    let ended = event_loop(&mut terminal, &mut app, &tx, &rx, &opts.state);
    stop.store(true, Ordering::SeqCst);
    if ended == Ended::Gone(hangup::Gone::Terminal) {
        // Off the dead terminal first: the input thread stops spinning on it.
        hangup::let_go();
    }
    let _ = input.join();
    // However the loop ended (quit, terminal gone), a change under way
    // finishes; the journal and the confirm timer take it from there.
    join_changes();
    if ended != Ended::Gone(hangup::Gone::Terminal) {
        // ratatui's restore does not undo mouse capture; errors are ignored
        // (a failing write must not panic on the way out).
        let _ = execute!(std::io::stdout(), DisableMouseCapture);
        let _ = ratatui::try_restore();
    }
    Ok(ended)
}

/// Reads the terminal on its own thread, so the loop never sits inside a
/// read of a terminal that may be dead. Stops when told, or on a read error.
fn spawn_input(tx: Sender<Msg>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            let ev = match event::poll(INPUT_WAKE) {
                Ok(false) => continue,
                Ok(true) => event::read(),
                Err(e) => Err(e),
            };
            let msg = match ev {
                Ok(event::Event::Key(k)) => Msg::Key(k),
                Ok(event::Event::Mouse(m)) => Msg::Mouse(m),
                Ok(event::Event::Resize(w, h)) => Msg::Resize(w, h),
                Ok(_) => continue,
                Err(_) => {
                    hangup::mark_unreadable();
                    return;
                }
            };
            if tx.send(msg).is_err() {
                return;
            }
        }
    })
}

fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    app: &mut App,
    tx: &Sender<Msg>,
    rx: &Receiver<Msg>,
    state: &StateDir,
) -> Ended {
    if let Ok(size) = terminal.size() {
        app.size = (size.width, size.height);
    }
    let mut dirty = true;
    let mut last_tick = Instant::now();
    let mut live: Option<crate::watch::LiveWatch> = None;
    loop {
        if app.quit {
            return Ended::Quit;
        }
        if !changes_running() {
            hangup::listen();
        }
        if let Some(gone) = hangup::check(libc::STDIN_FILENO) {
            return Ended::Gone(gone);
        }
        if dirty {
            if terminal.draw(|f| frame::render(app, f)).is_err() {
                // A terminal that cannot be written to is as good as gone.
                hangup::mark_unreadable();
                return Ended::Gone(hangup::Gone::Terminal);
            }
            dirty = false;
        }
        let mut msgs: Vec<Msg> = rx.recv_timeout(WAKE).into_iter().collect();
        msgs.extend(rx.try_iter());
        if live.is_some() && (app.screen != ScreenId::Status || app.status.watch.is_none()) {
            // The panel lives on the status screen only.
            live = None;
            app.status.watch = None;
        }
        if let Some(l) = &live {
            msgs.extend(
                l.summaries
                    .try_iter()
                    .map(|s| Msg::Watch(Ok(crate::watch::render(&s)))),
            );
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            last_tick = Instant::now();
            msgs.push(Msg::Tick(last_tick));
        }
        for msg in msgs {
            dirty = true;
            for effect in update::update(app, msg) {
                if let Effect::Watch(w) = &effect {
                    live = None;
                    if let Some((iface, dscp)) = w {
                        match crate::watch::LiveWatch::start(iface, Some(*dscp)) {
                            Ok(l) => live = Some(l),
                            Err(e) => {
                                let _ = tx.send(Msg::Watch(Err(e.to_string())));
                            }
                        }
                    }
                    continue;
                }
                run_effect(app, effect, tx, state);
            }
        }
    }
}

/// Workers that change the host (apply, confirm, rollback). `run` waits for
/// them before it returns, so a dead terminal never cuts a change in half.
static CHANGES: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>> =
    std::sync::Mutex::new(Vec::new());

fn spawn_change(f: impl FnOnce() + Send + 'static) {
    // Before the thread starts: the commands it runs inherit "ignore SIGHUP".
    hangup::shield();
    let h = std::thread::spawn(f);
    if let Ok(mut v) = CHANGES.lock() {
        v.push(h);
    }
}

fn changes_running() -> bool {
    CHANGES
        .lock()
        .map(|v| v.iter().any(|h| !h.is_finished()))
        .unwrap_or(true)
}

fn join_changes() {
    let handles = CHANGES
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default();
    for h in handles {
        let _ = h.join();
    }
}

fn spawn_probe(tx: Sender<Msg>) {
    std::thread::spawn(move || {
        let _ = tx.send(Msg::Facts(Box::new(crate::probe::probe_system())));
    });
}

fn engine(state: &StateDir) -> Engine<'static> {
    Engine {
        runner: &SystemRunner,
        root: PathBuf::from("/"),
        state: state.clone(),
    }
}

fn run_effect(app: &mut App, effect: Effect, tx: &Sender<Msg>, state: &StateDir) {
    match effect {
        Effect::Quit => app.quit = true,
        // Handled by the loop, which owns the capture.
        Effect::Watch(_) => {}
        Effect::Probe => spawn_probe(tx.clone()),
        Effect::SaveProfile(path) => {
            app.notice = Some(match app.draft_profile() {
                Ok(p) => match std::fs::write(&path, p.to_toml()) {
                    Ok(()) => {
                        app.profile_path = Some(path.clone());
                        format!("Saved the profile to {}", path.display())
                    }
                    Err(e) => format!("Could not save {}: {e}", path.display()),
                },
                Err(e) => format!("The profile is not complete: {e}"),
            });
        }
        Effect::ExportScript(path) => {
            app.notice = Some(match app.plan() {
                Ok(plan) => {
                    let source = app
                        .profile_path
                        .as_ref()
                        .map_or("the wizard".into(), |p| p.display().to_string());
                    match std::fs::write(&path, crate::plan::render_script(plan, &source)) {
                        Ok(()) => format!(
                            "Wrote the script to {} (sh it with apply or undo)",
                            path.display()
                        ),
                        Err(e) => format!("Could not write {}: {e}", path.display()),
                    }
                }
                Err(e) => format!("No plan to export: {e}"),
            });
        }
        Effect::Apply { confirm_secs } => {
            let plan = app.plan().as_ref().map_err(String::clone);
            let (profile, previewed) = match (app.draft_profile(), plan) {
                (Ok(pr), Ok(p)) => (
                    pr,
                    p.pending().map(|s| s.apply.display()).collect::<Vec<_>>(),
                ),
                (Err(e), _) | (_, Err(e)) => {
                    app.notice = Some(e);
                    return;
                }
            };
            let (tx, state) = (tx.clone(), state.clone());
            let source = app
                .profile_path
                .as_ref()
                .map_or("tui".into(), |p| p.display().to_string());
            spawn_change(move || {
                let e = engine(&state);
                let result = (|| {
                    let lock = e.lock().map_err(|e| e.to_string())?;
                    e.recover_after_reboot(&lock, &mut |_| {})
                        .map_err(|e| e.to_string())?;
                    e.check_clear().map_err(|e| e.to_string())?;
                    // Plan again from a fresh read, under the lock: the preview
                    // may be minutes old. Apply only what the admin saw.
                    let facts = crate::probe::probe_system();
                    let mut plan =
                        crate::plan::plan(&profile, &facts, crate::plan::PlanOptions::default())
                            .map_err(|e| e.problems.join("; "))?;
                    plan.errors
                        .extend(crate::apply::ready::blockers(&profile, &facts, &plan));
                    if let Some(first) = plan.errors.first() {
                        return Err(first.clone());
                    }
                    let now: Vec<String> = plan.pending().map(|s| s.apply.display()).collect();
                    if now != previewed {
                        return Err("the host changed since the preview: nothing was applied; \
                                    restart dscproute to plan from a fresh read"
                            .into());
                    }
                    let arm = |j: &crate::apply::Journal| crate::apply::timer::arm(&state, j);
                    let confirm =
                        confirm_secs.map(|s| (s, &arm as crate::apply::transaction::ArmTimer));
                    let progress_tx = tx.clone();
                    let mut events = move |ev| {
                        let _ = progress_tx.send(Msg::Apply(ev));
                    };
                    match e
                        .apply(&lock, &plan, &source, confirm, &mut events)
                        .map_err(|e| e.to_string())?
                    {
                        ApplyOutcome::Noop => Ok(ApplyResult {
                            transaction: String::new(),
                            noop: true,
                            deadline_unix: None,
                        }),
                        ApplyOutcome::Applied(j) => Ok(ApplyResult {
                            transaction: j.id,
                            noop: false,
                            deadline_unix: j.confirm_deadline_unix,
                        }),
                        ApplyOutcome::Failed { failure, .. } => Err(format!(
                            "{}: {} (the completed steps were undone)",
                            failure.command,
                            failure.stderr.trim()
                        )),
                    }
                })();
                let _ = tx.send(Msg::ApplyDone(result));
            });
        }
        Effect::Confirm => {
            let (tx, state) = (tx.clone(), state.clone());
            spawn_change(move || {
                let e = engine(&state);
                let r =
                    e.lock()
                        .map_err(|e| e.to_string())
                        .and_then(|lock| match e.confirm(&lock) {
                            Ok(Ok(j)) => Ok(format!("Kept transaction {}.", j.id)),
                            Ok(Err(m)) => Err(m),
                            Err(err) => Err(err.to_string()),
                        });
                let _ = tx.send(Msg::Settled(r));
            });
        }
        Effect::Rollback => {
            let (tx, state) = (tx.clone(), state.clone());
            spawn_change(move || {
                let e = engine(&state);
                let progress_tx = tx.clone();
                let mut events = move |ev| {
                    let _ = progress_tx.send(Msg::Apply(ev));
                };
                let r = e.lock().map_err(|e| e.to_string()).and_then(|lock| {
                    match e.rollback(&lock, &mut events) {
                        Ok(RollbackOutcome::RolledBack(j)) => {
                            Ok(format!("Rolled back transaction {}.", j.id))
                        }
                        Ok(RollbackOutcome::Nothing(m)) => Ok(m),
                        Ok(RollbackOutcome::Partial(j)) => Err(format!(
                            "Rolled back {} partly: see the status screen.",
                            j.id
                        )),
                        Err(err) => Err(err.to_string()),
                    }
                });
                let _ = tx.send(Msg::Settled(r));
            });
        }
        Effect::RefreshStatus => {
            let (tx, state) = (tx.clone(), state.clone());
            std::thread::spawn(move || {
                // The same view as `dscproute status`: an unreadable journal,
                // a running apply and drift are reported, not hidden.
                let facts = crate::probe::probe_system();
                let s = crate::apply::status::gather_dir(&state, &facts, &SystemRunner);
                let _ = tx.send(Msg::Status(Box::new(s)));
            });
        }
    }
}
