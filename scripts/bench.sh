#!/bin/sh
# The performance benchmark of issue 11 (README, Performance): the whole agent
# against the bare NETLINK_SOCK_DIAG dump and gopsutil at 1k/10k/50k
# established loopback connections, in network namespaces it creates and
# removes. Needs root. Flags go to internal/bench/run, e.g.
#   scripts/bench.sh -conns 10000 -rounds 5 -gopsutil=false -steady-conns 0
set -eu
cd "$(dirname "$0")/.."
exec go run ./internal/bench/run "$@"
