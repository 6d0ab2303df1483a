//! `match = "dscp-rule"`: whether this host can route on `ip rule … dscp N`
//! (the FIB rule DSCP selector: Linux ≥ 6.12 for the kernel attribute,
//! iproute2 ≥ 6.13 for the keyword; iproute2 6.1 refuses it with "Failed to
//! parse rule type"), and what the preview says about the mode.

use crate::probe::HostFacts;
use crate::profile::{Gateway, MatchMode};

pub const MIN_KERNEL: (u32, u32) = (6, 12);
pub const MIN_IPROUTE2: (u32, u32) = (6, 13);

/// "6.18.44-fc-v1272" or "6.15.0" -> (6, 18) / (6, 15); None for anything
/// else (iproute2's old snapshot names such as "ss200127").
pub fn major_minor(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Problems (apply refuses) and warnings (a version could not be read) for
/// a gateway in dscp-rule mode; nothing for the mark mode.
pub fn check(
    g: &Gateway,
    facts: &HostFacts,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) {
    if g.match_mode != MatchMode::DscpRule {
        return;
    }
    if g.mark.is_some() || g.mask.is_some() {
        warnings.push(
            "gateway.mark and gateway.mask route nothing with match = \"dscp-rule\" (no mark on \
             the routing path); on a host that is also the client they only tag its connections"
                .into(),
        );
    }
    let (kmaj, kmin) = MIN_KERNEL;
    let (imaj, imin) = MIN_IPROUTE2;
    match facts.iproute2_version.as_deref() {
        Some(v) if major_minor(v).is_none_or(|have| have < MIN_IPROUTE2) => problems.push(format!(
            "match = \"dscp-rule\" needs iproute2 ≥ {imaj}.{imin} (this host has {v}): install \
             iproute2 from bookworm-backports, or use match = \"mark\""
        )),
        Some(_) => {}
        None => warnings.push(format!(
            "match = \"dscp-rule\": the iproute2 version is unknown (`ip -V` gave nothing \
             readable); `ip rule … dscp` needs iproute2 ≥ {imaj}.{imin}"
        )),
    }
    match facts.kernel.as_deref() {
        Some(k) if major_minor(k).is_none_or(|have| have < MIN_KERNEL) => problems.push(format!(
            "match = \"dscp-rule\" needs Linux ≥ {kmaj}.{kmin} (this host runs {k}): boot a newer \
             kernel (bookworm-backports has one), or use match = \"mark\""
        )),
        Some(_) => {}
        None => warnings.push(format!(
            "match = \"dscp-rule\": the kernel version is unknown; the `ip rule` DSCP selector \
             needs Linux ≥ {kmaj}.{kmin}"
        )),
    }
}

/// The preview's word on the mode.
pub fn note(g: &Gateway) -> Option<String> {
    (g.match_mode == MatchMode::DscpRule).then(|| {
        let d = g.dscp.value();
        format!(
            "match = \"dscp-rule\": `ip rule … dscp {d}` routes on the DSCP itself, with no \
             firewall mark on the routing path (no mark bits to share with Tailscale, mwan3 or \
             wg-quick). Masquerade and the scrub still use netfilter. A connection stays on the \
             VPN because the client marks every packet of it with DSCP {d}."
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gw(mode: &str) -> Gateway {
        let text = format!("[gateway]\ndscp = 7\ninterface = \"wg0\"\nmatch = \"{mode}\"\n");
        crate::profile::Profile::parse(&text, "t")
            .unwrap()
            .gateway
            .unwrap()
    }

    fn facts(kernel: &str, ip: &str) -> HostFacts {
        HostFacts {
            kernel: Some(kernel.into()),
            iproute2_version: Some(ip.into()),
            ..HostFacts::default()
        }
    }

    fn run(g: &Gateway, f: &HostFacts) -> (Vec<String>, Vec<String>) {
        let (mut p, mut w) = (Vec::new(), Vec::new());
        check(g, f, &mut p, &mut w);
        (p, w)
    }

    #[test]
    fn versions_read_as_major_minor() {
        assert_eq!(major_minor("6.18.44-fc-v1272"), Some((6, 18)));
        assert_eq!(major_minor("6.15.0"), Some((6, 15)));
        assert_eq!(major_minor("6.1.0-18-amd64"), Some((6, 1)));
        assert_eq!(major_minor("6.12"), Some((6, 12)));
        assert_eq!(major_minor("ss200127"), None);
    }

    #[test]
    fn old_iproute2_is_refused_in_one_line_naming_the_fix() {
        let (p, w) = run(&gw("dscp-rule"), &facts("6.18.44", "6.1.0"));
        assert_eq!(
            p,
            [
                "match = \"dscp-rule\" needs iproute2 ≥ 6.13 (this host has 6.1.0): install \
              iproute2 from bookworm-backports, or use match = \"mark\""
            ]
        );
        assert!(w.is_empty());
        // 6.12's ip has no dscp keyword either; a snapshot name is older still.
        assert_eq!(
            run(&gw("dscp-rule"), &facts("6.18.44", "6.12.0")).0.len(),
            1
        );
        assert_eq!(
            run(&gw("dscp-rule"), &facts("6.18.44", "ss200127")).0.len(),
            1
        );
    }

    #[test]
    fn old_kernel_is_refused_and_new_enough_hosts_pass() {
        let (p, _) = run(&gw("dscp-rule"), &facts("6.11.9", "6.15.0"));
        assert_eq!(p.len(), 1);
        assert!(
            p[0].contains("needs Linux ≥ 6.12 (this host runs 6.11.9)"),
            "{p:?}"
        );
        assert_eq!(
            run(&gw("dscp-rule"), &facts("6.12.0", "6.13.0")),
            (vec![], vec![])
        );
        // The mark mode works anywhere.
        assert_eq!(
            run(&gw("mark"), &facts("5.10.0", "5.10.0")),
            (vec![], vec![])
        );
    }

    #[test]
    fn a_mark_in_dscp_rule_mode_is_pointed_out() {
        let text = "[gateway]\ndscp = 7\ninterface = \"wg0\"\nmark = 3\nmatch = \"dscp-rule\"\n";
        let g = crate::profile::Profile::parse(text, "t")
            .unwrap()
            .gateway
            .unwrap();
        let (p, w) = run(&g, &facts("6.18.44", "6.15.0"));
        assert!(p.is_empty());
        assert_eq!(w.len(), 1);
        assert!(
            w[0].starts_with("gateway.mark and gateway.mask route nothing"),
            "{w:?}"
        );
    }

    #[test]
    fn unknown_versions_warn() {
        let (p, w) = run(&gw("dscp-rule"), &HostFacts::default());
        assert!(p.is_empty());
        assert_eq!(w.len(), 2, "{w:?}");
    }
}

/// Whole plans in dscp-rule mode, from the facts recorded for the mark mode
/// (tests/fixtures/plan), with a new enough iproute2 where needed.
#[cfg(test)]
mod plan_tests {
    use crate::backend::{Effect, Op};
    use crate::plan::{Plan, PlanOptions, StepState, plan};
    use crate::probe::{HostFacts, Rule};
    use crate::profile::Profile;

    fn facts(name: &str, ip: &str) -> HostFacts {
        let path = format!("{}/tests/fixtures/plan/{name}", env!("CARGO_MANIFEST_DIR"));
        let mut f: HostFacts =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        f.kernel = Some("6.18.44".into());
        f.iproute2_version = Some(ip.into());
        f
    }

    const PROFILE: &str = "[gateway]\ndscp = 7\ninterface = \"wg0\"\nvia = \"10.8.0.1\"\n\
                           via6 = \"fd00::1\"\ntable = \"vpn\"\ntable_id = 100\npriority = 10000\n\
                           match = \"dscp-rule\"\n";

    fn plan_of(f: &HostFacts) -> Plan {
        plan(
            &Profile::parse(PROFILE, "t").unwrap(),
            f,
            PlanOptions::default(),
        )
        .unwrap()
    }

    fn shown(p: &Plan) -> Vec<String> {
        p.steps.iter().map(|s| s.apply.display()).collect()
    }

    fn at(p: &Plan, cmd: &str) -> usize {
        shown(p)
            .iter()
            .position(|s| s == cmd)
            .unwrap_or_else(|| panic!("no `{cmd}` in {:#?}", shown(p)))
    }

    #[test]
    fn policy_rules_select_the_dscp_and_nothing_marks() {
        let p = plan_of(&facts("gateway-clean.json", "6.15.0"));
        assert!(p.is_applicable(), "{:?}", p.errors);
        assert_eq!((p.resolved.mark, p.resolved.mask), (None, None));
        for fam in ["-4", "-6"] {
            let lan = at(
                &p,
                &format!(
                    "ip {fam} rule add pref 9999 dscp 7 lookup main suppress_prefixlength 0 proto 213"
                ),
            );
            let lookup = at(
                &p,
                &format!("ip {fam} rule add pref 10000 dscp 7 lookup 100 proto 213"),
            );
            let kill = at(
                &p,
                &format!("ip {fam} rule add pref 10001 dscp 7 unreachable proto 213"),
            );
            assert!(lan < lookup && lookup < kill);
            let undo = &p.steps[kill].undo;
            assert_eq!(
                undo.effect(),
                Effect::run(
                    format!("ip {fam} rule del pref 10001 dscp 7 unreachable proto 213")
                        .split(' ')
                        .map(String::from)
                        .collect()
                )
            );
        }
        let all = shown(&p).join("\n");
        // No mark anywhere: no marking chain, no PREROUTING jump, no fwmark.
        for gone in ["fwmark", "DSCPROUTE-ROUTE", "PREROUTING", "MARK", "--mark"] {
            assert!(!all.contains(gone), "{gone} in\n{all}");
        }
        // Masquerade by interface, scrub by DSCP, both linked on wg0.
        at(&p, "iptables -w -t nat -A DSCPROUTE-NAT -j MASQUERADE");
        at(&p, "ip6tables -w -t nat -A DSCPROUTE-NAT -j MASQUERADE");
        assert!(
            all.contains("-m dscp --dscp 0x07 -j DSCP --set-dscp 0x00"),
            "{all}"
        );
        // The rules start the routing: they come after every netfilter step.
        let last_nf = p
            .steps
            .iter()
            .rposition(|s| matches!(s.apply, Op::Netfilter { .. }))
            .unwrap();
        let first_rule = p
            .steps
            .iter()
            .position(|s| matches!(s.apply, Op::PolicyRule { .. }))
            .unwrap();
        assert!(last_nf < first_rule, "{all}");
        assert!(
            p.notes
                .iter()
                .any(|n| n.contains("routes on the DSCP itself"))
        );
        let reason =
            &p.steps[at(&p, "ip -4 rule add pref 10000 dscp 7 lookup 100 proto 213")].reason;
        assert!(
            reason.contains("no firewall mark on the routing path"),
            "{reason}"
        );
    }

    #[test]
    fn an_old_iproute2_leaves_the_preview_but_refuses() {
        let p = plan_of(&facts("gateway-clean.json", "6.1.0"));
        assert!(!p.is_applicable());
        assert_eq!(
            p.errors,
            [
                "match = \"dscp-rule\" needs iproute2 ≥ 6.13 (this host has 6.1.0): install \
              iproute2 from bookworm-backports, or use match = \"mark\""
            ]
        );
    }

    #[test]
    fn rules_printed_by_ip_are_in_place_by_number_or_name() {
        let mut f = facts("gateway-clean.json", "6.15.0");
        let ours = |priority, dscp: &str, table: Option<&str>, action: Option<&str>| Rule {
            priority,
            src: Some("all".into()),
            table: table.map(String::from),
            action: action.map(String::from),
            protocol: Some("213".into()),
            dscp: Some(dscp.into()),
            dscp_mask: Some(0x3f),
            suppress_prefixlength: (priority == 9999).then_some(0),
            ..Rule::default()
        };
        f.rules_v4.extend([
            ours(9999, "7", Some("main"), None),
            ours(10000, "7", Some("100"), None),
            ours(10001, "7", None, Some("unreachable")),
            // An earlier dscp-rule setup for EF (46): a leftover to remove.
            ours(10002, "EF", None, Some("unreachable")),
        ]);
        let p = plan_of(&f);
        let state = |cmd: &str| p.steps[at(&p, cmd)].state;
        assert_eq!(
            state("ip -4 rule add pref 10000 dscp 7 lookup 100 proto 213"),
            StepState::InPlace
        );
        assert_eq!(
            state("ip -4 rule add pref 10001 dscp 7 unreachable proto 213"),
            StepState::InPlace
        );
        assert_eq!(
            state("ip -6 rule add pref 10000 dscp 7 lookup 100 proto 213"),
            StepState::Add
        );
        assert_eq!(
            state("ip -4 rule del pref 10002 dscp 46 unreachable proto 213"),
            StepState::Change
        );
    }

    #[test]
    fn a_rule_of_ours_shown_without_its_dscp_is_an_error_not_a_guess() {
        // What iproute2 6.1 lists for `pref 10000 dscp 7 lookup 100 proto 213`.
        let mut f = facts("gateway-clean.json", "6.15.0");
        f.rules_v6.push(Rule {
            priority: 20000,
            src: Some("all".into()),
            table: Some("100".into()),
            protocol: Some("213".into()),
            ..Rule::default()
        });
        let p = plan_of(&f);
        assert!(
            p.errors.iter().any(|e| e.starts_with(
                "IPv6 policy rule 20000 carries dscproute's protocol but this ip shows no selector"
            ) && e.contains("`ip -6 rule del pref 20000 proto 213`")),
            "{:?}",
            p.errors
        );
    }

    #[test]
    fn switching_from_the_mark_removes_the_mark_setup() {
        let p = plan_of(&facts("gateway-applied.json", "6.15.0"));
        let removals: Vec<String> = p
            .steps
            .iter()
            .filter(|s| s.state == StepState::Change && s.apply.is_removal())
            .map(|s| s.apply.display())
            .collect();
        let all = removals.join("\n");
        assert!(
            all.contains("ip -4 rule del pref 10000 fwmark 0x3/0xff lookup 100 proto 213"),
            "{all}"
        );
        assert!(all.contains("DSCPROUTE-ROUTE"), "{all}");
    }
}
