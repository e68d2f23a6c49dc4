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

func TestListensOnMatchesAddressOrWildcard(t *testing.T) {
	out := []byte("LISTEN 0 10 127.0.0.1:2222 0.0.0.0:*\nLISTEN 0 10 0.0.0.0:2223 0.0.0.0:*\nLISTEN 0 10 [::]:2224 [::]:*\n")
	for _, tc := range []struct {
		ip, port string
		want     bool
	}{
		{"127.0.0.1", "2222", true},
		{"10.66.0.21", "2222", false}, // bound to another address
		{"10.66.0.21", "2223", true},  // IPv4 wildcard
		{"10.66.0.21", "2224", true},  // IPv6 wildcard (dual stack)
		{"127.0.0.1", "22", false},    // a prefix of the port is not the port
	} {
		if got := listensOn(out, tc.ip, tc.port); got != tc.want {
			t.Errorf("listensOn(%s:%s) = %v, want %v", tc.ip, tc.port, got, tc.want)
		}
	}
}
