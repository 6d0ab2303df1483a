//! "Keep it up with the agent": the wizard persists a kept setup through the
//! same code as `dscproute persist` (the journal's kept-apply rule, one
//! profile per host, the unit that runs `dscproute agent`).

use super::msg::KeptUp;
use crate::apply::{Journal, StateDir};
use crate::persist::kept::{self, Request};
use crate::persist::target::Target;
use crate::persist::{self, BootOutcome, Layout};
use crate::profile::Profile;
use std::path::Path;

/// NAME for the wizard's setup: the profile file's stem when it makes a
/// valid name, else the role (`client`, `gateway`, `both`).
pub fn name_for(path: Option<&Path>, profile: &Profile) -> String {
    if let Some(n) = path.and_then(|p| persist::default_name(p).ok()) {
        return n;
    }
    match (&profile.marker, profile.is_gateway()) {
        (Some(_), true) => "both",
        (None, true) => "gateway",
        _ => "client",
    }
    .to_string()
}

/// Persist `profile` on this host (root `/`). `path` is the file the
/// wizard loaded or saved it as, if any (the apply's journal names it).
pub fn persist_here(
    state: &StateDir,
    profile: &Profile,
    path: Option<&Path>,
) -> Result<KeptUp, String> {
    let name = name_for(path, profile);
    let target = Target::resolve(Path::new("/"))?;
    let journal = Journal::load(state).map_err(|e| e.to_string())?;
    let text = profile.to_toml();
    let req = Request {
        profile,
        text: text.as_bytes(),
        path: path.unwrap_or(Path::new("tui")),
        name: &name,
        state_dir: state.path(),
    };
    let (done, _) =
        kept::persist_kept(&target, journal.as_ref(), &req).map_err(|e| e.to_string())?;
    Ok(KeptUp {
        profile: Layout::target_profile(&done.name),
        unit: match done.boot {
            BootOutcome::Enabled { unit, .. } => Some(unit),
            BootOutcome::Manual(_) => None,
        },
        name: done.name,
    })
}

/// What the admin runs as root instead, from a dry run: `file` is where the
/// profile was saved (`w`), if it was.
pub fn commands(file: Option<&Path>) -> String {
    let file = file.map_or("FILE".into(), |p| {
        crate::plan::sh_quote(&p.display().to_string())
    });
    format!(
        "To keep this setup up with the agent, from boot on, run as root on the host: `sudo \
         dscproute apply --profile {file} --yes`, then `sudo dscproute persist --profile \
         {file}` (w saves the profile). Stopping the agent leaves the setup in place; `sudo \
         dscproute rollback --yes` then removes it."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(text: &str) -> Profile {
        Profile::parse(text, "t.toml").unwrap()
    }

    #[test]
    fn the_name_is_the_files_stem_or_the_role() {
        let client = profile("[marker]\ngroup = 4242\ndscp = 7\n");
        let gw = profile("[gateway]\ndscp = 7\ninterface = \"wg0\"\nvia = \"10.8.0.1\"\n");
        assert_eq!(
            name_for(Some(Path::new("/root/home-gw.toml")), &gw),
            "home-gw"
        );
        assert_eq!(
            name_for(Some(Path::new("/root/my gw.toml")), &gw),
            "gateway"
        );
        assert_eq!(name_for(None, &gw), "gateway");
        assert_eq!(name_for(None, &client), "client");
        // A `[[class]]` profile is a gateway too, now that the wizard edits it.
        let classes =
            profile("[[class]]\nname = \"a\"\ndscp = 7\nuplinks = [{ interface = \"wg0\" }]\n");
        assert_eq!(name_for(None, &classes), "gateway");
    }

    #[test]
    fn commands_name_the_saved_file_quoted() {
        assert!(commands(None).contains("`sudo dscproute persist --profile FILE`"));
        let c = commands(Some(Path::new("/root/my gw.toml")));
        assert!(
            c.contains("`sudo dscproute apply --profile '/root/my gw.toml' --yes`"),
            "{c}"
        );
    }
}
