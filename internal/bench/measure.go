//go:build linux

package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// Plan is what one round runs.
type Plan struct {
	Polls    int           // agent polls (the agent runs Polls*Interval)
	Interval time.Duration // poll interval of the agent and the comparators
	Gopsutil bool          // also run gopsutil's listing
	Once     bool          // also run `netsentinel --once` (start-up + first poll)
	// Floors also runs the lower floors: the dump as the agent asks for it
	// (BareOneWalk), with the fd walk (Attributed) and a first poll's
	// (FirstFloor). The suite's guard compares with the bare dump only.
	Floors bool
}

// Round is one interleaved round: the whole agent, then the bare dump (and
// the lower floors) and gopsutil with as many dumps as the agent polled,
// then --once.
type Round struct {
	Agent, Bare, PS, Once Result
	// BareOneWalk is the bare dump asked as the agent asks (sockdump
	// -tcp-one-walk: TCP as one TCPDIAG_GETSOCK request, no bound-only
	// sockets): the lower floor.
	BareOneWalk Result
	// Attributed is BareOneWalk plus one read of every process's fd links
	// (sockdump -fd-walk): the floor of a sensor that ties every socket to
	// its process. FirstFloor is the same with one dump: a first poll's.
	Attributed, FirstFloor Result
	AgentPolls             int // polls in the agent's report
	Sockets                int // sockets in the bare dump's last dump
}

// RunRound runs one round in n; dir is a scratch directory for reports.
func (n *Namespace) RunRound(ctx context.Context, bins Binaries, dir string, p Plan) (Round, error) {
	var r Round
	var err error
	report := filepath.Join(dir, "report.json")
	r.Agent, err = n.Run(ctx, dir, bins.Agent, "-d", (time.Duration(p.Polls) * p.Interval).String(),
		"--interval", p.Interval.String(), "-o", report, "--log-level", "warn")
	if err != nil {
		return r, err
	}
	if r.AgentPolls, err = reportPolls(report); err != nil {
		return r, err
	}
	polls := strconv.Itoa(r.AgentPolls)
	r.Bare, err = n.Run(ctx, dir, bins.SockDump, "-n", polls, "-interval", p.Interval.String())
	if err != nil {
		return r, err
	}
	var dumps, last, total int
	if _, err := fmt.Sscanf(string(r.Bare.Stdout), "dumps %d messages_last %d messages_total %d", &dumps, &last, &total); err != nil {
		return r, fmt.Errorf("sockdump printed %q: %w", r.Bare.Stdout, err)
	}
	r.Sockets = last
	if p.Floors {
		r.BareOneWalk, err = n.Run(ctx, dir, bins.SockDump, "-n", polls, "-interval", p.Interval.String(), "-tcp-one-walk")
		if err != nil {
			return r, err
		}
		r.Attributed, err = n.Run(ctx, dir, bins.SockDump, "-n", polls, "-interval", p.Interval.String(), "-tcp-one-walk", "-fd-walk")
		if err != nil {
			return r, err
		}
		if r.FirstFloor, err = n.Run(ctx, dir, bins.SockDump, "-n", "1", "-tcp-one-walk", "-fd-walk"); err != nil {
			return r, err
		}
	}
	if err := n.HoldersAlive(); err != nil {
		return r, err
	}
	if p.Gopsutil {
		if r.PS, err = n.Run(ctx, dir, bins.PSConns, "-n", polls, "-interval", p.Interval.String()); err != nil {
			return r, err
		}
	}
	if p.Once {
		r.Once, err = n.Run(ctx, dir, bins.Agent, "--once", "-o", filepath.Join(dir, "once.json"), "--log-level", "warn")
		if err != nil {
			return r, err
		}
	}
	return r, nil
}

// reportPolls reads collection_statistics.polls from an agent report.
func reportPolls(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("agent report: %w", err)
	}
	var rep struct {
		Collection struct {
			Polls int `json:"polls"`
		} `json:"collection_statistics"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return 0, fmt.Errorf("agent report %s: %w", path, err)
	}
	if rep.Collection.Polls < 1 {
		return 0, fmt.Errorf("agent report %s: no polls", path)
	}
	return rep.Collection.Polls, nil
}

// Steady measures the agent's CPU share once it is past its first polls: it
// runs the agent for warm+window and samples its CPU time at warm and at
// warm+window. The share is CPU seconds per second (1.0 = one core); maxRSS
// is the run's peak resident set in bytes (a longer run than the table's:
// the heap grows between collections, so a long window shows what a
// service settles at).
func (n *Namespace) Steady(ctx context.Context, bins Binaries, dir string, interval, warm, window time.Duration) (share float64, maxRSS int64, err error) {
	res, err := n.RunSampled(ctx, dir, []time.Duration{warm, warm + window},
		bins.Agent, "-d", (warm + window + interval).String(), "--interval", interval.String(),
		"-o", filepath.Join(dir, "steady.json"), "--log-level", "warn")
	if err != nil {
		return 0, 0, err
	}
	return (res.Samples[1] - res.Samples[0]).Seconds() / window.Seconds(), res.MaxRSS, nil
}

// Median returns the median of f over rs (the lower middle for an even count).
func Median[T any](rs []T, f func(T) float64) float64 {
	v := make([]float64, 0, len(rs))
	for _, r := range rs {
		v = append(v, f(r))
	}
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[(len(v)-1)/2]
}
