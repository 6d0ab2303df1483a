//! TUI timings without a terminal in the way: time to the first full frame
//! (state + probe results + render at 80x24) and from a keystroke on the
//! DSCP screen to the redrawn frame. Run: `cargo bench --bench tui`.
//! Peak memory of the real binary: `bench/tui-rss.sh`.

use dscproute::tui::app::{App, ScreenId};
use dscproute::tui::msg::Msg;
use dscproute::tui::theme::Theme;
use dscproute::tui::update::{facts_arrived, update};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::time::{Duration, Instant};

fn facts() -> dscproute::probe::HostFacts {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/plan/both.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("facts")
}

fn key(app: &mut App, code: KeyCode) {
    update(app, Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

fn stats(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let n = v.len();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{name:<34} median {:>8.1} µs   p95 {:>8.1} µs   max {:>8.1} µs   (n={n})",
        us(v[n / 2]),
        us(v[n * 95 / 100]),
        us(v[n - 1])
    );
}

fn main() {
    let facts = facts();
    let mut first = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let mut app = App::new(None, Some("dry run".into()), Theme::from_env());
        facts_arrived(&mut app, facts.clone());
        let mut term = Terminal::new(TestBackend::new(80, 24)).unwrap();
        term.draw(|f| dscproute::tui::frame::render(&app, f))
            .unwrap();
        first.push(t.elapsed());
    }
    stats("first full frame (80x24)", first);

    for (w, h) in [(80, 24), (120, 40)] {
        let mut app = App::new(None, Some("dry run".into()), Theme::from_env());
        facts_arrived(&mut app, facts.clone());
        app.screen = ScreenId::Dscp;
        let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
        term.draw(|f| dscproute::tui::frame::render(&app, f))
            .unwrap();
        let mut times = Vec::new();
        for i in 0..2000 {
            let code = if i % 2 == 0 {
                KeyCode::Char('+')
            } else {
                KeyCode::Char('-')
            };
            let t = Instant::now();
            key(&mut app, code);
            term.draw(|f| dscproute::tui::frame::render(&app, f))
                .unwrap();
            times.push(t.elapsed());
        }
        stats(&format!("DSCP screen key → frame ({w}x{h})"), times);
    }
}
