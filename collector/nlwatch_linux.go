//go:build linux

package collector

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// nlWatcher is what the collector's three netlink multicast readers
// (socket-destroy notifications, neighbour events, process events) share: a
// goroutine receiving datagrams from a subscribed socket and handing each
// to the reader's handle function, a lost-message counter, the error that
// stopped it, and Close. Drain never blocks on I/O: the readers keep what
// handle records under mu, bounded, and count what did not fit in lost.
//
// Losses counted here are the kernel's: a receive that fails with ENOBUFS
// (the socket buffer overflowed) counts at least one lost message.
type nlWatcher struct {
	name string // in errors: "destroy watcher", "neighbour events" ...
	f    *os.File

	mu     sync.Mutex // guards lost, err, closed and what handle records
	lost   uint64
	err    error // first error that stopped the reader
	closed bool
	done   chan struct{}
}

// nlSocket is how to open a watcher's socket.
type nlSocket struct {
	typ, proto int    // unix.SOCK_RAW or SOCK_DGRAM; the netlink family
	groups     uint32 // multicast groups to join (bitmask)
	groupName  string // in errors
	rcvbuf     int    // receive buffer; SO_RCVBUFFORCE (root) else SO_RCVBUF
	// bestEffortBuf keeps the socket when no buffer size can be set.
	bestEffortBuf bool
}

// openNLSocket opens, sizes and binds a multicast netlink socket. name
// prefixes the errors.
func openNLSocket(name string, o nlSocket) (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, o.typ|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, o.proto)
	if err != nil {
		return -1, fmt.Errorf("%s: open netlink socket: %w", name, err)
	}
	// SO_RCVBUFFORCE needs CAP_NET_ADMIN; fall back to the capped SO_RCVBUF.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, o.rcvbuf) != nil {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, o.rcvbuf); err != nil && !o.bestEffortBuf {
			unix.Close(fd)
			return -1, fmt.Errorf("%s: set receive buffer %d: %w", name, o.rcvbuf, err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: o.groups}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("%s: join %s: %w", name, o.groupName, err)
	}
	return fd, nil
}

// start takes ownership of fd and reads it on a new goroutine until Close,
// calling handle (on that goroutine, without mu held) with each datagram.
// The datagram's memory is reused by the next receive.
func (w *nlWatcher) start(name string, fd int, handle func(b []byte)) {
	w.name = name
	w.f = os.NewFile(uintptr(fd), name)
	w.done = make(chan struct{})
	go w.run(handle)
}

func (w *nlWatcher) run(handle func(b []byte)) {
	defer close(w.done)
	rc, err := w.f.SyscallConn()
	if err != nil {
		w.setErr(err)
		return
	}
	buf := make([]byte, 64<<10)
	for {
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, rerr = recvNL(int(fd), buf, 0)
			return rerr != unix.EAGAIN && rerr != unix.EINTR
		})
		if err != nil { // closed
			if !errors.Is(err, os.ErrClosed) {
				w.setErr(err)
			}
			return
		}
		if rerr == unix.ENOBUFS {
			w.addLost(1)
			continue
		}
		if rerr != nil {
			w.setErr(fmt.Errorf("%s: receive: %w", w.name, rerr))
			return
		}
		handle(buf[:n])
	}
}

// addLost counts n lost messages.
func (w *nlWatcher) addLost(n uint64) {
	w.mu.Lock()
	w.lost += n
	w.mu.Unlock()
}

// takeLost returns the messages lost since the last call; mu must be held.
func (w *nlWatcher) takeLost() uint64 {
	n := w.lost
	w.lost = 0
	return n
}

func (w *nlWatcher) setErr(err error) {
	w.mu.Lock()
	if w.err == nil && !w.closed {
		w.err = err
	}
	w.mu.Unlock()
}

// Err reports the error that stopped the reader, if any (nil while healthy).
func (w *nlWatcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Close stops the reader and releases the socket.
func (w *nlWatcher) Close() error {
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
