//! The interactive configurator. The main thread owns the terminal: it polls
//! input, drains worker messages, updates the state, runs effects, and draws
//! when something changed. Workers (probe, apply, rollback, status) talk
//! back only through messages.

pub mod app;
pub mod draft;
pub mod frame;
pub mod hangup;
pub mod keep_up;
pub mod msg;
pub mod recipes;
pub mod screens;
pub mod shared;
pub mod theme;
pub mod txn;
pub mod update;
pub mod who_lists;
pub mod widgets;

#[cfg(test)]
pub mod testing;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_who;

use crate::apply::StateDir;
use crate::ops::{self, Host, apply::Applied};
use crate::probe::HostFacts;
use crate::profile::Profile;
use app::{App, ScreenId};
use msg::{ApplyResult, Effect, Msg};
use ratatui::crossterm::cursor::Show;
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
        Some(f) => {
            app.recorded_facts = true;
            app.who_lists = who_lists::WhoLists::not_this_host(
                "recorded facts: type the name, the plan judges it",
            );
            update::facts_arrived(&mut app, f);
        }
        None => {
            spawn_probe(tx.clone());
            spawn_who_lists(tx.clone());
        }
    }
    let mut terminal = ratatui::init();
    restore_fully_on_panic();
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

/// ratatui's panic hook leaves raw mode and the alternate screen only; the
/// release build aborts on panic (Cargo.toml), so no destructor shows the
/// cursor afterwards. Runs before ratatui's hook, which prints the message.
fn restore_fully_on_panic() {
    let ratatui_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = execute!(std::io::stdout(), DisableMouseCapture, Show);
        ratatui_hook(info);
    }));
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

/// The Who step's lists, read once (systemctl may take a moment).
fn spawn_who_lists(tx: Sender<Msg>) {
    std::thread::spawn(move || {
        let lists = who_lists::WhoLists::read(&crate::runner::SystemRunner);
        let _ = tx.send(Msg::WhoLists(Box::new(lists)));
    });
}

/// Resolve the marker as `Host::facts_for` does, into facts that hold only
/// what it found (the cgroup v2 mount comes from the facts at hand).
fn spawn_resolve(tx: Sender<Msg>, profile: Profile, cgroup2: Option<String>) {
    std::thread::spawn(move || {
        let mut add = HostFacts {
            cgroup2,
            ..HostFacts::default()
        };
        crate::probe::resolve_marker(
            &mut add,
            crate::plan::marker_query(&profile),
            &crate::runner::SystemRunner,
            std::path::Path::new("/"),
        );
        add.cgroup2 = None;
        let who = profile
            .marker
            .as_ref()
            .map(|m| m.who.to_string())
            .unwrap_or_default();
        let _ = tx.send(Msg::Resolved(who, Box::new(add)));
    });
}

fn run_effect(app: &mut App, effect: Effect, tx: &Sender<Msg>, state: &StateDir) {
    match effect {
        Effect::Quit => app.quit = true,
        // Handled by the loop, which owns the capture.
        Effect::Watch(_) => {}
        Effect::Probe => spawn_probe(tx.clone()),
        Effect::ResolveMarker(p) => {
            let cgroup2 = app.facts().and_then(|f| f.cgroup2.clone());
            spawn_resolve(tx.clone(), *p, cgroup2);
        }
        Effect::WriteRecipe { path, target, req } => {
            match recipes::write(app, &path, target, &req) {
                Ok(done) => {
                    app.notice = Some(format!("Wrote {}", path.display()));
                    app.preview.recipe_written = Some(done);
                }
                Err(e) => app.notice = Some(e),
            }
        }
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
                let host = Host::system(state, false);
                let req = ops::apply::Request {
                    profile: &profile,
                    source: &source,
                    confirm_secs,
                    // The plan is made again from a fresh read, under the
                    // lock: the preview may be minutes old.
                    previewed: Some(&previewed),
                    vpn_may_wait: false,
                };
                let progress_tx = tx.clone();
                let mut progress = move |p| {
                    if let ops::apply::Progress::Step(ev) = p {
                        let _ = progress_tx.send(Msg::Apply(ev));
                    }
                };
                let result = match ops::apply::apply(&host, &req, &mut progress) {
                    Ok(Applied::NothingToDo) => Ok(ApplyResult {
                        transaction: String::new(),
                        noop: true,
                        deadline_unix: None,
                    }),
                    Ok(Applied::Changed(j)) => Ok(ApplyResult {
                        transaction: j.id,
                        noop: false,
                        deadline_unix: j.confirm_deadline_unix,
                    }),
                    Err(e) => Err(e.to_string()),
                };
                let _ = tx.send(Msg::ApplyDone(result));
            });
        }
        Effect::Confirm => {
            let (tx, state) = (tx.clone(), state.clone());
            spawn_change(move || {
                let r = ops::confirm::confirm(&Host::system(state, false))
                    .map(|j| format!("Kept transaction {}.", j.id))
                    .map_err(|e| e.to_string());
                let _ = tx.send(Msg::Settled(r));
            });
        }
        Effect::Rollback | Effect::RollbackLast => {
            let req = ops::rollback::Request {
                all: false,
                last: effect == Effect::RollbackLast,
            };
            let (tx, state) = (tx.clone(), state.clone());
            spawn_change(move || {
                let progress_tx = tx.clone();
                let mut progress = move |ev| {
                    let _ = progress_tx.send(Msg::Apply(ev));
                };
                let host = Host::system(state, false);
                let r = match ops::rollback::rollback(&host, req, &mut progress) {
                    Ok(done) if done.ok() => Ok(done.message()),
                    Ok(done) => Err(format!(
                        "Rolled back {} partly: see the status screen.",
                        done.transaction().unwrap_or_default()
                    )),
                    Err(e) => Err(e.to_string()),
                };
                let _ = tx.send(Msg::Settled(r));
            });
        }
        Effect::Persist => {
            let profile = match app.draft_profile() {
                Ok(p) => p,
                Err(e) => {
                    let _ = tx.send(Msg::Persisted(Err(e)));
                    return;
                }
            };
            let (tx, state, path) = (tx.clone(), state.clone(), app.profile_path.clone());
            // It writes /etc and runs systemctl: finished before the TUI leaves.
            spawn_change(move || {
                let r = keep_up::persist_here(&state, &profile, path.as_deref());
                let _ = tx.send(Msg::Persisted(r));
            });
        }
        Effect::RefreshStatus => {
            let (tx, state) = (tx.clone(), state.clone());
            std::thread::spawn(move || {
                let s = ops::status::status(&Host::system(state, false));
                let _ = tx.send(Msg::Status(Box::new(s)));
            });
        }
    }
}
