//! What dscproute does to a host, and how it is spelled. The planner
//! produces typed operations (`op::Op`); each backend module is the one
//! place that turns them into what runs and reads that form back:
//!
//! - `iptables`: chains, rules and jumps as iptables/ip6tables argv and
//!   iptables-restore lines (a second netfilter backend goes beside it);
//! - `iproute`: policy rules and routes as `ip rule`/`ip route` argv and
//!   `ip -batch` lines;
//! - `system`: sysctls, groups, our rt_tables drop-in, dropping an empty
//!   nftables table.
//!
//! Nothing outside this module looks inside an argv: the executor batches by
//! asking an operation for its restore line or its `ip -batch` line, the
//! doctor asks it what it is.

mod effect;
pub mod iproute;
pub mod iptables;
pub mod nft;
pub mod op;
pub mod system;

pub use effect::Effect;
pub use op::{
    ChainRule, DefaultRoute, Family, MarkMask, NfCmd, Op, OurRule, PolicyAction, PolicyRule,
    Selector, SysctlKey, Table,
};

/// What `op` runs as.
pub fn effect(op: &Op) -> Effect {
    match op {
        Op::Netfilter { family, table, cmd } => Effect::run(iptables::argv(*family, *table, cmd)),
        Op::PolicyRule { family, add, rule } => {
            Effect::run(iproute::rule_argv(*family, *add, rule))
        }
        Op::Route { family, add, route } => Effect::run(iproute::route_argv(*family, *add, route)),
        Op::RouteReplace { family, to, .. } => Effect::run(iproute::replace_argv(*family, to)),
        Op::Sysctl { key, value } => {
            Effect::run(system::sysctl_argv(&key.key(), &value.to_string()))
        }
        Op::GroupAdd { name } => Effect::run(system::group_argv(true, name)),
        Op::GroupDel { name } => Effect::run(system::group_argv(false, name)),
        Op::WriteTableNames { id, name } => system::write_table_names(*id, name),
        Op::RemoveTableNames => system::remove_table_names(),
        Op::DropEmptyTable { family, table } => iptables::drop_empty_table(*family, table.name()),
        Op::NftTable { ruleset, fresh } => Effect::RunInput {
            argv: nft::replace_argv(),
            input: ruleset.script(*fresh),
        },
        Op::NftDelete => Effect::run(nft::delete_argv()),
        Op::Seq { ops } => Effect::Seq {
            effects: ops.iter().map(Op::effect).collect(),
        },
    }
}

/// An effect read back as the operation it spells, names and values not yet
/// checked (`Op::parse` checks them and that the spelling is exact).
fn parse_effect(effect: &Effect) -> Result<Op, String> {
    match effect {
        Effect::Run { argv } => {
            let w: Vec<&str> = argv.iter().map(String::as_str).collect();
            match w.first() {
                Some(&("iptables" | "ip6tables")) => iptables::parse_argv(&w),
                Some(&"ip") => iproute::parse_argv(&w),
                Some(&"nft") if *argv == nft::delete_argv() => Ok(Op::NftDelete),
                Some(_) => system::parse_argv(&w),
                None => Err("an empty command".into()),
            }
        }
        Effect::WriteFile { .. } | Effect::RemoveFile { .. } => system::parse_file(effect),
        // Never read back from text: our nftables table is journaled typed.
        Effect::RunInput { .. } => Err("not an operation dscproute journals as text".into()),
        Effect::DropEmptyTable { family, table } => iptables::parse_drop_empty_table(family, table),
        Effect::Seq { effects } => effects
            .iter()
            .map(parse_effect)
            .collect::<Result<_, _>>()
            .map(|ops| Op::Seq { ops }),
    }
}
