//! `dscproute watch` against real packets: exact counts per DSCP over a
//! veth pair between two scratch namespaces, the privilege error, a closed
//! pipe, bad input; and (ignored, run by bench/watch.sh) the throughput
//! benchmark. Lab tests need root and skip visibly otherwise (tests/common).

mod common;

use common::shared_dir::SharedDir;
use common::{Netns, veth};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_dscproute");
const PORT: u16 = 47000;
const S4: &str = "10.99.0.1";
const R4: &str = "10.99.0.2";
const S6: &str = "fd99::1";
const R6: &str = "fd99::2";

/// Sender `s` (dev w0) and receiver `r` (dev w1) on one veth pair, both
/// families addressed, with permanent neighbour entries so that no ARP or
/// neighbour discovery runs while a test counts.
struct Pair {
    s: Netns,
    r: Netns,
}

fn mac(ns: &Netns, dev: &str) -> String {
    let out = ns.exec_ok(&["ip", "-j", "link", "show", dev]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("ip -j link");
    v[0]["address"].as_str().expect("address").to_string()
}

impl Pair {
    fn new(lab: &common::Lab) -> Pair {
        let (s, r) = (lab.netns(), lab.netns());
        for ns in [&s, &r] {
            ns.exec_ok(&[
                "sysctl",
                "-q",
                "-w",
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
            ]);
        }
        veth(&s, "w0", &r, "w1");
        s.addr("w0", &format!("{S4}/24"));
        s.addr("w0", &format!("{S6}/64"));
        r.addr("w1", &format!("{R4}/24"));
        r.addr("w1", &format!("{R6}/64"));
        let (ms, mr) = (mac(&s, "w0"), mac(&r, "w1"));
        for (ns, dev, peer4, peer6, lladdr) in [(&s, "w0", R4, R6, &mr), (&r, "w1", S4, S6, &ms)] {
            for peer in [peer4, peer6] {
                ns.exec_ok(&[
                    "ip",
                    "neigh",
                    "replace",
                    peer,
                    "lladdr",
                    lladdr,
                    "dev",
                    dev,
                    "nud",
                    "permanent",
                ]);
            }
        }
        Pair { s, r }
    }
}

fn set_opt(sock: &UdpSocket, level: libc::c_int, name: libc::c_int, value: u8) {
    let v = libc::c_int::from(value);
    // SAFETY: a valid socket fd, pointer and length of a live c_int.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt: {}", std::io::Error::last_os_error());
}

/// `watch` started inside `ns`, returned once it is capturing (its
/// "watching" line on stderr).
fn start_watch(ns: &Netns, args: &[&str]) -> Child {
    let mut argv = vec![BIN, "watch"];
    argv.extend_from_slice(args);
    let mut child = ns
        .command(&argv)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start dscproute watch");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(line) if line.contains("watching") => child,
        other => {
            let _ = child.kill();
            panic!("watch did not start: {other:?}");
        }
    }
}

fn finish_json(child: Child) -> Value {
    let out = child.wait_with_output().expect("wait for watch");
    assert!(out.status.success(), "watch failed: {:?}", out.status);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "watch --json printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// (family, DSCP, packets, UDP payload bytes): what the counting test sends.
const PLAN: &[(u8, u8, u64, usize)] = &[
    (4, 7, 300, 20),
    (6, 7, 200, 20),
    (4, 46, 50, 100),
    (6, 10, 70, 0),
    (4, 63, 11, 7),
    (6, 1, 13, 64),
    (4, 0, 17, 30),
];

fn ip_len(family: u8, payload: usize) -> u64 {
    (if family == 4 { 20 + 8 } else { 40 + 8 } + payload) as u64
}

/// Every DSCP sent is counted exactly, per family, packets and IP bytes;
/// ECN bits (varied per packet) never change the DSCP; the top pairs of
/// the selected DSCP are the two sender→receiver pairs; no kernel drops.
#[test]
fn watch_counts_exactly_the_packets_sent_per_dscp() {
    let Some(lab) = common::lab("watch_counts_exactly_the_packets_sent_per_dscp", &[]) else {
        return;
    };
    let p = Pair::new(&lab);
    // Listeners, so no port-unreachable errors come back into the count.
    let sinks = p.r.run(|| {
        (
            UdpSocket::bind((R4.parse::<IpAddr>().unwrap(), PORT)).expect("bind v4 sink"),
            UdpSocket::bind((R6.parse::<IpAddr>().unwrap(), PORT)).expect("bind v6 sink"),
        )
    });
    let watch = start_watch(
        &p.r,
        &["-i", "w1", "--dscp", "7", "--seconds", "3", "--json"],
    );
    p.s.run(|| {
        let v4 = UdpSocket::bind((S4.parse::<IpAddr>().unwrap(), 0)).unwrap();
        let v6 = UdpSocket::bind((S6.parse::<IpAddr>().unwrap(), 0)).unwrap();
        for &(family, dscp, n, payload) in PLAN {
            let data = vec![0x5a; payload];
            for i in 0..n {
                let byte = (dscp << 2) | (i % 4) as u8;
                let (sock, to): (&UdpSocket, SocketAddr) = if family == 4 {
                    set_opt(&v4, libc::IPPROTO_IP, libc::IP_TOS, byte);
                    (&v4, (R4.parse::<IpAddr>().unwrap(), PORT).into())
                } else {
                    set_opt(&v6, libc::IPPROTO_IPV6, libc::IPV6_TCLASS, byte);
                    (&v6, (R6.parse::<IpAddr>().unwrap(), PORT).into())
                };
                sock.send_to(&data, to).expect("send");
            }
        }
    });
    let v = finish_json(watch);
    drop(sinks);

    assert_eq!(v["interface"], "w1");
    assert_eq!(v["selected_dscp"], 7);
    assert_eq!(v["kernel_drops"], 0, "{v:#}");
    for d in [7u8, 46, 10, 63, 1] {
        let line = &v["dscp"][d.to_string()];
        let sent = |fam: u8| -> (u64, u64) {
            PLAN.iter()
                .filter(|(f, x, _, _)| *f == fam && *x == d)
                .map(|&(f, _, n, pl)| (n, n * ip_len(f, pl)))
                .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
        };
        let (n4, b4) = sent(4);
        let (n6, b6) = sent(6);
        assert_eq!(
            (line["v4"].as_u64(), line["v6"].as_u64()),
            (Some(n4), Some(n6)),
            "DSCP {d}: {v:#}"
        );
        assert_eq!(line["packets"].as_u64(), Some(n4 + n6), "DSCP {d}");
        assert_eq!(line["bytes"].as_u64(), Some(b4 + b6), "DSCP {d}");
    }
    // IPv4 DSCP 0 is exactly ours (no ARP: neighbours are permanent, and
    // ARP is not IP anyway); IPv6 DSCP 0 may hold the kernel's own MLD.
    assert_eq!(v["dscp"]["0"]["v4"], 17, "{v:#}");
    // Nothing else: no value beyond those sent.
    let keys: Vec<&str> = v["dscp"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for k in &keys {
        assert!(
            ["0", "1", "7", "10", "46", "63"].contains(k),
            "unexpected DSCP {k}: {v:#}"
        );
    }
    let pairs = v["top_pairs"].as_array().expect("top_pairs");
    let got: Vec<(String, String, u64)> = pairs
        .iter()
        .map(|p| {
            assert_eq!(p["dscp"], 7);
            (
                p["src"].as_str().unwrap().to_string(),
                p["dst"].as_str().unwrap().to_string(),
                p["packets"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [(S4.into(), R4.into(), 300), (S6.into(), R6.into(), 200)],
        "{v:#}"
    );
    assert_eq!(
        v["tcpdump"],
        "tcpdump -ni w1 -v '(ip and (ip[1] & 0xfc) >> 2 == 7) or (ip6 and (ip6[0:2] & 0x0fc0) >> 6 == 7)'"
    );
    assert!(v["seconds"].as_f64().unwrap() >= 3.0);
}

/// The text form, piped: one table at the end, DSCP rows in numeric order.
#[test]
fn watch_text_summary_when_piped() {
    let Some(lab) = common::lab("watch_text_summary_when_piped", &[]) else {
        return;
    };
    let p = Pair::new(&lab);
    let _sink =
        p.r.run(|| UdpSocket::bind((R4.parse::<IpAddr>().unwrap(), PORT)).unwrap());
    let watch = start_watch(&p.r, &["-i", "w1", "--seconds", "2"]);
    p.s.run(|| {
        let v4 = UdpSocket::bind((S4.parse::<IpAddr>().unwrap(), 0)).unwrap();
        for (tos, n) in [(0xb8u8, 5), (0x1c, 3)] {
            set_opt(&v4, libc::IPPROTO_IP, libc::IP_TOS, tos);
            for _ in 0..n {
                v4.send_to(b"x", (R4, PORT)).unwrap();
            }
        }
    });
    let out = watch.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let row7 = text
        .find("\n    7 -")
        .unwrap_or_else(|| panic!("no DSCP 7 row:\n{text}"));
    let row46 = text
        .find("\n   46 EF")
        .unwrap_or_else(|| panic!("no DSCP 46 row:\n{text}"));
    assert!(row7 < row46, "rows in numeric order:\n{text}");
    assert!(
        text.contains("Same view: tcpdump -ni w1 -v 'ip or ip6'"),
        "{text}"
    );
}

/// Without CAP_NET_RAW: exit 4 and one line naming the capability.
#[test]
fn watch_without_cap_net_raw_names_it() {
    let Some(lab) = common::lab("watch_without_cap_net_raw_names_it", &["setpriv"]) else {
        return;
    };
    let ns = lab.netns();
    // nobody cannot read the checkout when it lives in a private directory.
    let shared = SharedDir::new();
    let bin = shared.bin();
    let out = common::run(
        ns.command(&[
            "setpriv",
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--inh-caps=-all",
            bin.to_str().unwrap(),
            "watch",
            "-i",
            "lo",
            "--seconds",
            "1",
        ])
        .current_dir(shared.path()),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("CAP_NET_RAW"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(out.stdout.is_empty());
}

/// A reader that goes away ends the watch quietly (no panic on EPIPE).
#[test]
fn watch_survives_a_closed_pipe() {
    let Some(lab) = common::lab("watch_survives_a_closed_pipe", &[]) else {
        return;
    };
    let ns = lab.netns();
    let mut child = start_watch(&ns, &["-i", "lo"]);
    drop(child.stdout.take());
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "watch kept running with nobody reading"
        );
        thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
}

/// Bad input is exit 2 before any capture (needs no root).
#[test]
fn watch_rejects_bad_input() {
    for (args, needle) in [
        (&["watch", "-i", "lo", "--dscp", "cs10"][..], "--dscp"),
        (
            &["watch", "-i", "dscpr-no-such-if", "--seconds", "1"],
            "no interface",
        ),
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty());
    }
}

// ---------------------------------------------------------------------------
// Benchmark (bench/watch.sh): `cargo test --release --test lab_watch --
// --ignored --nocapture watch_benchmark`.

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU seconds of reaped children (ours: only the watch, reaped in between).
fn children_cpu() -> f64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// Sends 64-byte UDP packets with DSCP 7 from `s` as fast as one thread can
/// (sendmmsg, 64 per call), or at `pps` when non-zero, until `stop`.
fn blast(stop: &AtomicBool, pps: u64) -> u64 {
    let sock = UdpSocket::bind((S4.parse::<IpAddr>().unwrap(), 0)).unwrap();
    set_opt(&sock, libc::IPPROTO_IP, libc::IP_TOS, 0x1c);
    sock.connect((R4, PORT)).unwrap();
    const BATCH: usize = 64;
    let payload = [0u8; 36]; // 20 + 8 + 36 = 64-byte IP packets
    let mut iov: Vec<libc::iovec> = (0..BATCH)
        .map(|_| libc::iovec {
            iov_base: payload.as_ptr() as *mut libc::c_void,
            iov_len: payload.len(),
        })
        .collect();
    // SAFETY: zeroed mmsghdr is valid; each points at one iovec below.
    let mut msgs: Vec<libc::mmsghdr> = (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
    for (m, io) in msgs.iter_mut().zip(iov.iter_mut()) {
        m.msg_hdr.msg_iov = io;
        m.msg_hdr.msg_iovlen = 1;
    }
    let start = Instant::now();
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if pps > 0 {
            let due = (start.elapsed().as_secs_f64() * pps as f64) as u64;
            if sent >= due {
                thread::sleep(Duration::from_micros(200));
                continue;
            }
        }
        // SAFETY: msgs/iov/payload outlive the call.
        let n = unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), BATCH as u32, 0) };
        if n > 0 {
            sent += n as u64;
        }
    }
    sent
}

fn rx_dropped(ns: &Netns, dev: &str) -> u64 {
    let out = ns.exec_ok(&["ip", "-j", "-s", "link", "show", dev]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0]["stats64"]["rx"]["dropped"].as_u64().unwrap_or(0)
}

/// The classifier alone (parse + count, what `watch` does per packet in
/// user space) over synthetic Ethernet frames: packets per second on one core.
fn classifier_rate() -> f64 {
    use dscproute::watch::{LinkKind, Tally, parse_frame};
    let mut frame = vec![0u8; 12];
    frame.extend_from_slice(&[0x08, 0x00, 0x45, 0x1c, 0, 64, 0, 0, 0x40, 0, 64, 17, 0, 0]);
    frame.extend_from_slice(&[10, 99, 0, 1, 10, 99, 0, 2]);
    frame.extend_from_slice(&[0u8; 44]);
    let mut tally = Tally::new(Some(7));
    let n = 20_000_000u32;
    let t = Instant::now();
    for i in 0..n {
        frame[29] = (i & 0xff) as u8; // vary the source a little
        match parse_frame(LinkKind::Ethernet, 0, std::hint::black_box(&frame), 78) {
            Some(h) => tally.add(&h),
            None => tally.add_non_ip(78),
        }
    }
    let rate = f64::from(n) / t.elapsed().as_secs_f64();
    assert_eq!(tally.per_dscp[7].packets, u64::from(n));
    rate
}

#[test]
#[ignore = "benchmark: run by bench/watch.sh"]
fn watch_benchmark() {
    let Some(lab) = common::lab("watch_benchmark", &[]) else {
        return;
    };
    let seconds = env_u64("DSCPROUTE_BENCH_SECONDS", 10);
    let pps = env_u64("DSCPROUTE_BENCH_PPS", 0);
    let senders = env_u64("DSCPROUTE_BENCH_SENDERS", 2).max(1);
    let p = Pair::new(&lab);
    // A listener, so the flood causes no ICMP errors.
    let _sink =
        p.r.run(|| UdpSocket::bind((R4.parse::<IpAddr>().unwrap(), PORT)).unwrap());
    // Baseline: the same flood with nobody capturing, for the cost of the tap.
    let base_secs = 3.0;
    let stop = AtomicBool::new(false);
    let base: u64 = thread::scope(|sc| {
        let handles: Vec<_> = (0..senders)
            .map(|_| sc.spawn(|| p.s.run(|| blast(&stop, pps / senders))))
            .collect();
        thread::sleep(Duration::from_secs_f64(base_secs));
        stop.store(true, Ordering::Relaxed);
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let drops_before = rx_dropped(&p.r, "w1");
    let cpu0 = children_cpu();
    let secs = seconds.to_string();
    let mut watch = start_watch(
        &p.r,
        &["-i", "w1", "--dscp", "7", "--seconds", &secs, "--json"],
    );
    let stop = AtomicBool::new(false);
    let t0 = Instant::now();
    let sent: u64 = thread::scope(|sc| {
        let handles: Vec<_> = (0..senders)
            .map(|_| sc.spawn(|| p.s.run(|| blast(&stop, pps / senders))))
            .collect();
        thread::sleep(Duration::from_secs(seconds).saturating_sub(Duration::from_millis(300)));
        stop.store(true, Ordering::Relaxed);
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let send_secs = t0.elapsed().as_secs_f64();
    let mut stdout = String::new();
    watch
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let status = watch.wait().unwrap();
    let cpu = children_cpu() - cpu0;
    assert!(status.success());
    let v: Value = serde_json::from_str(&stdout).expect("JSON summary");
    let counted = v["dscp"]["7"]["packets"].as_u64().unwrap_or(0);
    let wall = v["seconds"].as_f64().unwrap();
    let veth_drops = rx_dropped(&p.r, "w1") - drops_before;
    let classifier = classifier_rate();
    let report = format!(
        "watch benchmark: {seconds} s, {senders} sender thread(s), 64-byte UDP with DSCP 7 over a veth\n\
         without watch     {:.0} pkt/s sent (baseline, {base_secs} s)\n\
         sent              {sent} packets in {send_secs:.2} s = {:.0} pkt/s\n\
         classified        {counted} packets with DSCP 7 = {:.0} pkt/s while sending\n\
         all IP counted    {} (the rest: the kernel's own IPv6 MLD/RS)\n\
         kernel drops      {} (capture ring full)\n\
         veth rx drops     {veth_drops} (receiver backlog, before any capture)\n\
         watch CPU         {cpu:.2} s in {wall:.2} s = {:.1} % of one core (the kernel fills the ring in the sender's softirq)\n\
         classifier alone  {:.1} M pkt/s on one core (parse + count, user space)",
        base as f64 / base_secs,
        sent as f64 / send_secs,
        counted as f64 / send_secs,
        v["packets"],
        v["kernel_drops"],
        cpu / wall * 100.0,
        classifier / 1e6,
    );
    let _ = writeln_stderr(&report);
    assert_eq!(v["kernel_drops"], 0, "{report}");
    assert_eq!(counted, sent - veth_drops, "{report}");
}

fn writeln_stderr(s: &str) -> std::io::Result<()> {
    use std::io::Write;
    writeln!(std::io::stderr(), "{s}")
}
