//! `dscproute explain`.

use super::{exit, fail};
use crate::explain::Explanation;
use crate::output;

pub fn explain(value: &str, tos: bool, json: bool) -> i32 {
    match Explanation::parse(value, tos) {
        Ok(e) if json => {
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
