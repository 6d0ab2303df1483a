//! Client recipes: the client role of a profile as a self-contained text for
//! a host that cannot run dscproute (a Linux host without it, one managed
//! by nftables.conf, a Windows PC, an OpenWrt router). Pure: (profile,
//! facts of the target host, request) -> text. Each recipe says what it
//! does, how to undo it, and how to check on the gateway that the DSCP
//! arrives.

mod linux_sh;
mod nftables;
mod openwrt;
mod windows;

pub use nftables::{TABLE as NFT_TABLE, nft_table};
pub use openwrt::{CHAIN as OPENWRT_CHAIN, SNIPPET_PATH as OPENWRT_PATH};

use crate::plan::{PlanError, Resolved};
use crate::probe::HostFacts;
use crate::profile::{Marker, Profile, Who as ProfileWho};
use serde::Serialize;
use thiserror::Error;

/// The kinds of client a recipe is written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// A POSIX sh script with apply and undo (iptables), as `plan --script`.
    LinuxSh,
    /// An `nft -f` file with a table of its own.
    Nftables,
    /// PowerShell: a per-application QoS policy.
    Windows,
    /// An fw4 include for an OpenWrt router that forwards its LAN.
    Openwrt,
}

impl Target {
    pub const ALL: [Target; 4] = [
        Target::LinuxSh,
        Target::Nftables,
        Target::Windows,
        Target::Openwrt,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::LinuxSh => "linux-sh",
            Target::Nftables => "nftables",
            Target::Windows => "windows",
            Target::Openwrt => "openwrt",
        }
    }

    /// What the TUI shows next to the name.
    pub fn summary(self) -> &'static str {
        match self {
            Target::LinuxSh => "Linux without dscproute: sh script with apply and undo",
            Target::Nftables => "Linux managed by nftables.conf: an nft -f file",
            Target::Windows => "Windows: PowerShell QoS policy for one program (needs its path)",
            Target::Openwrt => "OpenWrt router: fw4 include marking a LAN prefix (needs it)",
        }
    }
}

/// What the caller asks for, besides the profile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// Windows: the program to mark (the profile's group means nothing there).
    pub app: Option<String>,
    /// OpenWrt: the LAN prefixes whose forwarded packets are marked.
    pub src: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Recipe {
    pub target: Target,
    pub dscp: u8,
    /// The recipe, ready to save or pipe.
    pub text: String,
    /// To show apart from the text (stderr in the CLI).
    pub warnings: Vec<String>,
}

/// Why no recipe: bad input (`Refused` aside) leaves nothing to print.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum RecipeError {
    #[error(
        "{0} has no [marker]: a client recipe writes the client role; add [marker] with group \
         and dscp"
    )]
    NoMarker(String),
    #[error(
        "--for windows needs --app PATH: the program to mark, like \
         'C:\\Program Files\\qBittorrent\\qbittorrent.exe' or qbittorrent.exe"
    )]
    NeedsApp,
    #[error("--app {0}")]
    BadApp(String),
    #[error(
        "--for openwrt needs --src CIDR: the LAN prefix whose forwarded traffic is marked, like \
         192.168.1.0/24 (repeat it for IPv6, like fd00:1::/64)"
    )]
    NeedsSrc,
    #[error("--src {0}")]
    BadSrc(String),
    #[error("--{0} only goes with --for {1}")]
    Unused(&'static str, &'static str),
    #[error(
        "a `{0}` marker is known only on its own host (its cgroup): run dscproute there, or use \
         a group or user marker for a client recipe"
    )]
    NeedsHost(String),
    /// The target host does not allow the plan (from recorded facts).
    #[error("{}", .0.join("; "))]
    Refused(Vec<String>),
}

impl RecipeError {
    /// Bad input (exit 2), as opposed to a host that refuses (exit 3).
    pub fn is_usage(&self) -> bool {
        !matches!(self, RecipeError::Refused(_))
    }
}

impl From<PlanError> for RecipeError {
    fn from(e: PlanError) -> RecipeError {
        RecipeError::Refused(e.problems)
    }
}

/// Whose packets the client marks, as the recipes match them: the one
/// place a kind of marker adds its match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Who {
    /// Sockets of this group: a gid, or a name the client host resolves.
    Group(String),
    /// Sockets of this user: a uid, or a name the client host resolves.
    User(String),
}

/// The marker as a recipe can match it on another host. A unit or a cgroup
/// is known only where it runs (its cgroup, the cgroup2 mount), so those
/// are refused: run dscproute on that host instead.
pub fn who(m: &Marker, r: &Resolved) -> Result<Who, RecipeError> {
    match &m.who {
        ProfileWho::Group(g) => Ok(Who::Group(r.group.clone().unwrap_or_else(|| g.to_string()))),
        ProfileWho::User(u) => Ok(Who::User(r.user.clone().unwrap_or_else(|| u.to_string()))),
        ProfileWho::Unit(_) | ProfileWho::Cgroup(_) => {
            Err(RecipeError::NeedsHost(m.who.kind().to_string()))
        }
    }
}

impl Who {
    /// The nft match for the sockets of locally generated packets. nft
    /// resolves a name when the file is loaded, on the client.
    pub fn nft_match(&self) -> String {
        let (key, v) = match self {
            Who::Group(g) => ("skgid", g),
            Who::User(u) => ("skuid", u),
        };
        if v.parse::<u32>().is_ok() {
            format!("meta {key} {v}")
        } else {
            format!("meta {key} \"{v}\"")
        }
    }

    /// "group torrent", for the comments.
    pub fn whom(&self) -> String {
        match self {
            Who::Group(g) => format!("group {g}"),
            Who::User(u) => format!("user {u}"),
        }
    }

    /// "processes of group torrent".
    pub fn describe(&self) -> String {
        format!("processes of {}", self.whom())
    }

    /// How to get a program into it.
    pub fn how_to_join(&self) -> String {
        match self {
            Who::Group(g) => format!(
                "run it with that group: `sg {g} -c CMD`, `setpriv --regid {g} \
                 --clear-groups CMD` or `Group={g}` in its systemd unit"
            ),
            Who::User(u) => format!(
                "run it as that user: `runuser -u {u} -- CMD` or `User={u}` in its systemd unit"
            ),
        }
    }
}

/// The line that checks, on the gateway, that the DSCP arrives.
fn gateway_check(dscp: u8) -> String {
    format!(
        "dscproute watch --interface LAN --dscp {dscp}   (LAN: the gateway's interface towards \
         this client)"
    )
}

/// The client recipe of `profile` for `target`. `facts` describe the
/// client host when recorded there (`dscproute facts --json`); without
/// them (`HostFacts::default()`) nothing of it is known and the recipe
/// takes free defaults (conntrack mark 0x1/0xff).
pub fn client_recipe(
    profile: &Profile,
    source: &str,
    facts: &HostFacts,
    target: Target,
    req: &Request,
) -> Result<Recipe, RecipeError> {
    let marker = profile
        .marker
        .as_ref()
        .ok_or_else(|| RecipeError::NoMarker(source.to_string()))?;
    if req.app.is_some() && target != Target::Windows {
        return Err(RecipeError::Unused("app", "windows"));
    }
    if !req.src.is_empty() && target != Target::Openwrt {
        return Err(RecipeError::Unused("src", "openwrt"));
    }
    if matches!(target, Target::LinuxSh | Target::Nftables)
        && matches!(marker.who, ProfileWho::Unit(_) | ProfileWho::Cgroup(_))
    {
        return Err(RecipeError::NeedsHost(marker.who.kind().to_string()));
    }
    let dscp = marker.dscp.value();
    let (text, warnings) = match target {
        Target::LinuxSh => linux_sh::render(marker, source, facts)?,
        Target::Nftables => nftables::render(marker, source, facts)?,
        Target::Windows => (
            windows::render(source, dscp, req.app.as_deref())?,
            Vec::new(),
        ),
        Target::Openwrt => (openwrt::render(source, dscp, &req.src)?, Vec::new()),
    };
    Ok(Recipe {
        target,
        dscp,
        text,
        warnings,
    })
}

/// The client role alone, planned for a host that is not this one (a
/// group unknown here is passed by name). Host problems refuse.
fn client_plan(m: &Marker, facts: &HostFacts) -> Result<crate::plan::Plan, RecipeError> {
    // The shell recipe is iptables: a client without dscproute may lack nft.
    let client = Profile {
        marker: Some(m.clone()),
        gateway: None,
        classes: Vec::new(),
        backend: crate::profile::Backend::Iptables,
    };
    let plan = crate::plan::plan(
        &client,
        facts,
        crate::plan::PlanOptions {
            for_script: true,
            ..Default::default()
        },
    )?;
    if !plan.is_applicable() {
        return Err(RecipeError::Refused(plan.errors));
    }
    Ok(plan)
}

/// `#`-comment lines from paragraphs, wrapped at about 78 columns.
fn comment_block(paragraphs: &[String]) -> String {
    let mut o = String::new();
    for (i, p) in paragraphs.iter().enumerate() {
        if i > 0 {
            o.push_str("#\n");
        }
        for line in p.lines() {
            // Indented lines are commands: kept whole.
            if line.starts_with("  ") {
                o.push_str(&format!("#{line}\n"));
                continue;
            }
            let mut cur = String::new();
            for word in line.split(' ') {
                if !cur.is_empty() && cur.len() + 1 + word.len() > 76 {
                    o.push_str(&format!("# {cur}\n"));
                    cur.clear();
                }
                if !cur.is_empty() {
                    cur.push(' ');
                }
                cur.push_str(word);
            }
            o.push_str(&format!("# {cur}\n"));
        }
    }
    o
}

#[cfg(test)]
mod tests;
