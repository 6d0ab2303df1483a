//! The one door to the outside world: every process dscproute starts goes
//! through a `Runner`, as an argv vector (never a shell). Tests swap in the
//! recording `FakeRunner`.

pub mod signals;

use std::collections::HashMap;
use std::sync::Mutex;
use thiserror::Error;

/// What a finished process left behind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn ok(stdout: impl Into<String>) -> Output {
        Output {
            status: 0,
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    pub fn failed(status: i32, stderr: impl Into<String>) -> Output {
        Output {
            status,
            stdout: String::new(),
            stderr: stderr.into(),
        }
    }

    pub fn success(&self) -> bool {
        self.status == 0
    }
}

#[derive(Debug, Error)]
pub enum RunError {
    #[error("{program} is not installed (not found in PATH)")]
    NotFound { program: String },
    #[error("could not run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("empty command")]
    Empty,
}

/// Runs argv vectors. A non-zero exit is an `Ok(Output)` with that status;
/// `Err` means the process could not be started at all.
pub trait Runner: Sync {
    fn run(&self, argv: &[String]) -> Result<Output, RunError>;

    /// Run with `stdin` fed to the process (`iptables-restore` batches).
    /// The default ignores the input; both real runners override it.
    fn run_with_stdin(&self, argv: &[String], stdin: &str) -> Result<Output, RunError> {
        let _ = stdin;
        self.run(argv)
    }

    /// Convenience for literal argv.
    fn run_args(&self, argv: &[&str]) -> Result<Output, RunError> {
        let v: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        self.run(&v)
    }
}

/// Is this process running with root's effective uid?
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Find a program on PATH, then in the sbin directories an ordinary user's
/// PATH often lacks (ip, iptables and sysctl live there).
pub fn find_program(name: &str) -> Option<std::path::PathBuf> {
    which::which(name).ok().or_else(|| {
        ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
            .iter()
            .map(|d| std::path::Path::new(d).join(name))
            .find(|p| !name.contains('/') && p.is_file())
    })
}

/// Runs real processes with duct; stdin is closed (or fed the given input),
/// output captured.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemRunner;

impl SystemRunner {
    fn spawn(&self, argv: &[String], stdin: Option<&str>) -> Result<Output, RunError> {
        let (program, args) = argv.split_first().ok_or(RunError::Empty)?;
        if let Some(sig) = signals::STATE.take_abort() {
            return Ok(Output::failed(
                128 + sig,
                format!(
                    "{} {} and stops here, undoing what it did",
                    signals::REFUSAL,
                    signals::name(sig)
                ),
            ));
        }
        let path = find_program(program).ok_or_else(|| RunError::NotFound {
            program: program.clone(),
        })?;
        let mut cmd = duct::cmd(path, args);
        if signals::children_protected() {
            cmd = cmd.before_spawn(|c| {
                use std::os::unix::process::CommandExt;
                // SAFETY: shield_child makes only async-signal-safe calls.
                unsafe { c.pre_exec(signals::shield_child) };
                Ok(())
            });
        }
        let cmd = match stdin {
            Some(input) => cmd.stdin_bytes(input.as_bytes().to_vec()),
            None => cmd.stdin_null(),
        };
        let out = cmd
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .map_err(|source| RunError::Spawn {
                program: program.clone(),
                source,
            })?;
        Ok(Output {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

impl Runner for SystemRunner {
    fn run(&self, argv: &[String]) -> Result<Output, RunError> {
        self.spawn(argv, None)
    }

    fn run_with_stdin(&self, argv: &[String], stdin: &str) -> Result<Output, RunError> {
        self.spawn(argv, Some(stdin))
    }
}

/// A recording fake: answers from a table keyed by the exact argv, records
/// every call. Unknown commands answer "not found" so a test notices them.
#[derive(Debug, Default)]
pub struct FakeRunner {
    answers: HashMap<Vec<String>, Output>,
    /// Answers for an argv fed exactly this stdin; they win over `answers`.
    stdin_answers: HashMap<(Vec<String>, String), Output>,
    calls: Mutex<Vec<Vec<String>>>,
    /// The stdin of every `run_with_stdin` call, with its argv, in order.
    stdins: Mutex<Vec<(Vec<String>, String)>>,
    /// The answer to commands no entry names (`None`: "not found").
    otherwise: Option<Output>,
}

impl FakeRunner {
    pub fn new() -> FakeRunner {
        FakeRunner::default()
    }

    /// Answer `argv` with `out`.
    pub fn on(mut self, argv: &[&str], out: Output) -> FakeRunner {
        self.answers
            .insert(argv.iter().map(|s| s.to_string()).collect(), out);
        self
    }

    /// Answer `argv` fed exactly `stdin` with `out`.
    pub fn on_stdin(mut self, argv: &[&str], stdin: &str, out: Output) -> FakeRunner {
        self.stdin_answers.insert(
            (
                argv.iter().map(|s| s.to_string()).collect(),
                stdin.to_string(),
            ),
            out,
        );
        self
    }

    /// Answer every command no entry names with `out`, for tests that
    /// run a whole plan and look at the calls afterwards.
    pub fn otherwise(mut self, out: Output) -> FakeRunner {
        self.otherwise = Some(out);
        self
    }

    pub fn calls(&self) -> Vec<Vec<String>> {
        self.calls.lock().expect("calls lock").clone()
    }

    /// The input of every call made with stdin, with its argv.
    pub fn stdins(&self) -> Vec<(Vec<String>, String)> {
        self.stdins.lock().expect("stdins lock").clone()
    }
}

impl Runner for FakeRunner {
    fn run(&self, argv: &[String]) -> Result<Output, RunError> {
        let (program, _) = argv.split_first().ok_or(RunError::Empty)?;
        self.calls.lock().expect("calls lock").push(argv.to_vec());
        self.answers
            .get(argv)
            .or(self.otherwise.as_ref())
            .cloned()
            .ok_or_else(|| RunError::NotFound {
                program: program.clone(),
            })
    }

    fn run_with_stdin(&self, argv: &[String], stdin: &str) -> Result<Output, RunError> {
        self.stdins
            .lock()
            .expect("stdins lock")
            .push((argv.to_vec(), stdin.to_string()));
        if let Some(out) = self.stdin_answers.get(&(argv.to_vec(), stdin.to_string())) {
            self.calls.lock().expect("calls lock").push(argv.to_vec());
            return Ok(out.clone());
        }
        self.run(argv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_records_and_answers() {
        let f = FakeRunner::new().on(&["ip", "-j", "rule"], Output::ok("[]"));
        assert_eq!(f.run_args(&["ip", "-j", "rule"]).unwrap().stdout, "[]");
        assert!(matches!(
            f.run_args(&["iptables-save"]),
            Err(RunError::NotFound { .. })
        ));
        assert_eq!(f.calls().len(), 2);
    }

    #[test]
    fn protected_children_have_their_own_group_and_outlive_stop_signals() {
        // Process-wide, and harmless for the other tests' children.
        signals::protect_children();
        let out = SystemRunner
            .run_args(&[
                "sh",
                "-c",
                "kill -TERM $$; kill -INT $$; set -- $(cat /proc/$$/stat); echo \"$1 $5\"",
            ])
            .unwrap();
        assert!(out.success(), "{out:?}");
        let ids: Vec<&str> = out.stdout.split_whitespace().collect();
        assert_eq!(ids.len(), 2, "{out:?}");
        assert_eq!(ids[0], ids[1], "pid == process group: {out:?}");
    }

    #[test]
    fn system_runner_reports_status_and_missing_programs() {
        let out = SystemRunner
            .run_args(&["sh", "-c", "echo hi; exit 3"])
            .unwrap();
        assert_eq!((out.status, out.stdout.as_str()), (3, "hi\n"));
        let out = SystemRunner
            .run_with_stdin(&["sh".into(), "-c".into(), "tr a-z A-Z".into()], "fed\n")
            .unwrap();
        assert_eq!(out.stdout, "FED\n");
        assert!(matches!(
            SystemRunner.run_args(&["dscproute-no-such-program"]),
            Err(RunError::NotFound { .. })
        ));
    }
}
