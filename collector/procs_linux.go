package collector

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/netsentinel/netsentinel/internal/fsutil"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture Go supports (sysconf(_SC_CLK_TCK)).
const clockTicks = 100

// defaultRevalidate is how many already known processes procTable.Refresh
// re-checks per call (see procTable.Revalidate).
const defaultRevalidate = 32

// maxUserCache bounds the uid → user name cache.
const maxUserCache = 1 << 16

// procTable keeps the process table between polls and reads /proc
// incrementally: every Refresh lists the PID directories (cheap, ~0.3 ms for
// 700 processes) but reads stat, status, cmdline and exe only for processes
// it has not seen yet, which is ~20x cheaper than reading every stat file.
//
// Known processes are re-checked in two ways so that the cache does not go
// stale: a process seen for the first time is read once more at the next
// Refresh (a child caught between fork and exec still shows its parent's
// command line), and each Refresh re-reads the stat file of up to Revalidate
// known processes in turn, re-reading everything when the start time (PID
// reuse), the command name (exec), the process group, session or
// controlling terminal (setsid, setpgid) changed.
//
// A procTable is not safe for concurrent use.
type procTable struct {
	root string
	// Revalidate is the number of known processes re-checked per Refresh;
	// 0 means defaultRevalidate, negative disables the round-robin check.
	Revalidate int

	bootTime time.Time // read once, at the first Refresh
	procs    map[int32]*procEntry
	order    []int32 // PIDs in listing order, for the round-robin check
	cursor   int

	buf []byte // reused by every file read

	users      map[uint32]string
	lookupUser func(uid uint32) string

	// counters since creation, for diagnostics
	vanished, unreadable, malformed uint64
}

type procEntry struct {
	proc       *Process
	startTicks uint64
	comm       string
	young      bool // first seen at the previous Refresh
}

// newProcTable returns a table reading the procfs mounted at procRoot
// ("" means /proc).
func newProcTable(procRoot string) *procTable {
	if procRoot == "" {
		procRoot = defaultProcRoot
	}
	return &procTable{
		root:       procRoot,
		procs:      make(map[int32]*procEntry),
		users:      make(map[uint32]string),
		lookupUser: lookupUserName,
		buf:        make([]byte, 0, 4096),
	}
}

// Refresh returns the current process table, keyed by PID. The map is new on
// every call; the *Process values are shared between calls and must not be
// modified. A process that exits while being read is left out silently, as is
// one whose files cannot be read (hidepid). The error is non-nil when the proc
// root cannot be listed or its boot time read (the map is then nil), or when
// some processes had malformed files: the map is then still valid and the
// error names those files.
func (t *procTable) Refresh() (map[int32]*Process, error) {
	if t.bootTime.IsZero() {
		bt, err := readBootTime(t.root, time.Now())
		if err != nil {
			return nil, fmt.Errorf("process table: %w", err)
		}
		t.bootTime = bt
	}
	pids, err := listPIDs(t.root)
	if err != nil {
		return nil, fmt.Errorf("process table: %w", err)
	}

	check := t.revalidationBatch()
	errs := lineErrors{file: t.root}
	out := make(map[int32]*Process, len(pids))
	next := make(map[int32]*procEntry, len(pids))
	for _, pid := range pids {
		old := t.procs[pid]
		if old != nil && !old.young && !check[pid] {
			next[pid] = old
			out[pid] = old.proc
			continue
		}
		e, err := t.read(pid, old)
		if err != nil {
			switch {
			case isGone(err):
				t.vanished++
			case errors.Is(err, fs.ErrPermission):
				t.unreadable++
			default:
				t.malformed++
				if len(errs.errs) < maxLineErrors {
					errs.errs = append(errs.errs, err)
				} else {
					errs.dropped++
				}
			}
			continue
		}
		next[pid] = e
		out[pid] = e.proc
	}
	t.procs = next
	t.order = pids
	return out, errs.err()
}

// revalidationBatch picks the next known PIDs to re-check, round-robin.
func (t *procTable) revalidationBatch() map[int32]bool {
	n := t.Revalidate
	if n == 0 {
		n = defaultRevalidate
	}
	if n < 0 || len(t.order) == 0 {
		return nil
	}
	n = min(n, len(t.order))
	check := make(map[int32]bool, n)
	if t.cursor >= len(t.order) {
		t.cursor = 0
	}
	for range n {
		check[t.order[t.cursor]] = true
		t.cursor = (t.cursor + 1) % len(t.order)
	}
	return check
}

// read reads one process. old is the cached entry or nil; when only its stat
// is re-checked and nothing changed, old is returned (no longer young).
func (t *procTable) read(pid int32, old *procEntry) (*procEntry, error) {
	dir := filepath.Join(t.root, strconv.FormatInt(int64(pid), 10))
	statPath := filepath.Join(dir, "stat")
	data, err := fsutil.ReadFileCappedBuf(statPath, t.buf, maxSmallFileBytes)
	t.buf = data[:0]
	if err != nil {
		return nil, err
	}
	st, err := parseProcStat(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", statPath, err)
	}
	if old != nil && !old.young && old.startTicks == st.StartTicks && old.comm == st.Comm &&
		old.proc.PGID == st.PGID && old.proc.Session == st.Session && old.proc.TTY == st.TTY {
		return old, nil
	}

	statusPath := filepath.Join(dir, "status")
	data, err = fsutil.ReadFileCappedBuf(statusPath, t.buf, maxSmallFileBytes)
	t.buf = data[:0]
	if err != nil {
		return nil, err
	}
	status, err := parseProcStatus(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", statusPath, err)
	}
	// A cmdline longer than the cap is kept cut (fsutil.ErrTooLarge with data).
	data, err = fsutil.ReadFileCappedBuf(filepath.Join(dir, "cmdline"), t.buf, maxCmdlineBytes)
	t.buf = data[:0]
	if err != nil && !errors.Is(err, fsutil.ErrTooLarge) {
		return nil, err
	}
	cmdline := parseCmdline(data)
	if cap(t.buf) > 64<<10 {
		t.buf = make([]byte, 0, 4096) // do not keep a megabyte for one long cmdline
	}
	exe, _ := os.Readlink(filepath.Join(dir, "exe")) // denied for others' processes when unprivileged

	uid := status.UIDs[1] // effective, as ps shows and as sockets are owned
	p := &Process{
		PID:       pid,
		PPID:      st.PPID,
		Name:      processName(st.Comm, cmdline, exe),
		Exe:       exe,
		Cmdline:   cmdline,
		UID:       uid,
		User:      t.userName(uid),
		StartTime: bootOffset(t.bootTime, st.StartTicks),
		PGID:      st.PGID,
		Session:   st.Session,
		TTY:       st.TTY,
	}
	if old != nil && old.startTicks == st.StartTicks && sameProcess(old.proc, p) {
		p = old.proc // settled with nothing changed: keep the shared value
	}
	// A new PID, or a reused one, may still be between fork and exec.
	young := old == nil || old.startTicks != st.StartTicks
	return &procEntry{proc: p, startTicks: st.StartTicks, comm: st.Comm, young: young}, nil
}

func sameProcess(a, b *Process) bool {
	return a.PPID == b.PPID && a.Name == b.Name && a.Exe == b.Exe && a.UID == b.UID &&
		a.User == b.User && a.StartTime.Equal(b.StartTime) && slices.Equal(a.Cmdline, b.Cmdline) &&
		a.PGID == b.PGID && a.Session == b.Session && a.TTY == b.TTY
}

func bootOffset(bootTime time.Time, ticks uint64) time.Time {
	return bootTime.Add(time.Duration(ticks) * (time.Second / clockTicks))
}

// readBootTime returns when the host booted. The "btime" of <root>/stat is
// whole seconds (start times would be up to 1 s early), so when <root>/uptime
// is readable and agrees with it, now minus the uptime (10 ms precision) is
// used instead.
func readBootTime(root string, now time.Time) (time.Time, error) {
	statPath := filepath.Join(root, "stat")
	data, err := fsutil.ReadFileCapped(statPath, maxProcFileBytes)
	if data == nil {
		return time.Time{}, err
	}
	btime, err := parseBootTime(data)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", statPath, err)
	}
	coarse := time.Unix(btime, 0)
	data, err = fsutil.ReadFileCapped(filepath.Join(root, "uptime"), maxSmallFileBytes)
	if err != nil {
		return coarse, nil
	}
	up, err := parseUptime(data)
	if err != nil {
		return coarse, nil
	}
	fine := now.Add(-up)
	if d := fine.Sub(coarse); d < -time.Second || d > 2*time.Second {
		return coarse, nil // a clock step between the two reads, or a fixture
	}
	return fine, nil
}

func (t *procTable) userName(uid uint32) string {
	if name, ok := t.users[uid]; ok {
		return name
	}
	name := t.lookupUser(uid)
	if len(t.users) < maxUserCache {
		t.users[uid] = name // unknown uids are cached as "" too
	}
	return name
}

func lookupUserName(uid uint32) string {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return ""
	}
	return u.Username
}

// listPIDs returns the numeric entries of the proc root, in directory order.
func listPIDs(root string) ([]int32, error) {
	f, err := os.Open(root)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", root, err)
	}
	pids := make([]int32, 0, len(names))
	for _, n := range names {
		if n == "" || n[0] < '0' || n[0] > '9' {
			continue
		}
		pid, err := strconv.ParseInt(n, 10, 32)
		if err != nil || pid <= 0 {
			continue
		}
		pids = append(pids, int32(pid))
	}
	return pids, nil
}

// isGone reports an error from a process that exited while being read.
func isGone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}
