//! Runs one operation and its undo. The only place (with the probe) that
//! changes or reads the host; processes go through the `Runner`, and what an
//! operation runs as comes from its backend (`crate::backend`).

use super::journal::{JournalStep, Saved};
use crate::backend::iptables::{self, BatchKey};
use crate::backend::{Effect, Family, Op, SysctlKey, iproute};
use crate::ownership::RT_TABLES_DROPIN;
use crate::runner::Runner;
use std::path::{Path, PathBuf};

/// A command that failed: what ran and what it said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub command: String,
    pub stderr: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.command, self.stderr.trim())
    }
}

pub struct Executor<'a> {
    pub runner: &'a dyn Runner,
    /// Filesystem root for /proc/sys reads and file writes ("/" in production).
    pub root: PathBuf,
}

/// sysctl(8) key -> /proc/sys path: dots separate components, a slash inside
/// a component stands for a dot (interface eth0.10 is written eth0/10).
pub fn sysctl_path(key: &str) -> PathBuf {
    let mut p = PathBuf::from("proc/sys");
    for c in key.split('.') {
        p.push(c.replace('/', "."));
    }
    p
}

/// The input line iptables-restore blamed: `line N failed`, `line N: …`
/// (a refused commit) or `Error occurred at line: N` (a parse error).
pub fn blamed_line(stderr: &str) -> Option<usize> {
    let mut rest = stderr;
    while let Some(i) = rest.find("line") {
        rest = &rest[i + 4..];
        let digits: String = rest
            .trim_start_matches(':')
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let Ok(n) = digits.parse() {
            return Some(n);
        }
    }
    None
}

/// A refused batch: nothing of it was applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchFailure {
    /// The batch line (index into the lines) iptables-restore blamed, when
    /// it named one of them (not the `*table` or `COMMIT` line).
    pub line: Option<usize>,
    pub command: String,
    pub stderr: String,
}

/// An `ip -batch` that did not run through. Unlike iptables-restore it is
/// not atomic: the lines before a failing one took effect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpBatchFailure {
    /// The lines (0-based) ip reported as failed; empty when it named none
    /// (it did not start, or died), so any line may or may not have run.
    pub failed: Vec<usize>,
    pub command: String,
    pub stderr: String,
}

impl Executor<'_> {
    /// Run policy-rule and route lines of one family as one `ip -batch -`
    /// process. Without `force` ip stops at the first failing line; with it,
    /// it goes on and reports every failing line.
    pub fn run_ip_batch(
        &self,
        family: Family,
        lines: &[String],
        force: bool,
    ) -> Result<(), IpBatchFailure> {
        let argv = iproute::batch_argv(family, force);
        let command = argv.join(" ");
        let input = iproute::batch_input(lines);
        let (stderr, failed) = match self.runner.run_with_stdin(&argv, &input) {
            Ok(out) if out.success() => return Ok(()),
            Ok(out) => {
                let failed = iproute::failed_lines(&out.stderr)
                    .into_iter()
                    .filter(|&i| i < lines.len())
                    .collect();
                let stderr = if out.stderr.trim().is_empty() {
                    format!("exit status {}", out.status)
                } else {
                    out.stderr
                };
                (stderr, failed)
            }
            Err(e) => (e.to_string(), Vec::new()),
        };
        Err(IpBatchFailure {
            failed,
            command,
            stderr,
        })
    }

    /// Run a batch of restore lines for one table as one `iptables-restore
    /// -w --noflush` call: other rules and chains stay, and nf_tables
    /// commits the block atomically.
    pub fn run_batch(&self, key: &BatchKey, lines: &[String]) -> Result<(), BatchFailure> {
        let argv = iptables::restore_argv(key);
        let command = argv.join(" ");
        let input = iptables::restore_input(key, lines);
        let (stderr, line) = match self.runner.run_with_stdin(&argv, &input) {
            Ok(out) if out.success() => return Ok(()),
            Ok(out) => {
                let line = blamed_line(&out.stderr)
                    .and_then(|n| n.checked_sub(2))
                    .filter(|&i| i < lines.len());
                let stderr = if out.stderr.trim().is_empty() {
                    format!("exit status {}", out.status)
                } else {
                    out.stderr
                };
                (stderr, line)
            }
            Err(e) => (e.to_string(), None),
        };
        Err(BatchFailure {
            line,
            command,
            stderr,
        })
    }

    fn under_root(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// Read what undo will need, before the operation runs.
    pub fn save_before(&self, op: &Op) -> Result<Option<Saved>, Failure> {
        match op {
            Op::Sysctl { key, .. } => {
                let key = key.key();
                let path = self.root.join(sysctl_path(&key));
                let old = std::fs::read_to_string(&path).map_err(|e| Failure {
                    command: format!("read {}", path.display()),
                    stderr: e.to_string(),
                })?;
                Ok(Some(Saved::Sysctl {
                    key,
                    old: old.trim().to_string(),
                }))
            }
            Op::WriteTableNames { .. } => {
                let full = self.under_root(RT_TABLES_DROPIN);
                let old_contents = std::fs::read_to_string(&full).ok();
                let mut created_dirs = Vec::new();
                let mut dir = full.parent();
                while let Some(d) = dir {
                    if d.exists() || d == self.root {
                        break;
                    }
                    // As the host sees it (without our root), like the path.
                    let rel = d.strip_prefix(&self.root).unwrap_or(d);
                    created_dirs.push(Path::new("/").join(rel).display().to_string());
                    dir = d.parent();
                }
                created_dirs.reverse();
                Ok(Some(Saved::File {
                    path: RT_TABLES_DROPIN.into(),
                    old_contents,
                    created_dirs,
                }))
            }
            _ => Ok(None),
        }
    }

    pub fn run(&self, op: &Op) -> Result<(), Failure> {
        match op {
            Op::GroupDel { name } => {
                self.refuse_system_group(name)?;
                self.run_effect(&op.effect())
            }
            Op::Seq { ops } => ops.iter().try_for_each(|o| self.run(o)),
            Op::NftDelete => self.delete_our_nft_table(),
            Op::Sysctl { key, value } => self.write_sysctl(op, &key.key(), *value),
            _ => self.run_effect(&op.effect()),
        }
    }

    /// What `sysctl -q -w KEY=VALUE` does, without starting it: one write
    /// to the key's file under /proc/sys (never created: a missing key is
    /// an error, as with sysctl). Shown, scripted and journaled as that
    /// command; a process per sysctl cost more than the write.
    fn write_sysctl(&self, op: &Op, key: &str, value: u8) -> Result<(), Failure> {
        use std::io::Write;
        let rel = sysctl_path(key);
        std::fs::OpenOptions::new()
            .write(true)
            .open(self.root.join(&rel))
            .and_then(|mut f| f.write_all(format!("{value}\n").as_bytes()))
            .map_err(|e| Failure {
                command: op.display(),
                stderr: format!("cannot write /{}: {e}", rel.display()),
            })
    }

    /// Run what an operation (or `rollback --all`'s sweep) runs as.
    pub fn run_effect(&self, effect: &Effect) -> Result<(), Failure> {
        match effect {
            Effect::Run { argv } => self.run_argv(argv),
            Effect::RunInput { argv, input } => {
                let command = effect.display();
                match self.runner.run_with_stdin(argv, input) {
                    Ok(out) if out.success() => Ok(()),
                    Ok(out) => Err(Failure {
                        command,
                        stderr: if out.stderr.trim().is_empty() {
                            format!("exit status {}", out.status)
                        } else {
                            out.stderr
                        },
                    }),
                    Err(e) => Err(Failure {
                        command,
                        stderr: e.to_string(),
                    }),
                }
            }
            Effect::WriteFile { path, contents } => {
                let full = self.under_root(path);
                let fail = |e: std::io::Error| Failure {
                    command: effect.display(),
                    stderr: e.to_string(),
                };
                crate::safe_fs::write_durably_public(&full, contents.as_bytes()).map_err(fail)
            }
            Effect::DropEmptyTable { family, table } => self.drop_empty_table(family, table),
            Effect::Seq { effects } => effects.iter().try_for_each(|e| self.run_effect(e)),
            Effect::RemoveFile { path } => match std::fs::remove_file(self.under_root(path)) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Failure {
                    command: effect.display(),
                    stderr: e.to_string(),
                }),
            },
        }
    }

    /// `groupadd` (without -r) gives a new group a gid from GID_MIN up, so a
    /// group below GID_MIN is the system's and never one we created: the
    /// undo of our groupadd must not delete it whatever a journal says.
    fn refuse_system_group(&self, name: &str) -> Result<(), Failure> {
        let Ok(groups) = std::fs::read_to_string(self.under_root("/etc/group")) else {
            return Ok(()); // no group database here: groupdel finds nothing either
        };
        let gid = groups.lines().find_map(|l| {
            let mut f = l.split(':');
            (f.next() == Some(name)).then(|| f.nth(1)?.trim().parse::<u32>().ok())?
        });
        let min = std::fs::read_to_string(self.under_root("/etc/login.defs"))
            .ok()
            .and_then(|defs| {
                defs.lines()
                    .find_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
                        ["GID_MIN", v] => v.parse::<u32>().ok(),
                        _ => None,
                    })
            })
            .unwrap_or(1000);
        match gid {
            Some(g) if g < min => Err(Failure {
                command: format!("groupdel {name}"),
                stderr: format!(
                    "not deleting group {name}: its gid {g} is below GID_MIN ({min}), so it is a \
                     system group, never one dscproute created"
                ),
            }),
            _ => Ok(()),
        }
    }

    /// Delete the nft table only when it exists and iptables shows no rule
    /// and no user chain in it: someone else may have started using it.
    fn drop_empty_table(&self, family: &str, table: &str) -> Result<(), Failure> {
        let save = if family == "ip6" {
            "ip6tables-save"
        } else {
            "iptables-save"
        };
        let Ok(listing) = self.runner.run_args(&["nft", "list", "tables"]) else {
            return Ok(()); // no nft: the empty table stays, harmlessly
        };
        let wanted = format!("table {family} {table}");
        if !listing.success() || !listing.stdout.lines().any(|l| l.trim() == wanted) {
            return Ok(());
        }
        let dump = self.run_argv_output(&[save.into(), "-t".into(), table.into()])?;
        let in_use = dump.lines().any(|l| {
            l.starts_with("-A ")
                || (l.starts_with(':') && l.split_whitespace().nth(1) == Some("-"))
                // iptables cannot show what native nft rules put there.
                || l.contains("incompatible")
        });
        if in_use {
            return Ok(());
        }
        // Sets, maps, native rules: anything beyond empty base chains stays.
        let nft = self.run_argv_output(&[
            "nft".into(),
            "list".into(),
            "table".into(),
            family.into(),
            table.into(),
        ])?;
        let content = nft.lines().map(str::trim).any(|l| {
            !(l.is_empty()
                || l.starts_with("table ")
                || l.starts_with("chain ")
                || l.starts_with("type ")
                || l.starts_with('#')
                || l == "}")
        });
        if content {
            return Ok(());
        }
        self.run_argv(&[
            "nft".into(),
            "delete".into(),
            "table".into(),
            family.into(),
            table.into(),
        ])
    }

    /// Delete `table inet dscproute` only when it is there and ours (our
    /// comment, only chains and rules dscproute writes): a table someone
    /// else made under that name stays.
    fn delete_our_nft_table(&self) -> Result<(), Failure> {
        use crate::backend::nft;
        let Ok(out) = self.runner.run(&nft::list_argv()) else {
            return Err(Failure {
                command: nft::list_argv().join(" "),
                stderr: "nft could not be run".into(),
            });
        };
        if !out.success() {
            // No such table: nothing of ours to delete.
            return Ok(());
        }
        if let Err(why) = nft::parse_table(&out.stdout) {
            return Err(Failure {
                command: nft::delete_argv().join(" "),
                stderr: nft::not_ours(&why),
            });
        }
        self.run_argv(&nft::delete_argv())
    }

    fn run_argv_output(&self, argv: &[String]) -> Result<String, Failure> {
        let command = argv.join(" ");
        match self.runner.run(argv) {
            Ok(out) if out.success() => Ok(out.stdout),
            Ok(out) => Err(Failure {
                command,
                stderr: out.stderr,
            }),
            Err(e) => Err(Failure {
                command,
                stderr: e.to_string(),
            }),
        }
    }

    fn run_argv(&self, argv: &[String]) -> Result<(), Failure> {
        let command = argv.join(" ");
        match self.runner.run(argv) {
            Ok(out) if out.success() => Ok(()),
            Ok(out) => Err(Failure {
                command,
                stderr: if out.stderr.trim().is_empty() {
                    format!("exit status {}", out.status)
                } else {
                    out.stderr
                },
            }),
            Err(e) => Err(Failure {
                command,
                stderr: e.to_string(),
            }),
        }
    }

    /// Undo a journaled step, preferring what was saved at apply time over
    /// the plan's expectation.
    pub fn undo(&self, js: &JournalStep) -> Result<(), Failure> {
        match &js.saved {
            Some(Saved::Sysctl { key, old }) => {
                // Restore only what is still our value: if other software
                // changed it since (Docker turning forwarding on…), leave it.
                let path = self.root.join(sysctl_path(key));
                let ours = match &js.step.apply {
                    Op::Sysctl { value, .. } => Some(value.to_string()),
                    _ => None,
                };
                match std::fs::read_to_string(&path) {
                    Ok(now) if ours.as_deref().is_some_and(|v| v != now.trim()) => Ok(()),
                    // The interface (and its setting) is gone: nothing to restore.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    _ => {
                        let key = SysctlKey::parse(key).map_err(|e| Failure {
                            command: format!("restore {key}"),
                            stderr: e,
                        })?;
                        let value = key.value(old).map_err(|e| Failure {
                            command: format!("restore {}", key.key()),
                            stderr: e,
                        })?;
                        self.run(&Op::Sysctl { key, value })
                    }
                }
            }
            Some(Saved::File {
                path,
                old_contents,
                created_dirs,
            }) => {
                match old_contents {
                    Some(c) => self.run_effect(&Effect::WriteFile {
                        path: path.clone(),
                        contents: c.clone(),
                    })?,
                    None => self.run_effect(&Effect::RemoveFile { path: path.clone() })?,
                }
                for d in created_dirs.iter().rev() {
                    // Only if still empty: someone may have added files since.
                    let _ = std::fs::remove_dir(self.under_root(d));
                }
                Ok(())
            }
            None => self.run(&js.step.undo),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::journal::StepStatus;
    use crate::backend::{Family, Table};
    use crate::plan::{Role, Step, StepState};
    use crate::runner::{FakeRunner, Output};

    fn argv(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn forwarding(value: u8) -> Op {
        Op::Sysctl {
            key: SysctlKey::Ipv4Forwarding,
            value,
        }
    }

    fn groupdel(name: &str) -> Op {
        Op::GroupDel { name: name.into() }
    }

    #[test]
    fn sysctl_paths() {
        assert_eq!(
            sysctl_path("net.ipv4.conf.eth0/10.rp_filter"),
            PathBuf::from("proc/sys/net/ipv4/conf/eth0.10/rp_filter")
        );
    }

    /// Written to /proc/sys in-process (no sysctl process), the value from
    /// before saved, and put back by undo only while it is still ours.
    #[test]
    fn sysctl_old_value_is_saved_and_restored() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("proc/sys/net/ipv4/conf/eth0.10");
        std::fs::create_dir_all(&p).unwrap();
        let file = p.join("rp_filter");
        std::fs::write(&file, "1\n").unwrap();
        let read = || std::fs::read_to_string(&file).unwrap();
        let runner = FakeRunner::new();
        let ex = Executor {
            runner: &runner,
            root: t.path().into(),
        };
        let rp = |value| Op::Sysctl {
            key: SysctlKey::RpFilter("eth0.10".into()),
            value,
        };
        let effect = rp(2);
        let saved = ex.save_before(&effect).unwrap();
        assert_eq!(
            saved,
            Some(Saved::Sysctl {
                key: "net.ipv4.conf.eth0/10.rp_filter".into(),
                old: "1".into()
            })
        );
        ex.run(&effect).unwrap();
        assert_eq!(read(), "2\n");
        let js = JournalStep {
            step: Step {
                role: Role::Gateway,
                state: StepState::Change,
                apply: effect,
                // The plan guessed 0; the saved value wins.
                undo: rp(0),
                reason: String::new(),
                change: None,
            },
            status: StepStatus::Done,
            saved,
            error: None,
        };
        // Someone else changed it since: undo leaves their value alone.
        std::fs::write(&file, "0\n").unwrap();
        ex.undo(&js).unwrap();
        assert_eq!(read(), "0\n", "no restore over another's value");
        // Still our value: the saved one comes back.
        std::fs::write(&file, "2\n").unwrap();
        ex.undo(&js).unwrap();
        assert_eq!(read(), "1\n");
        assert_eq!(runner.calls(), Vec::<Vec<String>>::new(), "no process");
        // A key the kernel does not have (the interface is gone) is not made.
        let err = ex.run(&forwarding(1)).unwrap_err();
        assert_eq!(err.command, "sysctl -q -w net.ipv4.ip_forward=1");
        assert!(
            err.stderr
                .starts_with("cannot write /proc/sys/net/ipv4/ip_forward: "),
            "{}",
            err.stderr
        );
        assert!(!t.path().join("proc/sys/net/ipv4/ip_forward").exists());
    }

    #[test]
    fn file_write_and_undo_leave_no_trace() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        let runner = FakeRunner::new();
        let ex = Executor {
            runner: &runner,
            root: t.path().into(),
        };
        let effect = Op::WriteTableNames {
            id: 100,
            name: "vpn".into(),
        };
        let saved = ex.save_before(&effect).unwrap();
        // Recorded as the host sees them, whatever the root: the journal
        // check accepts only the directories above the drop-in.
        assert!(matches!(&saved, Some(Saved::File { created_dirs, .. })
            if *created_dirs == ["/etc/iproute2", "/etc/iproute2/rt_tables.d"]));
        ex.run(&effect).unwrap();
        let file = t.path().join("etc/iproute2/rt_tables.d/dscproute.conf");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "100 vpn\n");
        let js = JournalStep {
            step: Step {
                role: Role::Gateway,
                state: StepState::Add,
                apply: effect,
                undo: Op::RemoveTableNames,
                reason: String::new(),
                change: None,
            },
            status: StepStatus::Done,
            saved,
            error: None,
        };
        ex.undo(&js).unwrap();
        assert!(
            !t.path().join("etc/iproute2").exists(),
            "created dirs removed"
        );
        assert!(t.path().join("etc").exists());
    }

    #[test]
    fn groupdel_never_deletes_a_system_group() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        std::fs::write(
            t.path().join("etc/group"),
            "root:x:0:\nsudo:x:27:alice\ntorrent:x:1001:\n",
        )
        .unwrap();
        let runner = FakeRunner::new().on(&["groupdel", "torrent"], Output::ok(""));
        let ex = Executor {
            runner: &runner,
            root: t.path().into(),
        };
        for name in ["root", "sudo"] {
            let e = ex.run(&groupdel(name)).unwrap_err();
            assert!(e.stderr.contains("system group"), "{e}");
        }
        assert!(runner.calls().is_empty());
        ex.run(&groupdel("torrent")).unwrap();
        // GID_MIN from login.defs when it says otherwise.
        std::fs::write(t.path().join("etc/login.defs"), "GID_MIN\t2000\n").unwrap();
        assert!(ex.run(&groupdel("torrent")).is_err());
        // Inside a sequence too.
        let seq = Op::Seq {
            ops: vec![groupdel("torrent")],
        };
        assert!(ex.run(&seq).is_err());
    }

    #[test]
    fn blamed_lines() {
        // The three ways iptables-nft-restore 1.8.9 names a line.
        assert_eq!(
            blamed_line("iptables-restore: line 7 failed: Chain already exists.\n"),
            Some(7)
        );
        assert_eq!(
            blamed_line(
                "iptables-restore v1.8.9 (nf_tables): \nline 3: CHAIN_DEL failed (Device or resource busy): chain DR\n"
            ),
            Some(3)
        );
        assert_eq!(
            blamed_line(
                "iptables-restore v1.8.9 (nf_tables): unknown option \"--bogus\"\nError occurred at line: 3\nTry `iptables-restore -h'"
            ),
            Some(3)
        );
        assert_eq!(blamed_line("lab wrapper: injected failure"), None);
    }

    #[test]
    fn a_batch_failure_maps_to_its_line_or_to_none() {
        let run = |stderr: &str| {
            let runner = FakeRunner::new().on(
                &["iptables-restore", "-w", "--noflush"],
                Output::failed(1, stderr),
            );
            let ex = Executor {
                runner: &runner,
                root: "/nonexistent".into(),
            };
            let key = BatchKey {
                family: Family::V4,
                table: Table::Mangle,
            };
            let e = ex
                .run_batch(&key, &["-N A".into(), "-A A -j RETURN".into()])
                .unwrap_err();
            assert_eq!(e.command, "iptables-restore -w --noflush");
            assert_eq!(
                runner.stdins()[0].1,
                "*mangle\n-N A\n-A A -j RETURN\nCOMMIT\n"
            );
            e.line
        };
        assert_eq!(run("iptables-restore: line 2 failed"), Some(0));
        assert_eq!(run("iptables-restore: line 3 failed"), Some(1));
        assert_eq!(run("Error occurred at line: 4"), None, "the COMMIT line");
        assert_eq!(
            run("iptables-restore: line 1 failed"),
            None,
            "the *table line"
        );
        assert_eq!(run("something else"), None);
    }

    #[test]
    fn failure_carries_command_and_stderr() {
        let runner = FakeRunner::new().on(
            &["ip", "rule", "add"],
            Output::failed(2, "RTNETLINK answers: File exists\n"),
        );
        let ex = Executor {
            runner: &runner,
            root: "/nonexistent".into(),
        };
        let e = ex
            .run_effect(&Effect::run(argv(&["ip", "rule", "add"])))
            .unwrap_err();
        assert_eq!(e.command, "ip rule add");
        assert!(e.stderr.contains("File exists"));
    }
}
