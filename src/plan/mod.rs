//! Pure planning: (profile, host facts) -> an ordered list of steps, each with
//! the typed operation to apply (`backend::Op`), the one to undo, whether it
//! is already in place, and a reason a learner can follow. The dry-run text,
//! the JSON and the shell script show the operations as the commands they
//! run; the TUI preview, the executor and the journal read this one Plan.

mod choose;
mod conflicts;
mod dscp_rule;
mod gateway;
pub mod mark_writers;
mod marker;
mod marks;
pub mod nft;
mod positions;
mod preflight;
mod render;
pub mod ruleset;
mod script;
mod steps;

pub use preflight::on_link;
pub use render::{render_text, signal_path};
pub use script::{render_script, sh_quote};
pub use steps::selects;

use crate::backend::Op;
use crate::probe::HostFacts;
use crate::profile::{self, MatchMode, Profile};
use serde::{Deserialize, Serialize, Serializer};
use thiserror::Error;

/// Which side of the setup a step belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Host A: set the DSCP on the group's packets.
    Marker,
    /// Host B: route packets carrying the DSCP through the VPN.
    Gateway,
}

impl Role {
    pub fn title(self) -> &'static str {
        match self {
            Role::Marker => "Client (host A): mark the group's packets with the DSCP",
            Role::Gateway => "Gateway (host B): route that DSCP through the VPN",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// `+`: will be created.
    Add,
    /// `~`: an existing value changes (sysctls), or a stale rule of ours goes.
    Change,
    /// `=`: already exactly so; skipped.
    InPlace,
}

impl StepState {
    pub fn symbol(self) -> char {
        match self {
            StepState::Add => '+',
            StepState::Change => '~',
            StepState::InPlace => '=',
        }
    }
}

/// An old → new value for `~` steps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueChange {
    pub from: String,
    pub to: String,
}

/// One step of a plan. As JSON (`plan --json`) its operations read as the
/// effects they run; the journal stores them typed (`apply::journal`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    pub role: Role,
    pub state: StepState,
    #[serde(serialize_with = "as_effect")]
    pub apply: Op,
    #[serde(serialize_with = "as_effect")]
    pub undo: Op,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<ValueChange>,
}

fn as_effect<S: Serializer>(op: &Op, s: S) -> Result<S::Ok, S::Error> {
    op.effect().serialize(s)
}

/// The values the plan settled on (given in the profile or chosen free).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Resolved {
    pub dscp: u8,
    /// Numeric gid when the group is known here, else the name as given.
    pub group: Option<String>,
    /// Numeric uid of a `user` marker when known here, else the name as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The systemd unit of a `unit` marker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The cgroup v2 path matched (a `cgroup` marker's, or a running unit's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    pub interface: Option<String>,
    pub mark: Option<u32>,
    pub mask: Option<u32>,
    pub table_id: Option<u32>,
    pub table_name: Option<String>,
    pub priority: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub in_place: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub roles: Vec<Role>,
    pub resolved: Resolved,
    pub steps: Vec<Step>,
    /// Preflight errors and hard conflicts: the preview stands, but apply
    /// refuses until each is fixed. Each says how.
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub notes: Vec<String>,
    pub summary: Summary,
}

impl Plan {
    /// Steps that will actually run (not already in place).
    pub fn pending(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|s| s.state != StepState::InPlace)
    }

    pub fn is_noop(&self) -> bool {
        self.pending().next().is_none()
    }

    /// Can this plan be applied as it stands?
    pub fn is_applicable(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Problems that leave no plan to show (values that cannot be settled).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{}", .problems.join("\n"))]
pub struct PlanError {
    pub problems: Vec<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// Planning a script for another host: a group unknown here is passed by name.
    pub for_script: bool,
    /// Plan only what does not need the gateway's VPN interface: no route
    /// through it, no sysctl of its own, and its absence is no problem. The
    /// agent applies this while the VPN is unusable, so the kill switch and
    /// the marking are in place before the VPN comes up (a boot race).
    pub without_vpn: bool,
}

/// What the profile's marker needs to know of the host besides the probe's
/// facts (`probe::resolve_marker`).
pub fn marker_query(profile: &Profile) -> Option<crate::probe::MarkerQuery<'_>> {
    use crate::probe::MarkerQuery;
    match &profile.marker.as_ref()?.who {
        profile::Who::Group(_) | profile::Who::User(profile::UserRef::Uid(_)) => None,
        profile::Who::User(profile::UserRef::Name(n)) => Some(MarkerQuery::UserName(n)),
        profile::Who::Unit(u) => Some(MarkerQuery::Unit(u)),
        profile::Who::Cgroup(c) => Some(MarkerQuery::Cgroup(c)),
    }
}

/// Build the plan. Host problems become `Plan::errors`; only values that
/// cannot be settled at all are a `PlanError`.
pub fn plan(profile: &Profile, facts: &HostFacts, opts: PlanOptions) -> Result<Plan, PlanError> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut notes = Vec::new();
    preflight::check(profile, facts, opts, &mut problems, &mut warnings);

    let mut resolved = Resolved {
        dscp: profile
            .gateway
            .as_ref()
            .map(|g| g.dscp)
            .or(profile.marker.as_ref().map(|m| m.dscp))
            .map_or(0, |d| d.value()),
        ..Resolved::default()
    };
    if let Some(m) = &profile.marker {
        match &m.who {
            profile::Who::Group(g) => resolved.group = Some(preflight::group_arg(g, facts)),
            profile::Who::User(u) => resolved.user = Some(preflight::user_arg(u, facts)),
            profile::Who::Unit(u) => {
                resolved.unit = Some(u.clone());
                resolved.cgroup = facts.units.get(u).cloned().flatten();
            }
            profile::Who::Cgroup(c) => resolved.cgroup = Some(c.clone()),
        }
        if profile.gateway.is_none() {
            // A client tags the group's connections with a conntrack mark of
            // its own, so every packet of them carries the DSCP.
            let mask = crate::ownership::DEFAULT_MASK;
            match choose::free_mark(mask, facts) {
                Some(v) => {
                    resolved.mark = Some(v);
                    resolved.mask = Some(mask);
                }
                None => {
                    return Err(PlanError {
                        problems: vec![format!(
                            "no free connection mark within {mask:#x} on this host: other rules \
                             use every value"
                        )],
                    });
                }
            }
        }
    }
    if let Some(g) = &profile.gateway {
        dscp_rule::check(g, facts, &mut problems, &mut warnings);
        notes.extend(dscp_rule::note(g));
        resolved.interface = Some(g.interface.clone());
        match choose::resolve(g, facts) {
            Ok(c) => {
                // `ip rule dscp` needs no mark: only a client here tags its
                // connections (a conntrack mark, off the routing path).
                let needs_mark = g.match_mode == MatchMode::Mark || profile.marker.is_some();
                if needs_mark {
                    resolved.mark = Some(c.mark);
                    resolved.mask = Some(c.mask);
                }
                resolved.table_id = Some(c.table_id);
                resolved.table_name = c.table_name.clone();
                resolved.priority = Some(c.priority);
                let mut chosen = Vec::new();
                if c.mark_chosen && needs_mark {
                    chosen.push(format!("mark {:#x}/{:#x}", c.mark, c.mask));
                }
                if c.priority_chosen {
                    chosen.push(format!("priority {}", c.priority));
                }
                if g.table.is_none() {
                    chosen.push(format!("table {}", c.table_id));
                }
                if !chosen.is_empty() {
                    notes.push(format!(
                        "Chosen free on this host: {}; set them in the profile to keep them the \
                         same everywhere.",
                        chosen.join(", ")
                    ));
                }
                let also_marker = profile.marker.is_some();
                conflicts::check(g, &c, also_marker, facts, &mut problems, &mut warnings);
            }
            Err(e) => return Err(PlanError { problems: e }),
        }
    }

    let ctx = steps::Ctx::new(facts);
    let mut out = Vec::new();
    let mut roles = Vec::new();
    // Gateway first: on a host with both roles, nothing is marked before its path exists.
    if let Some(g) = &profile.gateway {
        roles.push(Role::Gateway);
        out.extend(gateway::steps(g, &resolved, facts, &ctx, &mut warnings));
    }
    if let Some(m) = &profile.marker {
        roles.push(Role::Marker);
        // Local packets need the routing mark only when routing goes by mark.
        out.extend(marker::steps(
            m,
            &resolved,
            profile
                .gateway
                .as_ref()
                .is_some_and(|g| g.match_mode == MatchMode::Mark),
            opts.for_script,
            &ctx,
        ));
        if let (true, Some(profile::GroupRef::Name(n))) = (m.create_group, m.group())
            && (opts.for_script || facts.groups.is_empty())
        {
            warnings.push(format!(
                "marker.create_group: the groups of the target host are not known here, so no \
                 groupadd step is planned; create {n:?} there first if it does not exist \
                 (`getent group {n} || groupadd {n}`)"
            ));
        }
    }
    ctx.fix_chain_order(&mut out);
    for stale in ctx.stale_steps(&roles) {
        // Our table holds one default route per family: an old one (another
        // via or interface) must go before the new one is added, or the add
        // fails with "File exists". Meanwhile the kill switch holds.
        let at = match &stale.apply {
            Op::Route { family, .. } => out.iter().position(
                |s| matches!(&s.apply, Op::Route { family: f, add: true, .. } if f == family),
            ),
            _ => None,
        };
        match at {
            Some(i) => out.insert(i, stale),
            None => out.push(stale),
        }
    }
    problems.extend(ctx.unwritable());
    if let (true, Some(g)) = (opts.without_vpn, &profile.gateway) {
        // Planned and then left out, so that the routes we want still count
        // as wanted: a route of ours is never removed as stale while waiting.
        out.retain(|s| !needs_interface(&s.apply, &g.interface));
    }

    let (backend, why) = nft::choose(profile, facts);
    if profile.backend != profile::Backend::default() {
        notes.push(format!("Netfilter backend: {} ({why}).", backend.name()));
    }
    if backend == profile::Backend::Nft {
        if !facts.has_tool("nft") {
            problems.push(
                "backend nft: no nft binary on this host; install nftables or set backend = \"iptables\""
                    .into(),
            );
        }
        let want = nft::desired(profile, &resolved);
        nft::convert(&mut out, want, facts, &mut problems);
    } else {
        nft::remove_table(&mut out, facts, &mut warnings);
    }

    name_file_after_old_rules(&mut out);
    positions::pin_removals(&mut out, facts);
    // The journal refuses anything but what dscproute writes, so a plan
    // holding another (a foreign rule inside a chain of ours) is refused up front.
    for (i, s) in out.iter().enumerate() {
        for op in [&s.apply, &s.undo] {
            if let Err(why) = op.check() {
                problems.push(format!(
                    "step {}: `{}` is not a command dscproute writes ({why}); remove what it \
                     comes from by hand (a rule someone put in a chain of ours?) and plan again",
                    i + 1,
                    crate::backend::op::clip(&op.display())
                ));
            }
        }
    }

    if !facts.is_root {
        notes.push(
            "Not running as root: this preview was computed from what could be read; \
             applying needs root."
                .into(),
        );
    }
    for u in &facts.unreadable {
        warnings.push(format!("Could not read: {u}."));
    }
    if let (Some(_), Some(g)) = (&profile.marker, &profile.gateway)
        && !g.masquerade
    {
        warnings.push(
            "masquerade = false on a host that is both client and gateway: its own packets keep \
             the source address chosen before they were re-routed to the VPN, so the VPN side \
             drops or cannot answer them; keep masquerade on"
                .into(),
        );
    }
    notes.push(
        "Only new connections follow the new path: existing ones keep their conntrack and \
         NAT state until they close."
            .into(),
    );

    let summary = Summary {
        add: out.iter().filter(|s| s.state == StepState::Add).count(),
        change: out.iter().filter(|s| s.state == StepState::Change).count(),
        in_place: out.iter().filter(|s| s.state == StepState::InPlace).count(),
    };
    Ok(Plan {
        roles,
        resolved,
        steps: out,
        errors: problems,
        warnings,
        notes,
        summary,
    })
}

/// Steps that cannot run while the VPN interface is missing, down or
/// without its next hop: our table's routes through it, and its own sysctls.
fn needs_interface(op: &Op, dev: &str) -> bool {
    match op {
        Op::Route {
            add: true, route, ..
        } => route.dev == dev,
        Op::Sysctl {
            key: crate::backend::SysctlKey::RpFilter(d),
            ..
        } => d == dev,
        _ => false,
    }
}

/// A changed table name is written after the old policy rules are removed:
/// they are removed by table number, but nothing should depend on the old
/// name still being there.
fn name_file_after_old_rules(steps: &mut Vec<Step>) {
    let Some(w) = steps.iter().position(|s| {
        s.state != StepState::InPlace && matches!(s.apply, Op::WriteTableNames { .. })
    }) else {
        return;
    };
    let removes_rule = |s: &Step| {
        s.state != StepState::InPlace && matches!(s.apply, Op::PolicyRule { add: false, .. })
    };
    if let Some(last) = steps.iter().rposition(removes_rule)
        && last > w
    {
        let name = steps.remove(w);
        steps.insert(last, name);
    }
}

#[cfg(test)]
mod tests;
