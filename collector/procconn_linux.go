//go:build linux

package collector

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netsentinel/netsentinel/internal/fsutil"
)

// procConn receives the kernel's process events through the netlink process
// connector (NETLINK_CONNECTOR, group CN_IDX_PROC: PROC_EVENT_FORK, EXEC,
// EXIT ...) and reads each process that execs right away, so that a child
// living less than a poll (a web shell's `sh -c 'cd /x && id'` under nginx or
// php-fpm) still reaches the snapshot. Subscribing needs CAP_NET_ADMIN and
// the host's initial network namespace (elsewhere the kernel refuses), and
// the events carry PIDs of the initial PID namespace: the collector opens it
// only when all hold (see procConnUsable, openProcConn).
//
// Only EXEC events are acted upon: the process is read from /proc at once
// (stat, status, cmdline, exe). A process that execs again or exits before
// the read is recorded as what it became, or not at all; a lone `sh -c id`,
// which dash replaces by id within microseconds, is usually recorded as id.
type procConn struct {
	nlWatcher
	root string
	boot time.Time

	recs []*Process // guarded by mu
	buf  []byte     // file reads, reader goroutine only
}

// maxProcConnRecs bounds the records kept between two polls.
const maxProcConnRecs = 4096

// Process connector constants (linux/connector.h, linux/cn_proc.h).
const (
	cnIdxProc         = 1
	cnValProc         = 1
	procCnMcastListen = 1
	procEventExec     = 0x00000002
	cnMsgLen          = 20 // struct cn_msg without data
	procEventHdrLen   = 16 // what, cpu, timestamp_ns
)

// errProcConnNotPermitted says why the connector is off.
var errProcConnNotPermitted = errors.New("process connector needs CAP_NET_ADMIN")

// procConnUsable reports why process events cannot be used here, or nil:
// CAP_NET_ADMIN is needed to subscribe, and the events' PIDs are those of
// the initial PID namespace, which a sensor in a nested one cannot read.
func procConnUsable() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("process connector: capget: %w", err)
	}
	if data[0].Effective&(1<<unix.CAP_NET_ADMIN) == 0 {
		return errProcConnNotPermitted
	}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return fmt.Errorf("process connector: %w", err)
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("NSpid:")); ok && len(bytes.Fields(v)) > 1 {
			return errors.New("process connector: the sensor runs in a nested PID namespace; events carry the initial namespace's PIDs")
		}
	}
	return nil
}

// openProcConn subscribes to process events; processes are read under root
// (a proc root showing the initial PID namespace).
func openProcConn(root string, boot time.Time) (*procConn, error) {
	const name = "process connector"
	fd, err := openNLSocket(name, nlSocket{typ: unix.SOCK_DGRAM, proto: unix.NETLINK_CONNECTOR,
		groups: cnIdxProc, groupName: "CN_IDX_PROC", rcvbuf: 4 << 20, bestEffortBuf: true})
	if err != nil {
		return nil, err
	}
	if err := unix.Sendto(fd, listenRequest(), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.ECONNREFUSED) {
			return nil, fmt.Errorf("process connector: PROC_CN_MCAST_LISTEN: %w (the connector answers only in the host's initial network namespace)", err)
		}
		return nil, fmt.Errorf("process connector: PROC_CN_MCAST_LISTEN: %w", err)
	}
	c := &procConn{root: root, boot: boot, buf: make([]byte, 0, 4096)}
	var pids []int32
	c.start(name, fd, func(b []byte) {
		pids = parseExecEvents(b, pids[:0])
		for _, pid := range pids {
			p, err := c.read(pid)
			if err != nil {
				continue // gone already, or a kernel thread
			}
			c.mu.Lock()
			if len(c.recs) < maxProcConnRecs {
				c.recs = append(c.recs, p)
			} else {
				c.lost++
			}
			c.mu.Unlock()
		}
	})
	return c, nil
}

// listenRequest is nlmsghdr + cn_msg{idx: CN_IDX_PROC, val: CN_VAL_PROC} +
// PROC_CN_MCAST_LISTEN.
func listenRequest() []byte {
	const total = unix.SizeofNlMsghdr + cnMsgLen + 4
	b := make([]byte, total)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], total)
	ne.PutUint16(b[4:], unix.NLMSG_DONE)
	ne.PutUint32(b[12:], uint32(os.Getpid()))
	m := b[unix.SizeofNlMsghdr:]
	ne.PutUint32(m[0:], cnIdxProc)
	ne.PutUint32(m[4:], cnValProc)
	ne.PutUint16(m[16:], 4) // data length
	ne.PutUint32(m[cnMsgLen:], procCnMcastListen)
	return b
}

// parseExecEvents appends the TGIDs of the PROC_EVENT_EXEC events in one
// datagram to dst.
func parseExecEvents(b []byte, dst []int32) []int32 {
	ne := binary.NativeEndian
	for len(b) >= unix.SizeofNlMsghdr {
		l := int(ne.Uint32(b[0:]))
		if l < unix.SizeofNlMsghdr || l > len(b) {
			return dst
		}
		msg := b[unix.SizeofNlMsghdr:l]
		if len(msg) >= cnMsgLen+procEventHdrLen+8 && ne.Uint32(msg[0:]) == cnIdxProc && ne.Uint32(msg[4:]) == cnValProc {
			ev := msg[cnMsgLen:]
			if ne.Uint32(ev[0:]) == procEventExec {
				pid := ne.Uint32(ev[procEventHdrLen:])
				tgid := ne.Uint32(ev[procEventHdrLen+4:])
				if pid == tgid && tgid > 0 && tgid <= 1<<31-1 {
					dst = append(dst, int32(tgid))
				}
			}
		}
		next := (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1)
		if next >= len(b) {
			return dst
		}
		b = b[next:]
	}
	return dst
}

// read reads one process as it is right after its exec.
func (c *procConn) read(pid int32) (*Process, error) {
	dir := filepath.Join(c.root, strconv.FormatInt(int64(pid), 10))
	data, err := fsutil.ReadFileCappedBuf(filepath.Join(dir, "cmdline"), c.buf, maxCmdlineBytes)
	c.buf = data[:0]
	if err != nil && !errors.Is(err, fsutil.ErrTooLarge) {
		return nil, err
	}
	cmdline := parseCmdline(data)
	if cap(c.buf) > 64<<10 {
		c.buf = make([]byte, 0, 4096)
	}
	data, err = fsutil.ReadFileCappedBuf(filepath.Join(dir, "stat"), c.buf, maxSmallFileBytes)
	c.buf = data[:0]
	if err != nil {
		return nil, err
	}
	st, err := parseProcStat(data)
	if err != nil {
		return nil, err
	}
	data, err = fsutil.ReadFileCappedBuf(filepath.Join(dir, "status"), c.buf, maxSmallFileBytes)
	c.buf = data[:0]
	if err != nil {
		return nil, err
	}
	status, err := parseProcStatus(data)
	if err != nil {
		return nil, err
	}
	exe, _ := os.Readlink(filepath.Join(dir, "exe"))
	return &Process{
		PID: pid, PPID: st.PPID, Name: processName(st.Comm, cmdline, exe), Exe: exe, Cmdline: cmdline,
		UID: status.UIDs[1], StartTime: bootOffset(c.boot, st.StartTicks),
		PGID: st.PGID, Session: st.Session, TTY: st.TTY,
	}, nil
}

// Drain returns the processes read since the last call and how many events
// were lost (receive buffer overflow, or more than maxProcConnRecs).
func (c *procConn) Drain() ([]*Process, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	recs := c.recs
	c.recs = nil
	return recs, c.takeLost()
}
