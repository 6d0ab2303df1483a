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
mod uplinks;

pub use preflight::on_link;
pub use render::{class_path, render_text, signal_path};
pub use script::{render_script, sh_quote};
pub use steps::selects;
pub use uplinks::{Wait, vpn_wait, wait as uplink_wait};

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
            Role::Marker => "Client (host A): mark the chosen processes' packets with the DSCP",
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
    /// `[[class]]` profiles: each class's values and the uplink its table
    /// routes through (the fields above then describe the first class).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<ResolvedClass>,
}

/// One class of a `[[class]]` profile as the plan settled it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ResolvedClass {
    pub name: String,
    pub dscp: u8,
    pub mark: Option<u32>,
    pub mask: Option<u32>,
    pub table_id: Option<u32>,
    pub table_name: Option<String>,
    pub priority: Option<u32>,
    /// The class's uplinks, in the order they are tried.
    pub uplinks: Vec<String>,
    /// The one its table routes through now; None: none is usable.
    pub uplink: Option<String>,
    /// Why that one (or why none), for people.
    pub uplink_why: String,
    /// No usable uplink and the kill switch on: the class is blocked.
    pub blocked: bool,
}

/// One class ready for the step builders: routed through its chosen uplink.
pub(crate) struct ClassPlan {
    pub class: profile::Class,
    /// The class through its chosen uplink (the first one when none is usable).
    pub through: profile::Gateway,
    pub chosen: Option<usize>,
    pub why: String,
    pub resolved: Resolved,
}

fn resolved_class(c: &ClassPlan) -> ResolvedClass {
    let r = &c.resolved;
    ResolvedClass {
        name: c.class.name.clone(),
        dscp: r.dscp,
        mark: r.mark,
        mask: r.mask,
        table_id: r.table_id,
        table_name: r.table_name.clone(),
        priority: r.priority,
        uplinks: c
            .class
            .uplinks
            .iter()
            .map(|u| u.interface.clone())
            .collect(),
        uplink: c.chosen.map(|i| c.class.uplinks[i].interface.clone()),
        uplink_why: c.why.clone(),
        blocked: c.chosen.is_none() && c.class.kill_switch,
    }
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

/// What a plan of `profile` needs read besides the routes, rules, links
/// and rulesets: the groups for a client's marker, iproute2's version for
/// the dscp-rule mode.
pub fn reads_for(profile: &Profile) -> crate::probe::Reads {
    crate::probe::Reads {
        groups: profile.marker.is_some(),
        ip_version: profile
            .classes()
            .iter()
            .any(|c| c.match_mode == MatchMode::DscpRule),
    }
}

/// Build the plan. Host problems become `Plan::errors`; only values that
/// cannot be settled at all are a `PlanError`.
pub fn plan(profile: &Profile, facts: &HostFacts, opts: PlanOptions) -> Result<Plan, PlanError> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut notes = Vec::new();
    preflight::check(profile, facts, opts, &mut problems, &mut warnings);

    let classes = settle_classes(
        profile,
        facts,
        opts,
        &mut problems,
        &mut warnings,
        &mut notes,
    )?;
    // The top-level values: the class the client's DSCP takes on a host
    // with both roles, else the first.
    let main = profile
        .marker
        .as_ref()
        .and_then(|m| classes.iter().position(|c| c.class.dscp == m.dscp))
        .unwrap_or(0);
    let mut resolved = match classes.get(main) {
        Some(c) => c.resolved.clone(),
        None => Resolved {
            dscp: profile.marker.as_ref().map_or(0, |m| m.dscp.value()),
            ..Resolved::default()
        },
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
        if !profile.is_gateway() {
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
    if profile.gateway.is_none() {
        resolved.classes = classes.iter().map(resolved_class).collect();
    }

    let ctx = steps::Ctx::new(facts);
    let mut out = Vec::new();
    let mut roles = Vec::new();
    // Gateway first: on a host with both roles, nothing is marked before its path exists.
    if !classes.is_empty() {
        roles.push(Role::Gateway);
    }
    for c in &classes {
        let routed = c.chosen.is_some();
        let before = warnings.len();
        out.extend(gateway::steps(
            &c.through,
            &c.resolved,
            routed,
            &c.class.uplinks[0].interface,
            facts,
            &ctx,
            &mut warnings,
        ));
        for (i, u) in c.class.uplinks.iter().enumerate() {
            if Some(i) != c.chosen && u.interface != c.through.interface {
                let g = c.class.through(u);
                out.extend(gateway::other_uplink(
                    &g,
                    &c.resolved,
                    facts,
                    &ctx,
                    &mut warnings,
                ));
            }
        }
        if profile.gateway.is_none() {
            for w in &mut warnings[before..] {
                *w = format!("class {}: {w}", c.class.name);
            }
        }
    }
    // Classes share our chains, their jumps and the kernel switches: once each.
    let mut seen = Vec::new();
    out.retain(|s| {
        let first = !seen.contains(&s.apply);
        if first {
            seen.push(s.apply.clone());
        }
        first
    });
    if let Some(m) = &profile.marker {
        roles.push(Role::Marker);
        // Local packets need the routing mark only when routing goes by mark.
        out.extend(marker::steps(
            m,
            &resolved,
            classes
                .get(main)
                .is_some_and(|c| c.class.match_mode == MatchMode::Mark),
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
        // Our table holds one default route per family. An old one in the
        // table the new one goes to (another uplink, another via) is
        // replaced in place: one `ip route replace`, so a class that fails
        // over is never without a route, not even for a moment.
        if let Op::Route {
            family,
            add: false,
            route: old,
        } = &stale.apply
            && let Some(s) = out.iter_mut().find(|s| {
                s.state == StepState::Add
                    && matches!(&s.apply, Op::Route { family: f, add: true, route }
                        if f == family && route.table == old.table)
            })
            && let Op::Route { route: new, .. } = s.apply.clone()
        {
            s.state = StepState::Change;
            s.change = Some(ValueChange {
                from: route_words(old),
                to: route_words(&new),
            });
            s.apply = Op::RouteReplace {
                family: *family,
                from: old.clone(),
                to: new.clone(),
            };
            s.undo = Op::RouteReplace {
                family: *family,
                from: new,
                to: old.clone(),
            };
            continue;
        }
        // Another table: the old route must go before the new one is added.
        // Meanwhile the kill switch holds.
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
        problems.extend(nft::marker_problem(profile, facts));
        if !facts.has_tool("nft") {
            problems.push(
                "backend nft: no nft binary on this host; install nftables or set backend = \"iptables\""
                    .into(),
            );
        }
        let want = nft::desired_classes(profile, &resolved, &classes, facts.cgroup2.as_deref());
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
    if let (Some(_), Some(c)) = (&profile.marker, classes.get(main))
        && !c.class.masquerade
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

/// Each class's uplink chosen, its values settled (automatic ones distinct
/// between classes) and checked against the host.
/// A default route in a few words, for a step's change line.
fn route_words(r: &crate::backend::DefaultRoute) -> String {
    match r.via {
        Some(via) => format!("via {via} dev {}", r.dev),
        None => format!("dev {}", r.dev),
    }
}

fn settle_classes(
    profile: &Profile,
    facts: &HostFacts,
    opts: PlanOptions,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> Result<Vec<ClassPlan>, PlanError> {
    let classes = profile.classes();
    let several = profile.gateway.is_none() && !classes.is_empty();
    let mut taken = choose::Taken {
        unnamed_default: several,
        ..choose::Taken::default()
    };
    // Values a class gives are never chosen for another.
    for c in &classes {
        if let Some(m) = c.mark {
            taken
                .marks
                .push((m, c.mask.unwrap_or(crate::ownership::DEFAULT_MASK)));
        }
        if let Some(profile::TableRef::Id(i)) = c.table {
            taken.tables.push(i);
        }
        taken.tables.extend(c.table_id);
        taken.priorities.extend(c.priority);
    }
    let mut out = Vec::new();
    let mut dropins = Vec::new();
    for class in classes {
        let choice = if several {
            uplinks::choose(&class, facts, opts.for_script)
        } else {
            uplinks::Choice {
                index: Some(0),
                why: String::new(),
            }
        };
        let through = class.through(&class.uplinks[choice.index.unwrap_or(0)]);
        let named = |what: &str| {
            if several {
                format!("class {}: {what}", class.name)
            } else {
                what.to_string()
            }
        };
        if several {
            match choice.index {
                Some(_) => preflight::gateway(&through, facts, opts, problems, warnings),
                None if class.kill_switch => warnings.push(named(&format!(
                    "no usable uplink {}: the class is blocked by its kill switch (no route \
                     in its table) until one is usable and the plan is applied again",
                    choice.why.trim_start_matches("none usable now ")
                ))),
                None => warnings.push(named(&format!(
                    "no usable uplink {} and kill_switch = false: the class leaves by the \
                     main routing table until one is usable and the plan is applied again",
                    choice.why.trim_start_matches("none usable now ")
                ))),
            }
        }
        dscp_rule::check(&through, facts, problems, warnings);
        if let Some(n) = dscp_rule::note(&through)
            && !notes.contains(&n)
        {
            notes.push(n);
        }
        let c = choose::resolve_among(&through, facts, &taken).map_err(|e| PlanError {
            problems: e.into_iter().map(|p| named(&p)).collect(),
        })?;
        // `ip rule dscp` needs no mark: only a client here tags its
        // connections (a conntrack mark, off the routing path).
        let needs_mark = through.match_mode == MatchMode::Mark || profile.marker.is_some();
        let resolved = Resolved {
            dscp: class.dscp.value(),
            interface: Some(through.interface.clone()),
            mark: needs_mark.then_some(c.mark),
            mask: needs_mark.then_some(c.mask),
            table_id: Some(c.table_id),
            table_name: c.table_name.clone(),
            priority: Some(c.priority),
            ..Resolved::default()
        };
        let mut chosen = Vec::new();
        if c.mark_chosen && needs_mark {
            chosen.push(format!("mark {:#x}/{:#x}", c.mark, c.mask));
        }
        if c.priority_chosen {
            chosen.push(format!("priority {}", c.priority));
        }
        if through.table.is_none() {
            chosen.push(format!("table {}", c.table_id));
        }
        if !chosen.is_empty() {
            notes.push(named(&format!(
                "Chosen free on this host: {}; set them in the profile to keep them the \
                 same everywhere.",
                chosen.join(", ")
            )));
        }
        let before = problems.len();
        conflicts::check(
            &through,
            &c,
            profile.marker.is_some(),
            facts,
            problems,
            warnings,
        );
        if several {
            for p in &mut problems[before..] {
                *p = named(p);
            }
        }
        if c.needs_dropin {
            dropins.push(class.name.clone());
        }
        taken.add(&c);
        out.push(ClassPlan {
            chosen: choice.index,
            why: choice.why,
            resolved,
            through,
            class,
        });
    }
    // What the profile could not see: a table name that is a number here.
    for (i, a) in out.iter().enumerate() {
        for b in &out[..i] {
            let (ra, rb) = (&a.resolved, &b.resolved);
            if ra.table_id == rb.table_id {
                return Err(PlanError {
                    problems: vec![format!(
                        "classes {} and {} both route by table {} on this host: give one of \
                         them another table",
                        b.class.name,
                        a.class.name,
                        ra.table_id.unwrap_or(0)
                    )],
                });
            }
        }
    }
    if dropins.len() > 1 {
        return Err(PlanError {
            problems: vec![format!(
                "classes {} each need a table name of their own, but dscproute's rt_tables \
                 drop-in holds one: give all but one a table number (table = 101), or a name \
                 already in /etc/iproute2/rt_tables",
                dropins.join(", ")
            )],
        });
    }
    if several {
        notes.push(
            "Each class routes through the first of its uplinks that is usable now (there, up, \
             next hop on-link), chosen when this plan is made; apply again to move a class to \
             another uplink, or run `dscproute agent`, which moves it as uplinks go down, come \
             back and fail or pass their checks."
                .into(),
        );
    }
    Ok(out)
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
