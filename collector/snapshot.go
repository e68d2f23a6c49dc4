// Package collector observes the host: sockets, processes, the neighbour table,
// routes, DNS configuration and kernel counters. Everything one poll sees is a
// Snapshot; detectors read snapshots and never touch the host themselves.
//
// Layout: one source per file (sockets, processes, arp, routes, dns config,
// counters, system metrics). On Linux the hot path is NETLINK_SOCK_DIAG plus an
// incremental inode→PID cache (see sockdiag_linux.go, pidcache_linux.go); on
// other systems a gopsutil-based source keeps the same Snapshot shape.
// Parsers are pure functions over bytes, tested on fixtures in testdata/.
// The /proc root is configurable (Options.ProcRoot, --host-proc, HOST_PROC).
package collector

import (
	"context"
	"net/netip"
	"strings"
	"time"
)

// Socket is one TCP or UDP socket as seen by a poll or a destroy notification.
type Socket struct {
	// The fields are ordered so that the struct packs without padding
	// (144 bytes; protocol and state are one byte each): the collector
	// holds two lists of them (the tracker points into the latest).
	Proto     Proto          `json:"proto"`               // tcp or udp
	Family    uint8          `json:"family"`              // 4 or 6
	Destroyed bool           `json:"destroyed,omitempty"` // delivered by a socket-destroy notification
	State     State          `json:"state"`               // ESTABLISHED, LISTEN, SYN_SENT, SYN_RECV, TIME_WAIT, CLOSE ...; UNCONN for unconnected UDP
	UID       uint32         `json:"uid"`
	Local     netip.AddrPort `json:"local"`
	Remote    netip.AddrPort `json:"remote"`
	Inode     uint64         `json:"inode,omitempty"`
	Cookie    uint64         `json:"cookie,omitempty"` // kernel socket cookie: stable identity across polls and destroy events
	// PID of the owning process; 0 when it cannot be read (another user's
	// process while unprivileged). A socket keeps the PID, Inode and UID it
	// was last seen with through TIME_WAIT and its destroy notification
	// (which report none); one first seen in those states has none.
	PID int32 `json:"pid,omitempty"`
	// DataIdleMs is how long before the dump the connection last carried
	// data either way, in milliseconds (tcp_info's last_data_sent and
	// last_data_recv, the smaller; jiffy resolution). 0: unknown (not TCP,
	// a recording from before the field) or within the dump's millisecond.
	// It fills the four bytes after PID: the struct stays 176 bytes.
	DataIdleMs uint32 `json:"data_idle_ms,omitempty"`
	// tcp_info byte counters (TCP only; zero when unknown).
	BytesAcked    uint64 `json:"bytes_acked,omitempty"`    // bytes sent and acknowledged by the peer
	BytesReceived uint64 `json:"bytes_received,omitempty"` // bytes received
	BytesSent     uint64 `json:"bytes_sent,omitempty"`     // bytes sent incl. retransmits (kernel >= 4.19)
	// FirstSeen is when this socket (by cookie, or by 5-tuple when no cookie) was
	// first observed; set by the collector's connection tracker.
	FirstSeen time.Time `json:"first_seen"`
}

// Process is one entry of the process table.
type Process struct {
	PID       int32     `json:"pid"`
	PPID      int32     `json:"ppid"`
	Name      string    `json:"name"`
	Exe       string    `json:"exe,omitempty"` // empty when /proc/<pid>/exe is not readable
	Cmdline   []string  `json:"cmdline,omitempty"`
	UID       uint32    `json:"uid"`
	User      string    `json:"user,omitempty"`
	StartTime time.Time `json:"start_time"`
	// PGID, Session and TTY come from /proc/<pid>/stat, which every user can
	// read: the process group, the session (its leader's PID) and the
	// controlling terminal as tty_nr (0: none; PTSIndex decodes /dev/pts/N).
	PGID    int32  `json:"pgid,omitempty"`
	Session int32  `json:"session,omitempty"`
	TTY     uint32 `json:"tty_nr,omitempty"`
	// StdioSockets lists inodes of TCP/UDP sockets open on fds 0, 1 and 2
	// (stdin, stdout, stderr) when readable; used to spot reverse shells.
	StdioSockets []uint64 `json:"stdio_sockets,omitempty"`
	// Stdio is what fds 0, 1 and 2 point to when the fd directory is
	// readable (the sensor's own user, or privileged) and at least one of
	// them is a socket, pipe, FIFO or terminal; nil otherwise (Linux only).
	Stdio []StdioFD `json:"stdio,omitempty"`
}

// StdioFD is what one of a process's fds 0-2 points to.
type StdioFD struct {
	FD   int    `json:"fd"`
	Kind string `json:"kind"` // one of the StdioKind constants
	// Inode is the socket's, pipe's or FIFO's inode (kinds socket, unix,
	// pipe, fifo): two processes holding the same pipe inode are its two ends.
	Inode uint64 `json:"inode,omitempty"`
	// Path is the fd's target for kinds pty ("/dev/pts/3"), tty, fifo and
	// file.
	Path string `json:"path,omitempty"`
	// Peer is, for a pty, the PID of the process holding its master side
	// (/dev/ptmx with this tty-index), looked for in the process's parent
	// and its session leader's parent; 0 when not found or not readable.
	Peer int32 `json:"peer,omitempty"`
}

// Kinds of StdioFD.
const (
	StdioSocket = "socket" // a TCP or UDP socket of the dump
	StdioUnix   = "unix"   // any other socket (unix, netlink, ...)
	StdioPipe   = "pipe"   // an anonymous pipe
	StdioFIFO   = "fifo"   // a named pipe (mkfifo)
	StdioPTY    = "pty"    // a pseudo-terminal slave, /dev/pts/N
	StdioTTY    = "tty"    // another terminal device (/dev/tty*, /dev/console)
	StdioPTMX   = "ptmx"   // a pseudo-terminal master (/dev/ptmx)
	StdioNull   = "null"   // /dev/null
	StdioFile   = "file"   // anything else
)

// PTS returns N when the fd is the pseudo-terminal /dev/pts/N.
func (f StdioFD) PTS() (int, bool) {
	if f.Kind != StdioPTY {
		return 0, false
	}
	n, ok := parseDecimal([]byte(strings.TrimPrefix(f.Path, "/dev/pts/")), 1<<31-1)
	return int(n), ok
}

// Neighbor is one ARP (IPv4) or NDP (IPv6) neighbour table entry.
type Neighbor struct {
	IP        netip.Addr `json:"ip"`
	MAC       string     `json:"mac"` // lower-case colon form; "" when incomplete
	Device    string     `json:"device"`
	Flags     uint32     `json:"flags"` // ATF_COM (0x2) and ATF_PERM (0x4), as /proc/net/arp prints them
	Complete  bool       `json:"complete"`
	Permanent bool       `json:"permanent"`

	// State is the kernel's NUD state ("REACHABLE", "STALE", "FAILED" ...)
	// when read through rtnetlink; empty from /proc/net/arp.
	State string `json:"state,omitempty"`
	// Router is the NTF_ROUTER flag: the neighbour announced itself as an
	// IPv6 router.
	Router bool `json:"router,omitempty"`
}

// NeighborEvent is one change of the neighbour table the kernel announced
// (rtnetlink RTM_NEWNEIGH / RTM_DELNEIGH) since the previous poll, in the
// order received, so a change reverted before the poll is still seen.
// Repeats of an entry's MAC (state changes only) are left out.
type NeighborEvent struct {
	Time    time.Time `json:"time"`
	Deleted bool      `json:"deleted,omitempty"`
	Neighbor
}

// Route is a default gateway.
type Route struct {
	Device  string     `json:"device"`
	Gateway netip.Addr `json:"gateway"`
	Metric  uint32     `json:"metric"`
}

// Counters holds the kernel's host-wide TCP/UDP counters from /proc/net/snmp
// (and /proc/net/netstat where useful). Values are cumulative; detectors diff them.
type Counters struct {
	TCPActiveOpens  uint64 `json:"tcp_active_opens"`
	TCPPassiveOpens uint64 `json:"tcp_passive_opens"`
	TCPAttemptFails uint64 `json:"tcp_attempt_fails"`
	TCPEstabResets  uint64 `json:"tcp_estab_resets"`
	TCPCurrEstab    uint64 `json:"tcp_curr_estab"`
	TCPInSegs       uint64 `json:"tcp_in_segs"`
	TCPOutSegs      uint64 `json:"tcp_out_segs"`
	TCPRetransSegs  uint64 `json:"tcp_retrans_segs"`
	TCPInErrs       uint64 `json:"tcp_in_errs"`
	TCPOutRsts      uint64 `json:"tcp_out_rsts"`
	UDPInDatagrams  uint64 `json:"udp_in_datagrams"`
	UDPNoPorts      uint64 `json:"udp_no_ports"`
	UDPInErrors     uint64 `json:"udp_in_errors"`
	UDPOutDatagrams uint64 `json:"udp_out_datagrams"`
	Valid           bool   `json:"valid"` // false when the counters could not be read
}

// SystemMetrics are host metrics gathered through gopsutil.
type SystemMetrics struct {
	BytesSent     uint64  `json:"bytes_sent"`
	BytesRecv     uint64  `json:"bytes_recv"`
	PacketsSent   uint64  `json:"packets_sent"`
	PacketsRecv   uint64  `json:"packets_recv"`
	ErrIn         uint64  `json:"errin"`
	ErrOut        uint64  `json:"errout"`
	DropIn        uint64  `json:"dropin"`
	DropOut       uint64  `json:"dropout"`
	CPUPercent    float64 `json:"cpu_percent"`
	MemoryPercent float64 `json:"memory_percent"`
}

// Stats describes what one collection cost and what it could not see.
type Stats struct {
	Duration          time.Duration `json:"duration_ns"`
	Sockets           int           `json:"sockets"`
	SocketsNoPID      int           `json:"sockets_without_pid"`
	Processes         int           `json:"processes"`
	DestroyEvents     int           `json:"destroy_events"`
	DestroyEventsLost uint64        `json:"destroy_events_lost"`
	Errors            []string      `json:"errors,omitempty"` // one line per failing source; the rest of the snapshot is still valid

	// NeighborEvents is len(Snapshot.NeighborEvents); NeighborEventsLost
	// counts neighbour notifications lost since the previous poll (socket
	// overflow or a full buffer).
	NeighborEvents     int    `json:"neighbor_events"`
	NeighborEventsLost uint64 `json:"neighbor_events_lost"`
}

// Snapshot is everything one poll saw. Time is the clock detectors use.
type Snapshot struct {
	Time     time.Time    `json:"time"`
	Hostname string       `json:"hostname"`
	HostIPs  []netip.Addr `json:"host_ips,omitempty"` // this host's own addresses
	Sockets  []Socket     `json:"sockets"`            // every socket open at poll time
	// Opened are sockets first seen at this poll (also included in Sockets).
	Opened []Socket `json:"opened,omitempty"`
	// Closed are sockets seen before (or only in a destroy notification) that
	// are gone now, with their last known counters and PID.
	Closed      []Socket           `json:"closed,omitempty"`
	Processes   map[int32]*Process `json:"processes"`
	ARP         []Neighbor         `json:"arp"`
	Gateways    []Route            `json:"gateways"`
	Nameservers []netip.Addr       `json:"nameservers"`
	Counters    Counters           `json:"counters"`
	System      SystemMetrics      `json:"system"`
	Stats       Stats              `json:"stats"`

	// NeighborEvents are the neighbour changes announced since the previous
	// poll, oldest first, all received before ARP (IPv4 and IPv6) was read.
	NeighborEvents []NeighborEvent `json:"neighbor_events,omitempty"`

	// Seq numbers the snapshots of one source (1, 2, ...; 0: unknown).
	Seq uint64 `json:"-"`
	// SameAs has, when not nil, one entry per socket: its index in
	// Sockets of the source's previous snapshot (Seq-1) when it was listed
	// there with every field but DataIdleMs the same (SameObservation),
	// else -1. A consumer that kept that snapshot can carry over what it
	// concluded about the socket instead of examining it again.
	SameAs []int32 `json:"-"`
}

// SameObservation reports whether s is o listed again with nothing but
// DataIdleMs (which grows on an idle connection) changed.
func SameObservation(s, o *Socket) bool {
	return s.Cookie == o.Cookie && s.State == o.State && s.PID == o.PID &&
		s.BytesAcked == o.BytesAcked && s.BytesReceived == o.BytesReceived && s.BytesSent == o.BytesSent &&
		s.Local == o.Local && s.Remote == o.Remote && s.Proto == o.Proto && s.Family == o.Family &&
		s.UID == o.UID && s.Inode == o.Inode && s.Destroyed == o.Destroyed && s.FirstSeen.Equal(o.FirstSeen)
}

// Source produces snapshots. Collect must be safe to call repeatedly from one
// goroutine; a failing sub-source is recorded in Stats.Errors, not returned,
// unless nothing at all could be collected.
type Source interface {
	Collect(ctx context.Context) (*Snapshot, error)
	Close() error
}

// Recycler is implemented by a Source that can reuse the memory of a
// snapshot its caller is finished with. Recycle hands snap back: the caller
// and everything it shared snap with must no longer read it (its Sockets
// are cleared and their backing array becomes a later snapshot's). A
// caller that cannot know that (a snapshot kept by a dashboard) never
// recycles. At 50,000 connections this saves a 20 MB allocation per poll,
// and the garbage collection that goes with it. The latest snapshot is
// never taken back (the source's tracker reads its sockets at the next
// poll): Recycle leaves it as it is. Nobody may modify a snapshot's sockets.
type Recycler interface {
	Recycle(snap *Snapshot)
}

// Options configure a Source.
type Options struct {
	ProcRoot string // default "/proc"; HOST_PROC or --host-proc override
	// ResolvConf is the resolver configuration file (default /etc/resolv.conf).
	ResolvConf string
	// SystemMetrics enables gopsutil CPU/memory/interface metrics (default on).
	SystemMetrics bool
	// DestroyEvents subscribes to sock_diag destroy notifications (Linux).
	DestroyEvents bool
	// ProcEvents subscribes to exec events through the netlink process
	// connector (Linux, CAP_NET_ADMIN, initial PID namespace; off with one
	// info log otherwise), so processes that live less than a poll are seen.
	ProcEvents bool
}
