#!/usr/bin/env bash
# Peak memory (VmHWM) of the real TUI after walking the wizard to the
# preview in a pseudo-terminal (tmux, 80x24), and wall time until its first
# frame is on screen (tmux polling, so ±5 ms). Usage: bench/tui-rss.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
S=dscpr-rss-$$
FACTS=$PWD/tests/fixtures/plan/both.json
start=$(date +%s%N)
tmux new-session -d -s "$S" -x 80 -y 24 "NO_COLOR=1 $PWD/target/release/dscproute tui --facts $FACTS"
trap 'tmux kill-session -t $S 2>/dev/null || true' EXIT
until tmux capture-pane -p -t "$S" | grep -q "Client (host A)"; do :; done
shown=$(date +%s%N)
pid=$(tmux list-panes -t "$S" -F '#{pane_pid}')
for k in 3 Enter torrent Enter; do tmux send-keys -t "$S" "$k"; done
for _ in 1 2 3 4 5 6 7 8 9 10; do tmux send-keys -t "$S" + ; done
tmux send-keys -t "$S" Enter
until tmux capture-pane -p -t "$S" | grep -q "Mark and table"; do :; done
echo "first frame on screen after $(( (shown - start) / 1000000 )) ms (includes tmux start)"
grep -E 'VmHWM|VmRSS' "/proc/$pid/status"
