//! `dscproute explain`.

use super::{exit, fail};
use crate::explain::Explanation;
use crate::output;
use clap::Args;

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// A DSCP (7, 0x07, 0b000111, af41, ef, le, …) or, with --tos, a whole byte.
    // A value starting with '-' (`-1`) reaches our parser, which names
    // what is accepted, instead of clap's "unexpected argument".
    #[arg(allow_hyphen_values = true)]
    pub value: String,
    /// Read VALUE as a whole ToS / traffic-class byte (DSCP << 2 | ECN).
    #[arg(long)]
    pub tos: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &ExplainArgs) -> i32 {
    match Explanation::parse(&args.value, args.tos) {
        Ok(e) if args.json => {
            let text = serde_json::to_string_pretty(&e).expect("explanation serializes");
            output::print_or_quit(&format!("{text}\n"));
            exit::OK
        }
        Ok(e) => {
            output::print_or_quit(&e.render_text());
            exit::OK
        }
        Err(err) => fail(exit::USAGE, &err.to_string()),
    }
}
