//! `probe()`: run the read-only commands, read the files, parse, and keep
//! going whatever fails — each failure becomes one `Unreadable` naming the
//! fact it leaves unknown.

use super::error::ParseError;
use super::files::{read_optional, rel_display};
use super::groups::parse_groups;
use super::ip_batch::BATCHES;
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
    pub reads: Reads,
}

/// Reads a probe leaves out when what it is for does not need them (each
/// is a process, and `apply` pays for the probe before its first step).
/// Left out, the fact is empty without a note: not asked is not unreadable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reads {
    /// `getent group`: every group (a marker's group, the wizard's list).
    pub groups: bool,
    /// `ip -V`: iproute2's version (`match = "dscp-rule"`, doctor, facts).
    pub ip_version: bool,
}

impl Reads {
    pub const ALL: Reads = Reads {
        groups: true,
        ip_version: true,
    };
}

/// Facts about this host, as the current user sees them.
pub fn probe_system() -> HostFacts {
    probe_system_reading(Reads::ALL)
}

/// `probe_system` leaving out what `reads` does not ask for.
pub fn probe_system_reading(reads: Reads) -> HostFacts {
    let is_root = crate::runner::is_root();
    probe(&ProbeEnv {
        runner: &SystemRunner,
        root: PathBuf::from("/"),
        is_root,
        find_tool: &find_in_path,
        reads,
    })
}

/// Never fails as a whole: what cannot be read stays empty and is explained
/// in `unreadable`.
pub fn probe(env: &ProbeEnv) -> HostFacts {
    let tools = find_tools(env.find_tool);
    // Which iptables this is shows in where its link points; `iptables -V`
    // only when it does not say.
    let iptables_backend = tools
        .get("iptables")
        .cloned()
        .flatten()
        .and_then(|path| iptables_variant(&env.root, &path));
    let mut p = Probe {
        env,
        notes: Vec::new(),
        prefetched: prefetch(env, iptables_backend),
    };
    let mut facts = HostFacts {
        is_root: env.is_root,
        tools,
        ..HostFacts::default()
    };

    facts.kernel = p.file_parsed(Fact::Kernel, KERNEL_RELEASE, parse_kernel);
    if env.reads.ip_version {
        facts.iproute2_version = p.parsed(Fact::Iproute2Version, IP_V, parse_ip_version);
    }
    facts.iptables_backend = iptables_backend
        .or_else(|| p.parsed(Fact::IptablesBackend, IPTABLES_V, parse_iptables_backend));
    if env.reads.groups {
        facts.groups = p
            .parsed(Fact::Groups, GETENT_GROUP, |t| Ok(parse_groups(t)))
            .unwrap_or_default();
    }
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

/// The kernel release, as `uname -r` prints it.
const KERNEL_RELEASE: &str = "proc/sys/kernel/osrelease";

/// The commands the probe runs besides the `ip -j` reads (`ip_batch`).
/// They are independent reads, so they run at once.
const IP_V: &[&str] = &["ip", "-V"];
const GETENT_GROUP: &[&str] = &["getent", "group"];
const IPTABLES_V: &[&str] = &["iptables", "-V"];
/// Root only; each with the nftables family its iptables-nft tables are in.
const XTABLES_SAVE: [(&[&str], &str); 2] =
    [(&["iptables-save"], "ip"), (&["ip6tables-save"], "ip6")];
const NFT_RULESET: &[&str] = &["nft", "list", "ruleset"];

type Outcome = Result<crate::runner::Output, RunError>;

fn prefetch(env: &ProbeEnv, iptables: Option<IptablesBackend>) -> HashMap<String, Outcome> {
    let mut commands: Vec<&[&str]> = Vec::new();
    if env.reads.ip_version {
        commands.push(IP_V);
    }
    if env.reads.groups {
        commands.push(GETENT_GROUP);
    }
    if iptables.is_none() {
        commands.push(IPTABLES_V);
    }
    // iptables-nft keeps its rules in nftables tables: where the ruleset
    // shows none, iptables-save would print nothing, so it waits for it.
    let nft = env.is_root && (env.find_tool)("nft").is_some();
    if nft {
        commands.push(NFT_RULESET);
    }
    let mut after: Vec<(&[&str], &str)> = Vec::new();
    if env.is_root {
        match (nft, iptables) {
            (true, None | Some(IptablesBackend::NfTables)) => after.extend(XTABLES_SAVE),
            _ => commands.extend(XTABLES_SAVE.map(|(argv, _)| argv)),
        }
    }
    let runner = env.runner;
    let (mut done, mut again) = std::thread::scope(|s| {
        let batches: Vec<_> = BATCHES
            .iter()
            .map(|b| (b, s.spawn(move || b.run(runner))))
            .collect();
        let mut done = run_at_once(runner, &commands);
        let mut unbatched: Vec<&[&str]> = Vec::new();
        for (b, h) in batches {
            match h.join().ok().flatten() {
                Some(parts) => done.extend(parts.into_iter().map(|(k, o)| (k, Ok(o)))),
                None => unbatched.extend(b.lines.iter().map(|(_, single)| *single)),
            }
        }
        (done, unbatched)
    });
    let nf_tables = iptables.or_else(|| {
        let out = done.get(&IPTABLES_V.join(" "))?.as_ref().ok()?;
        parse_iptables_backend(&out.stdout).ok()
    }) == Some(IptablesBackend::NfTables);
    let tables = done
        .get(&NFT_RULESET.join(" "))
        .and_then(|o| o.as_ref().ok())
        .filter(|o| o.success())
        .map(|o| super::parse_nft_ruleset(&o.stdout));
    for (argv, family) in after {
        match &tables {
            Some(t) if nf_tables && !t.iter().any(|t| t.family == family && t.is_xtables()) => {
                done.insert(argv.join(" "), Ok(crate::runner::Output::ok("")));
            }
            _ => again.push(argv),
        }
    }
    // A batch that was no use, and iptables-save where it has rules to print.
    done.extend(run_at_once(runner, &again));
    done
}

/// Each command on its own thread, all at once; outcomes keyed by the
/// argv joined with spaces.
fn run_at_once(runner: &dyn Runner, commands: &[&[&str]]) -> HashMap<String, Outcome> {
    std::thread::scope(|s| {
        let handles: Vec<_> = commands
            .iter()
            .map(|argv| (argv.join(" "), s.spawn(move || runner.run_args(argv))))
            .collect();
        handles
            .into_iter()
            .filter_map(|(k, h)| h.join().ok().map(|o| (k, o)))
            .collect()
    })
}

/// nf_tables or legacy, from the file `iptables` resolves to (below
/// `root`): the multi-call binaries say it in their names. None for
/// anything else (a wrapper script, busybox): then `iptables -V` decides.
fn iptables_variant(root: &std::path::Path, path: &str) -> Option<IptablesBackend> {
    let real = std::fs::canonicalize(root.join(path.trim_start_matches('/'))).ok()?;
    match real.file_name()?.to_str()? {
        "xtables-nft-multi" => Some(IptablesBackend::NfTables),
        "xtables-legacy-multi" => Some(IptablesBackend::Legacy),
        _ => None,
    }
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

    /// A file's text parsed, or a note saying why there is none.
    fn file_parsed<T>(
        &mut self,
        fact: Fact,
        rel: &str,
        parse: impl FnOnce(&str) -> Result<T, ParseError>,
    ) -> Option<T> {
        let source = || Source::Path(rel_display(rel));
        let reason = match read_optional(&self.env.root, rel) {
            Ok(Some(text)) => match parse(&text) {
                Ok(v) => return Some(v),
                Err(e) => Reason::Unparsed {
                    error: e.to_string(),
                },
            },
            Ok(None) => Reason::Io {
                error: "no such file".into(),
                root_hint: false,
            },
            Err(e) => Reason::Io {
                root_hint: !self.env.is_root && e.kind() == ErrorKind::PermissionDenied,
                error: e.to_string(),
            },
        };
        self.note(fact, source(), reason);
        None
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
