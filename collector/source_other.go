//go:build !linux

package collector

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"

	psnet "github.com/shirou/gopsutil/v4/net"
	"github.com/shirou/gopsutil/v4/process"
	"go.uber.org/zap"
)

// NewSource returns the portable gopsutil-based source used on systems other
// than Linux. It keeps the Snapshot shape of the Linux source with less in it:
// sockets carry no tcp_info counters and no cookie (Opened/Closed are diffed
// by 5-tuple), the neighbour table, default routes and kernel counters are not
// read (noted in Stats.Errors; Counters.Valid is false), and the nameservers
// come from opts.ResolvConf when that file exists.
func NewSource(opts Options, log *zap.Logger) (Source, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if opts.ResolvConf == "" {
		opts.ResolvConf = defaultResolvConf
	}
	hostname, err := os.Hostname()
	if err != nil {
		log.Warn("hostname unknown", zap.Error(err))
	}
	return &portableSource{
		opts:     opts,
		log:      log.With(zap.String("source", "gopsutil")),
		hostname: hostname,
		procs:    make(map[int32]portableProc),
	}, nil
}

type portableSource struct {
	opts     Options
	log      *zap.Logger
	hostname string
	tracker  portableTracker
	procs    map[int32]portableProc // by PID, with the create time that identifies it
}

type portableProc struct {
	created int64 // ms since the epoch, as gopsutil reports it
	proc    *Process
}

func (s *portableSource) Collect(ctx context.Context) (*Snapshot, error) {
	start := time.Now()
	snap := &Snapshot{
		Time:     start,
		Hostname: s.hostname,
		HostIPs:  hostIPs(),
		ARP:      []Neighbor{},
		Gateways: []Route{},
	}
	fail := func(source string, err error) {
		snap.Stats.Errors = append(snap.Stats.Errors, source+": "+err.Error())
	}

	conns, connErr := psnet.ConnectionsWithContext(ctx, "all")
	if connErr != nil {
		fail("sockets", connErr)
	}
	snap.Sockets = make([]Socket, 0, len(conns))
	for _, c := range conns {
		sock, ok := socketFromConnection(c, uint32(syscall.AF_INET), uint32(syscall.AF_INET6))
		if !ok {
			continue
		}
		if sock.PID == 0 {
			snap.Stats.SocketsNoPID++
		}
		snap.Sockets = append(snap.Sockets, sock)
	}
	if connErr == nil {
		snap.Opened, snap.Closed = s.tracker.update(start, snap.Sockets)
	}

	procs, procErr := s.processes(ctx)
	if procErr != nil {
		fail("processes", procErr)
	}
	snap.Processes = procs

	fail("arp", fmt.Errorf("neighbour table not read on %s", runtime.GOOS))
	fail("routes", fmt.Errorf("default routes not read on %s", runtime.GOOS))
	fail("counters", fmt.Errorf("kernel TCP/UDP counters not read on %s", runtime.GOOS))

	ns, err := readResolvConf(s.opts.ResolvConf)
	if err != nil && !(errors.Is(err, os.ErrNotExist) && runtime.GOOS == "windows") {
		fail("nameservers", err) // Windows has no resolv.conf: not an error there
	}
	snap.Nameservers = ns
	if s.opts.SystemMetrics {
		m, err := readSystemMetrics(ctx)
		if err != nil {
			fail("system", err)
		}
		snap.System = m
	}

	snap.Stats.Sockets = len(snap.Sockets)
	snap.Stats.Processes = len(snap.Processes)
	snap.Stats.Duration = time.Since(start)
	if connErr != nil && procErr != nil {
		return snap, fmt.Errorf("collect: nothing read: %w", errors.Join(connErr, procErr))
	}
	return snap, ctx.Err()
}

// processes lists processes, reading details only for PIDs not seen before
// (or seen with another create time, i.e. a reused PID).
func (s *portableSource) processes(ctx context.Context) (map[int32]*Process, error) {
	pids, err := process.PidsWithContext(ctx)
	if err != nil {
		return map[int32]*Process{}, err
	}
	out := make(map[int32]*Process, len(pids))
	next := make(map[int32]portableProc, len(pids))
	for _, pid := range pids {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		p, err := process.NewProcessWithContext(ctx, pid)
		if err != nil {
			continue // exited meanwhile
		}
		created, _ := p.CreateTimeWithContext(ctx)
		if old, ok := s.procs[pid]; ok && old.created == created {
			next[pid], out[pid] = old, old.proc
			continue
		}
		proc := &Process{PID: pid}
		proc.PPID, _ = p.PpidWithContext(ctx)
		proc.Name, _ = p.NameWithContext(ctx)
		proc.Exe, _ = p.ExeWithContext(ctx)
		proc.Cmdline, _ = p.CmdlineSliceWithContext(ctx)
		if uids, err := p.UidsWithContext(ctx); err == nil && len(uids) > 1 {
			proc.UID = uids[1] // effective, as on Linux
		} else if err == nil && len(uids) == 1 {
			proc.UID = uids[0]
		}
		proc.User, _ = p.UsernameWithContext(ctx)
		if created > 0 {
			proc.StartTime = time.UnixMilli(created)
		}
		next[pid] = portableProc{created: created, proc: proc}
		out[pid] = proc
	}
	s.procs = next
	return out, nil
}

func (s *portableSource) Close() error { return nil }
