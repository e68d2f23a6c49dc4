package collector

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netsentinel/netsentinel/internal/fsutil"
)

// copyProcFixture copies testdata/proc into a temporary directory (symlinks
// kept as links) so a test can change it between refreshes.
func copyProcFixture(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	src := filepath.Join("testdata", "proc")
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o700)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		default:
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(target, data, 0o600)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func fixtureTable(root string) *procTable {
	pt := newProcTable(root)
	pt.lookupUser = func(uid uint32) string {
		return map[uint32]string{0: "root", 1000: "alice"}[uid]
	}
	return pt
}

func TestProcTableFixture(t *testing.T) {
	pt := fixtureTable(filepath.Join("testdata", "proc"))
	procs, err := pt.Refresh()
	// pid 500 has a malformed stat: named in the error, the rest still listed.
	if !errors.Is(err, ErrFileParse) || !strings.Contains(err.Error(), filepath.Join("500", "stat")) {
		t.Fatalf("err = %v, want a parse error naming 500/stat", err)
	}
	if procs == nil {
		t.Fatal("nil table with a partial error")
	}
	boot := time.Unix(1700000000, 0)
	want := map[int32]*Process{
		1: {PID: 1, PPID: 0, Name: "systemd", Exe: "/usr/lib/systemd/systemd",
			Cmdline: []string{"/sbin/init", "splash"}, UID: 0, User: "root", StartTime: boot.Add(120 * time.Millisecond),
			PGID: 1, Session: 1},
		4242: {PID: 4242, PPID: 1, Name: "my (evil) proc", Exe: "/tmp/.x/evil (deleted)",
			Cmdline: []string{"./evil", "-c", "", "echo hi"}, UID: 1000, User: "alice", StartTime: boot.Add(3600 * time.Second),
			PGID: 4242, Session: 4242},
		777: {PID: 777, PPID: 1, Name: "systemd-journald", Exe: "/usr/lib/systemd/systemd-journald",
			Cmdline: []string{"/lib/systemd/systemd-journald"}, UID: 0, User: "root", StartTime: boot.Add(2500 * time.Millisecond),
			PGID: 777, Session: 777},
		99: {PID: 99, PPID: 4242, Name: "defunct", UID: 1000, User: "alice", StartTime: boot.Add(4000 * time.Second),
			PGID: 99, Session: 99},
		// setuid: real uid 1000, effective 0
		31337: {PID: 31337, PPID: 4242, Name: "python3", Exe: "/usr/bin/python3.11",
			Cmdline: []string{"python3", "-c", "import os\nos.system(\"id\")", "\uFFFDbad-utf8"}, UID: 0, User: "root",
			StartTime: boot.Add(5000 * time.Second), PGID: 31337, Session: 4242, TTY: 136<<8 | 1}, // /dev/pts/1
	}
	if len(procs) != len(want) {
		t.Errorf("got %d processes, want %d", len(procs), len(want))
	}
	for pid, w := range want {
		got := procs[pid]
		if got == nil {
			t.Errorf("pid %d missing", pid)
			continue
		}
		if !got.StartTime.Equal(w.StartTime) {
			t.Errorf("pid %d start %v, want %v", pid, got.StartTime, w.StartTime)
		}
		g := *got
		g.StartTime, w.StartTime = time.Time{}, time.Time{}
		if !reflect.DeepEqual(&g, w) {
			t.Errorf("pid %d:\n got %+v\nwant %+v", pid, g, *w)
		}
	}
}

func TestProcTableIncremental(t *testing.T) {
	root := copyProcFixture(t)
	if err := os.RemoveAll(filepath.Join(root, "500")); err != nil {
		t.Fatal(err)
	}
	pt := fixtureTable(root)
	pt.Revalidate = -1 // only the young re-read, no round-robin
	first, err := pt.Refresh()
	if err != nil {
		t.Fatal(err)
	}

	// An exec between the first and second poll: a process seen for the
	// first time is read again once.
	write := func(rel, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(root, rel), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("4242/cmdline", "bash\x00-i\x00")
	second, err := pt.Refresh()
	if err != nil {
		t.Fatal(err)
	}
	if got := second[4242].Cmdline; !reflect.DeepEqual(got, []string{"bash", "-i"}) {
		t.Errorf("young process not re-read: cmdline %q", got)
	}
	if first[4242] == second[4242] {
		t.Error("re-read process should be a new *Process (old snapshots stay unchanged)")
	}
	if first[4242].Cmdline[0] != "./evil" {
		t.Error("an earlier table's process was modified")
	}

	// Once settled, a process is not read again: the cost model.
	write("4242/cmdline", "changed\x00")
	third, _ := pt.Refresh()
	if third[4242] != second[4242] {
		t.Error("settled process was read again without revalidation")
	}

	// Round-robin revalidation catches PID reuse (new start time).
	stat := strings.Replace(string(readFixture(t, "proc", "4242", "stat")), " 360000 ", " 370000 ", 1)
	write("4242/stat", stat)
	pt.Revalidate = 100
	fourth, _ := pt.Refresh()
	if got := fourth[4242]; got == third[4242] || got.Cmdline[0] != "changed" ||
		!got.StartTime.Equal(time.Unix(1700000000+3700, 0)) {
		t.Errorf("reused PID not re-read: %+v", got)
	}
	// Revalidation without changes keeps the same entry.
	fifth, _ := pt.Refresh()
	sixth, _ := pt.Refresh()
	if fifth[1] != sixth[1] || first[1] != sixth[1] {
		t.Error("unchanged process re-created by revalidation")
	}

	// A process that exits disappears; one that vanishes mid-read (stat
	// readable, status gone) is skipped silently.
	if err := os.RemoveAll(filepath.Join(root, "777")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, "31337", "status")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "8000"), 0o700); err != nil {
		t.Fatal(err)
	}
	write("8000/stat", strings.Replace(stat, "4242 (my (evil) proc)", "8000 (gone)", 1))
	pt.procs[31337].young = true // force a re-read of 31337
	seventh, err := pt.Refresh()
	if err != nil {
		t.Fatalf("vanished processes must not be errors: %v", err)
	}
	for _, pid := range []int32{777, 31337, 8000} {
		if seventh[pid] != nil {
			t.Errorf("pid %d should be gone", pid)
		}
	}
	if seventh[1] == nil || seventh[4242] == nil {
		t.Error("live processes missing")
	}
	if pt.vanished < 2 {
		t.Errorf("vanished = %d, want >= 2", pt.vanished)
	}
}

func TestProcTableErrors(t *testing.T) {
	if _, err := newProcTable(filepath.Join(t.TempDir(), "nope")).Refresh(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing root: err = %v", err)
	}
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "stat"), []byte("cpu 1 2 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := newProcTable(root).Refresh(); !errors.Is(err, ErrFileParse) {
		t.Errorf("no btime: err = %v", err)
	}
}

// TestProcTableRealProc finds this test process and a child with a long,
// strange command line in the real /proc.
func TestProcTableRealProc(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no procfs")
	}
	// 11 arguments of 100 KB (each under MAX_ARG_STRLEN): more than the
	// 1 MiB cmdline cap; plus a newline and invalid UTF-8.
	big := strings.Repeat("x", 100_000)
	args := []string{"-c", "sleep 30", "netsentinel-test", "line1\nline2", "bad\xffutf8"}
	for range 11 {
		args = append(args, big)
	}
	before := time.Now()
	child := exec.Command("/bin/sh", args...)
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })

	pt := newProcTable(ProcRootFromEnv(""))
	procs, err := pt.Refresh()
	if err != nil {
		t.Fatal(err)
	}
	self := procs[int32(os.Getpid())]
	if self == nil {
		t.Fatalf("own pid %d not found among %d processes", os.Getpid(), len(procs))
	}
	if self.PPID != int32(os.Getppid()) {
		t.Errorf("ppid = %d, want %d", self.PPID, os.Getppid())
	}
	if !reflect.DeepEqual(self.Cmdline, os.Args) {
		t.Errorf("cmdline = %q, want %q", self.Cmdline, os.Args)
	}
	if exe, _ := os.Executable(); self.Exe != exe {
		t.Errorf("exe = %q, want %q", self.Exe, exe)
	}
	if want := filepath.Base(os.Args[0]); self.Name != want {
		t.Errorf("name = %q, want %q", self.Name, want)
	}
	if pgid, _ := syscall.Getpgid(0); self.PGID != int32(pgid) {
		t.Errorf("pgid = %d, want %d", self.PGID, pgid)
	}
	if sid, _ := unix.Getsid(0); self.Session != int32(sid) {
		t.Errorf("session = %d, want %d", self.Session, sid)
	}
	if self.UID != uint32(os.Geteuid()) {
		t.Errorf("uid = %d, want %d", self.UID, os.Geteuid())
	}
	if os.Geteuid() == 0 && self.User != "root" {
		t.Errorf("user = %q, want root", self.User)
	}
	if self.StartTime.After(before) || time.Since(self.StartTime) > time.Hour {
		t.Errorf("start time %v not shortly before %v", self.StartTime, before)
	}

	// Unprivileged, another user's process is still listed, without exe.
	if init := procs[1]; os.Geteuid() != 0 && init != nil && init.UID == 0 {
		if init.Exe != "" || init.User != "root" || init.Name == "" {
			t.Errorf("pid 1 seen unprivileged: %+v", init)
		}
	}

	// The child's exec may not be done yet: wait for its cmdline to appear.
	var c *Process
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		procs, err = pt.Refresh()
		if err != nil {
			t.Fatal(err)
		}
		if c = procs[int32(child.Process.Pid)]; c != nil && len(c.Cmdline) > 3 {
			break
		}
	}
	if c == nil || len(c.Cmdline) < 6 {
		t.Fatalf("child not found with its cmdline: %+v", c)
	}
	if c.PPID != int32(os.Getpid()) || c.Name != "sh" && c.Name != "dash" && c.Name != "bash" {
		t.Errorf("child ppid %d name %q", c.PPID, c.Name)
	}
	wantHead := []string{"/bin/sh", "-c", "sleep 30", "netsentinel-test", "line1\nline2", "bad\uFFFDutf8", big}
	if !reflect.DeepEqual(c.Cmdline[:len(wantHead)], wantHead) {
		t.Errorf("child cmdline head = %.80q", c.Cmdline[:len(wantHead)])
	}
	total := 0
	for _, a := range c.Cmdline {
		total += len(a) + 1
	}
	if total > maxCmdlineBytes+3 || total < maxCmdlineBytes-len(big) {
		t.Errorf("cmdline of %d bytes, want capped near %d", total, maxCmdlineBytes)
	}
	if d := c.StartTime.Sub(before); d < -50*time.Millisecond || d > 5*time.Second {
		t.Errorf("child start %v, spawned at %v", c.StartTime, before)
	}
}

func BenchmarkProcTableRefresh(b *testing.B) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		b.Skip("no procfs")
	}
	b.Run("steady", func(b *testing.B) {
		pt := newProcTable("/proc")
		if _, err := pt.Refresh(); err != nil {
			b.Fatal(err)
		}
		_, _ = pt.Refresh()
		b.ReportAllocs()
		for b.Loop() {
			_, _ = pt.Refresh()
		}
	})
	b.Run("cold", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			pt := newProcTable("/proc")
			_, _ = pt.Refresh()
		}
	})
}

func TestReadBootTime(t *testing.T) {
	root := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("stat", "cpu 1 2 3\nbtime 1700000000\n")
	now := time.Unix(1700000000+3600, 0)
	// No uptime file: whole seconds from btime.
	if bt, err := readBootTime(root, now); err != nil || !bt.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("without uptime: %v, %v", bt, err)
	}
	// Uptime agreeing with btime refines it to 10 ms.
	write("uptime", "3599.27 7000.00\n")
	if bt, err := readBootTime(root, now); err != nil || !bt.Equal(time.Unix(1700000000, 730_000_000)) {
		t.Errorf("with uptime: %v, %v", bt, err)
	}
	// Uptime contradicting btime (clock step) is ignored.
	write("uptime", "10.00 20.00\n")
	if bt, err := readBootTime(root, now); err != nil || !bt.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("contradicting uptime: %v, %v", bt, err)
	}
}

// BenchmarkReadProcFile compares a fresh buffer per read (io.ReadAll) with
// the reused buffer of the process table, on a typical per-process file.
func BenchmarkReadProcFile(b *testing.B) {
	const path = "/proc/self/status"
	if _, err := os.Stat(path); err != nil {
		b.Skip("no procfs")
	}
	b.Run("readall", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := fsutil.ReadFileCapped(path, maxSmallFileBytes); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reused", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 4096)
		for b.Loop() {
			data, err := fsutil.ReadFileCappedBuf(path, buf, maxSmallFileBytes)
			if err != nil {
				b.Fatal(err)
			}
			buf = data[:0]
		}
	})
}
