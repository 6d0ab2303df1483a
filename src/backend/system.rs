//! Sysctls, groups and our rt_tables drop-in, as the commands and file
//! writes they are, and back.

use super::Effect;
use super::op::{Op, SysctlKey, clip, table_names};
use crate::ownership::RT_TABLES_DROPIN;

fn words(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// `sysctl -q -w KEY=VALUE`; `key` as sysctl(8) names it.
pub fn sysctl_argv(key: &str, value: &str) -> Vec<String> {
    words(&["sysctl", "-q", "-w", &format!("{key}={value}")])
}

pub fn group_argv(add: bool, name: &str) -> Vec<String> {
    words(&[if add { "groupadd" } else { "groupdel" }, name])
}

pub fn write_table_names(id: u32, name: &str) -> Effect {
    Effect::WriteFile {
        path: RT_TABLES_DROPIN.into(),
        contents: format!("{id} {name}\n"),
    }
}

pub fn remove_table_names() -> Effect {
    Effect::RemoveFile {
        path: RT_TABLES_DROPIN.into(),
    }
}

/// `sysctl -q -w KEY=VALUE`, `groupadd NAME`, `groupdel NAME`.
pub fn parse_argv(w: &[&str]) -> Result<Op, String> {
    match *w {
        ["sysctl", "-q", "-w", assignment] => {
            let (k, v) = assignment
                .split_once('=')
                .ok_or_else(|| format!("{} is not key=value", clip(assignment)))?;
            let key = SysctlKey::parse(k)?;
            let value = key.value(v)?;
            Ok(Op::Sysctl { key, value })
        }
        ["groupadd", name] => Ok(Op::GroupAdd { name: name.into() }),
        ["groupdel", name] => Ok(Op::GroupDel { name: name.into() }),
        [program, ..] => Err(format!(
            "{} is not a command dscproute runs in this form",
            clip(program)
        )),
        [] => Err("an empty command".into()),
    }
}

fn only_dropin(path: &str) -> Result<(), String> {
    if path == RT_TABLES_DROPIN {
        Ok(())
    } else {
        Err(format!(
            "{} is not a file dscproute writes (only {RT_TABLES_DROPIN})",
            clip(path)
        ))
    }
}

/// Our drop-in written with one table name, or removed.
pub fn parse_file(effect: &Effect) -> Result<Op, String> {
    match effect {
        Effect::WriteFile { path, contents } => {
            only_dropin(path)?;
            match table_names(contents)?.as_slice() {
                [(id, name)] => Ok(Op::WriteTableNames {
                    id: *id,
                    name: name.clone(),
                }),
                _ => Err("the table name file dscproute writes has one line".into()),
            }
        }
        Effect::RemoveFile { path } => only_dropin(path).map(|()| Op::RemoveTableNames),
        other => Err(format!(
            "{} is not a file operation",
            clip(&other.display())
        )),
    }
}
