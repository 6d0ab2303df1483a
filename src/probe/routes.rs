//! `ip -j -4|-6 route show table all`.

use super::Route;
use super::error::ParseError;
use serde::Deserialize;

#[derive(Deserialize)]
struct RawRoute {
    /// Absent for unicast.
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    dst: String,
    gateway: Option<String>,
    /// An IPv4 next hop of an IPv6 route ("via inet 192.0.2.1").
    via: Option<RawVia>,
    dev: Option<String>,
    /// Absent for main.
    table: Option<String>,
    /// Absent for "boot", the default of `ip route add`.
    protocol: Option<String>,
    metric: Option<u32>,
    /// Absent for "global" (universe).
    scope: Option<String>,
}

#[derive(Deserialize)]
struct RawVia {
    host: Option<String>,
}

pub fn parse_routes(json: &str) -> Result<Vec<Route>, ParseError> {
    let raw: Vec<RawRoute> = serde_json::from_str(json)?;
    Ok(raw
        .into_iter()
        .map(|r| Route {
            dst: r.dst,
            kind: r.kind.unwrap_or_else(|| "unicast".into()),
            gateway: r.gateway.or_else(|| r.via.and_then(|v| v.host)),
            dev: r.dev,
            table: r.table.unwrap_or_else(|| "main".into()),
            protocol: r.protocol,
            metric: r.metric,
            scope: r.scope,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::fixtures;

    fn find<'a>(routes: &'a [Route], table: &str, kind: &str, dst: &str) -> &'a Route {
        routes
            .iter()
            .find(|r| r.table == table && r.kind == kind && r.dst == dst)
            .unwrap_or_else(|| panic!("no {kind} {dst} in table {table}"))
    }

    #[test]
    fn recorded_ipv4_routes() {
        let routes = parse_routes(fixtures::IP_4_ROUTE).unwrap();

        let main_default = find(&routes, "main", "unicast", "default");
        assert_eq!(main_default.gateway.as_deref(), Some("192.0.2.1"));
        assert_eq!(main_default.dev.as_deref(), Some("eth0"));
        assert_eq!(main_default.protocol, None); // "boot" is not printed
        assert_eq!(main_default.metric, None);

        let vpn_default = find(&routes, "100", "unicast", "default");
        assert_eq!(vpn_default.dev.as_deref(), Some("wg0"));
        assert_eq!(vpn_default.protocol.as_deref(), Some("77"));
        assert_eq!(vpn_default.scope.as_deref(), Some("link"));

        let unreachable = find(&routes, "100", "unreachable", "default");
        assert_eq!(unreachable.metric, Some(4278198272));
        assert_eq!(unreachable.dev, None);

        let via = find(&routes, "100", "unicast", "198.51.100.0/24");
        assert_eq!(via.gateway.as_deref(), Some("10.64.0.1"));
        assert_eq!(via.metric, Some(50));

        find(&routes, "100", "blackhole", "203.0.113.0/24");
        let local = find(&routes, "local", "local", "127.0.0.0/8");
        assert_eq!(local.protocol.as_deref(), Some("kernel"));
        assert_eq!(local.scope.as_deref(), Some("host"));
        find(&routes, "local", "broadcast", "192.0.2.255");
    }

    #[test]
    fn recorded_ipv6_routes() {
        let routes = parse_routes(fixtures::IP_6_ROUTE).unwrap();
        let unreachable = find(&routes, "100", "unreachable", "default");
        // IPv6 unreachable routes hang off lo.
        assert_eq!(unreachable.dev.as_deref(), Some("lo"));
        assert_eq!(
            find(&routes, "100", "unicast", "default").metric,
            Some(1024)
        );
        assert_eq!(
            find(&routes, "main", "unicast", "default")
                .gateway
                .as_deref(),
            Some("2001:db8:1::1")
        );
        find(&routes, "local", "multicast", "ff00::/8");
    }

    #[test]
    fn ipv4_next_hop_of_ipv6_route() {
        let routes = parse_routes(
            r#"[{"dst":"default","via":{"family":"inet","host":"192.0.2.1"},"dev":"eth0"}]"#,
        )
        .unwrap();
        assert_eq!(routes[0].gateway.as_deref(), Some("192.0.2.1"));
        assert!(parse_routes(r#"[{"dst":"default","metric":"x"}]"#).is_err());
    }
}
