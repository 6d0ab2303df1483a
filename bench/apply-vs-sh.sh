#!/usr/bin/env bash
# Benchmark: `dscproute apply` and `rollback` of the gateway profile in a
# scratch network namespace, against the same commands run from a plain sh
# script (`dscproute plan --script`). Root only; touches nothing outside the
# namespace and /etc/netns/NAME. RUNS runs of ROUNDS rounds each; each run
# prints its means and ratios, then the spread of the ratios over the runs
# (min–max, median) and the load average before and after: quote the spread,
# never one run. The script is always the iptables backend's (one command
# per step); BACKEND=nft times dscproute on its nftables backend against it.
# Usage: sudo [BACKEND=iptables|nft] bench/apply-vs-sh.sh [ROUNDS] [RUNS]
set -euo pipefail
ROUNDS=${1:-20}
RUNS=${2:-5}
BACKEND=${BACKEND:-iptables}
cd "$(dirname "$0")/.."
cargo build --release --quiet
BIN=$PWD/target/release/dscproute
NS=dscpr-bench-$$
WORK=$(mktemp -d)
cleanup() { ip netns del "$NS" 2>/dev/null || true; rm -rf "/etc/netns/$NS" "$WORK"; }
trap cleanup EXIT

mkdir -p "/etc/netns/$NS/iproute2/rt_tables.d"
# iproute2 >= 6.13 keeps its defaults in /usr/share/iproute2.
for f in /etc/iproute2/rt_tables /usr/share/iproute2/rt_tables; do
    [ -f "$f" ] && { cp "$f" "/etc/netns/$NS/iproute2/"; break; }
done
ip netns add "$NS"
X=(ip netns exec "$NS")
"${X[@]}" ip link set lo up
"${X[@]}" ip link add wg0 type veth peer name wgp
"${X[@]}" ip link set wg0 up
"${X[@]}" ip link set wgp up
"${X[@]}" ip addr add 10.8.0.2/24 dev wg0
"${X[@]}" ip -6 addr add fd00::2/64 dev wg0 nodad
# A new namespace inherits forwarding from the host: pin it, so that the
# plan (34 steps) does not depend on the host's settings.
"${X[@]}" sysctl -q -w net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0
"${X[@]}" sysctl -q -w net.ipv4.conf.all.rp_filter=1
cat > "$WORK/gw-iptables.toml" <<'T'
[gateway]
dscp = "7"
interface = "wg0"
via = "10.8.0.1"
via6 = "fd00::1"
table = "vpn"
table_id = 100
T
{ echo "backend = \"$BACKEND\""; cat "$WORK/gw-iptables.toml"; } > "$WORK/gw.toml"
"${X[@]}" "$BIN" plan --profile "$WORK/gw-iptables.toml" --script > "$WORK/plan.sh"
steps=$(grep -c '^step_' "$WORK/plan.sh")

now() { date +%s%N; }
ms() { echo "scale=1; $1 / $ROUNDS / 1000000" | bc; }
ratio() { printf "%.2f" "$(echo "scale=4; $1 / $2" | bc)"; }
spread() { # ratios, one a line: "min–max (median M)"
    sort -n | awk '{ v[NR] = $1 } END {
        m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.2f–%.2f× (median %.2f×)", v[1], v[NR], m }'
}
echo "gateway profile, dscproute on $BACKEND against the iptables script's $steps steps; $RUNS runs of $ROUNDS rounds, mean per run;" \
    "$(nproc) cores, Linux $(uname -r), $(iptables --version), $(nft --version)"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
apply_ratios=(); rollback_ratios=()
for run in $(seq "$RUNS"); do
    t_apply=0; t_rollback=0; t_sh_apply=0; t_sh_undo=0
    for _ in $(seq "$ROUNDS"); do
        a=$(now); "${X[@]}" "$BIN" --state-dir "${STATE:-$WORK/state}" apply --profile "$WORK/gw.toml" --yes >/dev/null
        b=$(now); "${X[@]}" "$BIN" --state-dir "${STATE:-$WORK/state}" rollback --yes >/dev/null
        c=$(now); "${X[@]}" sh "$WORK/plan.sh" apply >/dev/null
        d=$(now); "${X[@]}" sh "$WORK/plan.sh" undo >/dev/null 2>&1
        e=$(now)
        t_apply=$((t_apply + b - a)); t_rollback=$((t_rollback + c - b))
        t_sh_apply=$((t_sh_apply + d - c)); t_sh_undo=$((t_sh_undo + e - d))
    done
    apply_ratios+=("$(ratio $t_apply $t_sh_apply)")
    rollback_ratios+=("$(ratio $t_rollback $t_sh_undo)")
    echo "run $run: apply $(ms $t_apply) ms vs sh $(ms $t_sh_apply) ms (${apply_ratios[-1]}×);" \
        "rollback $(ms $t_rollback) ms vs sh undo $(ms $t_sh_undo) ms (${rollback_ratios[-1]}×)"
done
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"
echo "apply / sh apply:   $(printf '%s\n' "${apply_ratios[@]}" | spread)"
echo "rollback / sh undo: $(printf '%s\n' "${rollback_ratios[@]}" | spread)"
