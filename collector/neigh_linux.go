//go:build linux

package collector

import (
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// The neighbour table (ARP and NDP) through NETLINK_ROUTE: a RTM_GETNEIGH
// dump at each poll, and the RTNLGRP_NEIGH multicast group between polls.
// Both work unprivileged (rtnetlink lets any user join its groups), and both
// see the network namespace of this process, as the socket dumps do.
//
// Raw golang.org/x/sys/unix, like sock_diag here: two message types with two
// attributes do not call for a netlink library.

// neighDump reads the whole neighbour table (IPv4 and IPv6) in one dump.
type neighDump struct {
	fd  int
	seq uint32
	buf []byte
	req []byte
	msg []neighMsg
}

func openNeighDump() (*neighDump, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("neighbour dump: open netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("neighbour dump: bind netlink socket: %w", err)
	}
	tv := unix.Timeval{Sec: 5} // never hang on a dump
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("neighbour dump: set receive timeout: %w", err)
	}
	return &neighDump{fd: fd, buf: make([]byte, dumpRecvBuf)}, nil
}

// Dump returns every IPv4 and IPv6 neighbour, devices named through names.
func (d *neighDump) Dump(names *ifNames) ([]Neighbor, error) {
	d.seq++
	if d.seq == 0 {
		d.seq = 1
	}
	d.req = appendNeighDumpRequest(d.req[:0], d.seq)
	if err := unix.Sendto(d.fd, d.req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("neighbour dump: send request: %w", err)
	}
	d.msg = d.msg[:0]
	for { // bounded: a dump ends with NLMSG_DONE, an error or the receive timeout
		n, err := recvNL(d.fd, d.buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("neighbour dump: receive: %w", err)
		}
		var res neighBatch
		d.msg, res, err = parseNeighMessages(d.buf[:n], d.seq, d.msg)
		if err != nil {
			d.drain()
			return nil, fmt.Errorf("neighbour dump: %w", err)
		}
		if res.Done {
			break
		}
	}
	out := make([]Neighbor, 0, len(d.msg))
	for _, m := range d.msg {
		m.N.Device = names.name(m.Ifindex)
		out = append(out, m.N)
	}
	return out, nil
}

// drain discards the rest of a dump after a parse error; bounded by count.
func (d *neighDump) drain() {
	for i := 0; i < 1<<12; i++ {
		n, err := recvNL(d.fd, d.buf, unix.MSG_DONTWAIT)
		if err != nil || n == 0 {
			return
		}
	}
}

func (d *neighDump) Close() error { return unix.Close(d.fd) }

// ifNames maps interface indexes to names. The table is read (one
// RTM_GETLINK dump) at the first lookup after reset, once per poll.
type ifNames struct {
	m      map[int32]string
	loaded bool
}

func (c *ifNames) reset() { c.m, c.loaded = nil, false }

func (c *ifNames) name(idx int32) string {
	if !c.loaded {
		c.loaded = true
		c.m = map[int32]string{}
		if ifs, err := net.Interfaces(); err == nil {
			for _, ifi := range ifs {
				c.m[int32(ifi.Index)] = ifi.Name
			}
		}
	}
	if n, ok := c.m[idx]; ok {
		return n
	}
	return fmt.Sprintf("if%d", idx) // gone already
}

// neighWatcher receives the kernel's neighbour notifications (RTM_NEWNEIGH,
// RTM_DELNEIGH on RTNLGRP_NEIGH) into a bounded buffer; Drain never blocks
// on I/O. A notification that only changes an entry's state (REACHABLE ->
// STALE ...) with the MAC it already had is left out. Losses are counted:
// socket overflows (ENOBUFS, at least one each) and a full buffer.
type neighWatcher struct {
	nlWatcher
	buf    []neighEvent        // guarded by mu
	last   map[neighKey]string // the MAC each entry was last reported with ("" none); guarded by mu
	maxBuf int
}

type neighEvent struct {
	t time.Time
	m neighMsg
}

type neighKey struct {
	ifindex int32
	ip      [16]byte
}

const (
	rtnlgrpNeigh         = 3
	defaultNeighRcvBuf   = 1 << 20
	defaultNeighBuffer   = 1 << 14 // events held between two Drains
	maxNeighWatcherState = 1 << 16 // entries remembered for de-duplication
)

func openNeighWatcher() (*neighWatcher, error) {
	return openNeighWatcherMax(defaultNeighRcvBuf, defaultNeighBuffer)
}

func openNeighWatcherMax(rcvbuf, maxBuf int) (*neighWatcher, error) {
	const name = "neighbour events"
	fd, err := openNLSocket(name, nlSocket{typ: unix.SOCK_RAW, proto: unix.NETLINK_ROUTE,
		groups: 1 << (rtnlgrpNeigh - 1), groupName: "RTNLGRP_NEIGH", rcvbuf: rcvbuf})
	if err != nil {
		return nil, err
	}
	w := &neighWatcher{last: map[neighKey]string{}, maxBuf: maxBuf}
	var batch []neighMsg
	w.start(name, fd, func(b []byte) {
		var perr error
		batch, _, perr = parseNeighMessages(b, 0, batch[:0])
		now := time.Now()
		w.mu.Lock()
		if perr != nil {
			w.lost++
		}
		for _, m := range batch {
			w.add(now, m)
		}
		w.mu.Unlock()
	})
	return w, nil
}

// add records m unless it repeats the entry's MAC. Called with mu held.
func (w *neighWatcher) add(now time.Time, m neighMsg) {
	k := neighKey{ifindex: m.Ifindex, ip: m.N.IP.As16()}
	mac := m.N.MAC
	if m.Deleted {
		mac = ""
	}
	if prev, ok := w.last[k]; ok && prev == mac {
		return
	}
	if len(w.last) >= maxNeighWatcherState {
		clear(w.last)
	}
	if m.Deleted {
		delete(w.last, k)
	} else {
		w.last[k] = mac
	}
	if len(w.buf) >= w.maxBuf {
		w.lost++
		return
	}
	w.buf = append(w.buf, neighEvent{now, m})
}

// Drain appends the events since the last Drain to dst (devices named
// through names) and returns it with the number of notifications lost.
func (w *neighWatcher) Drain(dst []NeighborEvent, names *ifNames) ([]NeighborEvent, uint64) {
	w.mu.Lock()
	evs := w.buf
	w.buf = nil
	lost := w.takeLost()
	w.mu.Unlock()
	for _, e := range evs {
		n := e.m.N
		n.Device = names.name(e.m.Ifindex)
		dst = append(dst, NeighborEvent{Time: e.t, Deleted: e.m.Deleted, Neighbor: n})
	}
	return dst, lost
}

// neighSource is the neighbour part of the Linux source: the dump socket
// and the watcher, each reopened at the next poll when it failed.
type neighSource struct {
	dump     *neighDump
	dumpErr  error
	watch    *neighWatcher
	watchErr error
	names    ifNames
}

func (n *neighSource) open() {
	if n.dump == nil {
		n.dump, n.dumpErr = openNeighDump()
	}
	if n.watch != nil {
		if err := n.watch.Err(); err != nil { // the reader stopped: reopen
			n.watch.Close()
			n.watch, n.watchErr = nil, err
		}
	}
	if n.watch == nil {
		n.watch, n.watchErr = openNeighWatcher()
	}
}

// collect drains the events, then reads the table, so every event precedes
// the table it leads to. Without the rtnetlink dump the IPv4 table comes
// from <procRoot>/net/arp and tableErr says IPv6 is missing.
func (n *neighSource) collect(procRoot string) (table []Neighbor, evs []NeighborEvent, lost uint64, evErr, tableErr error) {
	n.names.reset() // interfaces may have been renamed or replaced since the last poll
	if n.watch != nil {
		evs, lost = n.watch.Drain(nil, &n.names)
	} else {
		evErr = fmt.Errorf("neighbour notifications unavailable: %w", n.watchErr)
	}
	var err error
	if n.dump != nil {
		if table, err = n.dump.Dump(&n.names); err == nil {
			return table, evs, lost, evErr, nil
		}
		n.dump.Close() // reopened at the next poll
		n.dump, n.dumpErr = nil, err
	}
	table, tableErr = readARP(procRoot)
	return table, evs, lost, evErr, errors.Join(
		fmt.Errorf("rtnetlink neighbour dump unavailable, IPv4 only from net/arp: %w", n.dumpErr), tableErr)
}

func (n *neighSource) close() error {
	var errs []error
	if n.watch != nil {
		errs = append(errs, n.watch.Close())
		n.watch = nil
	}
	if n.dump != nil {
		errs = append(errs, n.dump.Close())
		n.dump = nil
	}
	return errors.Join(errs...)
}
