//go:build linux

// Package perf guards the agent's cost against the kernel's floor (issue 11
// item 7): at 10,000 established loopback connections, the whole agent's CPU
// against a bare NETLINK_SOCK_DIAG dump of the same sockets, and its peak
// RSS. The full benchmark, with the figures the README quotes, is
// scripts/bench.sh.
package perf

import (
	"context"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/internal/bench"
	"github.com/netsentinel/netsentinel/test/netns"
)

// The bounds are issue 11's guard: at most 2x the bare dump and 80 MiB at
// 10,000 connections. scripts/bench.sh measures the agent at about 1.4x and
// 46 MiB there, so the margin absorbs a shared machine's noise while a
// regression to the old per-socket work (2.5x, 70-90 MiB) fails.
const (
	guardConns  = 10000
	maxCPURatio = 2.0      // agent CPU / bare dump CPU
	maxRSS      = 80 << 20 // agent peak RSS, bytes
	guardRounds = 3
)

// TestAgentCostGuard compares ratios measured side by side, never absolute
// times: each round runs the agent and then the bare dump with as many dumps
// at the same interval, and the verdict is on the median of the rounds'
// ratios. CPU time is the processes' own (wait4), so other work on the
// machine only shifts both sides a little; a median above the bound is
// measured once more (three more rounds) and the test fails only when the
// median of all rounds is still above it, so a burst of load on a shared
// machine does not fail it while a real regression does.
func TestAgentCostGuard(t *testing.T) {
	netns.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bins, err := bench.Build(ctx, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ns, err := bench.NewNamespace(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ns.Close(); err != nil {
			t.Errorf("removing namespace: %v", err)
		}
	})
	if err := ns.Hold(ctx, bins.Holder, guardConns, 5000); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	plan := bench.Plan{Polls: 12, Interval: time.Second}
	var rounds []bench.Round
	ratio := func(r bench.Round) float64 { return r.Agent.CPU.Seconds() / r.Bare.CPU.Seconds() }
	rss := func(r bench.Round) float64 { return float64(r.Agent.MaxRSS) }
	for attempt := 0; attempt < 2; attempt++ {
		for i := 0; i < guardRounds; i++ {
			r, err := ns.RunRound(ctx, bins, dir, plan)
			if err != nil {
				t.Fatal(err)
			}
			if r.Sockets < 2*guardConns {
				t.Fatalf("the bare dump listed %d sockets, want at least %d", r.Sockets, 2*guardConns)
			}
			t.Logf("round %d: agent %.3f s CPU (%d polls), %.1f MiB peak RSS; bare dump %.3f s; ratio %.2f",
				len(rounds)+1, r.Agent.CPU.Seconds(), r.AgentPolls, float64(r.Agent.MaxRSS)/(1<<20), r.Bare.CPU.Seconds(), ratio(r))
			rounds = append(rounds, r)
		}
		if bench.Median(rounds, ratio) <= maxCPURatio && bench.Median(rounds, rss) <= maxRSS {
			break
		}
	}
	med, medRSS := bench.Median(rounds, ratio), bench.Median(rounds, rss)
	t.Logf("median of %d rounds at %d connections: agent / bare dump CPU %.2f (bound %.1f), agent peak RSS %.1f MiB (bound %d)",
		len(rounds), guardConns, med, maxCPURatio, medRSS/(1<<20), maxRSS>>20)
	if med > maxCPURatio {
		t.Errorf("the whole agent used %.2fx the CPU of a bare sock_diag dump at %d connections (median of %d rounds), bound %.1fx: a change made polling, detection or the report cost more (scripts/bench.sh shows the full table)",
			med, guardConns, len(rounds), maxCPURatio)
	}
	if medRSS > maxRSS {
		t.Errorf("the whole agent peaked at %.1f MiB RSS at %d connections (median of %d rounds), bound %d MiB",
			medRSS/(1<<20), guardConns, len(rounds), maxRSS>>20)
	}
}
