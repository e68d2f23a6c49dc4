//go:build linux

package collector

import (
	"cmp"
	"slices"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pidCache attributes sockets to processes through an incremental inode→PID
// map, so a poll walks /proc/<pid>/fd only where something changed instead of
// every process every time (gopsutil's full walk costs ~10 µs per process
// plus ~3 µs per fd).
//
// Per Attribute call:
//  1. Sockets whose inode is known to a still-running process (same PID and
//     start time) get that PID, no I/O. The kernel lists sockets in the same
//     order poll after poll, so the last call's owners are kept in dump order
//     (memo) and a socket found at the memo's cursor takes its owner without
//     a look-up in the inode map; the rest look it up.
//  2. Unknown inodes are looked for in the processes started since the last
//     call, then in processes that recently gained sockets (servers,
//     browsers), newest first, stopping as soon as all are found.
//  3. An inode still unknown gets one poll to disappear (most short-lived
//     sockets do); if it is still there at the next call, every other
//     readable process is walked, newest first, again stopping early.
//  4. An inode not found by that full walk (another user's process while
//     unprivileged, a socket with no fd) is given up and retried only after
//     retryGivenUp calls. Such sockets, and TIME_WAIT ones (inode 0), are
//     reported with PID 0, never dropped.
//
// Processes whose fd directory is unreadable (EACCES) are not walked again
// until their PID is reused. The fds 0, 1 and 2 of every process it walks, and
// of every new process, are read: Process.Stdio says what they point to
// (socket, pipe, FIFO, pty ...) and Process.StdioSockets lists the TCP/UDP
// socket inodes among them (a shell whose stdin is a socket is a reverse shell).
//
// Memory is bounded by the number of live sockets and processes. A pidCache
// is not safe for concurrent use.
type pidCache struct {
	root string
	gen  uint32 // Attribute call counter

	owner   map[uint64]owner    // inode → owning process
	memo    []memoEntry         // the last call's known owners, in dump order
	memoNew []memoEntry         // this call's, built in step 1 (then swapped)
	procs   map[int32]*pidState // processes known at the last call
	pending map[uint64]uint32   // unknown inode → gen when first unknown
	givenUp map[uint64]uint32   // inode → gen when a full walk missed it
	epoch   uint32              // increments per new pidState, detects PID reuse
	unknown map[uint64]bool     // this call's unresolved inodes (scratch): true = triggers walks
	later   []laterRef          // scratch: sockets unknown in step 1, in dump order
	order   []int32             // scratch
	seen    map[int32]struct{}  // scratch: PIDs walked this call
	dirbuf  []byte              // getdents buffer
	pathbuf []byte              // NUL-terminated path scratch
	linkbuf [64]byte            // readlink scratch: "socket:[4294967295]" fits
	stats   pidCacheStats       // last call
}

// pidCacheStats describes the work of the last Attribute call.
type pidCacheStats struct {
	Walked     int // processes whose fd directory was read in full
	Unresolved int // sockets with an inode but no PID
	GivenUp    int // inodes not found by a full walk, not retried yet
}

type owner struct {
	pid   int32
	epoch uint32
}

// memoEntry is one socket's owner as an Attribute call found it, pid 0 when
// none was found (16 bytes a socket, twice: the last call's and this call's).
type memoEntry struct {
	ino uint64
	o   owner
}

// laterRef is a socket left to step 4 of an Attribute call: its index in the
// socket list and that of its memo entry.
type laterRef struct{ sock, memo int32 }

// memoSkip is how many memo entries past the cursor a socket is looked for:
// sockets closed since the last call drop out of the dump order one or two at
// a time. A new socket never matches and leaves the cursor where it is.
const memoSkip = 3

type pidState struct {
	start      time.Time
	epoch      uint32
	lastGain   uint32    // gen when a walk last found a new socket of it
	born       uint32    // gen when the process was first listed
	stdio      []uint64  // TCP/UDP socket inodes on fds 0-2 at the last walk
	fds        []StdioFD // fds 0-2 at the last walk, nil when unremarkable
	base, cp   *Process  // the table's value and the copy handed out with stdio set
	ptyChecked bool      // resolvePTYPeers looked for the pty masters' holders
	unreadable bool      // fd directory denied
}

// youngGens is how many calls after it was first listed a process counts as
// young: walked whenever unknown inodes appear.
const youngGens = 5

// retryGivenUp is how many calls a given-up inode waits before it may
// trigger a full walk again.
const retryGivenUp = 64

// newPIDCache returns a cache reading <procRoot>/<pid>/fd ("" means /proc).
func newPIDCache(procRoot string) *pidCache {
	if procRoot == "" {
		procRoot = defaultProcRoot
	}
	return &pidCache{
		root:    procRoot,
		owner:   make(map[uint64]owner),
		procs:   make(map[int32]*pidState),
		pending: make(map[uint64]uint32),
		givenUp: make(map[uint64]uint32),
		unknown: make(map[uint64]bool),
		seen:    make(map[int32]struct{}),
		dirbuf:  make([]byte, 32<<10),
	}
}

// Stats returns what the last Attribute call did.
func (c *pidCache) Stats() pidCacheStats { return c.stats }

// Attribute sets Socket.PID for every socket whose owner can be read, and 0
// for the rest (inode 0, unreadable owner). procs is the current process
// table (procTable.Refresh); processes found with sockets on fds 0-2 are
// replaced in procs by a copy with StdioSockets set (the table's values are
// shared between calls and are not modified). procs may be nil, in which
// case the proc root is listed here and no StdioSockets are set.
func (c *pidCache) Attribute(socks []Socket, procs map[int32]*Process) {
	c.gen++
	c.stats = pidCacheStats{}
	listed := procs == nil
	if listed {
		procs = c.listProcs()
	}
	var newPIDs []int32
	// Sync the known processes with the table: drop the dead, reset reused PIDs.
	for pid, st := range c.procs {
		p, ok := procs[pid]
		if !ok || (p != nil && !p.StartTime.Equal(st.start)) {
			delete(c.procs, pid)
		}
	}
	for pid, p := range procs {
		if _, ok := c.procs[pid]; ok {
			continue
		}
		c.epoch++
		st := &pidState{epoch: c.epoch, born: c.gen}
		if p != nil {
			st.start = p.StartTime
		}
		c.procs[pid] = st
		newPIDs = append(newPIDs, pid)
	}

	// 1. Known inodes.
	sized := false
	if len(c.owner) == 0 && len(socks) > 1024 {
		// The first call: every inode is unknown; size the maps once.
		c.owner = make(map[uint64]owner, len(socks))
		c.unknown = make(map[uint64]bool, len(socks))
		sized = true
	}
	clear(c.unknown)
	triggers := 0
	// A process's sockets are often listed together: the last owner's state
	// saves the process-table look-up.
	var lastPID int32
	var lastSt *pidState
	memo, next, j := c.memo, c.memoNew[:0], 0
	if cap(next) < len(socks) { // sized once, not grown by appends
		next = make([]memoEntry, 0, len(socks)+len(socks)/8)
	}
	c.later = c.later[:0]
	for i := range socks {
		s := &socks[i]
		s.PID = 0
		if s.Inode == 0 {
			continue
		}
		o, ok, memoHit := owner{}, false, false
		for k := j; k < len(memo) && k < j+memoSkip; k++ {
			if memo[k].ino == s.Inode {
				o, ok, memoHit, j = memo[k].o, memo[k].o.pid != 0, true, k+1
				break
			}
		}
		if !memoHit {
			o, ok = c.owner[s.Inode]
		}
		if ok {
			st := lastSt
			if o.pid != lastPID || st == nil {
				st = c.procs[o.pid]
				lastPID, lastSt = o.pid, st
			}
			if st != nil && st.epoch == o.epoch {
				s.PID = o.pid
				next = append(next, memoEntry{s.Inode, o})
				continue
			}
			delete(c.owner, s.Inode) // owner exited or PID reused
		}
		// Unknown here: step 4 sets its PID and its memo entry (pid 0
		// while no owner is known, so the next call skips the map).
		c.later = append(c.later, laterRef{sock: int32(i), memo: int32(len(next))})
		next = append(next, memoEntry{ino: s.Inode})
		if _, dup := c.unknown[s.Inode]; dup {
			continue
		}
		g, gaveUp := c.givenUp[s.Inode]
		trig := !gaveUp || c.gen-g >= retryGivenUp
		if trig {
			delete(c.givenUp, s.Inode)
			triggers++
		}
		c.unknown[s.Inode] = trig
	}
	// The entries are exactly the inode map's for live sockets (the map
	// changes only within a call: stale owners are dropped above, walks add
	// unknown inodes, prune keeps live ones; step 4 completes the entries
	// of the sockets unknown here from the map, or leaves them at pid 0
	// when the map has none), so the next call may trust them.
	if cap(memo) > 4*len(next)+4096 {
		memo = nil // a burst's memory is not kept
	}
	c.memo, c.memoNew = next, memo

	// 2. New and young processes, then recently socket-active ones. A
	// process often connects a little after it was first listed (exec,
	// library loading, name resolution): young ones are walked again so
	// its socket is attributed at first sight, not after a poll of grace.
	clear(c.seen)
	if triggers > 0 {
		for pid, st := range c.procs {
			if st.born != c.gen && c.gen-st.born <= youngGens && !st.unreadable {
				newPIDs = append(newPIDs, pid)
			}
		}
	}
	slices.SortFunc(newPIDs, func(a, b int32) int { return cmp.Compare(b, a) })
	triggers = c.walkList(newPIDs, triggers)
	if triggers > 0 {
		c.order = c.order[:0]
		for pid, st := range c.procs {
			if st.lastGain > 0 && !st.unreadable {
				c.order = append(c.order, pid)
			}
		}
		slices.SortFunc(c.order, func(a, b int32) int {
			return cmp.Or(cmp.Compare(c.procs[b].lastGain, c.procs[a].lastGain), cmp.Compare(b, a))
		})
		triggers = c.walkList(c.order, triggers)
	}
	// 3. Inodes unknown since the previous call: a full walk, newest first.
	full := false
	if triggers > 0 {
		for ino, trig := range c.unknown {
			if g, ok := c.pending[ino]; trig && ok && g < c.gen {
				full = true
				break
			}
		}
	}
	if full {
		c.order = c.order[:0]
		for pid, st := range c.procs {
			if _, done := c.seen[pid]; !done && !st.unreadable {
				c.order = append(c.order, pid)
			}
		}
		slices.SortFunc(c.order, func(a, b int32) int {
			return cmp.Or(c.procs[b].start.Compare(c.procs[a].start), cmp.Compare(b, a))
		})
		triggers = c.walkList(c.order, triggers)
	}
	// Walking every process (as on the first call) is a full walk too.
	if !full && triggers > 0 && len(c.seen) >= len(c.procs) {
		full = true
	}
	// Stdio of new processes that were not walked.
	for _, pid := range newPIDs {
		if _, done := c.seen[pid]; !done {
			c.readStdio(pid)
		}
	}

	// 4. Book-keeping for what is still unknown; then set the PIDs found.
	for ino := range c.pending {
		if !c.unknown[ino] {
			delete(c.pending, ino) // found, gone, or given up
		}
	}
	for ino, trig := range c.unknown {
		if !trig {
			continue
		}
		if full {
			c.givenUp[ino] = c.gen
			delete(c.pending, ino)
		} else if _, ok := c.pending[ino]; !ok {
			c.pending[ino] = c.gen
		}
	}
	for _, r := range c.later {
		s := &socks[r.sock]
		if o, ok := c.owner[s.Inode]; ok {
			s.PID = o.pid
			next[r.memo].o = o
		} else {
			c.stats.Unresolved++
		}
	}
	c.prune(socks)
	c.stats.GivenUp = len(c.givenUp)
	if sized {
		// Later calls have few unknown inodes: the first call's scratch
		// map and list (1.8 MB and 0.8 MB at 100,000 sockets) are not kept.
		c.unknown = make(map[uint64]bool)
		c.later = nil
	}

	// Stdio: find who holds the master of each new pty, then hand out
	// copies, never modify the table's values; a copy is kept while the
	// table's value and the fds stay the same.
	if !listed {
		c.resolvePTYPeers(procs)
		for pid, st := range c.procs {
			if len(st.fds) == 0 {
				continue
			}
			p := procs[pid]
			if p == nil {
				continue
			}
			if st.cp == nil || st.base != p {
				cp := *p
				cp.StdioSockets = st.stdio
				cp.Stdio = st.fds
				st.base, st.cp = p, &cp
			}
			procs[pid] = st.cp
		}
	}
}

// walkList walks the fd directories of pids in order until no triggering
// inode is left; it returns how many are left.
func (c *pidCache) walkList(pids []int32, triggers int) int {
	for _, pid := range pids {
		if triggers <= 0 {
			break
		}
		if _, done := c.seen[pid]; done {
			continue
		}
		triggers -= c.walk(pid)
	}
	return triggers
}

// walk reads every fd of pid, records the owner of each unknown inode and the
// stdio sockets, and returns how many triggering inodes it resolved.
func (c *pidCache) walk(pid int32) int {
	st := c.procs[pid]
	if st == nil {
		return 0
	}
	c.seen[pid] = struct{}{}
	dirfd, err := c.openFDDir(pid)
	if err != nil {
		if err == unix.EACCES || err == unix.EPERM {
			st.unreadable = true
		}
		return 0
	}
	defer unix.Close(dirfd)
	c.stats.Walked++
	found := 0
	// Bounded: getdents returns 0 at the end of the directory.
	for {
		n, err := unix.Getdents(dirfd, c.dirbuf)
		if err != nil || n <= 0 {
			break
		}
		buf := c.dirbuf[:n]
		for len(buf) >= 19 {
			reclen := int(*(*uint16)(unsafe.Pointer(&buf[16])))
			if reclen < 19 || reclen > len(buf) {
				break
			}
			name := buf[19:reclen] // NUL-terminated, padded
			buf = buf[reclen:]
			if name[0] < '0' || name[0] > '9' {
				continue
			}
			ino, ok := c.readSocketLink(dirfd, name)
			if !ok {
				continue
			}
			if trig, unknown := c.unknown[ino]; unknown {
				c.owner[ino] = owner{pid: pid, epoch: st.epoch}
				delete(c.unknown, ino)
				st.lastGain = c.gen
				if trig {
					found++
				}
			}
		}
	}
	c.setStdio(st, c.readStdioFDs(dirfd))
	return found
}

// setStdio records what fds 0-2 of a process point to.
func (c *pidCache) setStdio(st *pidState, fds []StdioFD) {
	if len(fds) == len(st.fds) {
		for i := range fds {
			fds[i].Peer = st.fds[i].Peer // resolved once (resolvePTYPeers)
		}
	}
	if !slices.Equal(fds, st.fds) {
		st.cp = nil
		st.ptyChecked = false
	}
	st.fds = fds
	st.stdio = stdioSockets(fds)
}

// resolvePTYPeers sets, once per process, the PID holding the master side
// of each pty on its stdio: its parent or its session leader's parent (a
// relay such as socat EXEC:...,pty or a Python pty.fork forks the shell).
func (c *pidCache) resolvePTYPeers(procs map[int32]*Process) {
	for pid, st := range c.procs {
		if st.ptyChecked || len(st.fds) == 0 || st.unreadable {
			continue
		}
		st.ptyChecked = true
		p := procs[pid]
		if p == nil {
			continue
		}
		var cands []int32
		if p.PPID > 1 {
			cands = append(cands, p.PPID)
		}
		if p.Session > 0 && p.Session != pid {
			if l := procs[p.Session]; l != nil && l.PPID > 1 && l.PPID != p.PPID {
				cands = append(cands, l.PPID)
			}
		}
		if len(cands) == 0 {
			continue
		}
		// A new slice: the old one may be in a snapshot still being read.
		fds := slices.Clone(st.fds)
		changed := false
		for i := range fds {
			n, ok := fds[i].PTS()
			if !ok {
				continue
			}
			if i > 0 && fds[i-1].Kind == StdioPTY && fds[i-1].Path == fds[i].Path {
				fds[i].Peer = fds[i-1].Peer
			} else {
				fds[i].Peer = ptyMasterHolder(c.root, n, cands...)
			}
			changed = changed || fds[i].Peer != 0
		}
		if changed {
			st.fds, st.cp = fds, nil
		}
	}
}

// readStdio records what fds 0-2 of pid point to.
func (c *pidCache) readStdio(pid int32) {
	st := c.procs[pid]
	if st == nil || st.unreadable {
		return
	}
	dirfd, err := c.openFDDir(pid)
	if err != nil {
		if err == unix.EACCES || err == unix.EPERM {
			st.unreadable = true
		}
		return
	}
	defer unix.Close(dirfd)
	c.setStdio(st, c.readStdioFDs(dirfd))
}

// isInetSocket reports whether ino is a socket of the current dump (known or
// unknown), i.e. TCP or UDP rather than a unix socket.
func (c *pidCache) isInetSocket(ino uint64) bool {
	if _, ok := c.owner[ino]; ok {
		return true
	}
	_, ok := c.givenUp[ino]
	return ok
}

func fdNum(name []byte) int {
	n := 0
	for i, b := range name {
		if b == 0 {
			break
		}
		if b < '0' || b > '9' || i > 6 {
			return -1
		}
		n = n*10 + int(b-'0')
	}
	return n
}

// atFDCWD is AT_FDCWD (-100) as a syscall argument.
var fdcwd = unix.AT_FDCWD

var atFDCWD = uintptr(fdcwd)

// openFDDir opens <root>/<pid>/fd without allocating.
func (c *pidCache) openFDDir(pid int32) (int, error) {
	p := append(c.pathbuf[:0], c.root...)
	p = append(p, '/')
	p = strconv.AppendInt(p, int64(pid), 10)
	p = append(p, "/fd\x00"...)
	c.pathbuf = p
	r, _, e := unix.Syscall6(unix.SYS_OPENAT, atFDCWD, uintptr(unsafe.Pointer(&p[0])),
		uintptr(unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC), 0, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// readSocketLink reads the fd link name (NUL-terminated) under dirfd and
// returns the inode when it is "socket:[N]".
func (c *pidCache) readSocketLink(dirfd int, name []byte) (uint64, bool) {
	r, _, e := unix.Syscall6(unix.SYS_READLINKAT, uintptr(dirfd), uintptr(unsafe.Pointer(&name[0])),
		uintptr(unsafe.Pointer(&c.linkbuf[0])), uintptr(len(c.linkbuf)), 0, 0)
	if e != 0 {
		return 0, false
	}
	return parseSocketLink(c.linkbuf[:r])
}

// parseSocketLink parses "socket:[12345]".
func parseSocketLink(b []byte) (uint64, bool) {
	const pfx = "socket:["
	if len(b) < len(pfx)+2 || string(b[:len(pfx)]) != pfx || b[len(b)-1] != ']' {
		return 0, false
	}
	var n uint64
	for _, d := range b[len(pfx) : len(b)-1] {
		if d < '0' || d > '9' || n > (1<<64-1)/10-1 {
			return 0, false
		}
		n = n*10 + uint64(d-'0')
	}
	return n, true
}

// prune drops owner entries of sockets that are gone, when the map has grown
// well beyond the live set (amortised: a full sweep only now and then).
func (c *pidCache) prune(socks []Socket) {
	if len(c.owner) <= 2*len(socks)+1024 && len(c.givenUp) <= len(socks)+1024 {
		return
	}
	live := make(map[uint64]struct{}, len(socks))
	for i := range socks {
		if socks[i].Inode != 0 {
			live[socks[i].Inode] = struct{}{}
		}
	}
	for ino := range c.owner {
		if _, ok := live[ino]; !ok {
			delete(c.owner, ino)
		}
	}
	for ino := range c.givenUp {
		if _, ok := live[ino]; !ok {
			delete(c.givenUp, ino)
		}
	}
}

// listProcs lists the numeric entries of the proc root (used when no process
// table is available). Start times are unknown (zero).
func (c *pidCache) listProcs() map[int32]*Process {
	out := make(map[int32]*Process)
	p := append(c.pathbuf[:0], c.root...)
	p = append(p, 0)
	c.pathbuf = p
	r, _, e := unix.Syscall6(unix.SYS_OPENAT, atFDCWD, uintptr(unsafe.Pointer(&p[0])),
		uintptr(unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC), 0, 0, 0)
	if e != 0 {
		return out
	}
	fd := int(r)
	defer unix.Close(fd)
	for {
		n, err := unix.Getdents(fd, c.dirbuf)
		if err != nil || n <= 0 {
			return out
		}
		buf := c.dirbuf[:n]
		for len(buf) >= 19 {
			reclen := int(*(*uint16)(unsafe.Pointer(&buf[16])))
			if reclen < 19 || reclen > len(buf) {
				break
			}
			if pid := fdNum(buf[19:reclen]); pid > 0 {
				out[int32(pid)] = nil
			}
			buf = buf[reclen:]
		}
	}
}
