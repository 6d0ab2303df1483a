//! `persist` as one call, for the CLI and the TUI alike: check that the
//! profile was applied and kept (the journal, else the host), then install it.

use super::target::Target;
use super::{PersistError, Persisted, confirmed};
use crate::apply::Journal;
use crate::plan::{self, PlanOptions};
use crate::probe;
use crate::profile::Profile;
use std::path::Path;

/// What to persist: the profile, its bytes as installed, the path it was
/// read from (or applied as), and NAME.
pub struct Request<'a> {
    pub profile: &'a Profile,
    pub text: &'a [u8],
    pub path: &'a Path,
    pub name: &'a str,
    /// The state directory the setup's journal is in.
    pub state_dir: &'a Path,
}

/// Persist a kept setup; `journal` is the state directory's last
/// transaction. Refused (NotNow) when the profile was not applied and kept.
pub fn persist_kept(
    target: &Target,
    journal: Option<&Journal>,
    req: &Request,
) -> Result<(Persisted, confirmed::Evidence), PersistError> {
    super::validate_name(req.name).map_err(PersistError::Usage)?;
    let mut in_place = || {
        let mut facts = probe::probe_system();
        let (runner, root) = (crate::runner::SystemRunner, std::path::Path::new("/"));
        probe::resolve_marker(&mut facts, plan::marker_query(req.profile), &runner, root);
        plan::plan(req.profile, &facts, PlanOptions::default())
            .is_ok_and(|p| p.is_applicable() && p.is_noop())
    };
    let evidence = confirmed::check(journal, req.path, req.text, &mut in_place)
        .map_err(|e| PersistError::NotNow(format!("not persisting: {e}")))?;
    let done = super::persist(
        &target.layout,
        req.name,
        req.text,
        target.agent_state_dir(req.state_dir).as_deref(),
        &target.boot(),
        &target.exe(),
    )?;
    Ok((done, evidence))
}
