#!/usr/bin/env bash
# Peak memory (VmHWM) of the real TUI after walking the wizard to the
# preview in a pseudo-terminal (tmux, 80x24), and wall time until its first
# frame is on screen (tmux polling, so ±5 ms). Usage: bench/tui-rss.sh
#
# Leaves nothing behind: its own tmux server (-L), and on exit the TUI's
# process group is killed before the server (the TUI also exits by itself
# when its terminal dies).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
S=dscpr-rss-$$
FACTS=$PWD/tests/fixtures/plan/both.json
pid=
cleanup() {
  if [ -n "$pid" ]; then kill -- "-$pid" 2>/dev/null || true; fi
  tmux -L "$S" kill-server 2>/dev/null || true
}
trap cleanup EXIT INT TERM
# Poll (bounded) until the screen shows $1.
wait_for() {
  for _ in $(seq 1000); do
    tmux -L "$S" capture-pane -p -t main | grep -q "$1" && return 0
    sleep 0.005
  done
  echo "timed out waiting for: $1" >&2
  exit 1
}
start=$(date +%s%N)
# exec: the pane's process is the TUI itself, leader of its process group.
tmux -L "$S" new-session -d -s main -x 80 -y 24 \
  "exec env NO_COLOR=1 $PWD/target/release/dscproute tui --facts $FACTS"
wait_for "Client (host A)"
shown=$(date +%s%N)
pid=$(tmux -L "$S" list-panes -t main -F '#{pane_pid}')
for k in 3 Enter torrent Enter; do tmux -L "$S" send-keys -t main "$k"; done
for _ in 1 2 3 4 5 6 7 8 9 10; do tmux -L "$S" send-keys -t main + ; done
tmux -L "$S" send-keys -t main Enter
wait_for "Mark and table"
echo "first frame on screen after $(( (shown - start) / 1000000 )) ms (includes tmux start)"
grep -E 'VmHWM|VmRSS' "/proc/$pid/status"
