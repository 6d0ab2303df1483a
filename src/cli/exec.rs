//! `dscproute exec [--profile FILE] -- COMMAND [ARGS…]`: run one command so
//! its traffic carries the signal (`ops::exec` decides how). dscproute
//! replaces itself with the command, so its exit status is the command's.

use super::{code, exit, fail};
use crate::apply::StateDir;
use crate::ops::Host;
use crate::ops::exec::{self as op, Become, Invoker, Launch};
use crate::output;
use crate::persist::Layout;
use crate::profile::Profile;
use clap::Args;
use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The profile whose marker the command gets [default: the persisted
    /// profile, when exactly one is]
    #[arg(long, short)]
    pub profile: Option<PathBuf>,
    /// The command and its arguments (after `--`), run without a shell.
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// The profile given, or the one persisted profile under `layout`.
fn profile_path(args: &ExecArgs, layout: &Layout) -> Result<PathBuf, String> {
    if let Some(p) = &args.profile {
        return Ok(p.clone());
    }
    match layout.persisted_names().as_slice() {
        [one] => Ok(layout.profile(one)),
        [] => Err("no profile is persisted here: give --profile FILE".into()),
        many => Err(format!(
            "{} profiles are persisted here ({}): give --profile FILE",
            many.len(),
            many.join(", ")
        )),
    }
}

pub fn run(state: StateDir, args: &ExecArgs) -> i32 {
    let path = match profile_path(args, &Layout::new(Path::new("/"))) {
        Ok(p) => p,
        Err(e) => return fail(exit::USAGE, &e),
    };
    let profile = match Profile::load(&path) {
        Ok(p) => p,
        Err(e) => return fail(exit::USAGE, &e.to_string()),
    };
    let var = |k: &str| std::env::var(k).ok();
    let invoker = Invoker::from_sudo(
        var("SUDO_UID").as_deref(),
        var("SUDO_GID").as_deref(),
        var("SUDO_USER").as_deref(),
    );
    let shown = path.display().to_string();
    let req = op::Request {
        profile: &profile,
        path: &shown,
        command: &args.command,
        invoker,
        passwd: &passwd,
    };
    let launch = match op::prepare(&Host::system(state, false), &req) {
        Ok(l) => l,
        Err(e) => return fail(code(e.kind), &e.message),
    };
    output::eprint_line(&format!("dscproute: {}", launch.says));
    launch_command(&launch)
}

/// Join the cgroup, switch identity, then become the command. Returns only
/// when that failed: 126 (could not run) or 127 (not found), like env(1).
fn launch_command(l: &Launch) -> i32 {
    if let Some(procs) = &l.join_cgroup
        && let Err(e) = std::fs::write(procs, format!("{}\n", std::process::id()))
    {
        return fail(
            exit::FAILED,
            &format!("cannot move into the cgroup ({}): {e}", procs.display()),
        );
    }
    if let Err(e) = switch(&l.become_) {
        return fail(exit::FAILED, &format!("cannot switch identity: {e}"));
    }
    let (program, rest) = l.argv.split_first().expect("clap requires a command");
    let e = std::process::Command::new(program).args(rest).exec();
    let status = if e.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    };
    fail(
        status,
        &format!("cannot run {}: {e}", crate::text::clip(program)),
    )
}

fn check(rc: libc::c_int, what: &str) -> Result<(), String> {
    if rc == 0 {
        Ok(())
    } else {
        Err(format!("{what}: {}", std::io::Error::last_os_error()))
    }
}

/// Groups first, then the gid, then the uid (after setuid the others are
/// no longer allowed).
fn switch(b: &Become) -> Result<(), String> {
    match b {
        Become::Stay => Ok(()),
        // SAFETY: plain system calls on this (single-threaded by now) process.
        Become::Gid(gid) => check(unsafe { libc::setgid(*gid) }, "setgid"),
        Become::User { uid, gid, name } => {
            match name.as_deref().and_then(|n| CString::new(n).ok()) {
                // SAFETY: a valid C string; initgroups reads the group database.
                Some(n) => check(unsafe { libc::initgroups(n.as_ptr(), *gid) }, "initgroups")?,
                // SAFETY: one gid from a valid array.
                None => check(unsafe { libc::setgroups(1, gid) }, "setgroups")?,
            }
            // SAFETY: plain system calls.
            check(unsafe { libc::setgid(*gid) }, "setgid")?;
            check(unsafe { libc::setuid(*uid) }, "setuid")
        }
    }
}

/// (name, primary gid) of a uid from the passwd database.
fn passwd(uid: u32) -> Option<(String, u32)> {
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: zeroed passwd is a valid out-parameter for getpwuid_r.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the call; buf outlives the use of pw.
    let rc =
        unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut out) };
    if rc != 0 || out.is_null() || pw.pw_name.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r filled pw_name with a NUL-terminated string in buf.
    let name = unsafe { std::ffi::CStr::from_ptr(pw.pw_name) }
        .to_string_lossy()
        .into_owned();
    Some((name, pw.pw_gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_profile_is_the_one_persisted_profile() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let args = |profile: Option<&str>| ExecArgs {
            profile: profile.map(PathBuf::from),
            command: vec!["true".into()],
        };
        let e = profile_path(&args(None), &layout).unwrap_err();
        assert!(
            e.contains("no profile is persisted") && e.contains("--profile"),
            "{e}"
        );
        std::fs::create_dir_all(layout.config_dir()).unwrap();
        std::fs::write(layout.profile("home"), "").unwrap();
        assert_eq!(
            profile_path(&args(None), &layout),
            Ok(layout.profile("home"))
        );
        assert_eq!(
            profile_path(&args(Some("x.toml")), &layout),
            Ok(PathBuf::from("x.toml"))
        );
        std::fs::write(layout.profile("work"), "").unwrap();
        let e = profile_path(&args(None), &layout).unwrap_err();
        assert!(
            e.contains("2 profiles are persisted here (home, work)"),
            "{e}"
        );
    }
}
