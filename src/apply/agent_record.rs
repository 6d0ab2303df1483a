//! What a running agent tells `status`: STATE/agent.json (0600, written
//! durably without following links), rewritten after each repair and
//! removed when the agent stops. A record whose pid is gone, or runs
//! something other than `dscproute agent` (a reused pid), is no agent.

use super::state_dir::StateDir;
use crate::safe_fs;
use serde::{Deserialize, Serialize};
use std::io;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    pub pid: u32,
    pub since_unix: u64,
    /// The profile as named on the agent's command line.
    pub profile: String,
    pub repairs: u64,
    pub last_repair: Option<LastRepair>,
    /// Each class's uplink now (a `[[class]]` profile; empty otherwise).
    #[serde(default)]
    pub classes: Vec<ClassUplink>,
    /// Uplinks its active checks hold down now: `status` and `doctor` plan
    /// with them, as the agent does.
    #[serde(default)]
    pub held_down: Vec<crate::probe::Unhealthy>,
}

/// Where the agent routes a class now, since when and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassUplink {
    pub class: String,
    /// None: no uplink is usable (blocked, or main with kill_switch = false).
    pub uplink: Option<String>,
    pub since_unix: u64,
    pub why: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRepair {
    pub at_unix: u64,
    /// The agent's report line.
    pub line: String,
}

/// Largest record read back (a few hundred bytes in practice).
const MAX: usize = 64 * 1024;

impl AgentRecord {
    pub fn save(&self, state: &StateDir) -> io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(io::Error::other)?;
        safe_fs::write_durably(&state.agent_file(), text.as_bytes())
    }

    /// The record on disk, whatever its pid is doing.
    pub fn load(state: &StateDir) -> Option<AgentRecord> {
        let text = safe_fs::read_no_follow(&state.agent_file()).ok()?;
        if text.len() > MAX {
            return None;
        }
        serde_json::from_str(&text).ok()
    }

    /// The record of an agent that is running now.
    pub fn running(state: &StateDir) -> Option<AgentRecord> {
        Self::load(state).filter(|r| is_agent(r.pid))
    }

    /// Removes the record (the agent stops); a missing one is fine.
    pub fn remove(state: &StateDir) {
        let _ = std::fs::remove_file(state.agent_file());
    }
}

/// Is `pid` a `dscproute agent` process?
pub fn is_agent(pid: u32) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let mut args = cmdline.split(|b| *b == 0);
    let is_ours = args
        .next()
        .is_some_and(|a0| a0.rsplit(|b| *b == b'/').next() == Some(b"dscproute"));
    is_ours && args.any(|a| a == b"agent")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_privately_and_a_dead_or_foreign_pid_is_no_agent() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::resolve(Some(&dir.path().join("s")));
        state.ensure().unwrap();
        let r = AgentRecord {
            pid: std::process::id(),
            since_unix: 1,
            profile: "gw.toml".into(),
            repairs: 2,
            last_repair: Some(LastRepair {
                at_unix: 3,
                line: "repaired".into(),
            }),
            classes: vec![ClassUplink {
                class: "torrent".into(),
                uplink: Some("wg1".into()),
                since_unix: 4,
                why: "wg1: the first usable one".into(),
            }],
            held_down: vec![crate::probe::Unhealthy {
                class: "torrent".into(),
                interface: "wg0".into(),
                why: "no answer from 10.8.0.1 3 times in a row".into(),
            }],
        };
        r.save(&state).unwrap();
        let mode = std::fs::metadata(state.agent_file())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(AgentRecord::load(&state), Some(r));
        // This test process is not `dscproute agent`.
        assert_eq!(AgentRecord::running(&state), None);
        AgentRecord::remove(&state);
        assert_eq!(AgentRecord::load(&state), None);
    }
}
