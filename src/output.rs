//! Writing to stdout/stderr without panicking when the reader is gone
//! (Rust ignores SIGPIPE, so `println!` would panic on a closed pipe).

use std::io::Write;

/// Write `text` to stdout, ignoring a closed pipe or a vanished terminal:
/// on a path that changes the host, output must never stop the work half-way.
pub fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
}

/// Write `text` to stdout; a closed pipe ends the process quietly. Only for
/// read-only commands (explain, watch, facts…), where stopping is harmless.
pub fn print_or_quit(text: &str) {
    let mut out = std::io::stdout().lock();
    if out
        .write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .is_err()
    {
        std::process::exit(0);
    }
}

/// Write one line to stderr, ignoring failures (nobody left to tell).
pub fn eprint_line(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}
