//go:build tools

// Package victorialogs pins VictoriaLogs, a log store that ingests the
// Elasticsearch bulk protocol, for the Elasticsearch sink's real-store tests.
// Build it with ../build.sh; nothing here is part of NetSentinel itself.
// The build tag keeps this file out of every build (a program cannot be
// imported) while `go mod tidy` still records the pinned requirement.
package victorialogs

import _ "github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs"
