#!/usr/bin/env bash
# Benchmark: `dscproute watch --seconds N --json` on a veth while sender
# threads flood it with 64-byte UDP packets carrying DSCP 7 (sendmmsg). Prints
# packets sent and classified per second, kernel (capture ring) drops, veth
# drops, the CPU the watch process used, and the classifier's own rate on one
# core. Root only; everything happens in two scratch network namespaces
# (tests/lab_watch.rs, `watch_benchmark`), removed afterwards.
# Usage: sudo bench/watch.sh [SECONDS] [SENDER_THREADS] [PPS (0 = flat out)]
set -euo pipefail
cd "$(dirname "$0")/.."
export DSCPROUTE_BENCH_SECONDS=${1:-10}
export DSCPROUTE_BENCH_SENDERS=${2:-2}
export DSCPROUTE_BENCH_PPS=${3:-0}
export DSCPROUTE_LAB=required
cargo test --release --quiet --test lab_watch -- --ignored --nocapture --exact watch_benchmark
