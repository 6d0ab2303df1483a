//! The command line: each subcommand is a few lines over the library.

use crate::explain::Explanation;
use crate::output;
use clap::{Parser, Subcommand};

/// Exit status for bad input (same as clap's usage errors).
pub const EXIT_USAGE: i32 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "dscproute",
    version,
    about = "Route one group's traffic through a VPN on the gateway, signalled in the DSCP bits",
    long_about = "dscproute carries a routing decision from a client host to its gateway in the \
                  DSCP bits of the IP header: processes of a chosen group get a DSCP value on the \
                  client, and the gateway routes packets carrying that value through a VPN."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Explain a DSCP value or ToS byte: bits, names, legacy reading, Wi-Fi
    /// priority, and the exact iptables, nft, tcpdump and Wireshark expressions.
    Explain {
        /// A DSCP (7, 0x07, 0b000111, af41, ef, le, …) or, with --tos, a whole byte.
        value: String,
        /// Read VALUE as a whole ToS / traffic-class byte (DSCP << 2 | ECN).
        #[arg(long)]
        tos: bool,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Run the parsed command line; returns the process exit status.
pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Some(Command::Explain { value, tos, json }) => explain(&value, tos, json),
        None => {
            use clap::CommandFactory;
            output::print(&format!("{}\n", Cli::command().render_help()));
            0
        }
    }
}

fn explain(value: &str, tos: bool, json: bool) -> i32 {
    match Explanation::parse(value, tos) {
        Ok(e) if json => {
            let text = serde_json::to_string_pretty(&e).expect("explanation serializes");
            output::print(&format!("{text}\n"));
            0
        }
        Ok(e) => {
            output::print(&e.render_text());
            0
        }
        Err(err) => {
            output::eprint_line(&format!("dscproute: {err}"));
            EXIT_USAGE
        }
    }
}
