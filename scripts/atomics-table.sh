#!/usr/bin/env bash
# Prints the README's Atomic Red Team coverage table from docs/atomics/*.md
# (one file of table rows per technique, written with the scenario that
# emulates each caught test). With --check README.md it exits 1 when the
# README's table (between the atomics markers) differs from what it prints.
set -euo pipefail
cd "$(dirname "$0")/.."

table() {
  echo '| Technique | Atomic test | Caught | Why / how |'
  echo '|---|---|---|---|'
  # Files in technique order (T1021 < T1046 < T1048 < T1059.004 ...).
  for f in $(ls docs/atomics/*.md | sort -V); do
    grep '^|' "$f"
  done
}

case "${1:-}" in
  "") table ;;
  --check)
    readme=${2:?usage: $0 --check README.md}
    want=$(table)
    got=$(sed -n '/^<!-- atomics:begin -->$/,/^<!-- atomics:end -->$/p' "$readme" | sed '1d;$d')
    if [[ "$want" != "$got" ]]; then
      echo "$readme: the Atomic Red Team table is stale; regenerate it with scripts/atomics-table.sh from docs/atomics/" >&2
      diff <(echo "$got") <(echo "$want") >&2 || true
      exit 1
    fi ;;
  *) echo "usage: $0 [--check README.md]" >&2; exit 2 ;;
esac
