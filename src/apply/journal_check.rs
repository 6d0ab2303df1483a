//! The journal is input like any other: a state directory someone else can
//! write to, a restored backup, a hand edit. Its steps are typed operations,
//! so it cannot name another program or file; before anything of it runs,
//! every step's apply and undo must be well formed with our names and values
//! (`Op::check`), what was saved for undo must belong to its step, and the
//! id (a file name in history/) must be a plain name.

use super::journal::{Journal, JournalStep, Saved};
use crate::backend::op::{self, Op, clip};
use crate::ownership::RT_TABLES_DROPIN;
use std::path::Path;

/// The first thing in `j` dscproute would never have written, as one line.
pub fn check(j: &Journal) -> Result<(), String> {
    check_id(&j.id)?;
    for (i, js) in j.steps.iter().enumerate() {
        check_step(js).map_err(|e| format!("step {} {e}", i + 1))?;
    }
    for (i, js) in j.setup.iter().enumerate() {
        check_step(js).map_err(|e| format!("setup step {} {e}", i + 1))?;
    }
    Ok(())
}

/// One step: its apply, its undo and what was saved for the undo.
pub fn check_step(js: &JournalStep) -> Result<(), String> {
    let check = |what: &str, op: &Op| {
        op.check()
            .map_err(|why| format!("{what} `{}`: {why}", clip(&op.display())))
    };
    check("apply", &js.step.apply)?;
    check("undo", &js.step.undo)?;
    match &js.saved {
        Some(saved) => {
            check_saved(&js.step.apply, saved).map_err(|why| format!("saved undo data: {why}"))
        }
        None => Ok(()),
    }
}

/// Ids are `SECONDS-PID`; anything with a `/` or `..` could name a file
/// outside history/ when the journal is archived.
fn check_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!("id {:?} is not a transaction id", clip(id)))
    }
}

fn check_saved(apply: &Op, saved: &Saved) -> Result<(), String> {
    match (apply, saved) {
        (Op::Sysctl { key, .. }, Saved::Sysctl { key: k, old }) => {
            if op::SysctlKey::parse(k)? != *key {
                return Err(format!("sysctl {} is not the one the step sets", clip(k)));
            }
            key.value(old).map(|_| ())
        }
        (
            Op::WriteTableNames { .. },
            Saved::File {
                path,
                old_contents,
                created_dirs,
            },
        ) => {
            if path != RT_TABLES_DROPIN {
                return Err(format!("{} is not the file the step writes", clip(path)));
            }
            if let Some(c) = old_contents {
                op::table_names(c)?;
            }
            // Undo removes the directories the write created: only ones
            // above our drop-in (and only while empty).
            let above: Vec<&Path> = Path::new(RT_TABLES_DROPIN)
                .ancestors()
                .skip(1)
                .filter(|p| p.parent().is_some())
                .collect();
            match created_dirs.iter().find(|d| !above.contains(&Path::new(d))) {
                Some(d) => Err(format!(
                    "{} is not a directory above {RT_TABLES_DROPIN}",
                    clip(d)
                )),
                None => Ok(()),
            }
        }
        _ => Err("it does not belong to the step's command".into()),
    }
}

#[cfg(test)]
mod tests;
