#!/bin/sh
# Builds the real servers the sink tests start on loopback into test/servers/bin/
# (ignored by git). Idempotent: a binary newer than its module files is kept,
# so a second run takes milliseconds.
#
#   test/servers/build.sh            # build what is missing or stale
#   FORCE=1 test/servers/build.sh    # rebuild anyway
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin="$here/bin"
mkdir -p "$bin"
# Nothing under bin/ is ever committed.
[ -f "$bin/.gitignore" ] || printf '*\n' > "$bin/.gitignore"

# fresh OUT SRC...: true when OUT exists and is newer than every SRC.
fresh() {
	out=$1
	shift
	[ "${FORCE:-}" = "" ] || return 1
	[ -x "$out" ] || return 1
	for src in "$@"; do
		[ "$src" -nt "$out" ] && return 1
	done
	return 0
}

vl="$bin/victoria-logs"
if fresh "$vl" "$here/victorialogs/go.mod" "$here/victorialogs/go.sum" "$here/build.sh"; then
	echo "victoria-logs: up to date ($vl)"
else
	echo "victoria-logs: building (about 30 s the first time)..."
	(cd "$here/victorialogs" && go build -o "$vl" github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs)
	echo "victoria-logs: built $vl"
fi
