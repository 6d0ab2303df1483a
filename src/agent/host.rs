//! `Converge` over the use-case layer: this host, one profile.

use super::converge::{Check, Converge, ConvergeError, WaitReason};
use crate::ops::Host;
use crate::ops::apply::{ApplyError, Request};
use crate::ops::converge::{self, Found, Wait};
use crate::profile::Profile;

pub struct HostConverge<'h> {
    pub host: Host<'h>,
    pub profile: Profile,
    /// How the profile is named in the journal.
    pub source: String,
}

impl Converge for HostConverge<'_> {
    fn check(&mut self) -> Result<Check, ConvergeError> {
        let found = converge::check(&self.host, &self.profile)
            .map_err(|e| ConvergeError::Transient(e.to_string()))?;
        let reason = |w| match w {
            Wait::InterfaceMissing(i) => WaitReason::InterfaceMissing(i),
            Wait::InterfaceDown(i) => WaitReason::InterfaceDown(i),
            Wait::NoNextHop(i) => WaitReason::NoNextHop(i),
        };
        Ok(match found {
            Found::Whole => Check::Whole,
            Found::Missing(m) => Check::Missing(m),
            Found::Waiting { wait, missing } if missing.is_empty() => Check::Waiting(reason(wait)),
            Found::Waiting { wait, missing } => Check::MissingWhileWaiting {
                reason: reason(wait),
                missing,
                kill_switch: self.profile.gateway.as_ref().is_some_and(|g| g.kill_switch),
            },
        })
    }

    fn repair(&mut self, _missing: &[String]) -> Result<Vec<String>, ConvergeError> {
        let req = Request {
            profile: &self.profile,
            source: &self.source,
            confirm_secs: None,
            previewed: None,
            vpn_may_wait: true,
        };
        converge::repair(&self.host, &req).map_err(|e| match e {
            // Root does not come back by waiting.
            ApplyError::NeedsRoot => ConvergeError::Fatal(e.to_string()),
            e => ConvergeError::Transient(e.to_string()),
        })
    }
}
