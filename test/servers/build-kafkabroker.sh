#!/usr/bin/env bash
# Builds test/servers/bin/kafkabroker, the loopback Kafka-protocol broker (kfake)
# used by the Kafka sink tests. Idempotent: rebuilds only when a source file,
# go.mod or go.sum is newer than the binary. Needs only the Go module proxy.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$here/kafkabroker"
out="$here/bin/kafkabroker"
mkdir -p "$here/bin"
if [[ -x "$out" ]] && [[ -z "$(find "$src" -newer "$out" -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) -print -quit)" ]]; then
  echo "kafkabroker up to date: $out"
  exit 0
fi
cd "$src"
# GOWORK=off: this module is built on its own, never as part of the main module.
GOWORK=off go build -trimpath -o "$out.tmp" .
mv "$out.tmp" "$out"
echo "built $out"
