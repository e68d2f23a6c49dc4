//go:build !linux

package collector

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// TestPortableSourceSeesOwnListener collects once on a non-Linux system and
// finds this test's loopback listener and its own process.
func TestPortableSourceSeesOwnListener(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)

	src, err := NewSource(Options{SystemMetrics: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	snap, err := src.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Counters.Valid {
		t.Error("counters valid without /proc/net/snmp")
	}
	if self := snap.Processes[int32(os.Getpid())]; self == nil || self.PPID != int32(os.Getppid()) {
		t.Errorf("own process: %+v", self)
	}
	for _, e := range snap.Stats.Errors {
		if strings.HasPrefix(e, "sockets:") {
			t.Skipf("connection listing unavailable here: %s", e)
		}
	}
	found := false
	for _, s := range snap.Sockets {
		if s.Proto == ProtoTCP && s.State == StateListen && s.Local.Port() == port {
			found = true
			if s.PID != 0 && s.PID != int32(os.Getpid()) {
				t.Errorf("listener attributed to pid %d", s.PID)
			}
		}
	}
	if !found {
		t.Errorf("listener on port %d not among %d sockets", port, len(snap.Sockets))
	}
}
