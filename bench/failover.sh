#!/usr/bin/env bash
# Benchmark: `dscproute agent` failing a class over between two VPN uplinks.
# Four namespaces: a client sending a UDP datagram with DSCP 7 every 2 ms
# (python3), the gateway running the agent (one class: wg0 then wg1, each
# pinged through itself every second, 2 losses = down), and the far ends of
# wg0 and wg1, where tcpdump sees what comes through. ROUNDS times (default
# 20) each:
# - link: wg0 down; time until the first datagram arrives at wg1's far end,
#   and the agent's own "detected in / switched in" figures; wg0 up, then
#   wait until the class is back on wg0 (after its hold-down);
# - peer: wg0's far end drops everything (its link stays up: only the
#   check can tell); the same figures; the drop removed, back on wg0.
# Prints each round and the medians. Root only; touches nothing outside the
# namespaces and /etc/netns.
# Usage: sudo bench/failover.sh [ROUNDS]   (DSCPROUTE_BIN=path skips the build)
set -euo pipefail
ROUNDS=${1:-20}
cd "$(dirname "$0")/.."
if [ -n "${DSCPROUTE_BIN:-}" ]; then
    BIN=$DSCPROUTE_BIN
else
    cargo build --release --quiet
    BIN=$PWD/target/release/dscproute
fi
C=dscpr-fc-$$ G=dscpr-fg-$$ V1=dscpr-f1-$$ V2=dscpr-f2-$$
WORK=$(mktemp -d)
AGENT= SENDER=
cleanup() {
    set +e
    [ -n "$SENDER" ] && kill "$SENDER" 2>/dev/null
    [ -n "$AGENT" ] && kill "$AGENT" 2>/dev/null && wait "$AGENT" 2>/dev/null
    for ns in "$C" "$G" "$V1" "$V2"; do ip netns del "$ns" 2>/dev/null || true; rm -rf "/etc/netns/$ns"; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

for ns in "$C" "$G" "$V1" "$V2"; do
    mkdir -p "/etc/netns/$ns/iproute2/rt_tables.d"
    if [ -f /etc/iproute2/rt_tables ]; then cp /etc/iproute2/rt_tables "/etc/netns/$ns/iproute2/"; fi
    ip netns add "$ns"
    ip -n "$ns" link set lo up
done
ip -n "$C" link add eth0 type veth peer name lan0 netns "$G"
ip -n "$G" link add wg0 type veth peer name eth0 netns "$V1"
ip -n "$G" link add wg1 type veth peer name eth0 netns "$V2"
ip -n "$C" addr add 192.168.50.2/24 dev eth0
ip -n "$G" addr add 192.168.50.1/24 dev lan0
ip -n "$G" addr add 10.8.0.2/24 dev wg0
ip -n "$G" addr add 10.9.0.2/24 dev wg1
ip -n "$V1" addr add 10.8.0.1/24 dev eth0
ip -n "$V2" addr add 10.9.0.1/24 dev eth0
for l in "$C eth0" "$G lan0" "$G wg0" "$G wg1" "$V1 eth0" "$V2 eth0"; do
    set -- $l
    ip -n "$1" link set "$2" up
done
ip -n "$C" route add default via 192.168.50.1
cat > "$WORK/gw.toml" <<'T'
[[class]]
name = "bulk"
dscp = "7"
uplinks = [ { interface = "wg0", via = "10.8.0.1", check = { ping = "10.8.0.1", every = "1s", fails = 2 } },
            { interface = "wg1", via = "10.9.0.1", check = { ping = "10.9.0.1", every = "1s", fails = 2 } } ]
T
ip netns exec "$G" "$BIN" --state-dir "$WORK/state" agent --profile "$WORK/gw.toml" \
    > "$WORK/agent.log" 2>&1 &
AGENT=$!
until grep -q "^applied" "$WORK/agent.log"; do sleep 0.1; done
# DSCP 7 is ToS 0x1c.
ip netns exec "$C" python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0x1c)
while True:
    try:
        s.sendto(b"x", ("198.51.100.1", 9))
    except OSError:
        pass
    time.sleep(0.002)
' &
SENDER=$!

now() { date +%s.%N; }
switches() { grep -c "class bulk: $1" "$WORK/agent.log" || true; }
# Waits (at most 30 s) for one more "class bulk: FROM -> TO" line.
wait_switch() {
    local want=$(($2 + 1)) i=0
    until [ "$(switches "$1")" -ge "$want" ]; do
        sleep 0.02
        i=$((i + 1))
        [ "$i" -lt 1500 ] || { echo "no switch $1 within 30 s" >&2; tail "$WORK/agent.log" >&2; exit 1; }
    done
}
# The agent's "detected in N ms, switched in M ms" of its last FROM -> TO line.
figures() {
    grep "class bulk: $1" "$WORK/agent.log" | tail -1 |
        sed -E 's/.*detected in ([0-9]+) ms, switched in ([0-9]+) ms.*/\1 \2/'
}
median() { sort -n | awk '{ v[NR] = $1 } END {
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "median %d ms (min %d, max %d, n %d)", m, v[1], v[NR], NR }'; }

# One failover: CUT runs the cut, HEAL undoes it. Appends "total detect switch".
round() {
    local kind=$1 cut=$2 heal=$3 away back
    away=$(switches "wg0 -> wg1")
    back=$(switches "wg1 -> wg0")
    : > "$WORK/dump.err"
    ip netns exec "$V2" timeout 20 tcpdump -l -n -tt -c 1 -i eth0 udp port 9 \
        2> "$WORK/dump.err" > "$WORK/first" &
    local dump=$!
    until grep -q "listening on" "$WORK/dump.err"; do sleep 0.01; done
    local t0
    t0=$(now)
    $cut
    wait "$dump" || true
    local t1 ms
    t1=$(cut -d' ' -f1 "$WORK/first")
    ms=$(printf '%.0f' "$(echo "($t1 - $t0) * 1000" | bc -l)")
    wait_switch "wg0 -> wg1" "$away"
    read -r det sw < <(figures "wg0 -> wg1")
    echo "$kind $i: first packet on wg1 ${ms} ms after the cut (agent: detected in $det ms, switched in $sw ms)"
    echo "$ms $det $sw" >> "$WORK/$kind"
    $heal
    wait_switch "wg1 -> wg0" "$back"
}
link_cut() { ip -n "$G" link set wg0 down; }
link_heal() { ip -n "$G" link set wg0 up; }
peer_cut() { ip netns exec "$V1" iptables -t raw -A PREROUTING -j DROP; }
peer_heal() { ip netns exec "$V1" iptables -t raw -F PREROUTING; }

for i in $(seq "$ROUNDS"); do round link link_cut link_heal; done
for i in $(seq "$ROUNDS"); do round peer peer_cut peer_heal; done

for kind in link peer; do
    echo "$kind: cut -> first packet on wg1: $(cut -d' ' -f1 "$WORK/$kind" | median)"
    echo "$kind: detection (agent):          $(cut -d' ' -f2 "$WORK/$kind" | median)"
    echo "$kind: switch (agent):             $(cut -d' ' -f3 "$WORK/$kind" | median)"
done
echo "check: every 1 s, 2 losses; load average: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores, Linux $(uname -r)"
