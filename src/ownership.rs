//! How dscproute recognises what it created: its own chains, a comment tag on
//! the jumps into them, its own iproute2 protocol number on routes and rules.
//! Rollback and status touch only what carries these marks. A leaf module:
//! the profile's defaults, the planner, the probe and the checks share it.

/// iproute2 `proto` number on every route and rule we add. Unassigned in
/// iproute2's rt_protos (which names 0–18, 42, 99, 186–192).
pub const RT_PROTO: u32 = 213;

/// `-m comment --comment` value on every jump from a built-in chain.
pub const COMMENT: &str = "dscproute";

/// Prefix of every chain we create.
pub const CHAIN_PREFIX: &str = "DSCPROUTE-";

/// mangle OUTPUT: set the DSCP on the client's group (and mark local packets
/// when the host is also the gateway).
pub const CHAIN_MARK: &str = "DSCPROUTE-MARK";
/// mangle PREROUTING: turn the DSCP of forwarded packets into a firewall mark.
pub const CHAIN_ROUTE: &str = "DSCPROUTE-ROUTE";
/// mangle POSTROUTING on the VPN egress: reset our DSCP so it stays private.
pub const CHAIN_SCRUB: &str = "DSCPROUTE-SCRUB";
/// nat POSTROUTING on the VPN egress: masquerade marked packets.
pub const CHAIN_NAT: &str = "DSCPROUTE-NAT";

/// File name of our routing-table name drop-in in `rt_tables.d/`.
pub const RT_TABLES_DROPIN: &str = "/etc/iproute2/rt_tables.d/dscproute.conf";

/// Default routing table name when the profile names none.
pub const DEFAULT_TABLE_NAME: &str = "dscproute";

/// Default lookup-rule priority: well before main (32766), clear of Tailscale
/// (5210–5270), OpenWrt pbr (30000 down) and wg-quick (32764/32765).
pub const DEFAULT_PRIORITY: u32 = 10000;

/// Default mark bits: the low byte is clear of Tailscale/pbr/Calico (high
/// bits), Kubernetes (0x4000/0x8000), Cilium (0x0f00) and mwan3 (0x3f00).
pub const DEFAULT_MASK: u32 = 0xff;

pub fn is_our_proto(protocol: Option<&str>) -> bool {
    protocol.is_some_and(|p| p == RT_PROTO.to_string())
}
