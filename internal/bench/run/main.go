//go:build linux

// Command run is the performance benchmark of issue 11 (scripts/bench.sh):
// for each connection count it creates a network namespace, fills it with
// established loopback connections held by holder processes, and runs, in
// interleaved rounds, the whole agent (`netsentinel -d <polls*interval>
// --interval <interval>`), the bare NETLINK_SOCK_DIAG dump (sockdump) and
// gopsutil's net.Connections("all") (psconns) as many times as the agent
// polled, and `netsentinel --once` (start-up and the first poll). It prints a
// markdown table of medians: CPU (user + system from wait4), peak RSS, the
// ratios, then the agent's steady CPU share at several intervals. Needs root
// (ip netns); namespaces are removed at the end, on error and on SIGINT.
//
//	go run ./internal/bench/run -conns 1000,10000,50000 -rounds 3
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/netsentinel/netsentinel/internal/bench"
)

func main() {
	connsFlag := flag.String("conns", "1000,10000,50000", "comma-separated connection counts (two sockets each)")
	rounds := flag.Int("rounds", 3, "interleaved rounds per connection count (medians are reported)")
	polls := flag.Int("polls", 12, "agent polls per run")
	interval := flag.Duration("interval", time.Second, "poll interval")
	perHolder := flag.Int("per-holder", 5000, "connections per holder process (two fds each)")
	gops := flag.Bool("gopsutil", true, "also measure gopsutil's net.Connections")
	steadyConns := flag.Int("steady-conns", 10000, "connection count at which the steady CPU share is measured (0: not measured)")
	steadyFlag := flag.String("steady", "1s,2s,5s", "poll intervals for the steady CPU share")
	steadyWindow := flag.Duration("steady-window", 30*time.Second, "how long the steady CPU share is sampled, after a warm-up of 2 intervals + 2s")
	flag.Parse()
	conns, err := ints(*connsFlag)
	if err != nil || *rounds < 1 || *polls < 1 || *interval < 100*time.Millisecond || *perHolder < 1 {
		fmt.Fprintln(os.Stderr, "run: bad flags: -conns needs positive integers, -rounds and -polls at least 1, -interval at least 100ms")
		os.Exit(2)
	}
	var steady []time.Duration
	for _, s := range strings.Split(*steadyFlag, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		d, err := time.ParseDuration(s)
		if err != nil || d < 100*time.Millisecond {
			fmt.Fprintf(os.Stderr, "run: bad -steady interval %q\n", s)
			os.Exit(2)
		}
		steady = append(steady, d)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "run: needs root (it creates network namespaces)")
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout, conns, *rounds, *perHolder, bench.Plan{Polls: *polls, Interval: *interval, Gopsutil: *gops, Once: true, Floors: true},
		*steadyConns, steady, *steadyWindow); err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		stop()
		os.Exit(1)
	}
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad count %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

type row struct {
	conns  int
	rounds []bench.Round
	steady map[time.Duration][]float64
	// steadyRSS is each steady run's peak RSS in MiB.
	steadyRSS map[time.Duration][]float64
}

func run(ctx context.Context, out io.Writer, conns []int, rounds, perHolder int, plan bench.Plan,
	steadyConns int, steady []time.Duration, steadyWindow time.Duration) error {
	tmp, err := os.MkdirTemp("", "netsentinel-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	logf("building the agent and the comparators")
	bins, err := bench.Build(ctx, "", tmp)
	if err != nil {
		return err
	}
	var rows []row
	for _, n := range conns {
		r, err := measure(ctx, bins, tmp, n, rounds, perHolder, plan, steadyConns, steady, steadyWindow)
		if err != nil {
			return fmt.Errorf("%d connections: %w", n, err)
		}
		rows = append(rows, r)
	}
	printTable(out, rows, rounds, plan, steady, steadyWindow)
	return nil
}

func measure(ctx context.Context, bins bench.Binaries, tmp string, n, rounds, perHolder int, plan bench.Plan,
	steadyConns int, steady []time.Duration, steadyWindow time.Duration) (row, error) {
	r := row{conns: n, steady: map[time.Duration][]float64{}, steadyRSS: map[time.Duration][]float64{}}
	ns, err := bench.NewNamespace(ctx, "")
	if err != nil {
		return r, err
	}
	defer ns.Close()
	logf("%d connections: opening them in namespace %s", n, ns.Name)
	if err := ns.Hold(ctx, bins.Holder, n, perHolder); err != nil {
		return r, err
	}
	// One untimed dump and fd walk first. The first walk of the fresh
	// holders' fds makes the kernel allocate their /proc dentries and
	// inodes, which stay cached while the holders live: without it round 1's
	// agent, which runs first, paid for that alone (10k: 1.24 s against 0.82
	// and 0.79 in the rounds after), while every later command found them
	// cached. A host's long-running processes are in the later rounds' state
	// once anything has walked them (the agent itself, ss -p, lsof).
	if _, err := ns.Run(ctx, tmp, bins.SockDump, "-n", "1", "-tcp-one-walk", "-fd-walk"); err != nil {
		return r, fmt.Errorf("warm-up walk: %w", err)
	}
	for i := 0; i < rounds; i++ {
		rd, err := ns.RunRound(ctx, bins, tmp, plan)
		if err != nil {
			return r, err
		}
		if rd.Sockets < 2*n {
			return r, fmt.Errorf("the bare dump listed %d sockets, want at least %d", rd.Sockets, 2*n)
		}
		logf("%d connections, round %d: agent %.3fs (%d polls, %.1f MiB), bare %.3fs (one TCP walk %.3fs, + fd walk %.3fs), gopsutil %.3fs, --once %.0f ms (floor %.0f ms)",
			n, i+1, rd.Agent.CPU.Seconds(), rd.AgentPolls, mib(rd.Agent.MaxRSS), rd.Bare.CPU.Seconds(), rd.BareOneWalk.CPU.Seconds(), rd.Attributed.CPU.Seconds(),
			rd.PS.CPU.Seconds(), ms(rd.Once.CPU), ms(rd.FirstFloor.CPU))
		r.rounds = append(r.rounds, rd)
	}
	if n == steadyConns {
		for i := 0; i < rounds; i++ {
			for _, iv := range steady {
				share, rss, err := ns.Steady(ctx, bins, tmp, iv, 2*iv+2*time.Second, steadyWindow)
				if err != nil {
					return r, err
				}
				logf("%d connections, steady at %v, round %d: %.2f%% of one core, peak RSS %.1f MiB", n, iv, i+1, 100*share, mib(rss))
				r.steady[iv] = append(r.steady[iv], share)
				r.steadyRSS[iv] = append(r.steadyRSS[iv], mib(rss))
			}
		}
	}
	return r, nil
}

func printTable(out io.Writer, rows []row, rounds int, plan bench.Plan, steady []time.Duration, steadyWindow time.Duration) {
	fmt.Fprintf(out, "Established loopback connections in a network namespace (two sockets each), %d interleaved rounds, medians;\n", rounds)
	fmt.Fprintf(out, "agent = `netsentinel -d %v --interval %v` (start-up, every poll, detection, final report); bare dump and gopsutil\n",
		time.Duration(plan.Polls)*plan.Interval, plan.Interval)
	fmt.Fprintf(out, "run as many times as the agent polled, at the same interval; CPU = user + system of the process (wait4).\n")
	fmt.Fprintf(out, "Bare dump = issue 11's floor: four SOCK_DIAG_BY_FAMILY requests (TCP v4, TCP v6 with tcp_info, UDP v4, UDP v6), every state;\n")
	fmt.Fprintf(out, "\"TCP in one walk\" = the dump asked as the agent asks (`sockdump -tcp-one-walk`): TCP as one TCPDIAG_GETSOCK request, no bound-only TCP sockets;\n")
	fmt.Fprintf(out, "\"+ fd walk\" = that, plus one read of every process's fd links (`sockdump -tcp-one-walk -fd-walk`): the floor of a\n")
	fmt.Fprintf(out, "sensor that ties sockets to processes; the first-poll floor is the same with one dump.\n\n")
	fmt.Fprintln(out, "| connections | sockets | agent polls | agent CPU s | bare dump CPU s | gopsutil CPU s | agent / bare (min-max) | agent / bare, TCP in one walk | agent / (one walk + fd walk) | gopsutil / bare | agent peak RSS MiB | first poll CPU ms (`--once`) | first-poll floor ms (one dump + fd walk) | `--once` peak RSS MiB |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		rs := r.rounds
		ratio := func(x bench.Round) float64 { return x.Agent.CPU.Seconds() / x.Bare.CPU.Seconds() }
		lo, hi := ratio(rs[0]), ratio(rs[0])
		for _, x := range rs {
			lo, hi = min(lo, ratio(x)), max(hi, ratio(x))
		}
		ps, psRatio := "-", "-"
		if plan.Gopsutil {
			ps = fmt.Sprintf("%.2f", bench.Median(rs, func(x bench.Round) float64 { return x.PS.CPU.Seconds() }))
			psRatio = fmt.Sprintf("%.1fx", bench.Median(rs, func(x bench.Round) float64 { return x.PS.CPU.Seconds() / x.Bare.CPU.Seconds() }))
		}
		fmt.Fprintf(out, "| %d | %.0f | %.0f | %.3f | %.3f | %s | **%.2fx** (%.2f-%.2f) | %.2fx | %.2fx | %s | %.1f | %.0f | %.0f | %.1f |\n",
			r.conns,
			bench.Median(rs, func(x bench.Round) float64 { return float64(x.Sockets) }),
			bench.Median(rs, func(x bench.Round) float64 { return float64(x.AgentPolls) }),
			bench.Median(rs, func(x bench.Round) float64 { return x.Agent.CPU.Seconds() }),
			bench.Median(rs, func(x bench.Round) float64 { return x.Bare.CPU.Seconds() }),
			ps,
			bench.Median(rs, ratio), lo, hi,
			bench.Median(rs, func(x bench.Round) float64 { return x.Agent.CPU.Seconds() / x.BareOneWalk.CPU.Seconds() }),
			bench.Median(rs, func(x bench.Round) float64 { return x.Agent.CPU.Seconds() / x.Attributed.CPU.Seconds() }),
			psRatio,
			bench.Median(rs, func(x bench.Round) float64 { return mib(x.Agent.MaxRSS) }),
			bench.Median(rs, func(x bench.Round) float64 { return ms(x.Once.CPU) }),
			bench.Median(rs, func(x bench.Round) float64 { return ms(x.FirstFloor.CPU) }),
			bench.Median(rs, func(x bench.Round) float64 { return mib(x.Once.MaxRSS) }),
		)
	}
	for _, r := range rows {
		if len(r.steady) == 0 {
			continue
		}
		fmt.Fprintf(out, "\nSteady CPU share of the agent at %d connections (CPU time sampled over %v after a warm-up of two intervals + 2s, median of %d;\n", r.conns, steadyWindow, rounds)
		fmt.Fprintf(out, "peak RSS = the whole run's, warm-up included):\n\n")
		fmt.Fprintln(out, "| poll interval | % of one core | peak RSS MiB |")
		fmt.Fprintln(out, "|---|---|---|")
		for _, iv := range steady {
			id := func(x float64) float64 { return x }
			fmt.Fprintf(out, "| %v | %.2f %% | %.1f |\n", iv, 100*bench.Median(r.steady[iv], id), bench.Median(r.steadyRSS[iv], id))
		}
	}
}

func mib(b int64) float64        { return float64(b) / (1 << 20) }
func ms(d time.Duration) float64 { return float64(d) / 1e6 }
func logf(f string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+f+"\n", args...)
}
