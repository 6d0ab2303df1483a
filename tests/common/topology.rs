//! The dscproute lab (docs/design.md §8), built from network namespaces:
//!
//! ```text
//!  A ── eth0 ─ lan0 ── B ── lan1 ─ eth0 ── lan2      192.168.60.0/24, fd60::/64
//!  192.168.50.0/24     │
//!  fd50::/64           ├── up0 ─ eth0 ── isp       100.64.0.0/24, fd64::/64 (B's default route)
//!                      └── wg0 ─ eth0 ── vpn       10.8.0.0/24, fd00::/64 (the "VPN" link)
//! ```
//!
//! The test address 198.51.100.1 / 2001:db8:100::1 lives on both `isp` and
//! `vpn` (on their `lo`), and each answers HTTP with its own name, so one
//! request tells which way a packet went. `isp` routes the LANs back to B;
//! `vpn` knows only the tunnel subnet (masquerade is what makes replies
//! come back). B starts with forwarding off: turning it on is dscproute's job.
//!
//! Every namespace gets its own `/etc/netns/NAME/iproute2/` (a copy of the
//! host's /etc/iproute2 with an empty rt_tables.d), so the table name
//! dscproute writes lands there and never in the host's /etc. It is removed
//! on drop, also when a test panics.
//!
//! Also here: running `dscproute` and `curl` inside a namespace, a state
//! snapshot for "rollback restores exactly", and PATH wrappers that count,
//! fail, block or kill at the k-th mutating command.

use super::{Lab, Netns, read_capture, veth};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::ops::Deref;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::thread;
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_dscproute");

/// The group the lab profiles mark (numeric: nothing is added to /etc/group).
pub const GID: u32 = 4242;
/// Any other group: its traffic must take the normal path.
pub const OTHER_GID: u32 = 4243;
/// Clients run as nobody, in the chosen group only.
pub const NOBODY: u32 = 65534;

/// The HTTP port every lab server listens on.
pub const PORT: u16 = 8080;
/// The test address, on both `isp` and `vpn`.
pub const TARGET4: &str = "198.51.100.1";
pub const TARGET6: &str = "2001:db8:100::1";
/// Host `lan2`, behind B's second LAN.
pub const LAN2_4: &str = "192.168.60.2";
pub const LAN2_6: &str = "fd60::2";
/// Client A.
pub const A4: &str = "192.168.50.2";
pub const A6: &str = "fd50::2";
/// B's end of the tunnel (what `vpn` sees after masquerade).
pub const TUNNEL_B4: &str = "10.8.0.2";
pub const TUNNEL_B6: &str = "fd00::2";
/// B's uplink address (the source of B's own traffic towards `isp`).
pub const UPLINK_B4: &str = "100.64.0.2";
pub const UPLINK_B6: &str = "fd64::2";

/// Local ports curl binds to: the group's packets and the others' can be
/// told apart in any capture and in the servers' logs.
pub const GROUP_PORTS: (u16, u16) = (41000, 41999);
pub const OTHER_PORTS: (u16, u16) = (42000, 42999);
/// For requests a test wants to keep apart from the ranges above.
pub const SPARE_PORTS: (u16, u16) = (43000, 43999);

/// What dscproute writes to name its table (inside the namespace's /etc).
pub const DROPIN: &str = "/etc/iproute2/rt_tables.d/dscproute.conf";

/// A lab profile from tests/fixtures/lab.
pub fn profile(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lab")
        .join(name);
    assert!(p.is_file(), "missing lab profile {}", p.display());
    p.display().to_string()
}

/// Polls `cond` every `every` until it holds or `timeout` passes; returns
/// whether it held. A bounded wait for a condition, never a guessed sleep.
pub fn poll_until(timeout: Duration, every: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(every);
    }
}

// ---------------------------------------------------------------------------
// Hosts with their own /etc/netns/NAME

/// `/etc/netns/NAME/`: `ip netns exec NAME` bind-mounts its entries over
/// /etc, so `iproute2/` here is what /etc/iproute2 is inside the namespace.
/// Removed on drop.
struct EtcOverlay {
    dir: PathBuf,
}

impl EtcOverlay {
    fn new(ns: &Netns) -> EtcOverlay {
        static SWEEP: Once = Once::new();
        SWEEP.call_once(sweep_stale_overlays);
        let dir = Path::new("/etc/netns").join(ns.name());
        assert!(
            !dir.exists(),
            "{} exists already; refusing to take it over",
            dir.display()
        );
        // From here on Drop removes it, even if filling it fails.
        let overlay = EtcOverlay { dir };
        let from = Path::new("/etc/iproute2");
        let to = overlay.dir.join("iproute2");
        std::fs::create_dir_all(&to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
        for entry in std::fs::read_dir(from)
            .expect("read /etc/iproute2")
            .flatten()
        {
            let (src, dst) = (entry.path(), to.join(entry.file_name()));
            let kind = entry.file_type().expect("file type");
            if kind.is_dir() {
                std::fs::create_dir(&dst)
                    .unwrap_or_else(|e| panic!("mkdir {}: {e}", dst.display()));
                // rt_tables.d starts empty: only what dscproute writes shows up.
                if entry.file_name() != "rt_tables.d" {
                    for f in std::fs::read_dir(&src).expect("read subdir").flatten() {
                        if f.file_type().is_ok_and(|t| t.is_file()) {
                            std::fs::copy(f.path(), dst.join(f.file_name()))
                                .unwrap_or_else(|e| panic!("copy {}: {e}", f.path().display()));
                        }
                    }
                }
            } else if kind.is_file() {
                std::fs::copy(&src, &dst).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
            }
        }
        overlay
    }
}

impl Drop for EtcOverlay {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("warning: could not remove {}: {e}", self.dir.display());
        }
    }
}

/// Removes `/etc/netns/dscpr-PID-N` left by a test process that was killed
/// (Drop never ran): only our naming, only when that process is gone and its
/// namespace no longer exists.
fn sweep_stale_overlays() {
    let Ok(entries) = std::fs::read_dir("/etc/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let parts: Vec<&str> = name.split('-').collect();
        let [prefix, pid, n] = parts.as_slice() else {
            continue;
        };
        if *prefix != "dscpr"
            || pid.parse::<u32>().is_err()
            || n.parse::<u32>().is_err()
            || Path::new("/proc").join(pid).exists()
            || Path::new("/run/netns").join(&name).exists()
        {
            continue;
        }
        let _ = std::fs::remove_dir_all(entry.path());
    }
}

/// A namespace with its own /etc/iproute2. Field order matters: the
/// namespace goes first, then its /etc overlay.
pub struct Host {
    pub ns: Netns,
    _etc: EtcOverlay,
}

impl Host {
    fn new(lab: &Lab) -> Host {
        let ns = lab.netns();
        let etc = EtcOverlay::new(&ns);
        Host { ns, _etc: etc }
    }

    /// Where the namespace's /etc/iproute2 really lives, seen from the host.
    pub fn etc_iproute2(&self) -> PathBuf {
        Path::new("/etc/netns")
            .join(self.ns.name())
            .join("iproute2")
    }

    /// `sysctl -q -w k=v ...` inside the namespace.
    pub fn sysctl_w(&self, assignments: &[&str]) {
        let mut argv = vec!["sysctl", "-q", "-w"];
        argv.extend_from_slice(assignments);
        self.exec_ok(&argv);
    }

    /// A sysctl's value inside the namespace, `None` when it does not exist.
    pub fn sysctl(&self, key: &str) -> Option<String> {
        let out = self.exec(&["sysctl", "-n", key]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// A counter from /proc/net/netstat or /proc/net/snmp inside the
    /// namespace, e.g. ("TcpExt", "IPReversePathFilter").
    pub fn netstat(&self, group: &str, name: &str) -> u64 {
        let out = self.exec_ok(&["cat", "/proc/net/netstat", "/proc/net/snmp"]);
        let text = String::from_utf8_lossy(&out.stdout);
        let prefix = format!("{group}:");
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(&prefix)).collect();
        for pair in lines.chunks(2) {
            if let [names, values] = pair {
                let names = names.split_whitespace().skip(1);
                let values = values.split_whitespace().skip(1);
                if let Some((_, v)) = names.zip(values).find(|(n, _)| *n == name) {
                    return v.parse().expect("numeric counter");
                }
            }
        }
        panic!("no counter {group}:{name} in {}", self.ns.name())
    }
}

impl Deref for Host {
    type Target = Netns;
    fn deref(&self) -> &Netns {
        &self.ns
    }
}

// ---------------------------------------------------------------------------
// HTTP servers

/// One request a lab server answered.
#[derive(Clone, Debug)]
pub struct Hit {
    pub peer: SocketAddr,
    pub path: String,
}

impl Hit {
    /// The client's address as an IPv4 or IPv6 address (not v4-mapped).
    pub fn ip(&self) -> IpAddr {
        self.peer.ip().to_canonical()
    }

    pub fn is_group(&self) -> bool {
        (GROUP_PORTS.0..=GROUP_PORTS.1).contains(&self.peer.port())
    }
}

/// A tiny HTTP server bound inside a namespace (the listening socket stays
/// in the namespace it was created in; the serving threads are ordinary
/// threads of the test process). `GET /` answers the host's name, `GET
/// /big/N` N MiB. Every request is logged. The server closes a connection
/// only after the client closed it.
pub struct HttpServer {
    fd: RawFd,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl HttpServer {
    pub fn start(ns: &Netns, name: &'static str) -> HttpServer {
        let listener = ns.run(|| {
            TcpListener::bind((Ipv6Addr::UNSPECIFIED, PORT))
                .unwrap_or_else(|e| panic!("bind [::]:{PORT} in {}: {e}", ns.name()))
        });
        let fd = listener.as_raw_fd();
        let stop = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(Mutex::new(Vec::new()));
        let (stop2, hits2) = (stop.clone(), hits.clone());
        let thread = thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = conn {
                    let hits = hits2.clone();
                    thread::spawn(move || serve(stream, name, &hits));
                }
            }
        });
        HttpServer {
            fd,
            stop,
            thread: Some(thread),
            hits,
        }
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

fn serve(mut stream: TcpStream, name: &str, hits: &Mutex<Vec<Hit>>) {
    use std::io::{Read, Write};
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(20)));
    let Ok(peer) = stream.peer_addr() else { return };
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
        if req.len() > 64 * 1024 {
            return;
        }
    }
    let text = String::from_utf8_lossy(&req);
    let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
    hits.lock().unwrap().push(Hit {
        peer,
        path: path.clone(),
    });
    let megabytes: usize = path
        .strip_prefix("/big/")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let len = if megabytes > 0 {
        megabytes << 20
    } else {
        name.len()
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    if megabytes > 0 {
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..(len / chunk.len()) {
            if stream.write_all(&chunk).is_err() {
                return;
            }
        }
    } else {
        let _ = stream.write_all(name.as_bytes());
    }
    let _ = stream.flush();
    // Close only after the client has: the client closes first, so the last
    // packet of every connection (its ACK of our FIN) comes from a socket
    // its process has already closed.
    while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // shutdown() on a listening socket wakes the blocked accept() with
        // EINVAL, so the accept thread ends without a connection from inside
        // the namespace.
        // SAFETY: the fd belongs to the listener the thread still owns.
        unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------
// The topology

pub struct Servers {
    pub isp: HttpServer,
    pub vpn: HttpServer,
    pub lan2: HttpServer,
}

/// The whole lab. Drop order (field order): servers, namespaces with their
/// /etc overlays, then the temp dir with state dirs, captures and wrappers.
pub struct Topology {
    pub servers: Servers,
    pub a: Host,
    pub b: Host,
    pub isp: Host,
    pub vpn: Host,
    pub lan2: Host,
    pub dir: tempfile::TempDir,
    host_rt_tables: String,
    host_rt_tables_d: Vec<String>,
}

fn ls(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

impl Topology {
    pub fn build(lab: &Lab) -> Topology {
        let host_rt_tables = std::fs::read_to_string("/etc/iproute2/rt_tables").unwrap_or_default();
        let host_rt_tables_d = ls(Path::new("/etc/iproute2/rt_tables.d"));
        assert!(
            !Path::new(DROPIN).exists(),
            "the host already has {DROPIN}: the lab cannot tell its own writes apart"
        );
        let [a, b, isp, vpn, lan2] = [(); 5].map(|_| Host::new(lab));
        for h in [&a, &b, &isp, &vpn, &lan2] {
            // New namespaces inherit IPv4 conf values from the host: pin them.
            h.sysctl_w(&[
                "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.default.rp_filter=0",
                "net.ipv4.ip_forward=0",
                "net.ipv6.conf.all.forwarding=0",
                // Link-local addresses usable at once: no 1-2 s of duplicate
                // address detection delaying the first IPv6 packets.
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
            ]);
        }
        veth(&a, "eth0", &b, "lan0");
        veth(&b, "lan1", &lan2, "eth0");
        veth(&b, "up0", &isp, "eth0");
        veth(&b, "wg0", &vpn, "eth0");
        for (h, dev, cidrs) in [
            (&a, "eth0", ["192.168.50.2/24", "fd50::2/64"]),
            (&b, "lan0", ["192.168.50.1/24", "fd50::1/64"]),
            (&b, "lan1", ["192.168.60.1/24", "fd60::1/64"]),
            (&lan2, "eth0", ["192.168.60.2/24", "fd60::2/64"]),
            (&b, "up0", ["100.64.0.2/24", "fd64::2/64"]),
            (&isp, "eth0", ["100.64.0.1/24", "fd64::1/64"]),
            (&b, "wg0", ["10.8.0.2/24", "fd00::2/64"]),
            (&vpn, "eth0", ["10.8.0.1/24", "fd00::1/64"]),
            (&isp, "lo", ["198.51.100.1/32", "2001:db8:100::1/128"]),
            (&vpn, "lo", ["198.51.100.1/32", "2001:db8:100::1/128"]),
        ] {
            for c in cidrs {
                h.addr(dev, c);
            }
        }
        for (h, argv) in [
            (
                &a,
                &["ip", "route", "add", "default", "via", "192.168.50.1"][..],
            ),
            (
                &a,
                &["ip", "-6", "route", "add", "default", "via", "fd50::1"],
            ),
            (
                &lan2,
                &["ip", "route", "add", "default", "via", "192.168.60.1"],
            ),
            (
                &lan2,
                &["ip", "-6", "route", "add", "default", "via", "fd60::1"],
            ),
            (&b, &["ip", "route", "add", "default", "via", "100.64.0.1"]),
            (
                &b,
                &["ip", "-6", "route", "add", "default", "via", "fd64::1"],
            ),
            (
                &isp,
                &["ip", "route", "add", "192.168.50.0/24", "via", "100.64.0.2"],
            ),
            (
                &isp,
                &["ip", "route", "add", "192.168.60.0/24", "via", "100.64.0.2"],
            ),
            (
                &isp,
                &["ip", "-6", "route", "add", "fd50::/64", "via", "fd64::2"],
            ),
            (
                &isp,
                &["ip", "-6", "route", "add", "fd60::/64", "via", "fd64::2"],
            ),
            // vpn: no route back to the LANs, only its connected tunnel subnet.
        ] {
            h.exec_ok(argv);
        }
        let servers = Servers {
            isp: HttpServer::start(&isp, "isp"),
            vpn: HttpServer::start(&vpn, "vpn"),
            lan2: HttpServer::start(&lan2, "lan2"),
        };
        Topology {
            servers,
            a,
            b,
            isp,
            vpn,
            lan2,
            dir: tempfile::tempdir().expect("temp dir"),
            host_rt_tables,
            host_rt_tables_d,
        }
    }

    /// A path in the test's temp dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// dscproute's state dir for one host.
    pub fn state(&self, host: &Host) -> PathBuf {
        self.path(&format!("state-{}", host.name()))
    }

    /// The host's /etc is as it was: no drop-in, same rt_tables and rt_tables.d.
    pub fn assert_host_etc_untouched(&self) {
        assert!(
            !Path::new(DROPIN).exists(),
            "{DROPIN} appeared in the HOST's /etc: the namespace overlay did not hold"
        );
        assert_eq!(
            std::fs::read_to_string("/etc/iproute2/rt_tables").unwrap_or_default(),
            self.host_rt_tables,
            "the host's /etc/iproute2/rt_tables changed"
        );
        assert_eq!(
            ls(Path::new("/etc/iproute2/rt_tables.d")),
            self.host_rt_tables_d,
            "the host's /etc/iproute2/rt_tables.d changed"
        );
    }
}

// ---------------------------------------------------------------------------
// Running dscproute

/// `ip netns exec NS env VARS... dscproute --state-dir STATE ARGS...`, not started.
pub fn dscproute_command(
    ns: &Netns,
    state: &Path,
    env: &[(String, String)],
    args: &[&str],
) -> Command {
    let state = state.to_str().expect("UTF-8 state dir");
    let vars: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut argv: Vec<&str> = vec!["env"];
    argv.extend(vars.iter().map(String::as_str));
    argv.extend([BIN, "--state-dir", state]);
    argv.extend_from_slice(args);
    ns.command(&argv)
}

pub fn dscproute_with(ns: &Netns, state: &Path, env: &[(String, String)], args: &[&str]) -> Output {
    let mut cmd = dscproute_command(ns, state, env, args);
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run dscproute {args:?}: {e}"))
}

pub fn dscproute(ns: &Netns, state: &Path, args: &[&str]) -> Output {
    dscproute_with(ns, state, &[], args)
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// One line for assertion messages.
pub fn show(what: &str, out: &Output) -> String {
    format!(
        "{what}\n  status: {}\n  stdout: {}\n  stderr: {}",
        out.status,
        stdout(out).trim_end(),
        stderr(out).trim_end()
    )
}

/// Runs dscproute and insists on exit status `code`.
pub fn dscproute_expect(ns: &Netns, state: &Path, args: &[&str], code: i32) -> Output {
    let out = dscproute(ns, state, args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}",
        show(&format!("dscproute {}", args.join(" ")), &out)
    );
    out
}

/// `apply --profile P --yes` must succeed and change something.
pub fn apply_ok(host: &Host, state: &Path, profile_name: &str) -> Output {
    let p = profile(profile_name);
    let out = dscproute_expect(host, state, &["apply", "--profile", &p, "--yes"], 0);
    assert!(
        stdout(&out).contains("Applied "),
        "{}",
        show(&format!("apply {profile_name} in {}", host.name()), &out)
    );
    out
}

/// `rollback --yes` must succeed and undo a transaction.
pub fn rollback_ok(host: &Host, state: &Path) -> Output {
    let out = dscproute_expect(host, state, &["rollback", "--yes"], 0);
    assert!(
        stdout(&out).contains("Rolled back transaction"),
        "{}",
        show(&format!("rollback in {}", host.name()), &out)
    );
    out
}

/// `rollback --last --yes`: undo only the last transaction, keeping the
/// setup from before it.
pub fn rollback_last_ok(host: &Host, state: &Path) -> Output {
    let out = dscproute_expect(host, state, &["rollback", "--last", "--yes"], 0);
    assert!(
        stdout(&out).contains("Rolled back transaction"),
        "{}",
        show(&format!("rollback --last in {}", host.name()), &out)
    );
    out
}

pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", show("output", out)))
}

/// `status --json`.
pub fn status_json(host: &Host, state: &Path) -> serde_json::Value {
    json(&dscproute_expect(host, state, &["status", "--json"], 0))
}

/// Packets counted by our netfilter rule in `chain` whose spec contains
/// `needle`, from `status --json` (panics when there is no such rule).
pub fn rule_packets(status: &serde_json::Value, family: &str, chain: &str, needle: &str) -> u64 {
    status["netfilter"]
        .as_array()
        .expect("status.netfilter is a list")
        .iter()
        .find(|r| {
            r["family"] == family
                && r["chain"] == chain
                && r["spec"].as_str().is_some_and(|s| s.contains(needle))
        })
        .and_then(|r| r["packets"].as_u64())
        .unwrap_or_else(|| panic!("no {family} rule in {chain} with {needle:?} in {status:#}"))
}

// ---------------------------------------------------------------------------
// Clients

pub fn url(addr: &str, path: &str) -> String {
    if addr.contains(':') {
        format!("http://[{addr}]:{PORT}{path}")
    } else {
        format!("http://{addr}:{PORT}{path}")
    }
}

/// curl inside `from` as nobody with only group `gid`, from the local port
/// range of that group (see GROUP_PORTS).
pub fn curl(from: &Netns, gid: u32, addr: &str, path: &str, extra: &[&str]) -> Output {
    let ports = if gid == GID { GROUP_PORTS } else { OTHER_PORTS };
    curl_from_ports(from, gid, ports, addr, path, extra)
}

/// As `curl`, from a chosen local port range.
pub fn curl_from_ports(
    from: &Netns,
    gid: u32,
    (lo, hi): (u16, u16),
    addr: &str,
    path: &str,
    extra: &[&str],
) -> Output {
    let gid_s = gid.to_string();
    let nobody = NOBODY.to_string();
    let ports = format!("{lo}-{hi}");
    let u = url(addr, path);
    let mut argv = vec![
        "setpriv",
        "--regid",
        &gid_s,
        "--clear-groups",
        "--reuid",
        &nobody,
        "curl",
        "-gsS",
        "--local-port",
        &ports,
    ];
    argv.extend_from_slice(extra);
    argv.push(&u);
    from.exec(&argv)
}

/// The body of `GET /` from `addr`, or why there is none.
pub fn fetch(from: &Netns, gid: u32, addr: &str) -> Result<String, String> {
    let out = curl(from, gid, addr, "/", &["--max-time", "5"]);
    if out.status.success() {
        Ok(stdout(&out))
    } else {
        Err(format!("curl {}: {}", out.status, stderr(&out).trim()))
    }
}

/// As `fetch`, for requests expected to fail: a shorter time limit.
pub fn fetch_short(from: &Netns, gid: u32, addr: &str) -> Result<String, String> {
    let out = curl(from, gid, addr, "/", &["--max-time", "3"]);
    if out.status.success() {
        Ok(stdout(&out))
    } else {
        Err(format!("curl {}: {}", out.status, stderr(&out).trim()))
    }
}

/// `fetch` must answer `want`.
pub fn assert_reaches(from: &Netns, gid: u32, addr: &str, want: &str) {
    assert_eq!(
        fetch(from, gid, addr),
        Ok(want.to_string()),
        "gid {gid} in {} asking {addr}",
        from.name()
    );
}

/// The number of packets in a capture file matching `filter`.
pub fn count(file: &Path, filter: &str) -> usize {
    read_capture(file, filter).len()
}

/// tcpdump filter: the group's (or others') TCP packets by source port.
pub fn from_ports(ports: (u16, u16)) -> String {
    format!("tcp src portrange {}-{}", ports.0, ports.1)
}

pub const DSCP7_V4: &str = "(ip[1] & 0xfc) >> 2 == 7";
pub const DSCP7_V6: &str = "(ip6[0:2] & 0x0fc0) >> 6 == 7";
/// TCP packets with SYN or PSH: a connection's opening and its data, sent
/// while the process still owns the socket. (IPv6: TCP flags at byte 53,
/// valid without extension headers, as in the lab.)
pub const SYN_OR_PSH_V4: &str = "(tcp[tcpflags] & (tcp-syn|tcp-push) != 0)";
pub const SYN_OR_PSH_V6: &str = "(ip6[6] == 6 and ip6[53] & 0x0a != 0)";

// ---------------------------------------------------------------------------
// State snapshots

/// `iptables-save` output without comment lines and counters.
fn clean_save(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let mut l = line.to_string();
        while let Some(start) = l.find('[') {
            let Some(len) = l[start..].find(']') else {
                break;
            };
            let inner = &l[start + 1..start + len];
            let counter = inner.split_once(':').is_some_and(|(p, b)| {
                !p.is_empty()
                    && !b.is_empty()
                    && p.bytes().all(|c| c.is_ascii_digit())
                    && b.bytes().all(|c| c.is_ascii_digit())
            });
            if !counter {
                break;
            }
            l.replace_range(start..=start + len, "");
        }
        out.push_str(l.trim_end());
        out.push('\n');
    }
    out
}

/// Everything apply may touch on a host, as seen inside its namespace:
/// both firewalls (without counters), policy rules, all routing tables, the
/// sysctls dscproute writes, and the routing-table name files.
pub fn snapshot(host: &Host) -> String {
    let mut s = String::new();
    let mut section = |title: &str, argv: &[&str], clean: bool| {
        let out = host.exec(argv);
        assert!(
            out.status.success(),
            "{}",
            show(&format!("snapshot: {}", argv.join(" ")), &out)
        );
        let text = stdout(&out);
        s.push_str(&format!("== {title}\n"));
        s.push_str(&if clean { clean_save(&text) } else { text });
    };
    section("iptables-save", &["iptables-save"], true);
    section("ip6tables-save", &["ip6tables-save"], true);
    section("ip rule", &["ip", "rule"], false);
    section("ip -6 rule", &["ip", "-6", "rule"], false);
    section("ip route", &["ip", "route", "show", "table", "all"], false);
    section(
        "ip -6 route",
        &["ip", "-6", "route", "show", "table", "all"],
        false,
    );
    section(
        "rt_tables",
        &[
            "sh",
            "-c",
            "cat /etc/iproute2/rt_tables; echo '== rt_tables.d'; ls -A /etc/iproute2/rt_tables.d; \
             for f in /etc/iproute2/rt_tables.d/*; do [ -f \"$f\" ] && { echo \"--- $f\"; cat \"$f\"; }; done; true",
        ],
        false,
    );
    s.push_str("== sysctls\n");
    for key in [
        "net.ipv4.ip_forward",
        "net.ipv6.conf.all.forwarding",
        "net.ipv4.conf.all.rp_filter",
        "net.ipv4.conf.wg0.rp_filter",
    ] {
        let v = host.sysctl(key).unwrap_or_else(|| "<absent>".into());
        s.push_str(&format!("{key} = {v}\n"));
    }
    s
}

/// Panics with the differing lines when two snapshots differ.
pub fn assert_same_state(before: &str, now: &str, context: &str) {
    if before == now {
        return;
    }
    let b: Vec<&str> = before.lines().collect();
    let n: Vec<&str> = now.lines().collect();
    let gone: Vec<&str> = b.iter().filter(|l| !n.contains(l)).copied().collect();
    let new: Vec<&str> = n.iter().filter(|l| !b.contains(l)).copied().collect();
    panic!(
        "{context}: the state differs from before apply\n--- only before:\n{}\n+++ only now:\n{}\n\
         (if both are empty, lines moved)\n=== now:\n{now}",
        gone.join("\n"),
        new.join("\n")
    );
}

// ---------------------------------------------------------------------------
// PATH wrappers

/// What the wrappers do at the K-th mutating call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Only count and log.
    Count,
    /// Run the real command, then SIGKILL dscproute.
    KillAfter,
    /// SIGKILL dscproute instead of running the command.
    KillBefore,
    /// Exit 1 with a message on stderr, without running the command.
    Fail,
    /// Wait until the test releases it (`release`), then run the command.
    Block,
}

impl Mode {
    fn word(self) -> &'static str {
        match self {
            Mode::Count => "count",
            Mode::KillAfter => "kill-after",
            Mode::KillBefore => "kill-before",
            Mode::Fail => "fail",
            Mode::Block => "block",
        }
    }
}

/// `ip`, `iptables`, `ip6tables`, `iptables-restore`, `ip6tables-restore`,
/// `nft` and `sysctl` wrappers (sh) in a directory put first on dscproute's
/// PATH. They pass every call to the real binary and count the mutating ones
/// (ip add/del/flush/replace/change; iptables -A/-I/-D/-N/-X/-F/-R/-P/-E/-Z;
/// every restore, `ip -batch` (not the probe's `ip -j -batch`, which
/// reads) and `nft -f` call, one batch = one call; nft
/// add/delete/flush/...; sysctl -w) in `count`, logging each to `calls` as
/// dscproute spells it (`iptables -w -t mangle -N ...`, `iptables-restore -w
/// --noflush`, `ip -4 -batch -`, `nft -f -`, its stdin kept in `stdin.N`). `Fail` makes an `ip -batch` run its lines
/// before line `DSCPR_WRAP_LINE` (default: its last) and fail there.
pub struct Wrappers {
    pub dir: PathBuf,
}

const WRAPPED: [&str; 7] = [
    "ip",
    "iptables",
    "ip6tables",
    "iptables-restore",
    "ip6tables-restore",
    "nft",
    "sysctl",
];

impl Wrappers {
    pub fn install(dir: &Path) -> Wrappers {
        std::fs::create_dir_all(dir).expect("wrapper dir");
        for tool in WRAPPED {
            // The real binary, resolved before the wrappers exist on any PATH.
            let real = which::which(tool).unwrap_or_else(|e| panic!("no {tool}: {e}"));
            assert!(!real.starts_with(dir));
            let script = format!(
                r#"#!/bin/sh
# dscproute lab wrapper around {real}
real='{real}'
me='{tool}'
mutating=0
reads=0
case "$me" in *-restore) mutating=1 ;; esac
# `ip -j ... -batch -` is the probe reading (JSON out), never a change.
case " $* " in *" -j "*) [ "$me" = ip ] && reads=1 ;; esac
for a in "$@"; do
  case "$me:$a" in
    ip:add|ip:del|ip:delete|ip:flush|ip:replace|ip:change|ip:-batch) mutating=1 ;;
    iptables:-[AIDNXFRPEZ]|ip6tables:-[AIDNXFRPEZ]) mutating=1 ;;
    nft:-f|nft:add|nft:delete|nft:destroy|nft:flush|nft:create|nft:insert|nft:replace|nft:rename) mutating=1 ;;
    sysctl:-w) mutating=1 ;;
  esac
done
[ "$reads" = 1 ] && mutating=0
d="$DSCPR_WRAP_DIR"
if [ "$mutating" = 1 ] && [ -n "$d" ]; then
  n=$(( $(cat "$d/count" 2>/dev/null || echo 0) + 1 ))
  echo "$n" > "$d/count"
  echo "$me $*" >> "$d/calls"
  batch=0
  case "$me $*" in *-restore*|*-batch*|"nft -f -") batch=1 ;; esac
  if [ "$batch" = 1 ]; then
    # The batch on stdin, kept for the test and fed to the real command.
    cat > "$d/stdin.$n"
    exec < "$d/stdin.$n"
  fi
  if [ "$n" = "$DSCPR_WRAP_K" ]; then
    case "$DSCPR_WRAP_MODE" in
      kill-after)
        "$real" "$@"; rc=$?
        echo "$rc" > "$d/real-rc"
        kill -9 "$PPID"
        exit "$rc" ;;
      kill-before)
        kill -9 "$PPID"
        exit 137 ;;
      fail)
        case "$me" in
          *-restore)
            # Blame the batch's last command line, as iptables-restore does.
            last=$(( $(wc -l < "$d/stdin.$n") - 1 ))
            echo "$me: line $last failed: lab wrapper: injected failure of mutating call $n" >&2 ;;
          ip)
            if [ "$batch" = 1 ]; then
              # ip -batch is not atomic: the lines before the failing one
              # (DSCPR_WRAP_LINE, else the last) run for real, as they would.
              last=$(wc -l < "$d/stdin.$n")
              line=${{DSCPR_WRAP_LINE:-$last}}
              head -n "$((line - 1))" "$d/stdin.$n" | "$real" "$@" || exit 1
              echo "lab wrapper: injected failure of mutating call $n" >&2
              echo "Command failed -:$line" >&2
            else
              echo "lab wrapper: injected failure of mutating call $n" >&2
            fi ;;
          *) echo "lab wrapper: injected failure of mutating call $n" >&2 ;;
        esac
        exit 1 ;;
      block)
        : > "$d/reached"
        read -r _ < "$d/release" ;;
    esac
  fi
fi
exec "$real" "$@"
"#,
                real = real.display()
            );
            let path = dir.join(tool);
            std::fs::write(&path, script).expect("write wrapper");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .expect("chmod wrapper");
        }
        let w = Wrappers {
            dir: dir.to_path_buf(),
        };
        w.reset();
        w
    }

    /// Forget earlier counts, logs and flags.
    pub fn reset(&self) {
        for f in ["count", "calls", "real-rc", "reached", "release"] {
            let _ = std::fs::remove_file(self.dir.join(f));
        }
        for e in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with("stdin.") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// Environment for dscproute: wrappers first on PATH, and what to do at call `k`.
    pub fn env(&self, mode: Mode, k: usize) -> Vec<(String, String)> {
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into());
        vec![
            ("PATH".into(), format!("{}:{path}", self.dir.display())),
            ("DSCPR_WRAP_DIR".into(), self.dir.display().to_string()),
            ("DSCPR_WRAP_MODE".into(), mode.word().into()),
            ("DSCPR_WRAP_K".into(), k.to_string()),
        ]
    }

    /// `env`, with an `ip -batch` failing (`Mode::Fail`) at its line `line`.
    pub fn env_line(&self, mode: Mode, k: usize, line: usize) -> Vec<(String, String)> {
        let mut env = self.env(mode, k);
        env.push(("DSCPR_WRAP_LINE".into(), line.to_string()));
        env
    }

    /// The mutating calls so far, in order.
    pub fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The commands mutating call `k` (1-based) stands for: itself, or for
    /// an iptables-restore batch each of its lines as the single iptables
    /// command (`iptables -w -t TABLE LINE`), for an `ip -batch` each line
    /// as `ip -4|-6 LINE`.
    pub fn commands_of(&self, k: usize, call: &str) -> Vec<String> {
        let stdin = || {
            std::fs::read_to_string(self.dir.join(format!("stdin.{k}")))
                .unwrap_or_else(|e| panic!("stdin of call {k} ({call}): {e}"))
        };
        let w: Vec<&str> = call.split_whitespace().collect();
        if let ["ip", family, .., "-batch", "-"] = w[..] {
            return stdin()
                .lines()
                .map(|l| format!("ip {family} {l}"))
                .collect();
        }
        let tool = match w.first() {
            Some(&"iptables-restore") => "iptables",
            Some(&"ip6tables-restore") => "ip6tables",
            _ => return vec![call.to_string()],
        };
        let input = stdin();
        let mut table = String::new();
        let mut out = Vec::new();
        for l in input.lines() {
            if let Some(t) = l.strip_prefix('*') {
                table = t.to_string();
            } else if l != "COMMIT" && !l.is_empty() {
                out.push(format!("{tool} -w -t {table} {l}"));
            }
        }
        out
    }

    /// Exit status of the real command in `KillAfter` mode.
    pub fn real_rc(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join("real-rc"))
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// Makes the FIFO a `Block` wrapper waits on; call before starting.
    pub fn arm_block(&self) {
        let p = self.dir.join("release");
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
        assert_eq!(
            rc,
            0,
            "mkfifo {}: {}",
            p.display(),
            std::io::Error::last_os_error()
        );
    }

    /// Has a `Block` wrapper reached its call?
    pub fn reached(&self) -> bool {
        self.dir.join("reached").exists()
    }

    /// Lets a blocked wrapper go on. Opens the FIFO without blocking and
    /// retries (bounded) until the wrapper has it open for reading; false if
    /// nobody came.
    pub fn release(&self, timeout: Duration) -> bool {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let p = self.dir.join("release");
        let mut opened = None;
        let ok = poll_until(timeout, Duration::from_millis(20), || {
            match std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&p)
            {
                Ok(f) => {
                    opened = Some(f);
                    true
                }
                Err(_) => false, // ENXIO: no reader yet
            }
        });
        if let Some(mut f) = opened {
            let _ = f.write_all(b"go\n");
        }
        ok
    }
}

/// What every apply/rollback lab needs on the host.
pub const FIREWALL_TOOLS: &[&str] = &[
    "iptables",
    "ip6tables",
    "iptables-save",
    "ip6tables-save",
    "nft",
    "sysctl",
];

/// The lab topology, or `None` after a visible skip (see `common::lab`):
/// needs the firewall tools and `extra`.
pub fn topology(name: &str, extra: &[&str]) -> Option<Topology> {
    let tools: Vec<&str> = FIREWALL_TOOLS.iter().chain(extra).copied().collect();
    let lab = super::lab(name, &tools)?;
    Some(Topology::build(&lab))
}

/// A dscproute process held at a mutating call by the wrappers: released and
/// killed on drop, so a failing test never leaves it (or its wrapper)
/// waiting.
pub struct Blocked<'a> {
    child: Option<std::process::Child>,
    wrappers: &'a Wrappers,
}

impl<'a> Blocked<'a> {
    pub fn new(child: std::process::Child, wrappers: &'a Wrappers) -> Blocked<'a> {
        Blocked {
            child: Some(child),
            wrappers,
        }
    }

    /// `ip netns exec` and `env` exec in place: this is dscproute's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("still running").id()
    }

    /// Wait for it to end by itself (once released), killing it after
    /// `timeout`; its output either way.
    pub fn finish(mut self, timeout: Duration) -> Output {
        let mut child = self.child.take().expect("still running");
        let done = poll_until(timeout, Duration::from_millis(50), || {
            matches!(child.try_wait(), Ok(Some(_)))
        });
        if !done {
            let _ = child.kill();
        }
        let out = child
            .wait_with_output()
            .expect("wait for the blocked process");
        assert!(done, "{}", show("the blocked process did not finish", &out));
        out
    }
}

impl Drop for Blocked<'_> {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            self.wrappers.release(Duration::from_millis(200));
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// Reading snapshots

/// One `== title` section of a snapshot.
pub fn section<'s>(snap: &'s str, title: &str) -> &'s str {
    let head = format!("== {title}\n");
    let start = snap
        .find(&head)
        .unwrap_or_else(|| panic!("no section {title:?}"))
        + head.len();
    let rest = &snap[start..];
    &rest[..rest.find("\n== ").map_or(rest.len(), |i| i + 1)]
}

/// Does the effect of a mutating call, as the wrappers log it, show in the
/// snapshot (or `state_of` with the nft ruleset)? (sysctl value, route,
/// policy rule, chain or rule in its table, our nft table.)
pub fn effect_visible(call: &str, snap: &str) -> bool {
    let w: Vec<&str> = call.split_whitespace().collect();
    let v6 = |fam: &str| fam == "-6";
    match w.as_slice() {
        ["sysctl", "-q", "-w", kv] => {
            let (k, v) = kv.split_once('=').expect("key=value");
            section(snap, "sysctls").contains(&format!("{k} = {v}\n"))
        }
        [
            "ip",
            fam,
            "route",
            "add",
            "default",
            "via",
            via,
            "dev",
            dev,
            ..,
        ] => section(snap, if v6(fam) { "ip -6 route" } else { "ip route" })
            .contains(&format!("default via {via} dev {dev} table vpn")),
        ["ip", fam, "rule", "add", "pref", pref, "fwmark", mark, ..] => {
            section(snap, if v6(fam) { "ip -6 rule" } else { "ip rule" })
                .contains(&format!("{pref}:\tfrom all fwmark {mark}"))
        }
        ["nft", "-f", "-"] => {
            section(snap, "nft -a -s list ruleset").contains("table inet dscproute")
        }
        [tool, "-w", "-t", table, op, chain, spec @ ..] => {
            let save = section(snap, &format!("{tool}-save"));
            let Some(start) = save.find(&format!("*{table}\n")) else {
                return false;
            };
            let t = &save[start..];
            let t = &t[..t.find("COMMIT").unwrap_or(t.len())];
            let want = match *op {
                "-N" => format!(":{chain} -"),
                "-A" | "-I" => format!("-A {chain} {}", spec.join(" ")),
                other => panic!("unexpected iptables operation {other} in `{call}`"),
            };
            t.lines().any(|l| l == want)
        }
        _ => panic!("unexpected mutating call `{call}`"),
    }
}

/// Asserts the group reaches nothing over either family while others still
/// reach isp, and that not one packet of the group arrived at isp.
pub fn assert_group_blocked(t: &Topology, pcap: &Path, when: &str) {
    let mut cap = t.isp.capture("eth0", pcap, "tcp port 8080");
    for addr in [TARGET4, TARGET6] {
        let got = fetch_short(&t.a, GID, addr);
        assert!(got.is_err(), "{when}: the group reached {addr}: {got:?}");
    }
    assert_reaches(&t.a, OTHER_GID, TARGET4, "isp");
    assert_reaches(&t.a, OTHER_GID, TARGET6, "isp");
    // The others' exchanges came after the group's attempts: once they are
    // in the file, so would be any packet of the group.
    cap.wait_for_packets(2 * 6, Duration::from_secs(10));
    cap.stop();
    assert!(count(pcap, &from_ports(OTHER_PORTS)) > 0);
    assert_eq!(
        count(pcap, &from_ports(GROUP_PORTS)),
        0,
        "{when}: packets of the group leaked to isp"
    );
    let leaked: Vec<_> = t
        .servers
        .isp
        .hits()
        .into_iter()
        .filter(|h| h.is_group())
        .collect();
    assert!(
        leaked.is_empty(),
        "{when}: isp answered the group: {leaked:?}"
    );
}
