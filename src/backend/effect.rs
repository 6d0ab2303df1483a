//! An operation as it runs: an argv vector, a file write or removal, the
//! drop of an empty nftables table. This is what `plan --json` shows, what
//! the script writes out and what journals of earlier versions stored.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Effect {
    Run {
        argv: Vec<String>,
    },
    /// A program fed `input` on stdin (`nft -f -` with our whole table).
    RunInput {
        argv: Vec<String>,
        input: String,
    },
    /// Create (or replace) a file with these contents, creating parent dirs.
    WriteFile {
        path: String,
        contents: String,
    },
    RemoveFile {
        path: String,
    },
    /// Delete an nftables table iptables-nft created for us, only while it
    /// holds no rules and no chains of anyone's (`family` is `ip` or `ip6`).
    DropEmptyTable {
        family: String,
        table: String,
    },
    /// Several effects, in order (an undo that must also tidy up).
    Seq {
        effects: Vec<Effect>,
    },
}

impl Effect {
    pub fn run(argv: Vec<String>) -> Effect {
        Effect::Run { argv }
    }

    /// How the effect reads in a preview: the argv joined, or a file action.
    pub fn display(&self) -> String {
        match self {
            Effect::Run { argv } => argv.join(" "),
            Effect::RunInput { argv, input } => {
                format!("{} <<EOF ({} lines)", argv.join(" "), input.lines().count())
            }
            Effect::WriteFile { path, contents } => {
                format!("write {path}: {}", contents.trim_end().replace('\n', "; "))
            }
            Effect::RemoveFile { path } => format!("rm {path}"),
            Effect::DropEmptyTable { family, table } => {
                format!("nft delete table {family} {table} (only if empty)")
            }
            Effect::Seq { effects } => effects
                .iter()
                .map(Effect::display)
                .collect::<Vec<_>>()
                .join(" && "),
        }
    }
}
