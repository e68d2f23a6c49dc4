// Package memory measures the peak RSS of the built netsentinel binary while
// it replays 1,000,000 distinct remote endpoints through every detector.
package memory

import (
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/collector"
)

func repoRoot(t *testing.T) string {
	wd, _ := os.Getwd()
	for d := wd; d != "/"; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil &&
			bytes.HasPrefix(b, []byte("module github.com/netsentinel/netsentinel\n")) {
			return d
		}
	}
	t.Fatal("repository root not found")
	return ""
}

// PeakRSSLimit is the README's promise for 1,000,000 distinct endpoints
// (issue 11: at most 100 MB), met without a soft memory limit.
const PeakRSSLimit = 100_000_000

// endpoints writes a gzipped recording of snaps snapshots, each with procs
// processes holding per sockets to never-seen remote addresses (public
// space, port 443, one in a thousand on 4444 so alerts flow too):
// snaps*procs*per distinct endpoints, 1 s apart.
func endpoints(t *testing.T, path string, snaps, procs, per int) int {
	t.Helper()
	rec, err := collector.CreateRecording(path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	n := 0
	base := uint32(11) << 24 // 11.0.0.0 upwards: public, outside home_net
	for s := 0; s < snaps; s++ {
		ts := t0.Add(time.Duration(s) * time.Second)
		snap := &collector.Snapshot{Time: ts, Hostname: "mem", Processes: map[int32]*collector.Process{}}
		for p := 0; p < procs; p++ {
			pid := int32(1000 + (s*procs+p)%30000)
			snap.Processes[pid] = &collector.Process{PID: pid, PPID: 1, Name: fmt.Sprintf("worker%d", p), StartTime: t0}
			for k := 0; k < per; k++ {
				a := base + uint32(n)
				port := uint16(443)
				if n%1000 == 999 {
					port = 4444 // one in a thousand alerts (suspicious_port)
				}
				snap.Sockets = append(snap.Sockets, collector.Socket{
					Proto: collector.ProtoTCP, Family: 4, State: collector.StateEstablished, PID: pid, Inode: uint64(n + 1), FirstSeen: ts,
					Local:  netip.AddrPortFrom(netip.MustParseAddr("10.1.0.5"), uint16(1024+n%60000)),
					Remote: netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}), port),
				})
				n++
			}
		}
		if err := rec.Write(snap); err != nil {
			t.Fatal(err)
		}
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestMillionEndpointsPeakRSS replays 1,000,000 distinct remote endpoints
// through the whole binary (all detectors on, ECS formatting, a file sink)
// and checks the peak resident set stays under 100 MB with GOMEMLIMIT=off:
// the bound holds without a soft memory limit trimming garbage.
func TestMillionEndpointsPeakRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000,000-endpoint replay")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "netsentinel")
	build := exec.Command("go", "build", "-o", bin, "./cmd/netsentinel")
	build.Dir = repoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	rec := filepath.Join(dir, "million.ndjson.gz")
	start := time.Now()
	n := endpoints(t, rec, 1000, 10, 100)
	t.Logf("recording of %d endpoints written in %s", n, time.Since(start).Round(time.Millisecond))

	cmd := exec.Command(bin, "replay", rec, "--interval", "1s", "-o", filepath.Join(dir, "report.json"),
		"--sink", "file:"+filepath.Join(dir, "alerts.ndjson"), "--log-level", "warn")
	cmd.Env = append(os.Environ(), "GOMEMLIMIT=off")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	start = time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("replay: %v\n%s", err, stderr.String())
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		t.Skip("no rusage on this platform")
	}
	peak := ru.Maxrss << 10 // KiB on Linux
	alerts, _ := os.ReadFile(filepath.Join(dir, "alerts.ndjson"))
	if bytes.Count(alerts, []byte("\n")) == 0 {
		t.Error("no alerts: the suspicious-port endpoints were not detected")
	}
	t.Logf("replayed %d endpoints in %s: peak RSS %.1f MB, %d alert lines",
		n, time.Since(start).Round(time.Millisecond), float64(peak)/1e6, bytes.Count(alerts, []byte("\n")))
	if peak >= PeakRSSLimit {
		t.Fatalf("peak RSS %.1f MB >= %d MB for %d endpoints", float64(peak)/1e6, PeakRSSLimit/1_000_000, n)
	}
}
