// Package e2e runs the built netsentinel binary against real traffic in
// network namespaces (see test/netns) and checks what a user sees: alerts on
// stdout and the report on disk.
package e2e

import (
	"testing"

	"github.com/netsentinel/netsentinel/test/sensortest"
)

var binary string

func TestMain(m *testing.M) { sensortest.Main(m, "netsentinel-e2e", &binary, nil) }

// Shared with test/scenarios (test/sensortest).
var (
	readEvents = sensortest.ReadEvents
	field      = sensortest.Field
	hasString  = sensortest.HasString
)

type syncBuffer = sensortest.SyncBuffer
