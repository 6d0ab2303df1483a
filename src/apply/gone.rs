//! Is the object an undo failed to delete already gone? After a firewall
//! reload (`nft flush ruleset`), an interface deletion or a hand edit,
//! deleting what is no longer there fails, and that failure means "nothing
//! left to undo". The error texts differ between iptables-legacy and
//! iptables-nft and say little for sure ("Chain '…' does not exist" can be
//! the chain or the jump's target), so for netfilter the verdict comes from
//! reading the table again: gone only when `iptables-save` no longer shows it.

use super::executor::Failure;
use crate::backend::iptables::{rule_text, save_program};
use crate::backend::{Family, NfCmd, Op, Table};
use crate::plan::ruleset::Ruleset;
use crate::runner::Runner;

/// Messages of a delete whose object is missing: iproute2, sysctl, files,
/// iptables-legacy and iptables-nft.
const MISSING: [&str; 12] = [
    "cannot find device",
    "no such device",
    "no such process",
    "no such file or directory",
    "does a matching rule exist",
    "no chain/target/match by that name",
    "does not exist",
    "rule_delete failed",
    "chain_del failed",
    "table does not exist",
    "couldn't load match",
    "couldn't load target",
];

fn says_missing(stderr: &str) -> bool {
    let e = stderr.to_ascii_lowercase();
    MISSING.iter().any(|m| e.contains(m))
}

/// A netfilter object one of our undo operations deletes.
#[derive(Debug, PartialEq, Eq)]
enum Netfilter<'a> {
    Rule {
        family: Family,
        table: Table,
        chain: &'a str,
        text: String,
    },
    Chain {
        family: Family,
        table: Table,
        chain: &'a str,
    },
}

/// The netfilter object the failed part of `undo` deletes: the part whose
/// command the failure names.
fn netfilter<'a>(undo: &'a Op, f: &Failure) -> Option<Netfilter<'a>> {
    let op = undo
        .leaves()
        .into_iter()
        .find(|o| o.display() == f.command)?;
    let Op::Netfilter { family, table, cmd } = op else {
        return None;
    };
    let (family, table) = (*family, *table);
    match cmd {
        NfCmd::Delete { chain, rule } => Some(Netfilter::Rule {
            family,
            table,
            chain,
            text: rule_text(rule),
        }),
        NfCmd::DeleteChain { chain } | NfCmd::FlushChain { chain } => Some(Netfilter::Chain {
            family,
            table,
            chain,
        }),
        _ => None,
    }
}

/// Does `iptables-save -t TABLE` confirm the object is absent? False when
/// it cannot be read.
fn absent(runner: &dyn Runner, obj: &Netfilter) -> bool {
    let (family, table) = match obj {
        Netfilter::Rule { family, table, .. } | Netfilter::Chain { family, table, .. } => {
            (*family, table.name())
        }
    };
    let Ok(out) = runner.run_args(&[save_program(family), "-t", table]) else {
        return false;
    };
    if !out.success() {
        return false;
    }
    let rs = Ruleset::parse(&out.stdout);
    match obj {
        Netfilter::Rule { chain, text, .. } => !rs.has_rule(table, chain, text),
        Netfilter::Chain { chain, .. } => !rs.has_chain(table, chain),
    }
}

/// An undo (of the step whose undo operation is `undo`) that failed because
/// its object no longer exists has nothing left to undo.
pub fn already_gone(runner: &dyn Runner, undo: &Op, f: &Failure) -> bool {
    if !says_missing(&f.stderr) {
        return false;
    }
    match netfilter(undo, f) {
        Some(obj) => absent(runner, &obj),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::iptables::read_rule;
    use crate::runner::{FakeRunner, Output};

    /// The undo operation a failed command belongs to: `iptables -w -t
    /// mangle OP CHAIN [RULE…]` as a netfilter operation, anything else as
    /// an operation of another kind.
    fn undo_of(command: &str) -> Op {
        let Some(rest) = command.strip_prefix("iptables -w -t mangle ") else {
            return Op::RemoveTableNames;
        };
        let (op, rest) = rest.split_once(' ').unwrap();
        let (chain, text) = rest.split_once(' ').unwrap_or((rest, ""));
        let chain = chain.to_string();
        let cmd = match op {
            "-D" => NfCmd::Delete {
                rule: read_rule(Table::Mangle, &chain, text),
                chain,
            },
            "-X" => NfCmd::DeleteChain { chain },
            "-F" => NfCmd::FlushChain { chain },
            _ => NfCmd::Append {
                rule: read_rule(Table::Mangle, &chain, text),
                chain,
            },
        };
        Op::Netfilter {
            family: Family::V4,
            table: Table::Mangle,
            cmd,
        }
    }

    fn already_gone(runner: &dyn Runner, f: &Failure) -> bool {
        super::already_gone(runner, &undo_of(&f.command), f)
    }

    const JUMP: &str =
        "iptables -w -t mangle -D PREROUTING -m comment --comment dscproute -j DSCPROUTE-ROUTE";

    fn failure(command: &str, stderr: &str) -> Failure {
        Failure {
            command: command.into(),
            stderr: stderr.into(),
        }
    }

    fn save(text: &str) -> FakeRunner {
        FakeRunner::new().on(&["iptables-save", "-t", "mangle"], Output::ok(text))
    }

    #[test]
    fn iptables_nft_texts_after_a_flush_count_when_the_table_confirms() {
        // What iptables-nft 1.8.9 prints after `nft flush ruleset`.
        let flushed = save("*mangle\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n");
        for (cmd, err) in [
            (
                JUMP,
                "iptables v1.8.9 (nf_tables): Chain 'DSCPROUTE-ROUTE' does not exist\n\
                 Try `iptables -h' or 'iptables --help' for more information.",
            ),
            (
                "iptables -w -t mangle -D DSCPROUTE-ROUTE -j RETURN",
                "iptables: Bad rule (does a matching rule exist in that chain?).",
            ),
            (
                "iptables -w -t mangle -X DSCPROUTE-ROUTE",
                "iptables: No chain/target/match by that name.",
            ),
            (
                "iptables -w -t mangle -F DSCPROUTE-ROUTE",
                "iptables: No chain/target/match by that name.",
            ),
            (
                JUMP,
                "iptables: RULE_DELETE failed (No such file or directory): rule in chain PREROUTING",
            ),
            (
                JUMP,
                "iptables v1.8.9 (legacy): can't initialize iptables table `mangle': Table does \
                 not exist (do you need to insmod?)",
            ),
            (
                JUMP,
                "iptables v1.8.9 (legacy): Couldn't load target `DSCPROUTE-ROUTE':No such file \
                 or directory",
            ),
        ] {
            assert!(already_gone(&flushed, &failure(cmd, err)), "{cmd}: {err}");
        }
    }

    #[test]
    fn a_missing_message_is_not_enough_while_the_object_is_there() {
        let present = save(
            "*mangle\n:PREROUTING ACCEPT [0:0]\n:DSCPROUTE-ROUTE - [0:0]\n\
             -A PREROUTING -m comment --comment dscproute -j DSCPROUTE-ROUTE\nCOMMIT\n",
        );
        let err = "iptables v1.8.9 (nf_tables): Chain 'DSCPROUTE-ROUTE' does not exist";
        assert!(!already_gone(&present, &failure(JUMP, err)));
        assert!(!already_gone(
            &present,
            &failure(
                "iptables -w -t mangle -X DSCPROUTE-ROUTE",
                "iptables: No chain/target/match by that name."
            )
        ));
        // Unreadable table: not confirmed.
        let broken =
            FakeRunner::new().on(&["iptables-save", "-t", "mangle"], Output::failed(1, "no"));
        assert!(!already_gone(&broken, &failure(JUMP, err)));
    }

    #[test]
    fn other_failures_are_not_gone() {
        let flushed = save("*mangle\nCOMMIT\n");
        for (cmd, err) in [
            (JUMP, "iptables: Permission denied (you must be root)."),
            (JUMP, "Another app is currently holding the xtables lock."),
            (
                "ip -4 rule del pref 10000",
                "RTNETLINK answers: Operation not permitted",
            ),
        ] {
            assert!(!already_gone(&flushed, &failure(cmd, err)), "{err}");
        }
        assert!(
            flushed.calls().is_empty(),
            "no probe for a non-missing text"
        );
    }

    #[test]
    fn iproute2_and_files_go_by_their_message() {
        let none = FakeRunner::new();
        for (cmd, err) in [
            (
                "ip -4 route del default dev wg0 table 100 proto 213",
                "Error: Cannot find device \"wg0\"",
            ),
            (
                "ip -4 rule del pref 10000 proto 213",
                "RTNETLINK answers: No such file or directory",
            ),
            (
                "ip -4 route del default table 100",
                "RTNETLINK answers: No such process",
            ),
        ] {
            assert!(already_gone(&none, &failure(cmd, err)), "{err}");
        }
        assert!(none.calls().is_empty());
    }

    #[test]
    fn reads_only_our_delete_shapes() {
        let chain = Op::Netfilter {
            family: Family::V6,
            table: Table::Nat,
            cmd: NfCmd::DeleteChain {
                chain: "DSCPROUTE-NAT".into(),
            },
        };
        let undo = Op::Seq {
            ops: vec![
                chain.clone(),
                Op::DropEmptyTable {
                    family: Family::V6,
                    table: Table::Nat,
                },
            ],
        };
        let failed = |command: &str| Failure {
            command: command.into(),
            stderr: String::new(),
        };
        assert_eq!(
            netfilter(&undo, &failed("ip6tables -w -t nat -X DSCPROUTE-NAT")),
            Some(Netfilter::Chain {
                family: Family::V6,
                table: Table::Nat,
                chain: "DSCPROUTE-NAT"
            })
        );
        assert_eq!(netfilter(&undo, &failed("nft delete table ip6 nat")), None);
        let append = undo_of("iptables -w -t mangle -A X -j RETURN");
        assert_eq!(
            netfilter(&append, &failed("iptables -w -t mangle -A X -j RETURN")),
            None
        );
    }
}
