//go:build linux

package collector

import (
	"net"
	"testing"
)

// The estimate counts this process's own loopback sockets.
func TestEstimateSocketsCountsOpenSockets(t *testing.T) {
	before := estimateSockets("/proc")
	var lns []net.Listener
	for i := 0; i < 20; i++ {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Skipf("listen: %v", err)
		}
		defer ln.Close()
		lns = append(lns, ln)
	}
	if after := estimateSockets("/proc"); after < len(lns) || after < before {
		t.Errorf("estimate %d with %d listeners open (before %d)", after, len(lns), before)
	}
}
