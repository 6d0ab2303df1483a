//! `dscproute man` and `completions`: generated from the clap definition, so
//! they can never drift from the real options. The package ships copies in
//! assets/man and assets/completions; tests/packaging.rs fails when those
//! are out of date and rewrites them with DSCPROUTE_UPDATE_ASSETS=1.

use super::{Cli, exit, fail};
use crate::output;
use clap::{Args, CommandFactory};

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    pub shell: clap_complete::Shell,
}

/// Sections clap does not know about, in roff (between SUBCOMMANDS and VERSION).
const EXTRA_SECTIONS: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
success (for apply: changed, or nothing to do)
.TP
\fB1\fR
a command ran and failed (apply: after undoing its completed steps), or the user declined
.TP
\fB2\fR
bad input: usage, an invalid value, profile or facts file; nothing changed
.TP
\fB3\fR
the host does not allow the plan (preflight errors or conflicts); nothing changed
.TP
\fB4\fR
not now: another apply or rollback is running, a change awaits confirmation or was interrupted, root is needed, or persist found no confirmed apply; nothing changed
.PP
With \fB\-\-json\fR, \fBapply\fR prints one object whose \fBstatus\fR is \fBchanged\fR, \fBpending_confirm\fR, \fBok\fR (nothing to do), \fBrefused\fR or \fBfailed\fR, with \fBchanged\fR true or false (none for exit 2 and 4); \fBrollback\fR prints \fBstatus\fR, \fBchanged\fR, \fBtransaction\fR and \fBmessage\fR.
.SH ENVIRONMENT
.TP
\fBDSCPROUTE_STATE_DIR\fR
the state directory, when \fB\-\-state\-dir\fR is not given
.SH FILES
.TP
\fI/var/lib/dscproute/\fR
the state directory: \fIcurrent.json\fR (the journal of the last transaction), \fIhistory/\fR, \fIlock\fR, \fItimer.log\fR
.TP
\fI/etc/dscproute/NAME.toml\fR
a profile installed by \fBdscproute persist\fR; \fBdscproute@NAME.service\fR runs \fBdscproute agent\fR on it from boot on (stopping it leaves the setup in place)
.TP
\fI/usr/lib/systemd/system/dscproute@.service\fR
the unit template
.TP
\fI/etc/iproute2/rt_tables.d/dscproute.conf\fR
the routing table name dscproute adds
.TP
\fI/usr/share/doc/dscproute/examples/\fR
example profiles
.SH "SEE ALSO"
\fBdscproute\-plan\fR(1), \fBdscproute\-apply\fR(1), \fBdscproute\-persist\fR(1), \fBiptables\fR(8), \fBip\-rule\fR(8), \fBsystemctl\fR(1)
"#;

/// The roff man page of `dscproute` (the subcommands have their own pages,
/// `dscproute-SUBCOMMAND(1)`, generated into assets/man by the tests).
pub fn man_page() -> Vec<u8> {
    let man = clap_mangen::Man::new(Cli::command().disable_help_subcommand(true));
    let mut out = Vec::new();
    let render = |out: &mut Vec<u8>| -> std::io::Result<()> {
        man.render_title(out)?;
        man.render_name_section(out)?;
        man.render_synopsis_section(out)?;
        man.render_description_section(out)?;
        man.render_options_section(out)?;
        man.render_subcommands_section(out)?;
        out.extend_from_slice(EXTRA_SECTIONS.as_bytes());
        man.render_version_section(out)
    };
    render(&mut out).expect("writing to a Vec cannot fail");
    out
}

pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "dscproute", &mut out);
    hide_internal(&String::from_utf8_lossy(&out), &cmd).into_bytes()
}

/// clap_complete offers hidden subcommands too (`__confirm-timer`): drop
/// the lines that offer them (they carry the subcommand's help text) and the
/// name from bash's word lists. What stays only parses a command line that
/// already names one, so typing it by hand still works.
fn hide_internal(text: &str, cmd: &clap::Command) -> String {
    let hidden: Vec<(String, String)> = cmd
        .get_subcommands()
        .filter(|s| s.is_hide_set())
        .map(|s| {
            let about = s.get_about().map(|a| a.to_string()).unwrap_or_default();
            (s.get_name().to_string(), about)
        })
        .collect();
    let mut out = String::with_capacity(text.len());
    'line: for line in text.lines() {
        let mut line = line.to_string();
        for (name, about) in &hidden {
            if !line.contains(name.as_str()) {
                continue;
            }
            let fish_options = line.contains(&format!("using_subcommand {name}\""))
                || line.contains(&format!("using_subcommand {name}\" "));
            if (!about.is_empty() && line.contains(about.as_str())) || fish_options {
                continue 'line;
            }
            if line.trim_start().starts_with("opts=\"") {
                line = line.replace(&format!(" {name} "), " ");
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

pub fn man_cmd() -> i32 {
    print_bytes(&man_page())
}

pub fn completions_cmd(shell: clap_complete::Shell) -> i32 {
    print_bytes(&completions(shell))
}

fn print_bytes(bytes: &[u8]) -> i32 {
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            output::print_or_quit(text);
            exit::OK
        }
        Err(e) => fail(exit::FAILED, &format!("generated text is not UTF-8: {e}")),
    }
}
