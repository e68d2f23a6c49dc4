//go:build linux

package collector

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"time"
	"unsafe"

	"go.uber.org/zap"
)

// NewSource returns the Linux source: every TCP/UDP socket through
// NETLINK_SOCK_DIAG with tcp_info counters, PIDs through the incremental
// inode→PID cache, opened/closed connections through the tracker (and
// socket-destroy notifications when opts.DestroyEvents), plus the process
// table, neighbour table, default routes, resolvers and kernel counters read
// from opts.ProcRoot.
//
// Sockets are those of the network namespace this process runs in, whatever
// the proc root: run in the host's network namespace to see the host's.
//
// Nothing here fails the snapshot: a failing part is logged when it starts
// (and stops) failing and named in Stats.Errors on every snapshot it misses;
// Collect returns an error only when ctx is done or neither sockets nor
// processes could be read.
func NewSource(opts Options, log *zap.Logger) (Source, error) {
	if log == nil {
		log = zap.NewNop()
	}
	log = log.With(zap.String("source", "linux"))
	procRoot := ProcRootFromEnv(opts.ProcRoot)
	if opts.ResolvConf == "" {
		opts.ResolvConf = defaultResolvConf
	}
	hostname, err := os.Hostname()
	if err != nil {
		log.Warn("hostname unknown", zap.Error(err))
	}
	s := &linuxSource{
		opts:     opts,
		log:      log,
		procRoot: procRoot,
		hostname: hostname,
		procs:    newProcTable(procRoot),
		pids:     newPIDCache(procRoot),
		tracker:  newTracker(),
		failing:  make(map[string]string),
	}
	// Opened here so that a destroy notification is not missed before the
	// first poll; failures are retried at each Collect.
	s.openDiag()
	if opts.DestroyEvents {
		s.openDestroy()
	}
	s.openNeigh()
	if opts.ProcEvents {
		s.openProcConn()
	}
	log.Info("linux source ready", zap.String("proc_root", procRoot),
		zap.Bool("sock_diag", s.diag != nil), zap.Bool("destroy_events", s.destroy != nil),
		zap.Bool("proc_events", s.procConn != nil))
	return s, nil
}

type linuxSource struct {
	opts     Options
	log      *zap.Logger
	procRoot string
	hostname string

	diag    *sockDiag
	destroy *destroyWatcher
	procs   *procTable
	pids    *pidCache
	tracker *tracker

	procConn *procConn // exec events (privileged, optional)

	diagErr, destroyErr error // why diag / destroy are nil
	lastSockets         int
	spare               []Socket // a recycled snapshot's sockets, reused by the next dump
	spareSame           []int32  // and its SameAs
	seq                 uint64   // snapshots taken (Snapshot.Seq)
	latest              *Socket  // the last dump's memory, which the tracker points into
	destroyBuf          []Socket
	failing             map[string]string // source → last error logged

	neigh neighSource // the neighbour table and its change notifications
}

func (s *linuxSource) openDiag() {
	if s.diag != nil {
		return
	}
	s.diag, s.diagErr = openSockDiag()
}

// openProcConn subscribes to exec events when permitted; otherwise it says
// once, at info level, what is missed.
func (s *linuxSource) openProcConn() {
	err := procConnUsable()
	if err == nil {
		var boot time.Time
		if boot, err = readBootTime(s.procRoot, time.Now()); err == nil {
			s.procConn, err = openProcConn(s.procRoot, boot)
		}
	}
	if err != nil {
		s.log.Info("process exec events off: processes that start and exit between two polls are not seen", zap.Error(err))
	}
}

func (s *linuxSource) openDestroy() {
	if s.destroy != nil {
		return
	}
	s.destroy, s.destroyErr = openDestroyWatcher(0)
}

func (s *linuxSource) openNeigh() { s.neigh.open() }

// Recycle keeps snap's socket slice for the next dump (see Recycler). The
// latest snapshot's list is never reused: the tracker reads it at the next
// poll.
func (s *linuxSource) Recycle(snap *Snapshot) {
	if snap == nil || cap(snap.Sockets) == 0 || unsafe.SliceData(snap.Sockets) == s.latest {
		return
	}
	// The dump appends zeroed entries, so nothing stale survives reuse.
	s.spare = snap.Sockets[:0]
	s.spareSame = snap.SameAs[:0]
	snap.Sockets, snap.Opened, snap.SameAs = nil, nil, nil // the first poll's Opened is the same memory
}

// Collect takes one snapshot.
func (s *linuxSource) Collect(ctx context.Context) (*Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	start := time.Now()
	snap := &Snapshot{Time: start, Hostname: s.hostname, HostIPs: hostIPs()}
	errs := map[string]error{}

	// Sockets. A fresh slice each poll (snapshots outlive the next
	// Collect) unless the caller recycled one (Recycle).
	s.openDiag()
	var sockErr error
	if s.diag == nil {
		sockErr = fmt.Errorf("sock_diag unavailable: %w", s.diagErr)
	} else {
		want := s.lastSockets + s.lastSockets/8 + 64
		if s.lastSockets == 0 { // the first poll: ask the kernel's counters
			want += estimateSockets(s.procRoot) * 9 / 8
		}
		buf := s.spare // too small, the dump's appends grow it once
		s.spare = nil
		if buf == nil {
			buf = make([]Socket, 0, want)
		}
		snap.Sockets, sockErr = s.diag.Dump(buf)
	}
	if sockErr != nil {
		errs["sockets"] = sockErr
	}
	if snap.Sockets == nil {
		snap.Sockets = []Socket{}
	}
	s.lastSockets = len(snap.Sockets)
	s.latest = unsafe.SliceData(snap.Sockets)

	// Processes after sockets: every socket in the dump then belongs to a
	// process in the table (unless it exited), so a connection made by a
	// new process is attributed at first sight, not one poll later.
	procs, err := s.procs.Refresh()
	if err != nil {
		errs["processes"] = err
	}
	s.pids.Attribute(snap.Sockets, procs)
	if procs == nil {
		procs = map[int32]*Process{}
	}
	s.addExecRecords(procs)
	snap.Processes = procs

	// Destroy notifications since the last poll, then the tracker.
	var lost uint64
	active := false
	if s.opts.DestroyEvents {
		if s.destroy != nil {
			if err := s.destroy.Err(); err != nil { // the reader stopped: reopen
				s.destroy.Close()
				s.destroy, s.destroyErr = nil, err
			}
		}
		s.openDestroy()
		if s.destroy != nil {
			s.destroyBuf, lost = s.destroy.Drain(s.destroyBuf[:0])
			active = true
		} else {
			errs["destroy_events"] = fmt.Errorf("socket-destroy notifications unavailable: %w", s.destroyErr)
		}
	}
	s.seq++
	snap.Seq = s.seq
	snap.SameAs = slices.Grow(s.spareSame[:0], len(snap.Sockets))[:len(snap.Sockets)]
	s.spareSame = nil
	snap.Opened, snap.Closed = s.tracker.UpdateSame(snap.Time, snap.Sockets, s.destroyBuf, active, snap.SameAs)
	if n := s.tracker.Stats().Untracked; n > 0 {
		errs["tracker"] = fmt.Errorf("%d sockets not tracked: %d connections held (MaxEntries)", n, s.tracker.Stats().Tracked)
	}
	snap.Stats.DestroyEvents = len(s.destroyBuf)
	snap.Stats.DestroyEventsLost = lost
	if len(s.destroyBuf) > 4096 {
		s.destroyBuf = nil // do not pin a burst's memory
	}

	// The neighbour table: rtnetlink events since the last poll, then the
	// table itself (IPv4 and IPv6), or /proc/net/arp (IPv4) without netlink.
	s.openNeigh()
	var neighErr error
	snap.ARP, snap.NeighborEvents, snap.Stats.NeighborEventsLost, neighErr, err = s.neigh.collect(s.procRoot)
	snap.Stats.NeighborEvents = len(snap.NeighborEvents)
	if neighErr != nil {
		errs["neighbor_events"] = neighErr
	}
	if err != nil {
		errs["arp"] = err
	}

	// The small /proc sources.
	if snap.Gateways, err = readDefaultRoutes(s.procRoot); err != nil {
		errs["routes"] = err
	}
	if snap.Nameservers, err = readResolvConf(s.opts.ResolvConf); err != nil {
		errs["resolv_conf"] = err
	}
	if snap.Counters, err = readCounters(s.procRoot); err != nil {
		errs["counters"] = err
	}
	if s.opts.SystemMetrics {
		if snap.System, err = readSystemMetrics(ctx); err != nil {
			errs["system"] = err
		}
	}
	if snap.ARP == nil {
		snap.ARP = []Neighbor{}
	}
	if snap.Gateways == nil {
		snap.Gateways = []Route{}
	}
	if snap.Nameservers == nil {
		snap.Nameservers = []netip.Addr{}
	}

	snap.Stats.Sockets = len(snap.Sockets)
	for i := range snap.Sockets {
		if snap.Sockets[i].PID == 0 {
			snap.Stats.SocketsNoPID++
		}
	}
	snap.Stats.Processes = len(procs)
	s.recordErrors(snap, errs)
	snap.Stats.Duration = time.Since(start)

	if errs["sockets"] != nil && errs["processes"] != nil {
		return snap, fmt.Errorf("collect: no sockets and no processes: %w", errors.Join(errs["sockets"], errs["processes"]))
	}
	return snap, nil
}

// recordErrors names each failing part in the snapshot, in a stable order,
// and logs a part only when it starts failing, changes error, or recovers.
func (s *linuxSource) recordErrors(snap *Snapshot, errs map[string]error) {
	for _, name := range [...]string{"sockets", "processes", "destroy_events", "tracker", "arp", "neighbor_events", "routes", "resolv_conf", "counters", "system"} {
		err := errs[name]
		if err == nil {
			if _, was := s.failing[name]; was {
				delete(s.failing, name)
				s.log.Info("collector part recovered", zap.String("part", name))
			}
			continue
		}
		msg := err.Error()
		snap.Stats.Errors = append(snap.Stats.Errors, name+": "+msg)
		if s.failing[name] != msg {
			s.failing[name] = msg
			s.log.Warn("collector part failing; the snapshot goes on without it", zap.String("part", name), zap.Error(err))
		}
	}
}

// addExecRecords adds the processes read at their exec since the last poll
// whose PID the table does not list (they exited): short-lived children
// reach the detectors with their parent, command line and user.
func (s *linuxSource) addExecRecords(procs map[int32]*Process) {
	if s.procConn == nil {
		return
	}
	if err := s.procConn.Err(); err != nil {
		s.log.Info("process exec events stopped", zap.Error(err))
		s.procConn.Close()
		s.procConn = nil
		return
	}
	recs, lost := s.procConn.Drain()
	added := 0
	for _, p := range recs {
		if _, ok := procs[p.PID]; ok {
			continue // still running (or its PID already reused): the table's entry wins
		}
		p.User = s.procs.userName(p.UID)
		procs[p.PID] = p
		added++
	}
	if added > 0 || lost > 0 {
		s.log.Debug("short-lived processes from exec events", zap.Int("added", added), zap.Int("events", len(recs)), zap.Uint64("lost", lost))
	}
}

// Close releases the netlink sockets.
func (s *linuxSource) Close() error {
	var errs []error
	if s.procConn != nil {
		errs = append(errs, s.procConn.Close())
		s.procConn = nil
	}
	if s.destroy != nil {
		errs = append(errs, s.destroy.Close())
		s.destroy = nil
	}
	errs = append(errs, s.neigh.close())
	if s.diag != nil {
		errs = append(errs, s.diag.Close())
		s.diag = nil
	}
	return errors.Join(errs...)
}
