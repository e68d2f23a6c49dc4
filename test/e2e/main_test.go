// Package e2e runs the built netsentinel binary against real traffic in
// network namespaces (see test/netns) and checks what a user sees: alerts on
// stdout and the report on disk.
package e2e

import (
	"context"
	"fmt"
	"testing"

	"github.com/netsentinel/netsentinel/internal/testserver"
	"github.com/netsentinel/netsentinel/test/netns"
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

type syncBuffer = testserver.SyncBuffer

// c2Listeners adds c2 (a TEST-NET address) to the "internet" namespace and
// starts a keep-open ncat listener on each port for secs seconds, waiting
// until all listen. Each listener's stdin stays open, or ncat would close
// each connection at once.
func c2Listeners(t *testing.T, ctx context.Context, topo *netns.Topology, c2 string, secs int, ports ...string) {
	t.Helper()
	if err := topo.AddInternetIP(c2); err != nil {
		t.Fatal(err)
	}
	for _, port := range ports {
		sh := fmt.Sprintf("sleep %d | timeout %d ncat -l -k %s %s", secs, secs, c2, port)
		if err := topo.Background(topo.Cmd(ctx, topo.I, "sh", "-c", sh)); err != nil {
			t.Fatal(err)
		}
	}
	for _, port := range ports {
		topo.WaitListen(t, topo.I, c2, port)
	}
}
