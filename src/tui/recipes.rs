//! The client recipes offered on the wizard's last step: the draft's
//! client role written for a host that cannot run dscproute, as
//! `dscproute client-recipe` writes it (nothing of this host is read).

use super::shared::Shared;
use crate::probe::HostFacts;
use crate::recipe::{self, Recipe, Request, Target};
use std::path::{Path, PathBuf};

/// What the profile is called in the recipe's comments.
fn source(cx: &Shared) -> String {
    cx.profile_path
        .as_ref()
        .map_or("the dscproute wizard".into(), |p| p.display().to_string())
}

/// The recipe for the draft, or the one line that says why not.
pub fn make(cx: &Shared, target: Target, req: &Request) -> Result<Recipe, String> {
    let profile = cx.draft_profile()?;
    // The client is another host: like the CLI, no facts of this one.
    recipe::client_recipe(&profile, &source(cx), &HostFacts::default(), target, req)
        .map_err(|e| e.to_string())
}

/// Why the chooser cannot offer `target` for this draft (a unit marker on a
/// Linux recipe, no client role), or None. A value still to be asked
/// (windows' program, openwrt's prefix) is no reason.
pub fn refusal(cx: &Shared, target: Target) -> Option<String> {
    match (make(cx, target, &Request::default()), target) {
        (Ok(_), _) => None,
        (Err(_), Target::Windows | Target::Openwrt)
            if cx.draft_profile().is_ok_and(|p| p.marker.is_some()) =>
        {
            None
        }
        (Err(e), _) => Some(e),
    }
}

/// The value a target asks for before its path: the field's label.
pub fn asks_for(target: Target) -> Option<&'static str> {
    match target {
        Target::Windows => Some("Program"),
        Target::Openwrt => Some("LAN prefix"),
        Target::LinuxSh | Target::Nftables => None,
    }
}

/// What to type in that field, when it is empty.
pub fn value_hint(target: Target) -> &'static str {
    match target {
        Target::Windows => "the program to mark: qbittorrent.exe or its full path",
        _ => "the LAN prefix(es) the router forwards, e.g. 192.168.1.0/24 fd00:1::/64",
    }
}

/// The request for `target` with the value typed (openwrt: prefixes apart
/// by spaces or commas).
pub fn request(target: Target, value: &str) -> Request {
    let value = value.trim();
    match target {
        Target::Windows if !value.is_empty() => Request {
            app: Some(value.to_string()),
            src: Vec::new(),
        },
        Target::Openwrt => Request {
            app: None,
            src: value
                .split([' ', ','])
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        },
        _ => Request::default(),
    }
}

/// Next to the profile (or here): `dscproute-client-windows.ps1`.
pub fn default_path(cx: &Shared, target: Target) -> PathBuf {
    let ext = match target {
        Target::LinuxSh => "sh",
        Target::Nftables | Target::Openwrt => "nft",
        Target::Windows => "ps1",
    };
    let dir = cx
        .profile_path
        .as_deref()
        .and_then(Path::parent)
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    dir.join(format!("dscproute-client-{}.{ext}", target.name()))
}

/// How to use the file on the client, in one short sentence (the footer
/// has one line: the path is said before it, the file goes by its name).
pub fn how_to_use(target: Target, path: &Path) -> String {
    let f = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into(),
    );
    match target {
        Target::LinuxSh => format!("on the client, sudo sh {f} apply (undo: sh {f} undo)"),
        Target::Nftables => format!("on the client, sudo nft -f {f} (undo: see the file)"),
        Target::Windows => "on the PC, run it in an elevated PowerShell".into(),
        Target::Openwrt => format!(
            "on the router, save it as {} and run fw4 reload",
            recipe::OPENWRT_PATH
        ),
    }
}

/// Write the recipe: what was written where and how to use it, or the one
/// line that says why not.
pub fn write(cx: &Shared, path: &Path, target: Target, req: &Request) -> Result<String, String> {
    let r = make(cx, target, req).map_err(|e| format!("No {} recipe: {e}", target.name()))?;
    std::fs::write(path, &r.text)
        .map_err(|e| format!("Could not write {}: {e}", path.display()))?;
    let mut o = format!(
        "✓ Wrote the {} recipe to {}: {}. It says what it does, how to undo it and how to \
         check on the gateway that DSCP {} arrives.",
        target.name(),
        path.display(),
        how_to_use(target, path),
        r.dscp
    );
    for w in &r.warnings {
        o.push_str(&format!(" Note: {w}"));
    }
    Ok(o)
}
