//go:build linux

package collector

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sockDiag lists every TCP and UDP socket (IPv4 and IPv6, every state,
// including LISTEN, SYN_RECV and TIME_WAIT) of the caller's network namespace
// through NETLINK_SOCK_DIAG, with tcp_info byte counters. It works
// unprivileged: every socket of every user is listed with its uid and inode.
//
// A sockDiag is safe for use by one goroutine at a time (Dump serialises).
type sockDiag struct {
	mu  sync.Mutex
	fd  int
	seq uint32
	buf []byte // receive buffer, reused
	req []byte // request buffer, reused
	// tcpCompat: 0 untried, 1 the kernel answers TCPDIAG_GETSOCK (one dump
	// and one hash walk for both TCP families), -1 it does not (two
	// SOCK_DIAG_BY_FAMILY dumps, one per family).
	tcpCompat int8

	rawHook func([]byte) // tests: sees each received buffer (fixture recording)
}

// dumpRecvBuf is the receive buffer size; the kernel fills at most ~32 KiB
// per dump skb, so one recv never truncates.
const dumpRecvBuf = 64 << 10

// allStates asks for every TCP state (bit n = state n).
const allStates = 0xffffffff

// tcpBoundInactive is the kernel's pseudo-state of a TCP socket that is
// only bound: not listening, connecting or connected (Linux 6.6+).
const tcpBoundInactive = 13

// dumpStates is every state but bound-inactive. Asking for those makes the
// kernel walk its whole bind hash on every dump (65,536 buckets, shared by
// every namespace, on the development VM: one TCP walk and two UDP dumps
// took 8.8 ms in an empty namespace with it, 5.2 ms without; 24.9 and
// 19.2 ms at 20,000 sockets), for sockets that neither accept nor carry
// traffic; they are listed once they listen or connect. ss leaves them out
// too, unless asked for them (-B).
const dumpStates = allStates &^ (1 << tcpBoundInactive)

// dumpTargets are the four dumps of one poll when the kernel does not answer
// TCPDIAG_GETSOCK; when it does (see Dump), the first two are one dump.
var dumpTargets = [...]struct{ family, proto, ext uint8 }{
	{afInet, ipprotoTCP, 1 << (inetDiagInfo - 1)},
	{afInet6, ipprotoTCP, 1 << (inetDiagInfo - 1)},
	{afInet, ipprotoUDP, 0},
	{afInet6, ipprotoUDP, 0},
}

// openSockDiag opens a NETLINK_SOCK_DIAG socket.
func openSockDiag() (*sockDiag, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("sock_diag: open netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("sock_diag: bind netlink socket: %w", err)
	}
	// A safety net: the kernel always answers a dump, but never hang forever.
	tv := unix.Timeval{Sec: 5}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("sock_diag: set receive timeout: %w", err)
	}
	return &sockDiag{fd: fd, buf: make([]byte, dumpRecvBuf)}, nil
}

// Dump appends every TCP and UDP socket to dst[:0]'s backing array and
// returns it. On error the sockets read so far are returned with the error;
// one failing family does not stop the others.
func (d *sockDiag) Dump(dst []Socket) ([]Socket, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	dst = dst[:0]
	if d.fd < 0 {
		return dst, errors.New("sock_diag: dump on closed socket")
	}
	var errs []error
	targets := dumpTargets[:]
	if d.tcpCompat >= 0 {
		n0 := len(dst)
		var err error
		dst, err = d.dumpTCPCompat(dst)
		switch {
		case err == nil:
			d.tcpCompat = 1
			targets = targets[2:] // TCP done: UDP v4 and v6 left
		case d.tcpCompat == 0 && len(dst) == n0 && errors.Is(err, ErrNetlinkError):
			d.tcpCompat = -1 // not answered here: one dump per family from now on
		default:
			errs = append(errs, fmt.Errorf("sock_diag: dump tcp (both families): %w", err))
			targets = targets[2:]
		}
	}
	for _, t := range targets {
		var err error
		dst, err = d.dumpOne(dst, t.family, t.proto, t.ext, false)
		if err != nil {
			errs = append(errs, fmt.Errorf("sock_diag: dump %s family %d: %w", protoOf(t.proto), t.family, err))
		}
	}
	return dst, errors.Join(errs...)
}

// dumpTCPCompat lists every TCP socket of both families with one
// TCPDIAG_GETSOCK request: the kernel walks its TCP hash once instead of
// once per family (each walk visits every socket of the other family too).
func (d *sockDiag) dumpTCPCompat(dst []Socket) ([]Socket, error) {
	d.seq++
	if d.seq == 0 {
		d.seq = 1
	}
	d.req = appendTCPCompatRequest(d.req[:0], d.seq, dumpStates, 1<<(inetDiagInfo-1))
	if err := unix.Sendto(d.fd, d.req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return dst, fmt.Errorf("send request: %w", err)
	}
	return d.readDump(dst, ipprotoTCP, false)
}

// count runs the same four dumps as Dump but only walks the netlink headers:
// the kernel's cost plus the syscalls, the floor the benchmark compares with.
func (d *sockDiag) count() (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, t := range dumpTargets {
		if err := d.send(t.family, t.proto, t.ext); err != nil {
			return n, err
		}
		for {
			m, err := d.recv()
			if err != nil {
				return n, err
			}
			res, err := countDiagMessages(d.buf[:m], d.seq)
			n += res.Messages
			if err != nil {
				return n, err
			}
			if res.Done {
				break
			}
		}
	}
	return n, nil
}

func (d *sockDiag) send(family, proto, ext uint8) error {
	d.seq++
	if d.seq == 0 {
		d.seq = 1
	}
	d.req = appendDiagRequest(d.req[:0], d.seq, family, proto, dumpStates, ext)
	if err := unix.Sendto(d.fd, d.req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("send request: %w", err)
	}
	return nil
}

// recvNL receives one netlink datagram into p without asking for the
// sender's address: unix.Recvfrom allocates a Sockaddr per call, which at
// 100,000 sockets is ~1,100 allocations a poll for an address nobody reads
// (the kernel is the only sender on these sockets).
func recvNL(fd int, p []byte, flags int) (int, error) {
	if len(p) == 0 {
		return 0, unix.EINVAL
	}
	n, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
		uintptr(flags), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func (d *sockDiag) recv() (int, error) {
	for {
		n, err := recvNL(d.fd, d.buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("receive: %w", err)
		}
		return n, nil
	}
}

func (d *sockDiag) dumpOne(dst []Socket, family, proto, ext uint8, destroyed bool) ([]Socket, error) {
	if err := d.send(family, proto, ext); err != nil {
		return dst, err
	}
	return d.readDump(dst, proto, destroyed)
}

// readDump receives the replies to the last request up to NLMSG_DONE.
func (d *sockDiag) readDump(dst []Socket, proto uint8, destroyed bool) ([]Socket, error) {
	// Bounded: a dump ends with NLMSG_DONE; a receive timeout or error ends it too.
	for {
		n, err := d.recv()
		if err != nil {
			return dst, err
		}
		if d.rawHook != nil {
			d.rawHook(d.buf[:n])
		}
		var res diagBatch
		dst, res, err = parseDiagMessages(d.buf[:n], proto, d.seq, destroyed, dst)
		if err != nil {
			d.drainDump()
			return dst, err
		}
		if res.Done {
			return dst, nil
		}
	}
}

// drainDump discards the rest of a dump after a parse error, so the next
// request does not read stale replies (they would be skipped by sequence
// number anyway; this keeps the socket buffer small). Bounded by count.
func (d *sockDiag) drainDump() {
	for i := 0; i < 1<<16; i++ {
		n, err := recvNL(d.fd, d.buf, unix.MSG_DONTWAIT)
		if err != nil || n == 0 {
			return
		}
		if res, _ := countDiagMessages(d.buf[:n], 0); res.Done {
			return
		}
	}
}

// Close releases the netlink socket.
func (d *sockDiag) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	return err
}
