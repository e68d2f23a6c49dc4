//go:build linux

package collector

// Collection cost at 10,000 established loopback connections (20,000
// sockets), side by side in one run:
//
//	go test ./collector -run '^$' -bench BenchmarkCollection -benchtime 20x -count 3
//
// and the medians and ratios the README quotes (interleaved rounds, CPU from
// getrusage, fails when a target is missed):
//
//	go test ./collector -run TestCollectionCostRatios -v -args -collector-ratios
//
// NETSENTINEL_BENCH_CONNS overrides the connection count. The server ends are
// held by this process, the client ends by a child process (the machine caps
// open files at 20,000 per process).

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	psnet "github.com/shirou/gopsutil/v4/net"
	"go.uber.org/zap"
)

var collectorRatios = flag.Bool("collector-ratios", false, "measure collection cost ratios at 10k connections (slow)")

type connHold struct {
	n     int
	ln    net.Listener
	conns []net.Conn
	cmd   *exec.Cmd
	stdin io.WriteCloser
	err   error
}

var (
	holdOnce sync.Once
	held     *connHold
)

func benchConns() int {
	if v, err := strconv.Atoi(os.Getenv("NETSENTINEL_BENCH_CONNS")); err == nil && v > 0 {
		return v
	}
	return 10000
}

// holdConnections opens n loopback connections once per test binary run;
// they stay open until the process exits (the child exits when its stdin,
// our pipe, closes).
func holdConnections(tb testing.TB, n int) *connHold {
	holdOnce.Do(func() { held = startHold(n) })
	if held.err != nil {
		tb.Skipf("cannot hold %d loopback connections: %v", n, held.err)
	}
	return held
}

func startHold(n int) *connHold {
	h := &connHold{n: n}
	if err := raiseNoFile(uint64(n) + 1024); err != nil {
		h.err = fmt.Errorf("raise RLIMIT_NOFILE for the server ends: %w", err)
		return h
	}
	lc := net.ListenConfig{KeepAlive: -1} // see the helper's dialer
	ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		h.err = err
		return h
	}
	h.ln = ln
	accepted := make(chan error, 1)
	go func() {
		for len(h.conns) < n {
			c, err := ln.Accept()
			if err != nil {
				accepted <- err
				return
			}
			h.conns = append(h.conns, c)
		}
		accepted <- nil
	}()
	cmd := helperCmd("hold", "NETSENTINEL_HOLD_N="+strconv.Itoa(n), "NETSENTINEL_HOLD_ADDR="+ln.Addr().String())
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		h.err = err
		return h
	}
	h.cmd, h.stdin = cmd, stdin
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && strings.TrimSpace(line) != "ready" {
			err = fmt.Errorf("helper said %q", line)
		}
		ready <- err
	}()
	timeout := time.After(3 * time.Minute)
	for _, ch := range []chan error{ready, accepted} {
		select {
		case err := <-ch:
			if err != nil {
				h.err = fmt.Errorf("holding connections (the child must raise its fd limit too): %w", err)
			}
		case <-timeout:
			h.err = errors.New("timed out opening connections")
		}
		if h.err != nil {
			stdin.Close()
			cmd.Process.Kill()
			cmd.Wait()
			return h
		}
	}
	return h
}

// cpuTime is this process's user+system CPU time so far (all threads).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// method is one way of listing every socket.
type method struct {
	name string
	prep func(tb testing.TB) func() int // returns one collection; it returns the socket count
}

func methods() []method {
	return []method{
		{"gopsutil", func(tb testing.TB) func() int {
			return func() int {
				cs, err := psnet.Connections("all")
				if err != nil {
					tb.Fatal(err)
				}
				return len(cs)
			}
		}},
		{"bare_sockdiag", func(tb testing.TB) func() int {
			d, err := openSockDiag()
			if err != nil {
				tb.Fatal(err)
			}
			tb.Cleanup(func() { d.Close() })
			return func() int {
				n, err := d.count()
				if err != nil {
					tb.Fatal(err)
				}
				return n
			}
		}},
		{"ours_full", func(tb testing.TB) func() int {
			d, err := openSockDiag()
			if err != nil {
				tb.Fatal(err)
			}
			tb.Cleanup(func() { d.Close() })
			pt, pc := newProcTable("/proc"), newPIDCache("/proc")
			var socks []Socket
			run := func() int {
				procs, _ := pt.Refresh()
				socks, err = d.Dump(socks)
				if err != nil {
					tb.Fatal(err)
				}
				pc.Attribute(socks, procs)
				return len(socks)
			}
			run() // warm: the first call walks every process
			run()
			return run
		}},
		{"ours_source_collect", func(tb testing.TB) func() int {
			src, err := NewSource(Options{ProcRoot: "/proc", DestroyEvents: true}, zap.NewNop())
			if err != nil {
				tb.Fatal(err)
			}
			tb.Cleanup(func() { src.Close() })
			run := func() int {
				snap, err := src.Collect(context.Background())
				if err != nil {
					tb.Fatal(err)
				}
				return len(snap.Sockets)
			}
			run()
			run()
			return run
		}},
	}
}

func BenchmarkCollection(b *testing.B) {
	h := holdConnections(b, benchConns())
	for _, m := range methods() {
		b.Run(m.name, func(b *testing.B) {
			run := m.prep(b)
			b.ReportAllocs()
			b.ResetTimer()
			c0 := cpuTime()
			n := 0
			for i := 0; i < b.N; i++ {
				n = run()
			}
			cpu := cpuTime() - c0
			b.StopTimer()
			if n < 2*h.n {
				b.Fatalf("%s listed %d sockets, want at least %d", m.name, n, 2*h.n)
			}
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
			b.ReportMetric(float64(n), "sockets")
		})
	}
}

// TestCollectionCostRatios measures the methods in interleaved rounds and
// prints medians of CPU per collection and the ratios the README quotes:
// ours/gopsutil (target <= 1/20) and ours/bare (target <= 1.5).
func TestCollectionCostRatios(t *testing.T) {
	if !*collectorRatios {
		t.Skip("run with -args -collector-ratios (about a minute at 10k connections)")
	}
	h := holdConnections(t, benchConns())
	ms := methods()
	runs := make([]func() int, len(ms))
	for i, m := range ms {
		runs[i] = m.prep(t)
	}
	const rounds = 9
	perOp := map[string][]float64{}
	wall := map[string][]float64{}
	for r := 0; r < rounds; r++ {
		for i, m := range ms {
			ops := 10
			if m.name == "gopsutil" {
				ops = 1
			}
			// Each method pays for collecting its own garbage (the timed GC),
			// not for the previous method's (the untimed one).
			runtime.GC()
			w0, c0 := time.Now(), cpuTime()
			n := 0
			for k := 0; k < ops; k++ {
				n = runs[i]()
			}
			runtime.GC()
			cpu, w := cpuTime()-c0, time.Since(w0)
			if n < 2*h.n {
				t.Fatalf("%s listed %d sockets, want at least %d", m.name, n, 2*h.n)
			}
			perOp[m.name] = append(perOp[m.name], float64(cpu)/float64(ops)/1e6)
			wall[m.name] = append(wall[m.name], float64(w)/float64(ops)/1e6)
		}
	}
	med := func(v []float64) float64 {
		v = slices.Clone(v)
		slices.Sort(v)
		return v[len(v)/2]
	}
	t.Logf("%d established loopback connections (%d+ sockets), %d interleaved rounds, median per collection:", h.n, 2*h.n, rounds)
	for _, m := range ms {
		t.Logf("  %-20s cpu %8.2f ms   wall %8.2f ms", m.name, med(perOp[m.name]), med(wall[m.name]))
	}
	ours, gops, bare := med(perOp["ours_full"]), med(perOp["gopsutil"]), med(perOp["bare_sockdiag"])
	t.Logf("ratio ours_full/gopsutil = %.4f (1/%.0f), target <= 1/20", ours/gops, gops/ours)
	t.Logf("ratio ours_full/bare_sockdiag = %.2f, target <= 1.5", ours/bare)
	t.Logf("ratio ours_source_collect/bare_sockdiag = %.2f (whole snapshot: tracker, /proc parts, fresh slice)", med(perOp["ours_source_collect"])/bare)
	if ours/gops > 1.0/20 {
		t.Errorf("ours_full uses %.3f of gopsutil's CPU, target <= 0.05", ours/gops)
	}
	if ours/bare > 1.5 {
		t.Errorf("ours_full uses %.2fx the CPU of a bare dump, target <= 1.5", ours/bare)
	}
}
