#!/usr/bin/env bash
# Renders the README's dashboard screenshot (default docs/dashboard.png):
# runs `netsentinel --dashboard` in a private 120x40 tmux session while a
# listener on a RAT port on loopback raises a real suspicious_port alert,
# captures the pane with its colours (capture-pane -e) and renders it with
# internal/gen/ansipng (Go Mono, no system fonts). Needs tmux and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/dashboard.png}
tmp=$(mktemp -d)
sock=$tmp/tmux
lpid=
cleanup() {
  tmux -S "$sock" kill-server 2>/dev/null || true
  [[ -n $lpid ]] && kill "$lpid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/netsentinel" ./cmd/netsentinel

# A listener on the first free RAT port, for 120 s at most.
python3 - "$tmp/port" <<'PY' &
import socket, sys, time
for port in (4444, 31337, 12345, 54321, 5555):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    s.listen()
    open(sys.argv[1], "w").write(str(port))
    time.sleep(120)
    break
PY
lpid=$!

# wait_for TEXT: poll the pane (10 s at most) until it shows TEXT.
wait_for() {
  for _ in $(seq 1 100); do
    tmux -S "$sock" capture-pane -p -t shot | grep -qF -- "$1" && return 0
    sleep 0.1
  done
  echo "dashboard-screenshot: the screen never showed '$1':" >&2
  tmux -S "$sock" capture-pane -p -t shot >&2
  exit 1
}

printf 'set -g status off\nset -g default-terminal tmux-256color\n' >"$tmp/tmux.conf"
tmux -S "$sock" -f "$tmp/tmux.conf" new-session -d -s shot -x 120 -y 40 \
  "exec '$tmp/netsentinel' --dashboard --interval 1s -o '$tmp/report.json' --sink 'file:$tmp/alerts.ndjson' --log-file '$tmp/netsentinel.log'"
wait_for "suspicious_port"
wait_for "delivered 1"
tmux -S "$sock" capture-pane -p -e -N -t shot >"$tmp/screen.ansi"
tmux -S "$sock" send-keys -t shot q
go run ./internal/gen/ansipng -o "$out" "$tmp/screen.ansi"
echo "wrote $out ($(wc -c <"$out") bytes) from a 120x40 capture"
