//! The one place state changes: a message in, effects out. Keys and ticks
//! go to the screen on show, handed its own state and the shared one;
//! workers' reports go to the transaction and to the screens they concern.

use super::app::App;
use super::msg::{Effect, Msg};
use super::screens::{self, Handled};
use super::shared::ScreenId;
use super::widgets::byte_input::DscpState;
use crate::probe::HostFacts;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

pub fn update(app: &mut App, msg: Msg) -> Vec<Effect> {
    let mut effects = handle(app, msg);
    // The preview plans the marker as this host resolves it: asked once per
    // marker, by a worker, when the plan is about to be shown.
    if matches!(app.screen, ScreenId::Preview | ScreenId::Apply)
        && let Some(p) = app.shared.resolution_wanted()
    {
        effects.push(Effect::ResolveMarker(Box::new(p)));
    }
    effects
}

fn handle(app: &mut App, msg: Msg) -> Vec<Effect> {
    match msg {
        Msg::Key(key) => on_key(app, key),
        Msg::Mouse(m) => match app.screen {
            ScreenId::Role => screens::role::mouse(&mut app.shared, m),
            _ => Vec::new(),
        },
        Msg::Resize(w, h) => {
            app.size = (w, h);
            Vec::new()
        }
        Msg::Tick(_) => {
            app.now_unix = crate::apply::journal::now_unix();
            tick(app)
        }
        Msg::Facts(f) => {
            facts_arrived(app, *f);
            Vec::new()
        }
        Msg::WhoLists(l) => {
            app.shared.who_lists = *l;
            Vec::new()
        }
        Msg::Resolved(who, add) => {
            app.shared.set_resolved(who, *add);
            Vec::new()
        }
        Msg::Apply(ev) => {
            screens::apply::on_event(&mut app.apply, &mut app.shared, ev);
            Vec::new()
        }
        Msg::ApplyDone(r) => {
            screens::apply::on_done(&mut app.shared, r);
            Vec::new()
        }
        Msg::Settled(r) => {
            app.shared.txn.settle(r.clone());
            screens::status::on_settled(&mut app.status, r);
            Vec::new()
        }
        Msg::Status(s) => {
            app.shared.report = Some(*s);
            screens::status::on_report(&mut app.status);
            Vec::new()
        }
        Msg::Watch(r) => {
            screens::status::on_watch(&mut app.status, r);
            Vec::new()
        }
        Msg::Persisted(r) => {
            screens::apply::on_persisted(&mut app.apply, r);
            Vec::new()
        }
    }
}

/// The host's facts are in (probed, or recorded).
pub fn facts_arrived(app: &mut App, facts: HostFacts) {
    app.shared.set_facts(facts);
    screens::gateway::facts_arrived(&mut app.shared);
}

fn tick(app: &mut App) -> Vec<Effect> {
    match app.screen {
        ScreenId::Apply => screens::apply::tick(&mut app.shared),
        ScreenId::Status => screens::status::tick(&mut app.status, &app.shared),
        _ => Vec::new(),
    }
}

fn on_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    if key.kind == KeyEventKind::Release {
        return Vec::new();
    }
    let ctrl_c = key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
    if app.waiting_for_confirm() {
        // Enter keeps the change; anything else rolls it back (Ctrl-C included).
        return screens::apply::confirm_key(&mut app.shared, key);
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
        } else {
            app.help_scroll.key(key.code);
        }
        return Vec::new();
    }
    // Function keys work everywhere, text fields included; their letter
    // twins (? L S, and q) only reach here when no field took the key.
    match key.code {
        KeyCode::F(1) => {
            app.open_help();
            return Vec::new();
        }
        KeyCode::F(2) => return app.open(ScreenId::Learn),
        KeyCode::F(3) => return app.open(ScreenId::Status),
        _ => {}
    }
    if let Handled::Yes(effects) = screen_key(app, key) {
        if effects.iter().any(|e| matches!(e, Effect::Apply { .. })) {
            // A new transaction: its step list starts at the top.
            app.apply = Default::default();
        }
        return effects;
    }
    match key.code {
        KeyCode::Char('q') => quit(app),
        KeyCode::Char('?') => {
            app.open_help();
            Vec::new()
        }
        KeyCode::Char('L') => app.open(ScreenId::Learn),
        KeyCode::Char('S') => app.open(ScreenId::Status),
        KeyCode::Esc if app.leaves_on_esc() => quit(app),
        KeyCode::Esc => {
            app.previous();
            Vec::new()
        }
        KeyCode::Enter => {
            advance(app);
            Vec::new()
        }
        _ => Vec::new(),
    }
}

fn screen_key(app: &mut App, key: KeyEvent) -> Handled {
    let cx = &mut app.shared;
    match cx.screen {
        ScreenId::Role => screens::role::key(cx, key),
        ScreenId::Group => screens::group::key(cx, key),
        ScreenId::Dscp => screens::dscp::key(&mut app.dscp, cx, key),
        ScreenId::Mark => screens::mark::key(&mut app.mark, cx, key),
        ScreenId::Gateway => {
            let h = screens::gateway::key(&mut app.gateway, cx, key);
            // Another class is edited now: the DSCP step shows its DSCP.
            if app.dscp.byte.dscp() != app.shared.draft().dscp {
                app.dscp = DscpState::new(app.shared.draft().dscp);
            }
            h
        }
        ScreenId::Preview => screens::preview::key(&mut app.preview, cx, key),
        ScreenId::Apply => screens::apply::key(&mut app.apply, cx, key),
        ScreenId::Status => screens::status::key(&mut app.status, cx, key),
        ScreenId::Learn => screens::learn::key(&mut app.learn, cx, key),
    }
}

/// May the wizard leave this screen forward? The error says what to fix.
fn validate(app: &App) -> Result<(), String> {
    match app.screen {
        ScreenId::Group => screens::group::validate(&app.shared),
        ScreenId::Dscp => screens::dscp::validate(&app.dscp),
        ScreenId::Mark => screens::mark::validate(&app.shared),
        ScreenId::Gateway => screens::gateway::validate(&app.shared),
        _ => Ok(()),
    }
}

/// Enter on a wizard screen: check it, then move on.
fn advance(app: &mut App) {
    match validate(app) {
        Err(e) => app.notice = Some(e),
        Ok(()) => app.next(),
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
