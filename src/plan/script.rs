//! `plan --script`: one standalone POSIX sh script holding the plan's apply
//! steps and their undo, for a host where dscproute is not installed.
//! Every value is single-quoted; no value is ever interpreted by the shell.

use super::{Plan, StepState};
use crate::backend::{Effect, Op};
use std::fmt::Write;

/// Quote for POSIX sh: inside single quotes nothing is special but `'`.
pub fn sh_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn effect_sh(e: &Effect) -> String {
    match e {
        Effect::Run { argv } => argv
            .iter()
            .map(|a| sh_quote(a))
            .collect::<Vec<_>>()
            .join(" "),
        // A quoted heredoc: the shell expands nothing inside it. Our input
        // is rendered from typed values; no line of it is the marker.
        Effect::RunInput { argv, input } => format!(
            "{} <<'DSCPROUTE_NFT'\n{}DSCPROUTE_NFT",
            argv.iter()
                .map(|a| sh_quote(a))
                .collect::<Vec<_>>()
                .join(" "),
            input
        ),
        Effect::WriteFile { path, contents } => {
            let dir = path.rsplit_once('/').map_or(".", |(d, _)| d);
            format!(
                "mkdir -p {} && printf '%s' {} > {}",
                sh_quote(dir),
                sh_quote(contents),
                sh_quote(path)
            )
        }
        Effect::RemoveFile { path } => format!("rm -f {}", sh_quote(path)),
        Effect::DropEmptyTable { family, table } => {
            format!("drop_empty_table {} {}", sh_quote(family), sh_quote(table))
        }
        Effect::Seq { effects } => effects
            .iter()
            .map(effect_sh)
            .collect::<Vec<_>>()
            .join(" && "),
    }
}

/// `NAME() { CMD; }`, or with the body on its own lines when it holds a
/// heredoc (its end marker must stand alone on a line).
fn function(name: &str, e: &Effect) -> String {
    let body = effect_sh(e);
    if body.contains('\n') {
        format!("{name}() {{\n{body}\n}}")
    } else {
        format!("{name}() {{ {body}; }}")
    }
}

pub fn render_script(plan: &Plan, source: &str) -> String {
    let steps: Vec<_> = plan.pending().collect();
    let mut o = String::new();
    let _ = writeln!(o, "#!/bin/sh");
    let _ = writeln!(
        o,
        "# dscproute {} plan from {}, as a standalone script.",
        env!("CARGO_PKG_VERSION"),
        source.replace('\n', " ")
    );
    let _ = writeln!(
        o,
        "# Usage: sh THIS-FILE apply   (undoes what it did if a step fails)"
    );
    let _ = writeln!(
        o,
        "#        sh THIS-FILE undo    (removes everything, newest first)"
    );
    let _ = writeln!(
        o,
        "# Old sysctl values are saved in $STATE where the script runs; undo restores them."
    );
    let skipped = plan
        .steps
        .iter()
        .filter(|s| s.state == StepState::InPlace)
        .count();
    if skipped > 0 {
        let _ = writeln!(
            o,
            "# {skipped} step(s) already in place on the planning host are left out."
        );
    }
    let _ = writeln!(o, "set -u");
    o.push_str(
        r#"
# Delete an nftables table iptables created, only while nothing is in it.
drop_empty_table() {
    case "$1" in ip) save=iptables-save ;; *) save=ip6tables-save ;; esac
    command -v nft >/dev/null 2>&1 || return 0
    nft list tables 2>/dev/null | grep -qx "table $1 $2" || return 0
    "$save" -t "$2" | grep -q -e '^-A ' -e '^:[^ ]* - ' && return 0
    nft delete table "$1" "$2"
}
"#,
    );
    let _ = writeln!(o, "N={}", steps.len());
    let _ = writeln!(
        o,
        "STATE=${{DSCPROUTE_SCRIPT_STATE:-/run/dscproute-script/${{0##*/}}}}"
    );
    for (i, s) in steps.iter().enumerate() {
        let n = i + 1;
        let _ = writeln!(o);
        let _ = writeln!(o, "# {}", s.reason.replace('\n', " "));
        match &s.apply {
            // A sysctl's old value is read where the script runs, not taken
            // from the host that planned it.
            Op::Sysctl { key, value } => {
                let key = key.key();
                let (k, kv) = (sh_quote(&key), sh_quote(&format!("{key}={value}")));
                let _ = writeln!(
                    o,
                    "step_{n}() {{ mkdir -p \"$STATE\" && sysctl -n {k} > \"$STATE/{n}\" && sysctl -q -w {kv}; }}"
                );
                let _ = writeln!(
                    o,
                    "undo_{n}() {{ [ -f \"$STATE/{n}\" ] || return 0; sysctl -q -w {k}=\"$(cat \"$STATE/{n}\")\" && rm -f \"$STATE/{n}\"; }}"
                );
            }
            _ => {
                let _ = writeln!(o, "{}", function(&format!("step_{n}"), &s.apply.effect()));
                let _ = writeln!(o, "{}", function(&format!("undo_{n}"), &s.undo.effect()));
            }
        }
    }
    o.push_str(
        r#"
apply() {
    i=1
    while [ "$i" -le "$N" ]; do
        if ! "step_$i"; then
            echo "dscproute script: step $i failed; undoing the steps before it" >&2
            while [ "$i" -gt 1 ]; do
                i=$((i - 1))
                "undo_$i" || echo "dscproute script: undo of step $i failed" >&2
            done
            exit 1
        fi
        i=$((i + 1))
    done
    echo "dscproute script: $N step(s) applied"
}

undo() {
    i=$N
    while [ "$i" -ge 1 ]; do
        "undo_$i" 2>/dev/null || echo "dscproute script: undo of step $i: nothing to undo" >&2
        i=$((i - 1))
    done
}

case "${1:-}" in
    apply) apply ;;
    undo) undo ;;
    *) echo "usage: sh $0 apply|undo" >&2; exit 2 ;;
esac
"#,
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("wg0"), "wg0");
        assert_eq!(sh_quote("0x3/0xff"), "0x3/0xff");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote("$(reboot)"), "'$(reboot)'");
        assert_eq!(sh_quote(""), "''");
        assert_eq!(sh_quote("!"), "'!'");
    }
}
