//! `dscproute watch`: per-DSCP counts of an interface's traffic, redrawn
//! every second; `--seconds S --json` prints one summary and exits.

use super::{exit, fail};
use crate::output;
use crate::tos::parse_dscp;
use crate::watch::{CaptureError, Watch, render};
use clap::Args;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Ctrl-C (and SIGTERM) end the watch with a last summary instead of
/// killing it mid-line.
fn catch_stop_signals() {
    let handler = on_signal as extern "C" fn(libc::c_int);
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The interface to watch.
    #[arg(long, short)]
    pub interface: String,
    /// Show the top source/destination pairs for this DSCP.
    #[arg(long)]
    pub dscp: Option<String>,
    /// Stop after this many seconds (with --json: print one summary).
    #[arg(long, value_name = "S")]
    pub seconds: Option<u64>,
    /// Print JSON: a summary line every second, or with --seconds one
    /// summary at the end.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &WatchArgs) -> i32 {
    let (interface, seconds, json) = (args.interface.as_str(), args.seconds, args.json);
    let dscp = match args.dscp.as_deref().map(parse_dscp).transpose() {
        Ok(d) => d.map(|d| d.value()),
        Err(e) => {
            return fail(
                exit::USAGE,
                &format!("--dscp: {}", e.message(crate::tos::Context::DscpOnly)),
            );
        }
    };
    let mut w = match Watch::open(interface, dscp) {
        Ok(w) => w,
        Err(e @ CaptureError::NoInterface(_)) => return fail(exit::USAGE, &e.to_string()),
        Err(e @ CaptureError::Permission(_)) => return fail(exit::BLOCKED, &e.to_string()),
        Err(e) => return fail(exit::FAILED, &e.to_string()),
    };
    catch_stop_signals();
    let until = seconds.map(|s| Instant::now() + Duration::from_secs(s));
    // Scripts and tests wait for this line before they send.
    output::eprint_line(&match seconds {
        Some(s) => format!("dscproute: watching {interface} for {s} s"),
        None => format!("dscproute: watching {interface} (Ctrl-C to stop)"),
    });
    let terminal = std::io::stdout().is_terminal();
    // Live output: redraw on a terminal; a stream of tables (or JSON lines)
    // when piped and open-ended; nothing but the summary when piped and timed.
    let live = !json && (terminal || until.is_none());
    let json_lines = json && until.is_none();

    let mut next_tick = Instant::now() + Duration::from_secs(1);
    loop {
        if STOP.load(Ordering::SeqCst) || until.is_some_and(|u| Instant::now() >= u) {
            break;
        }
        let mut wake = next_tick;
        if let Some(u) = until {
            wake = wake.min(u);
        }
        if let Err(e) = w.poll(wake.saturating_duration_since(Instant::now())) {
            return fail(exit::FAILED, &e.to_string());
        }
        if Instant::now() >= next_tick {
            w.tick();
            next_tick += Duration::from_secs(1);
            if live || json_lines {
                let s = w.summary();
                if json_lines {
                    let line = serde_json::to_string(&s).expect("summary serializes");
                    output::print_or_quit(&format!("{line}\n"));
                } else if terminal {
                    output::print_or_quit(&format!("\x1b[H\x1b[2J{}", render(&s)));
                } else {
                    output::print_or_quit(&format!("{}\n", render(&s)));
                }
            }
        }
    }
    if let Err(e) = w.finish() {
        return fail(exit::FAILED, &e.to_string());
    }
    w.tick();
    let s = w.summary();
    if json_lines {
        let line = serde_json::to_string(&s).expect("summary serializes");
        output::print_or_quit(&format!("{line}\n"));
    } else if json {
        let text = serde_json::to_string_pretty(&s).expect("summary serializes");
        output::print_or_quit(&format!("{text}\n"));
    } else if terminal {
        output::print_or_quit(&format!("\x1b[H\x1b[2J{}", render(&s)));
    } else {
        output::print_or_quit(&render(&s));
    }
    exit::OK
}
