package collector

import (
	"context"
	"testing"
	"time"
)

func TestReadSystemMetrics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := readSystemMetrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Loopback traffic alone makes these non-zero on any running host.
	if m.BytesRecv == 0 || m.BytesSent == 0 || m.PacketsRecv == 0 || m.PacketsSent == 0 {
		t.Errorf("interface counters zero: %+v", m)
	}
	if m.MemoryPercent <= 0 || m.MemoryPercent > 100 {
		t.Errorf("memory percent %v", m.MemoryPercent)
	}
	if m.CPUPercent < 0 || m.CPUPercent > 100 {
		t.Errorf("cpu percent %v", m.CPUPercent)
	}
	// Burn a little CPU: the second call measures since the first.
	deadline := time.Now().Add(200 * time.Millisecond)
	for x := 0; time.Now().Before(deadline); x++ {
		_ = x * x
	}
	m2, err := readSystemMetrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m2.CPUPercent <= 0 || m2.CPUPercent > 100 {
		t.Errorf("cpu percent after busy loop %v", m2.CPUPercent)
	}
	if m2.BytesRecv < m.BytesRecv {
		t.Errorf("counters went backwards: %d < %d", m2.BytesRecv, m.BytesRecv)
	}
}
