//! Writing to stdout/stderr without panicking when the reader is gone
//! (Rust ignores SIGPIPE, so `println!` would panic on a closed pipe).

use std::io::Write;

/// Write `text` to stdout; a closed pipe ends the process quietly.
pub fn print(text: &str) {
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
