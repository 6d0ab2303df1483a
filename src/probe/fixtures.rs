//! Recorded real outputs (see tests/fixtures/probe/record.sh), shared by the
//! probe's unit tests.

macro_rules! fixture {
    ($name:ident, $file:literal) => {
        pub const $name: &str = include_str!(concat!("../../tests/fixtures/probe/", $file));
    };
}

fixture!(IP_ADDR, "ip-addr.json");
fixture!(IP_4_ROUTE, "ip-4-route.json");
fixture!(IP_6_ROUTE, "ip-6-route.json");
fixture!(IP_4_RULE, "ip-4-rule.json");
fixture!(IP_6_RULE, "ip-6-rule.json");
fixture!(IPTABLES_SAVE, "iptables-save.txt");
fixture!(IP6TABLES_SAVE, "ip6tables-save.txt");
fixture!(GETENT_GROUP, "getent-group.txt");
fixture!(IP_V, "ip-V.txt");
fixture!(IPTABLES_V, "iptables-V.txt");
fixture!(UNAME_R, "uname-r.txt");
fixture!(IP_TABLES_MATCHES, "ip_tables_matches.txt");
fixture!(IP_TABLES_TARGETS, "ip_tables_targets.txt");
fixture!(PROC_SYS, "proc-sys.txt");
