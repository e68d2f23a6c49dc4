//go:build linux

package collector

import (
	"errors"
	"fmt"
	"os"
	"sync"
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
	f *os.File

	mu     sync.Mutex
	buf    []Socket
	lost   uint64
	err    error // first read error that stopped the reader, if any
	closed bool

	maxBuf int
	done   chan struct{}
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
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("destroy watcher: open netlink socket: %w", err)
	}
	// SO_RCVBUFFORCE needs CAP_NET_ADMIN; fall back to the capped SO_RCVBUF.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf) != nil {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("destroy watcher: set receive buffer %d: %w", rcvbuf, err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: destroyGroups}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("destroy watcher: join destroy groups: %w", err)
	}
	w := &destroyWatcher{
		f:      os.NewFile(uintptr(fd), "sock_diag-destroy"),
		maxBuf: maxBuf,
		done:   make(chan struct{}),
	}
	go w.run()
	return w, nil
}

// run reads notifications until the socket is closed.
func (w *destroyWatcher) run() {
	defer close(w.done)
	rc, err := w.f.SyscallConn()
	if err != nil {
		w.setErr(err)
		return
	}
	buf := make([]byte, 64<<10)
	var batch []Socket
	for {
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), buf, 0)
			return rerr != unix.EAGAIN && rerr != unix.EINTR
		})
		if err != nil { // closed
			if !errors.Is(err, os.ErrClosed) {
				w.setErr(err)
			}
			return
		}
		if rerr == unix.ENOBUFS {
			w.mu.Lock()
			w.lost++
			w.mu.Unlock()
			continue
		}
		if rerr != nil {
			w.setErr(fmt.Errorf("destroy watcher: receive: %w", rerr))
			return
		}
		var perr error
		batch, _, perr = parseDiagMessages(buf[:n], 0, 0, true, batch[:0])
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
		room := w.maxBuf - len(w.buf)
		if room < 0 {
			room = 0
		}
		if len(batch) > room {
			w.lost += uint64(len(batch) - room)
			batch = batch[:room]
		}
		w.buf = append(w.buf, batch...)
		w.mu.Unlock()
	}
}

func (w *destroyWatcher) setErr(err error) {
	w.mu.Lock()
	if w.err == nil && !w.closed {
		w.err = err
	}
	w.mu.Unlock()
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
	lost := w.lost
	w.lost = 0
	return dst, lost
}

// Err reports the error that stopped the reader, if any (nil while healthy).
func (w *destroyWatcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Close stops the reader and releases the socket.
func (w *destroyWatcher) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	err := w.f.Close()
	<-w.done
	return err
}
