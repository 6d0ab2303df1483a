//! `windows`: PowerShell for a per-application QoS policy that sets the
//! DSCP. Windows has no notion of the profile's group: the program is
//! chosen by its path (`--app`). Values are put in single-quoted strings,
//! where PowerShell interprets nothing but the quote itself, which is
//! refused.

use super::{RecipeError, comment_block, gateway_check};

/// Where Windows reads the switch that lets QoS policies set the DSCP on a
/// PC outside a domain (a string value "1"; documented by Microsoft for
/// Skype for Business / Teams QoS; it takes effect after a reboot).
pub const QOS_KEY: &str = r"HKLM:\SYSTEM\CurrentControlSet\Services\Tcpip\QoS";
pub const NO_NLA: &str = "Do not use NLA";

/// Windows' MAX_PATH: a longer value is a mistake, not a path.
const MAX_APP: usize = 260;

/// PowerShell reads these as quotes too, typographic ones included.
const QUOTES: &[char] = &[
    '\'', '"', '`', '\u{2018}', '\u{2019}', '\u{201a}', '\u{201b}', '\u{201c}', '\u{201d}',
    '\u{201e}',
];

/// The program as `-AppPathNameMatchCondition` takes it: a file name or a
/// path, ending in .exe.
pub fn check_app(app: &str) -> Result<(), String> {
    let shown = format!("{:?}", crate::text::clip(app));
    let accepted = "use the program's .exe name or full path, like qbittorrent.exe or \
                    'C:\\Program Files\\qBittorrent\\qbittorrent.exe'";
    let why = if app.trim().is_empty() {
        Some("is empty")
    } else if app.chars().count() > MAX_APP {
        Some("is longer than 260 characters")
    } else if app.chars().any(char::is_control) {
        Some("holds a control character or a line break")
    } else if app.contains(QUOTES) {
        Some("holds a quote")
    } else if app.contains(['<', '>', '|', '?', '*']) {
        Some("holds a character Windows forbids in paths (< > | ? *)")
    } else if app.trim() != app {
        Some("starts or ends with a space")
    } else if !app.to_ascii_lowercase().ends_with(".exe") {
        Some("does not end in .exe")
    } else {
        None
    };
    match why {
        Some(why) => Err(format!("{shown} {why}: {accepted}")),
        None => Ok(()),
    }
}

/// `dscproute-NAME` from the program's file name, in letters, digits and
/// `-_.` only.
pub fn policy_name(app: &str) -> String {
    let file = app.rsplit(['\\', '/']).next().unwrap_or(app);
    let stem = &file[..file.len().saturating_sub(4)];
    let clean: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    format!("dscproute-{clean}")
}

pub fn render(source: &str, dscp: u8, app: Option<&str>) -> Result<String, RecipeError> {
    let app = app.ok_or(RecipeError::NeedsApp)?;
    check_app(app).map_err(RecipeError::BadApp)?;
    let name = policy_name(app);
    let header = comment_block(&[
        format!(
            "dscproute client recipe (windows) from {}: {app} sends DSCP {dscp}.",
            source.replace('\n', " ")
        ),
        format!(
            "What it does: the QoS policy {name}, which gives every packet the program sends \
             (TCP and UDP, IPv4 and IPv6, on every network profile) DSCP {dscp}. The profile's \
             group means nothing on Windows: the program is chosen by its path."
        ),
        format!(
            "Windows sets a policy's DSCP only where policy allows it. On a PC in a domain it \
             does so on the adapters that reach the domain; to manage it there, deploy the same \
             policy by Group Policy (Computer Configuration > Policies > Windows Settings > \
             Policy-based QoS). On a PC outside a domain it needs the string value \
             \"{NO_NLA}\" = \"1\" under {QOS_KEY} and a reboot: apply sets it when the PC is not \
             in a domain, and says when a reboot is due."
        ),
        "Apply, in an elevated PowerShell (Run as administrator); applying again replaces the \
         policy:\n  powershell -ExecutionPolicy Bypass -File dscproute-client.ps1 apply"
            .to_string(),
        format!(
            "Undo:\n  powershell -ExecutionPolicy Bypass -File dscproute-client.ps1 undo\n\
             which runs:\n  Remove-NetQosPolicy -Name '{name}' -Confirm:$false\n\
             It leaves \"{NO_NLA}\" in place (other policies may need it); remove it with \
             Remove-ItemProperty -Path '{QOS_KEY}' -Name '{NO_NLA}' and reboot."
        ),
        format!(
            "Check on this PC while the program sends, in an elevated prompt:\n  pktmon start \
             --capture\n  pktmon stop\n  pktmon etl2pcap PktMon.etl --out dscproute.pcapng\n\
             then open dscproute.pcapng in Wireshark (or capture with Wireshark directly) with \
             the filter:\n  ip.dsfield.dscp == {dscp} || ipv6.tclass.dscp == {dscp}\n\
             Check on the gateway:\n  {}",
            gateway_check(dscp)
        ),
    ]);
    Ok(format!(
        r#"{header}
param([ValidateSet('apply', 'undo')][string]$Action = 'apply')
$ErrorActionPreference = 'Stop'
$Name = '{name}'
$App = '{app}'
$QosKey = '{QOS_KEY}'

if ($Action -eq 'undo') {{
    Get-NetQosPolicy -Name $Name -ErrorAction SilentlyContinue | Remove-NetQosPolicy -Confirm:$false
    Write-Host "Removed the QoS policy $Name."
    exit 0
}}

Get-NetQosPolicy -Name $Name -ErrorAction SilentlyContinue | Remove-NetQosPolicy -Confirm:$false
New-NetQosPolicy -Name $Name -AppPathNameMatchCondition $App -DSCPAction {dscp} -NetworkProfile All -IPProtocolMatchCondition Both | Out-Null
Write-Host "QoS policy $Name in place: $App sends DSCP {dscp}."

# Outside a domain, Windows ignores a policy's DSCP without this switch.
if (-not (Get-CimInstance Win32_ComputerSystem).PartOfDomain) {{
    if (-not (Test-Path $QosKey)) {{ New-Item -Path $QosKey | Out-Null }}
    $now = (Get-ItemProperty -Path $QosKey -Name '{NO_NLA}' -ErrorAction SilentlyContinue).'{NO_NLA}'
    if ($now -ne '1') {{
        Set-ItemProperty -Path $QosKey -Name '{NO_NLA}' -Value '1' -Type String
        Write-Host "Set '{NO_NLA}' = 1 under $QosKey. Reboot for the DSCP to be set."
    }}
}}
"#
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apps() {
        for ok in [
            "qbittorrent.exe",
            r"C:\Program Files\qBittorrent\qbittorrent.EXE",
            r"%ProgramFiles%\App $x\a.exe",
        ] {
            assert_eq!(check_app(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("", "is empty"),
            ("a'b.exe", "holds a quote"),
            ("a\u{2019}b.exe", "holds a quote"),
            ("a\"b.exe", "holds a quote"),
            ("a\nb.exe", "control character"),
            ("a*.exe", "forbids"),
            ("qbittorrent", "does not end in .exe"),
            (" a.exe", "starts or ends with a space"),
        ] {
            let e = check_app(bad).unwrap_err();
            assert!(e.contains(why) && !e.contains('\n'), "{bad:?}: {e}");
        }
        assert!(check_app(&format!("{}.exe", "a".repeat(300))).is_err());
    }

    #[test]
    fn policy_names() {
        assert_eq!(
            policy_name(r"C:\Program Files\qBittorrent\qbittorrent.exe"),
            "dscproute-qbittorrent"
        );
        assert_eq!(policy_name("my app (x64).EXE"), "dscproute-my-app--x64-");
    }
}
