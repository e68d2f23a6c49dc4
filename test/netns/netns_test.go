//go:build linux

package netns

import (
	"context"
	"strings"
	"testing"
	"time"
)

// The topology routes LAN ↔ internet through the gateway, and the monitored
// host sees only its own processes.
func TestTopologyRoutesAndIsolates(t *testing.T) {
	topo := New(t, 1)
	if err := topo.AddInternetIP("198.51.100.10"); err != nil {
		t.Fatal(err)
	}
	if err := topo.AddInternetIP("192.0.2.1"); err == nil {
		t.Fatal("AddInternetIP accepted a non-TEST-NET address")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, dst := range []string{"198.51.100.10", LANPrefix + "21", GatewayIP} {
		out, err := topo.HostCmd(ctx, "ping", "-c1", "-W2", dst).CombinedOutput()
		if err != nil {
			t.Fatalf("ping %s from host: %v\n%s", dst, err, out)
		}
	}
	out, err := topo.HostCmd(ctx, "ps", "-e", "-o", "comm=").CombinedOutput()
	if err != nil {
		t.Fatalf("ps in host: %v\n%s", err, out)
	}
	procs := strings.Fields(string(out))
	if len(procs) > 3 {
		t.Fatalf("host PID namespace sees %d processes (%v), want only its own", len(procs), procs)
	}
}
