#!/usr/bin/env bash
# Benchmark: `dscproute agent` on a scratch gateway. Three namespaces: a
# client sending a UDP datagram with DSCP 7 every 2 ms (python3), the gateway
# running the agent (gateway profile, wg0 a veth), and the "vpn" end of wg0
# where tcpdump sees what comes through. FLAPS times (default 20): wg0
# down, wait until the agent says it waits, then wg0 up with its IPv6
# address re-added (as a VPN client does; IPv4 ones stay) and time until
# the first datagram arrives at the vpn end. Prints each time and the median.
# Then IDLE seconds (default 60) with nothing happening: the agent's CPU
# (its own, and its children's: the drift check's probe every 5 s) and its
# RSS. Root only; touches nothing outside the namespaces and /etc/netns.
# Usage: sudo bench/agent.sh [FLAPS] [IDLE]
set -euo pipefail
FLAPS=${1:-20}
IDLE=${2:-60}
cd "$(dirname "$0")/.."
cargo build --release --quiet
BIN=$PWD/target/release/dscproute
C=dscpr-bc-$$ G=dscpr-bg-$$ V=dscpr-bv-$$
WORK=$(mktemp -d)
AGENT= SENDER=
cleanup() {
    set +e
    [ -n "$SENDER" ] && kill "$SENDER" 2>/dev/null
    [ -n "$AGENT" ] && kill "$AGENT" 2>/dev/null && wait "$AGENT" 2>/dev/null
    for ns in "$C" "$G" "$V"; do ip netns del "$ns" 2>/dev/null || true; rm -rf "/etc/netns/$ns"; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

for ns in "$C" "$G" "$V"; do
    mkdir -p "/etc/netns/$ns/iproute2/rt_tables.d"
    cp /etc/iproute2/rt_tables "/etc/netns/$ns/iproute2/"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
done
ip -n "$C" link add eth0 type veth peer name lan0 netns "$G"
ip -n "$G" link add wg0 type veth peer name eth0 netns "$V"
ip -n "$C" addr add 192.168.50.2/24 dev eth0
ip -n "$G" addr add 192.168.50.1/24 dev lan0
ip -n "$G" addr add 10.8.0.2/24 dev wg0
ip -n "$G" addr add fd00::2/64 dev wg0 nodad
ip -n "$V" addr add 10.8.0.1/24 dev eth0
ip -n "$V" addr add fd00::1/64 dev eth0 nodad
for l in "$C eth0" "$G lan0" "$G wg0" "$V eth0"; do set -- $l; ip -n "$1" link set "$2" up; done
ip -n "$C" route add default via 192.168.50.1
cat > "$WORK/gw.toml" <<'T'
[gateway]
dscp = "7"
interface = "wg0"
via = "10.8.0.1"
via6 = "fd00::1"
table = "vpn"
table_id = 100
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
times=()
for i in $(seq "$FLAPS"); do
    lines=$(grep -c "waiting" "$WORK/agent.log" || true)
    ip -n "$G" link set wg0 down
    until [ "$(grep -c "waiting" "$WORK/agent.log" || true)" -gt "$lines" ]; do sleep 0.02; done
    : > "$WORK/dump.err"
    ip netns exec "$V" timeout 10 tcpdump -l -n -tt -c 1 -i eth0 udp port 9 2> "$WORK/dump.err" > "$WORK/first" &
    DUMP=$!
    until grep -q "listening on" "$WORK/dump.err"; do sleep 0.01; done
    t0=$(now)
    ip -n "$G" link set wg0 up
    ip -n "$G" -6 addr replace fd00::2/64 dev wg0 nodad
    wait "$DUMP" || true
    t1=$(cut -d' ' -f1 "$WORK/first")
    ms=$(echo "($t1 - $t0) * 1000" | bc -l)
    times+=("$(printf '%.0f' "$ms")")
    echo "flap $i: first packet through the VPN ${times[-1]} ms after link up"
done
printf '%s\n' "${times[@]}" | sort -n | awk '{ v[NR] = $1 } END {
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "link up -> first packet: median %d ms (min %d, max %d, %d flaps)\n", m, v[1], v[NR], NR }'

kill "$SENDER" 2>/dev/null || true
ticks() { awk '{ print $14 + $15, $16 + $17 }' "/proc/$AGENT/stat"; }
hz=$(getconf CLK_TCK)
read -r own0 kids0 < <(ticks)
sleep "$IDLE"
read -r own1 kids1 < <(ticks)
rss=$(awk '/VmRSS/ { print $2 }' "/proc/$AGENT/status")
hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$AGENT/status")
echo "idle ${IDLE} s: agent CPU $(echo "scale=3; ($own1 - $own0) * 100 / $hz / $IDLE" | bc)% of a core," \
    "its drift checks' children $(echo "scale=3; ($kids1 - $kids0) * 100 / $hz / $IDLE" | bc)%;" \
    "RSS ${rss} kB (peak ${hwm} kB)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores, Linux $(uname -r)"
