//! The TUI's state, and nothing else: the shared part every screen reads
//! (see `shared`) and each screen's own state, defined in its screen
//! module. `update` changes it; rendering only reads it.

use super::screens::{apply, gateway, mark, preview, status};
use super::shared::Shared;
use super::theme::Theme;
use super::widgets::byte_input::DscpState;
use crate::profile::Profile;
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;

pub use super::shared::ScreenId;

pub struct App {
    pub shared: Shared,
    pub dscp: DscpState,
    pub mark: mark::MarkState,
    pub gateway: gateway::GatewayState,
    pub preview: preview::PreviewState,
    pub apply: apply::ApplyState,
    pub status: status::StatusState,
    /// Learn mode keeps its own byte (ECN bits included).
    pub learn: DscpState,
}

impl App {
    pub fn new(profile: Option<(&Profile, PathBuf)>, dry_run: Option<String>, theme: Theme) -> App {
        let shared = Shared::new(profile, dry_run, theme);
        let seven = crate::tos::Dscp::new(7).expect("7 is a DSCP");
        App {
            dscp: DscpState::new(shared.draft().dscp),
            learn: DscpState::new(seven),
            mark: mark::MarkState::default(),
            gateway: gateway::GatewayState::default(),
            preview: preview::PreviewState::default(),
            apply: apply::ApplyState::default(),
            status: status::StatusState::default(),
            shared,
        }
    }
}

/// The shared state reads as the app's own (`app.screen`, `app.notice`).
impl Deref for App {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl DerefMut for App {
    fn deref_mut(&mut self) -> &mut Shared {
        &mut self.shared
    }
}
