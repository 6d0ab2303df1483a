//! The probe's `ip -j` reads come from two `ip -j -batch -` processes
//! (`probe/ip_batch.rs`). Proven on a real kernel: in a namespace with links,
//! addresses, routes and policy rules of many kinds in both families, the
//! facts read through the batches equal the facts read one command at a
//! time, with the `ip` on PATH and with iproute2 6.1's (the directory
//! `.ci/run` exports as DSCPROUTE_LAB_OLD_IP_DIR).

mod common;

use common::Netns;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const OLD_IP_DIR: &str = "DSCPROUTE_LAB_OLD_IP_DIR";

/// Every kind of route and rule the plans read, in both families.
fn populate(ns: &Netns) {
    for argv in [
        "ip link add a0 type veth peer name a1",
        "ip link set a0 up",
        "ip link set a1 up",
        "ip addr add 192.0.2.2/24 dev a0",
        "ip addr add 10.1.0.1 peer 10.1.0.2 dev a1",
        "ip -6 addr add 2001:db8::2/64 dev a0 nodad",
        "ip route add default via 192.0.2.1 dev a0",
        "ip route add 198.51.100.0/24 via 192.0.2.1 table 100 proto 77 metric 50",
        "ip route add blackhole 203.0.113.0/24 table 100",
        "ip route add unreachable default table 100 metric 4278198272",
        "ip route add prohibit 198.18.0.0/15 table 7",
        "ip -6 route add default via 2001:db8::1 dev a0 table 100",
        "ip -6 route add unreachable default table 100 metric 4278198272",
        "ip -6 route add 2001:db8:5::/48 via 2001:db8::7 dev a0 proto 77 metric 9",
        "ip rule add pref 100 fwmark 0x1/0xff lookup 100 proto 77",
        "ip rule add pref 101 not from 10.0.0.0/8 iif a0 lookup main suppress_prefixlength 0",
        "ip rule add pref 102 tos 0x10 goto 104",
        "ip rule add pref 103 oif a1 prohibit",
        "ip rule add pref 104 to 198.51.100.7 blackhole",
        "ip -6 rule add pref 100 fwmark 0x1/0xff lookup 100",
        "ip -6 rule add pref 101 from 2001:db8::/64 unreachable",
    ] {
        ns.exec_ok(&argv.split(' ').collect::<Vec<_>>());
    }
}

/// An `ip` first on PATH that logs each call and runs `real`; with
/// `no_batch` it refuses `-j -batch` reads, so the probe reads one command
/// at a time.
fn ip_wrapper(dir: &Path, real: &Path, no_batch: bool) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let refuse = if no_batch {
        r#"case " $* " in *" -batch "*) case " $* " in *" -j "*) echo "lab: no batch" >&2; exit 1 ;; esac ;; esac"#
    } else {
        ""
    };
    let script = format!(
        "#!/bin/sh\necho \"$*\" >> '{log}'\n{refuse}\nexec '{real}' \"$@\"\n",
        log = dir.join("calls").display(),
        real = real.display()
    );
    let path = dir.join("ip");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir.to_path_buf()
}

/// `dscproute facts --json` in `ns` with `dir` first on PATH: the parts the
/// batches read, and the calls `ip` saw.
fn ip_facts(ns: &Netns, dir: &Path) -> (serde_json::Value, Vec<String>) {
    let _ = std::fs::remove_file(dir.join("calls"));
    let path = format!(
        "PATH={}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = ns.exec_ok(&[
        "env",
        &path,
        env!("CARGO_BIN_EXE_dscproute"),
        "facts",
        "--json",
    ]);
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).expect("facts JSON");
    let keys = ["links", "routes_v4", "routes_v6", "rules_v4", "rules_v6"];
    let mut part = serde_json::Map::new();
    for k in keys {
        part.insert(k.into(), all[k].clone());
    }
    let unread: Vec<String> = all["unreadable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.to_string())
        .filter(|n| n.contains("ip -j"))
        .collect();
    assert_eq!(unread, Vec::<String>::new(), "an ip read failed");
    let calls = std::fs::read_to_string(dir.join("calls")).unwrap_or_default();
    (
        serde_json::Value::Object(part),
        calls.lines().map(String::from).collect(),
    )
}

fn batched_equals_single(ns: &Netns, work: &Path, real: &Path) {
    let (batched, calls) = ip_facts(ns, &ip_wrapper(&work.join("batch"), real, false));
    let (single, single_calls) = ip_facts(ns, &ip_wrapper(&work.join("single"), real, true));
    let reads = |calls: &[String]| -> Vec<String> {
        let mut r: Vec<String> = calls
            .iter()
            .filter(|c| c.starts_with("-j"))
            .cloned()
            .collect();
        r.sort();
        r
    };
    assert_eq!(
        reads(&calls),
        ["-j -6 -batch -", "-j -batch -"],
        "{}: two batches and nothing else",
        real.display()
    );
    assert_eq!(
        reads(&single_calls)
            .iter()
            .filter(|c| !c.ends_with("-batch -"))
            .count(),
        5,
        "{}: the refused batches fall back to single commands: {single_calls:?}",
        real.display()
    );
    assert_eq!(batched, single, "{}", real.display());
    for k in ["routes_v4", "routes_v6", "rules_v4", "rules_v6"] {
        let n = batched[k].as_array().map_or(0, Vec::len);
        assert!(n >= 3, "{k}: only {n} read with {}", real.display());
    }
    let v4 = batched["routes_v4"].to_string();
    let v6 = batched["routes_v6"].to_string();
    assert!(
        v4.contains("198.51.100.0/24") && !v4.contains("2001:db8"),
        "{v4}"
    );
    assert!(v6.contains("2001:db8:5::/48") && !v6.contains("198.51.100.0/24"));
}

#[test]
fn the_ip_batches_read_what_the_single_commands_read() {
    let name = "the_ip_batches_read_what_the_single_commands_read";
    let Some(lab) = common::lab(name, &[]) else {
        return;
    };
    let ns = lab.netns();
    populate(&ns);
    let work = tempfile::tempdir().unwrap();
    let ip = which::which("ip").unwrap();
    batched_equals_single(&ns, &work.path().join("now"), &ip);
    let required = std::env::var("DSCPROUTE_LAB").is_ok_and(|v| v == "required");
    match std::env::var_os(OLD_IP_DIR) {
        Some(dir) => {
            batched_equals_single(&ns, &work.path().join("old"), &Path::new(&dir).join("ip"))
        }
        None if required => panic!("lab test {name}: {OLD_IP_DIR} is not set (.ci/run sets it)"),
        None => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIP the older-ip half of {name}: {OLD_IP_DIR} is not set (.ci/run sets it)"
            );
        }
    }
}
