//go:build linux

package collector

import (
	"time"

	"golang.org/x/sys/unix"
)

// destroyWatcher receives the kernel's socket-destroy notifications: one
// message per TCP or UDP socket (v4 and v6) as it is freed, with the socket
// cookie and, for TCP, the final tcp_info counters. It catches connections
// and DNS query sockets that live between two polls. Uid and inode are 0 in
// these messages; the tracker joins them to earlier polls by cookie.
//
// A goroutine reads the multicast socket into a bounded buffer; Drain never
// blocks on I/O. Losses are counted: messages the kernel dropped because the
// socket buffer overflowed (ENOBUFS, counted as at least one per overflow)
// and messages dropped because the bounded buffer was full.
type destroyWatcher struct {
	nlWatcher
	buf    []Socket // guarded by mu
	maxBuf int
}

// Destroy multicast groups (SKNLGRP_INET_TCP_DESTROY .. INET6_UDP_DESTROY).
const destroyGroups = 1<<(1-1) | 1<<(2-1) | 1<<(3-1) | 1<<(4-1) // 0xF

// Defaults for openDestroyWatcher.
const (
	defaultDestroyRcvBuf = 4 << 20 // socket receive buffer, bytes
	// defaultDestroyBuffer bounds the sockets held between two Drains.
	defaultDestroyBuffer = 1 << 16
)

// openDestroyWatcher subscribes to the sock_diag destroy groups (works
// unprivileged). rcvbuf sizes the socket receive buffer (0: 4 MiB); as root
// the system limit net.core.rmem_max is bypassed.
func openDestroyWatcher(rcvbuf int) (*destroyWatcher, error) {
	return openDestroyWatcherMax(rcvbuf, defaultDestroyBuffer)
}

func openDestroyWatcherMax(rcvbuf, maxBuf int) (*destroyWatcher, error) {
	if rcvbuf <= 0 {
		rcvbuf = defaultDestroyRcvBuf
	}
	const name = "destroy watcher"
	fd, err := openNLSocket(name, nlSocket{typ: unix.SOCK_RAW, proto: unix.NETLINK_SOCK_DIAG,
		groups: destroyGroups, groupName: "destroy groups", rcvbuf: rcvbuf})
	if err != nil {
		return nil, err
	}
	w := &destroyWatcher{maxBuf: maxBuf}
	var batch []Socket
	w.start(name, fd, func(b []byte) {
		var perr error
		batch, _, perr = parseDiagMessages(b, 0, 0, true, batch[:0])
		// The time a socket was seen ending: for a connection shorter than a
		// poll this is the best start time there is (beaconing needs more
		// than the poll time it would otherwise get).
		seen := time.Now()
		for i := range batch {
			batch[i].FirstSeen = seen
		}
		w.mu.Lock()
		if perr != nil {
			w.lost++ // the unparsable rest of this datagram
		}
		room := max(w.maxBuf-len(w.buf), 0)
		if len(batch) > room {
			w.lost += uint64(len(batch) - room)
			batch = batch[:room]
		}
		w.buf = append(w.buf, batch...)
		w.mu.Unlock()
	})
	return w, nil
}

// Drain appends the sockets destroyed since the last Drain to dst and
// returns it with the number of notifications lost since then. It never
// blocks on I/O.
func (w *destroyWatcher) Drain(dst []Socket) ([]Socket, uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	dst = append(dst, w.buf...)
	w.buf = w.buf[:0]
	if cap(w.buf) > 4096 && len(dst) < cap(w.buf)/4 {
		w.buf = nil // shrink after a burst
	}
	return dst, w.takeLost()
}
