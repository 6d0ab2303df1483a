//! What the probe could not read, and why, as a value. The probe keeps
//! going whatever fails; each miss names the fact it leaves unknown, where
//! the probe looked and why that failed. It becomes one line of text only
//! where a person reads it (plan warnings, `facts`, the facts JSON); code
//! that decides on it (apply refusing to run blind) matches on `Fact`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The part of `HostFacts` a failed read leaves unknown or incomplete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fact {
    Kernel,
    Iproute2Version,
    IptablesBackend,
    Groups,
    Links,
    RoutesV4,
    RoutesV6,
    RulesV4,
    RulesV6,
    RtTables,
    Sysctls,
    IptablesSave,
    Ip6tablesSave,
    NftRuleset,
    IptablesLegacySave,
    Ip6tablesLegacySave,
    XtMatches,
    XtTargets,
    /// The cgroup of a `unit` marker (`systemctl show`).
    Units,
}

/// Where the probe looked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A command, as run.
    Command(Vec<String>),
    /// A file or directory, as the probed host names it: "/proc/sys/…".
    Path(String),
    /// One line (counted from 1) of a file.
    Line { path: String, line: usize },
}

/// Why it could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Not run: only root may, and the probe is not root.
    NeedsRoot,
    /// The program is not installed.
    MissingTool { program: String },
    /// The program could not be started (the runner's words).
    NotStarted { error: String },
    /// It ran and failed: the first line it printed, if any.
    Failed {
        status: i32,
        said: Option<String>,
        /// A permission error met by a probe that is not root (the line
        /// says so).
        root_hint: bool,
    },
    /// It printed something its parser does not know.
    Unparsed { error: String },
    /// Reading the file failed (the system's words).
    Io { error: String, root_hint: bool },
    /// A line iproute2 rejects (it stops reading the file there).
    NotIdName { text: String },
}

/// One thing the probe could not read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum Unreadable {
    /// Found by this probe.
    Probed {
        fact: Fact,
        source: Source,
        reason: Reason,
    },
    /// Loaded from recorded facts, which keep the line only.
    Recorded(String),
}

impl Unreadable {
    pub fn new(fact: Fact, source: Source, reason: Reason) -> Unreadable {
        Unreadable::Probed {
            fact,
            source,
            reason,
        }
    }

    /// The fact left unknown; `None` for a recorded line, which does not say.
    pub fn fact(&self) -> Option<Fact> {
        match self {
            Unreadable::Probed { fact, .. } => Some(*fact),
            Unreadable::Recorded(_) => None,
        }
    }
}

impl Source {
    pub fn command(argv: &[&str]) -> Source {
        Source::Command(argv.iter().map(|a| a.to_string()).collect())
    }
}

const NOT_ROOT: &str = " (you are not root)";

fn root_hint(on: bool) -> &'static str {
    if on { NOT_ROOT } else { "" }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Command(argv) => f.write_str(&argv.join(" ")),
            Source::Path(path) => f.write_str(path),
            Source::Line { path, line } => write!(f, "{path} line {line}"),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NeedsRoot => write!(f, "not run, it needs root{NOT_ROOT}"),
            Reason::MissingTool { program } => {
                write!(f, "{program} is not installed (not found in PATH)")
            }
            Reason::NotStarted { error } | Reason::Unparsed { error } => f.write_str(error),
            Reason::Failed {
                status,
                said,
                root_hint: hint,
            } => match said {
                Some(line) => write!(f, "{line}{}", root_hint(*hint)),
                None => write!(f, "exit status {status}{}", root_hint(*hint)),
            },
            Reason::Io {
                error,
                root_hint: hint,
            } => write!(f, "{error}{}", root_hint(*hint)),
            Reason::NotIdName { text } => write!(f, "not \"id name\": {text:?}"),
        }
    }
}

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unreadable::Probed { source, reason, .. } => write!(f, "{source}: {reason}"),
            Unreadable::Recorded(line) => f.write_str(line),
        }
    }
}

/// The facts JSON keeps the line, as it always has.
impl From<Unreadable> for String {
    fn from(u: Unreadable) -> String {
        u.to_string()
    }
}

impl From<String> for Unreadable {
    fn from(line: String) -> Unreadable {
        Unreadable::Recorded(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_as_before_and_survive_a_recording_as_text() {
        let u = Unreadable::new(
            Fact::RulesV6,
            Source::command(&["ip", "-j", "-6", "rule", "show"]),
            Reason::Failed {
                status: 2,
                said: Some("RTNETLINK answers: Permission denied".into()),
                root_hint: true,
            },
        );
        let line = "ip -j -6 rule show: RTNETLINK answers: Permission denied (you are not root)";
        assert_eq!(u.to_string(), line);
        let json = serde_json::to_string(&vec![u]).unwrap();
        assert_eq!(json, serde_json::to_string(&[line]).unwrap());
        let back: Vec<Unreadable> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, [Unreadable::Recorded(line.into())]);
        assert_eq!(back[0].fact(), None);
        let bad = Unreadable::new(
            Fact::RtTables,
            Source::Line {
                path: "/etc/iproute2/rt_tables".into(),
                line: 4,
            },
            Reason::NotIdName {
                text: "nonsense".into(),
            },
        );
        assert_eq!(
            bad.to_string(),
            "/etc/iproute2/rt_tables line 4: not \"id name\": \"nonsense\""
        );
        let silent = Reason::Failed {
            status: 1,
            said: None,
            root_hint: false,
        };
        assert_eq!(silent.to_string(), "exit status 1");
    }
}
