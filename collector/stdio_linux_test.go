//go:build linux

package collector

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair and returns the master, the slave and
// the slave's index N (/dev/pts/N).
func openPTY(t *testing.T) (master, slave *os.File, n int) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err = unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open slave: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s, n
}

// A child in its own session on a pty (stdin; its master held by this test,
// its parent), writing into a pipe (stdout)
// and a FIFO (stderr), as the shell of a socat/python pty relay or a mkfifo
// reverse shell sits: stat gives its session and terminal, the fd links what
// each standard stream is; a child on /dev/null carries no Stdio at all.
func TestStdioKindsAndTerminal(t *testing.T) {
	_, slave, n := openPTY(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	fifo := filepath.Join(t.TempDir(), "f")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	ff, err := os.OpenFile(fifo, os.O_RDWR, 0) // O_RDWR: does not wait for a reader
	if err != nil {
		t.Fatal(err)
	}
	defer ff.Close()
	var fifoStat unix.Stat_t
	if err := unix.Fstat(int(ff.Fd()), &fifoStat); err != nil {
		t.Fatal(err)
	}
	var pipeStat unix.Stat_t
	if err := unix.Fstat(int(pw.Fd()), &pipeStat); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command("sleep", "30")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, pw, ff
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	quiet := exec.Command("sleep", "30") // stdio all /dev/null
	if err := quiet.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { quiet.Process.Kill(); quiet.Wait() }()

	pt := newProcTable("/proc")
	c := newPIDCache("/proc")
	child := int32(cmd.Process.Pid)
	var procs map[int32]*Process
	for i := 0; i < 100; i++ { // until the child has exec'd and the table lists it
		procs = refreshProcs(t, pt)
		// Between fork and exec a child still has the test's stdio.
		if p, q := procs[child], procs[int32(quiet.Process.Pid)]; p != nil && p.Name == "sleep" && q != nil && q.Name == "sleep" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	orig := procs[child]
	if orig == nil || orig.Name != "sleep" {
		t.Fatalf("child %d not in the process table as sleep: %+v", child, orig)
	}
	if orig.Session != child || orig.PGID != child {
		t.Errorf("session %d pgid %d, want both %d (setsid)", orig.Session, orig.PGID, child)
	}
	if got, ok := PTSIndex(orig.TTY); !ok || got != n {
		t.Errorf("tty_nr %d decodes to pts %d (%v), want /dev/pts/%d", orig.TTY, got, ok, n)
	}

	c.Attribute(nil, procs)
	p := procs[child]
	want := []StdioFD{
		// This test holds the master: the parent, found through fdinfo's tty-index.
		{FD: 0, Kind: StdioPTY, Path: "/dev/pts/" + strconv.Itoa(n), Peer: int32(os.Getpid())},
		{FD: 1, Kind: StdioPipe, Inode: pipeStat.Ino},
		{FD: 2, Kind: StdioFIFO, Inode: fifoStat.Ino, Path: fifo},
	}
	if len(p.Stdio) != len(want) {
		t.Fatalf("Stdio = %+v, want %+v", p.Stdio, want)
	}
	for i := range want {
		if p.Stdio[i] != want[i] {
			t.Errorf("fd %d: %+v, want %+v", i, p.Stdio[i], want[i])
		}
	}
	if pts, ok := p.Stdio[0].PTS(); !ok || pts != n {
		t.Errorf("PTS() = %d, %v; want %d", pts, ok, n)
	}
	if orig.Stdio != nil {
		t.Error("Attribute modified the process table's shared *Process")
	}
	if q := procs[int32(quiet.Process.Pid)]; q == nil || q.Stdio != nil {
		t.Errorf("a process on /dev/null: %+v, want no Stdio", q)
	}
	// The next call hands out the same copy (no allocation per poll).
	procs2 := refreshProcs(t, pt)
	c.Attribute(nil, procs2)
	if procs2[child] != p {
		t.Error("the stdio copy was not reused at the next call")
	}
}

func TestFDLinkKind(t *testing.T) {
	for link, want := range map[string]string{
		"socket:[123]":           StdioSocket,
		"pipe:[77]":              StdioPipe,
		"pipe:[]":                StdioFile,
		"pipe:[7x]":              StdioFile,
		"/dev/null":              StdioNull,
		"/dev/pts/12":            StdioPTY,
		"/dev/pts/ptmx":          StdioPTMX,
		"/dev/ptmx":              StdioPTMX,
		"/dev/pts/x":             StdioFile,
		"/dev/tty1":              StdioTTY,
		"/dev/console":           StdioTTY,
		"/var/log/app.log":       StdioFile,
		"anon_inode:[eventpoll]": StdioFile,
		"":                       StdioFile,
	} {
		if got := fdLinkKind([]byte(link)); got != want {
			t.Errorf("fdLinkKind(%q) = %s, want %s", link, got, want)
		}
	}
}
