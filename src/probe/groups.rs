//! `getent group`: one "name:password:gid:member,member" line per group.

use super::Group;

/// Lines that are not four fields with a numeric gid (none in practice) are
/// skipped: a group the planner cannot name by gid is of no use to it.
pub fn parse_groups(text: &str) -> Vec<Group> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?.trim();
            let _password = fields.next()?;
            let gid = fields.next()?.trim().parse().ok()?;
            let members = fields
                .next()?
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(String::from)
                .collect();
            (!name.is_empty()).then(|| Group {
                name: name.to_string(),
                gid,
                members,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::fixtures;

    #[test]
    fn recorded_host_groups() {
        let groups = parse_groups(fixtures::GETENT_GROUP);
        assert_eq!(groups.len(), fixtures::GETENT_GROUP.lines().count());
        let root = groups.iter().find(|g| g.name == "root").unwrap();
        assert_eq!((root.gid, root.members.len()), (0, 0));
        let ssl = groups.iter().find(|g| g.name == "ssl-cert").unwrap();
        assert_eq!(ssl.members, ["postgres"]);
    }

    #[test]
    fn members_and_malformed_lines() {
        let groups = parse_groups("vpn:x:2000:alice,bob\nbroken:x:notanumber:\nshort:x\n\n");
        assert_eq!(
            groups,
            [Group {
                name: "vpn".into(),
                gid: 2000,
                members: vec!["alice".into(), "bob".into()],
            }]
        );
    }
}
