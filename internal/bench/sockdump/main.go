//go:build linux

// Command sockdump is the benchmark's floor (issue 11): it dumps every TCP
// socket (IPv4 and IPv6, with tcp_info) and every UDP socket (IPv4 and IPv6)
// of its network namespace over NETLINK_SOCK_DIAG, N times, and counts the
// messages. It parses nothing and keeps nothing, so its CPU time is the
// kernel's dump plus the syscalls: what any sensor must pay to see every
// socket with its byte counters.
//
// By default it sends the four requests issue 11 defines the floor with
// (SOCK_DIAG_BY_FAMILY for TCP v4, TCP v6, UDP v4, UDP v6, every state).
// With -tcp-one-walk it asks as the agent does, so the benchmark can show
// the agent against that lower floor too: TCP is one TCPDIAG_GETSOCK
// request, which the kernel answers for both address families in one walk
// of its TCP hash, and no request asks for bound-only TCP sockets (the
// kernel's bound-inactive state, which costs a walk of its whole bind hash).
//
// With -fd-walk it also reads, once after the first dump, the target of every
// fd of every process (/proc/<pid>/fd): what a sensor without privileges
// beyond its own must pay once to tie socket inodes to processes, and what
// the agent's first poll does. Dump plus fd walk is the floor of an
// attributing sensor.
//
// It is self-contained on purpose (no import of the collector): a change to
// the agent's netlink code cannot change the floor it is compared with.
//
//	sockdump -n 12 -interval 1s
//
// prints one line: dumps, messages of the last dump, total messages (and,
// with -fd-walk, the fds read and how many were sockets).
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

const (
	tcpDiagGetSock   = 18
	sockDiagByFamily = 20
	nlmsgError       = 2
	nlmsgDone        = 3
	inetDiagInfo     = 2
)

const (
	allStates        = 0xffffffff
	tcpBoundInactive = 13
	agentStates      = allStates &^ (1 << tcpBoundInactive)
)

// targets are the four dumps of one poll as issue 11 defines the floor (the
// agent asks for TCP with one TCPDIAG_GETSOCK request instead: -tcp-one-walk).
var targets = [...]struct{ family, proto, ext uint8 }{
	{unix.AF_INET, unix.IPPROTO_TCP, 1 << (inetDiagInfo - 1)},
	{unix.AF_INET6, unix.IPPROTO_TCP, 1 << (inetDiagInfo - 1)},
	{unix.AF_INET, unix.IPPROTO_UDP, 0},
	{unix.AF_INET6, unix.IPPROTO_UDP, 0},
}

func main() {
	n := flag.Int("n", 12, "number of dumps")
	interval := flag.Duration("interval", 0, "pause so that dumps start this far apart (0: back to back)")
	oneWalk := flag.Bool("tcp-one-walk", false, "ask as the agent does: TCP as one TCPDIAG_GETSOCK request (both families, one hash walk), no bound-only TCP sockets")
	fdWalk := flag.Bool("fd-walk", false, "after the first dump, read every process's fd links once (socket attribution)")
	flag.Parse()
	dumps := targets[:]
	states := uint32(allStates)
	if *oneWalk {
		states = agentStates
		dumps = []struct{ family, proto, ext uint8 }{{0, unix.IPPROTO_TCP, 1 << (inetDiagInfo - 1)}, targets[2], targets[3]}
	}
	if *n < 1 {
		fmt.Fprintln(os.Stderr, "sockdump: -n must be at least 1")
		os.Exit(2)
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		fail("open netlink socket", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		fail("bind netlink socket", err)
	}
	tv := unix.Timeval{Sec: 5}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		fail("set receive timeout", err)
	}
	buf := make([]byte, 64<<10)
	req := make([]byte, 16+56)
	oldReq := make([]byte, 16+60)
	var seq uint32
	total, last := 0, 0
	fds, socks := 0, 0
	start := time.Now()
	for i := 0; i < *n; i++ {
		if *interval > 0 {
			if d := time.Until(start.Add(time.Duration(i) * *interval)); d > 0 {
				time.Sleep(d)
			}
		}
		last = 0
		for _, t := range dumps {
			seq++
			r := req
			if t.family == 0 {
				r = buildTCPRequest(oldReq, seq, states, t.ext)
			} else {
				buildRequest(req, seq, t.family, t.proto, states, t.ext)
			}
			if err := unix.Sendto(fd, r, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
				fail("send request", err)
			}
			m, err := readDump(fd, buf, seq)
			if err != nil {
				fail(fmt.Sprintf("dump family %d proto %d", t.family, t.proto), err)
			}
			last += m
		}
		total += last
		if i == 0 && *fdWalk {
			fds, socks = walkFDs()
		}
	}
	fmt.Printf("dumps %d messages_last %d messages_total %d", *n, last, total)
	if *fdWalk {
		fmt.Printf(" fds %d fd_sockets %d", fds, socks)
	}
	fmt.Println()
}

// walkFDs reads the link of every fd of every process it may read, as a
// sensor must once to learn which process holds which socket inode, and
// counts the fds and the sockets among them. Processes that exit or deny
// access are skipped.
func walkFDs() (fds, socks int) {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		fail("list /proc", err)
	}
	dents := make([]byte, 32<<10)
	link := make([]byte, 64)
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		dir, err := unix.Open("/proc/"+p.Name()+"/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		for {
			n, err := unix.Getdents(dir, dents)
			if err != nil || n <= 0 {
				break
			}
			for off := 0; off+19 < n; {
				reclen := int(binary.NativeEndian.Uint16(dents[off+16:]))
				if reclen == 0 {
					break
				}
				name := dents[off+19 : off+reclen]
				if i := bytes.IndexByte(name, 0); i >= 0 {
					name = name[:i]
				}
				off += reclen
				if len(name) == 0 || name[0] == '.' {
					continue
				}
				k, err := unix.Readlinkat(dir, string(name), link)
				if err != nil {
					continue
				}
				fds++
				if bytes.HasPrefix(link[:k], []byte("socket:[")) {
					socks++
				}
			}
		}
		unix.Close(dir)
	}
	return fds, socks
}

func fail(what string, err error) {
	fmt.Fprintf(os.Stderr, "sockdump: %s: %v\n", what, err)
	os.Exit(1)
}

// buildRequest writes a SOCK_DIAG_BY_FAMILY dump request (nlmsghdr +
// inet_diag_req_v2, the states asked, zero sockid) into req (72 bytes).
func buildRequest(req []byte, seq uint32, family, proto uint8, states uint32, ext uint8) {
	putHeader(req, sockDiagByFamily, seq)
	req[16], req[17], req[18] = family, proto, ext
	binary.NativeEndian.PutUint32(req[20:], states)
}

// putHeader clears req and writes a dump request's nlmsghdr.
func putHeader(req []byte, typ uint16, seq uint32) {
	ne := binary.NativeEndian
	clear(req)
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], typ)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(req[8:], seq)
}

// buildTCPRequest writes a TCPDIAG_GETSOCK dump request (nlmsghdr +
// inet_diag_req: family, src_len, dst_len, ext, a zero sockid, the states
// asked, dbs) into req (76 bytes): the kernel answers with TCP sockets of
// both address families.
func buildTCPRequest(req []byte, seq uint32, states uint32, ext uint8) []byte {
	putHeader(req, tcpDiagGetSock, seq)
	req[19] = ext
	binary.NativeEndian.PutUint32(req[16+52:], states)
	return req
}

// readDump receives one dump to NLMSG_DONE and counts its sock_diag
// messages, walking only the netlink headers.
func readDump(fd int, buf []byte, seq uint32) (int, error) {
	ne := binary.NativeEndian
	count := 0
	for i := 0; ; i++ {
		if i > 1<<24 {
			return count, fmt.Errorf("no NLMSG_DONE after %d receives", i)
		}
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return count, err
		}
		b := buf[:n]
		for len(b) >= 16 {
			mlen := ne.Uint32(b[0:4])
			if mlen < 16 || int(mlen) > len(b) {
				return count, fmt.Errorf("bad netlink message length %d", mlen)
			}
			if ne.Uint32(b[8:12]) == seq {
				switch ne.Uint16(b[4:6]) {
				case nlmsgDone:
					return count, nil
				case nlmsgError:
					if mlen >= 20 && ne.Uint32(b[16:20]) != 0 {
						return count, fmt.Errorf("netlink error %d", -int32(ne.Uint32(b[16:20])))
					}
				case sockDiagByFamily, tcpDiagGetSock:
					count++
				}
			}
			b = b[min(int(mlen+3)&^3, len(b)):]
		}
	}
}
