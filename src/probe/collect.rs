//! `probe()`: run the read-only commands, read the files, parse, and keep
//! going whatever fails — each failure becomes one `Unreadable` naming the
//! fact it leaves unknown.

use super::error::ParseError;
use super::files::{read_optional, rel_display};
use super::groups::parse_groups;
use super::links::parse_links;
use super::routes::parse_routes;
use super::rt_tables::read_rt_tables;
use super::rules::parse_rules;
use super::sysctls::read_sysctls;
use super::tools::{find_in_path, find_tools};
use super::unreadable::{Fact, Reason, Source, Unreadable};
use super::versions::{parse_ip_version, parse_iptables_backend, parse_kernel};
use super::xtables::parse_xt_names;
use super::{HostFacts, IptablesBackend};
use crate::runner::{RunError, Runner, SystemRunner};
use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::PathBuf;

/// Where and as whom the probe looks.
pub struct ProbeEnv<'a> {
    pub runner: &'a dyn Runner,
    /// Filesystem root the files are read under: "/" on a host.
    pub root: PathBuf,
    /// Effective uid 0; decides whether root-only commands are tried.
    pub is_root: bool,
    /// Absolute path of a tool, if installed (`find_in_path` on a host).
    pub find_tool: &'a dyn Fn(&str) -> Option<String>,
}

/// Facts about this host, as the current user sees them.
pub fn probe_system() -> HostFacts {
    let is_root = crate::runner::is_root();
    probe(&ProbeEnv {
        runner: &SystemRunner,
        root: PathBuf::from("/"),
        is_root,
        find_tool: &find_in_path,
    })
}

/// Never fails as a whole: what cannot be read stays empty and is explained
/// in `unreadable`.
pub fn probe(env: &ProbeEnv) -> HostFacts {
    let mut p = Probe {
        env,
        notes: Vec::new(),
        prefetched: prefetch(env),
    };
    let mut facts = HostFacts {
        is_root: env.is_root,
        tools: find_tools(env.find_tool),
        ..HostFacts::default()
    };

    facts.kernel = p.parsed(Fact::Kernel, &["uname", "-r"], parse_kernel);
    facts.iproute2_version = p.parsed(Fact::Iproute2Version, &["ip", "-V"], parse_ip_version);
    facts.iptables_backend = p.parsed(
        Fact::IptablesBackend,
        &["iptables", "-V"],
        parse_iptables_backend,
    );
    facts.groups = p
        .parsed(Fact::Groups, &["getent", "group"], |t| Ok(parse_groups(t)))
        .unwrap_or_default();
    facts.links = p
        .parsed(Fact::Links, &["ip", "-j", "addr", "show"], parse_links)
        .unwrap_or_default();
    facts.routes_v4 = p
        .parsed(
            Fact::RoutesV4,
            &["ip", "-j", "-4", "route", "show", "table", "all"],
            parse_routes,
        )
        .unwrap_or_default();
    facts.routes_v6 = p
        .parsed(
            Fact::RoutesV6,
            &["ip", "-j", "-6", "route", "show", "table", "all"],
            parse_routes,
        )
        .unwrap_or_default();
    facts.rules_v4 = p
        .parsed(
            Fact::RulesV4,
            &["ip", "-j", "-4", "rule", "show"],
            parse_rules,
        )
        .unwrap_or_default();
    facts.rules_v6 = p
        .parsed(
            Fact::RulesV6,
            &["ip", "-j", "-6", "rule", "show"],
            parse_rules,
        )
        .unwrap_or_default();

    let (tables, notes) = read_rt_tables(&env.root);
    facts.rt_tables = tables;
    p.notes.extend(notes);

    let link_names: Vec<String> = facts.links.iter().map(|l| l.name.clone()).collect();
    let (sysctls, notes) = read_sysctls(&env.root, &link_names);
    facts.sysctls = sysctls;
    p.notes.extend(notes);

    facts.iptables_save = p.root_only(Fact::IptablesSave, &["iptables-save"]);
    facts.ip6tables_save = p.root_only(Fact::Ip6tablesSave, &["ip6tables-save"]);
    // Other users of the same hooks: native nftables, and legacy x_tables
    // next to iptables-nft (each runs on every packet, whatever we use).
    if env.is_root && facts.has_tool("nft") {
        facts.nft_ruleset = p.stdout(Fact::NftRuleset, NFT_RULESET);
    }
    if env.is_root && facts.iptables_backend == Some(IptablesBackend::NfTables) {
        facts.iptables_legacy_save = p.legacy(
            Fact::IptablesLegacySave,
            "proc/net/ip_tables_names",
            "iptables-legacy-save",
        );
        facts.ip6tables_legacy_save = p.legacy(
            Fact::Ip6tablesLegacySave,
            "proc/net/ip6_tables_names",
            "ip6tables-legacy-save",
        );
    }
    facts.xt_matches = p.proc_list(Fact::XtMatches, "proc/net/ip_tables_matches");
    facts.xt_targets = p.proc_list(Fact::XtTargets, "proc/net/ip_tables_targets");

    facts.cgroup2 = read_optional(&env.root, "proc/self/mountinfo")
        .ok()
        .flatten()
        .and_then(|t| super::cgroup2_mount(&t));

    facts.unreadable = p.notes;
    facts
}

/// Every command the probe runs. They are independent reads, so they run
/// at once; `apply` pays for the probe before its first step.
const COMMANDS: &[&[&str]] = &[
    &["uname", "-r"],
    &["ip", "-V"],
    &["iptables", "-V"],
    &["getent", "group"],
    &["ip", "-j", "addr", "show"],
    &["ip", "-j", "-4", "route", "show", "table", "all"],
    &["ip", "-j", "-6", "route", "show", "table", "all"],
    &["ip", "-j", "-4", "rule", "show"],
    &["ip", "-j", "-6", "rule", "show"],
];
const ROOT_COMMANDS: &[&[&str]] = &[&["iptables-save"], &["ip6tables-save"]];
const NFT_RULESET: &[&str] = &["nft", "list", "ruleset"];

type Outcome = Result<crate::runner::Output, RunError>;

fn prefetch(env: &ProbeEnv) -> HashMap<String, Outcome> {
    let mut root: Vec<&[&str]> = Vec::new();
    if env.is_root {
        root.extend(ROOT_COMMANDS);
        if (env.find_tool)("nft").is_some() {
            root.push(NFT_RULESET);
        }
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = COMMANDS
            .iter()
            .chain(&root)
            .map(|argv| (argv.join(" "), s.spawn(|| env.runner.run_args(argv))))
            .collect();
        handles
            .into_iter()
            .filter_map(|(k, h)| h.join().ok().map(|o| (k, o)))
            .collect()
    })
}

struct Probe<'e, 'a> {
    env: &'e ProbeEnv<'a>,
    notes: Vec<Unreadable>,
    prefetched: HashMap<String, Outcome>,
}

impl Probe<'_, '_> {
    fn note(&mut self, fact: Fact, source: Source, reason: Reason) {
        self.notes.push(Unreadable::new(fact, source, reason));
    }

    /// stdout of a successful run, or a note saying why there is none.
    fn stdout(&mut self, fact: Fact, argv: &[&str]) -> Option<String> {
        let command = argv.join(" ");
        let outcome = match self.prefetched.remove(&command) {
            Some(o) => o,
            None => self.env.runner.run_args(argv),
        };
        let reason = match outcome {
            Ok(out) if out.success() => return Some(out.stdout),
            Ok(out) => {
                let said = out
                    .stderr
                    .lines()
                    .chain(out.stdout.lines())
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .map(String::from);
                let root_hint =
                    !self.env.is_root && said.as_deref().is_some_and(mentions_permission);
                Reason::Failed {
                    status: out.status,
                    said,
                    root_hint,
                }
            }
            Err(RunError::NotFound { program }) => Reason::MissingTool { program },
            Err(e) => Reason::NotStarted {
                error: e.to_string(),
            },
        };
        self.note(fact, Source::command(argv), reason);
        None
    }

    fn parsed<T>(
        &mut self,
        fact: Fact,
        argv: &[&str],
        parse: impl FnOnce(&str) -> Result<T, ParseError>,
    ) -> Option<T> {
        let text = self.stdout(fact, argv)?;
        parse(&text)
            .map_err(|e| {
                let error = e.to_string();
                self.note(fact, Source::command(argv), Reason::Unparsed { error })
            })
            .ok()
    }

    /// Commands that fail for everyone but root are not even tried.
    fn root_only(&mut self, fact: Fact, argv: &[&str]) -> Option<String> {
        if !self.env.is_root {
            self.note(fact, Source::command(argv), Reason::NeedsRoot);
            return None;
        }
        self.stdout(fact, argv)
    }

    /// The legacy backend's rules, only when the kernel lists legacy tables
    /// in `names` (running the tool otherwise could load modules) and the
    /// tool exists.
    fn legacy(&mut self, fact: Fact, names: &str, tool: &str) -> Option<String> {
        let listed = read_optional(&self.env.root, names)
            .ok()
            .flatten()
            .is_some_and(|t| !t.trim().is_empty());
        if !listed || (self.env.find_tool)(tool).is_none() {
            return None;
        }
        self.stdout(fact, &[tool])
    }

    /// A /proc name list; a missing file just means "unknown" (nf_tables
    /// hosts may not have it).
    fn proc_list(&mut self, fact: Fact, rel: &str) -> Vec<String> {
        match read_optional(&self.env.root, rel) {
            Ok(text) => text.as_deref().map(parse_xt_names).unwrap_or_default(),
            Err(e) => {
                let root_hint = !self.env.is_root && e.kind() == ErrorKind::PermissionDenied;
                let error = e.to_string();
                self.note(
                    fact,
                    Source::Path(rel_display(rel)),
                    Reason::Io { error, root_hint },
                );
                Vec::new()
            }
        }
    }
}

fn mentions_permission(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    text.contains("permission denied") || text.contains("operation not permitted")
}
