//! One-line version banners: `uname -r`, `ip -V`, `iptables -V`.

use super::IptablesBackend;
use super::error::ParseError;

/// `uname -r`: the first line, trimmed.
pub fn parse_kernel(text: &str) -> Result<String, ParseError> {
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        return Err(ParseError::Unrecognised(text.to_string()));
    }
    Ok(line.to_string())
}

/// `ip -V`: "ip utility, iproute2-6.1.0, libbpf 1.1.2" -> "6.1.0". Newer
/// releases drop the libbpf part, older ones print snapshot names
/// ("iproute2-ss200127"), which pass through as printed.
pub fn parse_ip_version(text: &str) -> Result<String, ParseError> {
    let unrecognised = || ParseError::Unrecognised(text.trim().to_string());
    let (_, rest) = text.split_once("iproute2-").ok_or_else(unrecognised)?;
    let version: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ',')
        .collect();
    let version = version.strip_prefix('v').unwrap_or(&version);
    if version.is_empty() {
        return Err(unrecognised());
    }
    Ok(version.to_string())
}

/// `iptables -V`: "iptables v1.8.9 (nf_tables)" or "(legacy)". Releases
/// before 1.8 print no backend: they only had the legacy one.
pub fn parse_iptables_backend(text: &str) -> Result<IptablesBackend, ParseError> {
    let line = text.lines().next().unwrap_or("").trim();
    if line.contains("(nf_tables)") {
        Ok(IptablesBackend::NfTables)
    } else if line.contains("(legacy)") || (line.starts_with("iptables v") && !line.contains('(')) {
        Ok(IptablesBackend::Legacy)
    } else {
        Err(ParseError::Unrecognised(line.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::fixtures;

    #[test]
    fn kernel_release_from_recorded_output() {
        let kernel = parse_kernel(fixtures::UNAME_R).unwrap();
        assert!(kernel.starts_with("6.18."), "{kernel}");
        assert!(parse_kernel("\n").is_err());
    }

    #[test]
    fn iproute2_version_in_every_known_banner() {
        assert_eq!(parse_ip_version(fixtures::IP_V).unwrap(), "6.1.0");
        for (banner, want) in [
            ("ip utility, iproute2-6.13.0\n", "6.13.0"),
            ("ip utility, iproute2-6.13.0, libbpf 1.5.0\n", "6.13.0"),
            ("iproute2-6.13.0\n", "6.13.0"),
            ("ip utility, iproute2-5.10.0\n", "5.10.0"),
            ("ip utility, iproute2-ss200127\n", "ss200127"),
        ] {
            assert_eq!(parse_ip_version(banner).unwrap(), want, "{banner}");
        }
        // BusyBox ip has no -V.
        assert!(parse_ip_version("ip: invalid option -- 'V'").is_err());
    }

    #[test]
    fn iptables_backend_from_banner() {
        assert_eq!(
            parse_iptables_backend(fixtures::IPTABLES_V).unwrap(),
            IptablesBackend::NfTables
        );
        assert_eq!(
            parse_iptables_backend("iptables v1.8.7 (legacy)\n").unwrap(),
            IptablesBackend::Legacy
        );
        assert_eq!(
            parse_iptables_backend("iptables v1.6.1\n").unwrap(),
            IptablesBackend::Legacy
        );
        assert!(parse_iptables_backend("").is_err());
    }
}
