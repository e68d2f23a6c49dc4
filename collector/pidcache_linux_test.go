//go:build linux

package collector

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHelperProcess is not a test: the tests and the benchmark re-exec the
// test binary with NETSENTINEL_TEST_HELPER set to run one of these roles in a
// child process (another PID, another fd limit, another uid).
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv("NETSENTINEL_TEST_HELPER")
	if mode == "" {
		t.Skip("helper process for other tests")
	}
	err := runHelper(mode)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	os.Exit(0)
}

func runHelper(mode string) error {
	in := bufio.NewReader(os.Stdin)
	switch mode {
	case "socket-on-request":
		// Print our PID, wait for a line, open a UDP socket, report its
		// port, then hold it until stdin closes.
		fmt.Printf("%d\n", os.Getpid())
		if _, err := in.ReadString('\n'); err != nil {
			return err
		}
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return err
		}
		defer c.Close()
		fmt.Printf("%d\n", c.LocalAddr().(*net.UDPAddr).Port)
		io.Copy(io.Discard, in)
		return nil
	case "hold":
		// Dial NETSENTINEL_HOLD_N connections to NETSENTINEL_HOLD_ADDR, say
		// "ready", hold them until stdin closes.
		n, _ := strconv.Atoi(os.Getenv("NETSENTINEL_HOLD_N"))
		addr := os.Getenv("NETSENTINEL_HOLD_ADDR")
		if err := raiseNoFile(uint64(n) + 256); err != nil {
			return err
		}
		conns := make([]net.Conn, 0, n)
		// No keepalive: n connections opened within a second probe together,
		// overflow loopback's backlog and get aborted after ~3 minutes.
		d := net.Dialer{Timeout: 10 * time.Second, KeepAlive: -1}
		for i := 0; i < n; i++ {
			c, err := d.Dial("tcp", addr)
			if err != nil {
				return fmt.Errorf("dial %d of %d: %w", i, n, err)
			}
			conns = append(conns, c)
		}
		fmt.Println("ready")
		io.Copy(io.Discard, in)
		for _, c := range conns {
			c.Close()
		}
		return nil
	case "neigh-watch":
		return neighHelper(in)
	case "unprivileged-collect":
		// Report, as JSON, what this (unprivileged) process sees, with a
		// listener of its own.
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer ln.Close()
		d, err := openSockDiag()
		if err != nil {
			return err
		}
		socks, err := d.Dump(nil)
		if err != nil {
			return err
		}
		procs, _ := newProcTable("/proc").Refresh()
		newPIDCache("/proc").Attribute(socks, procs)
		return json.NewEncoder(os.Stdout).Encode(unprivReport{os.Getpid(), ln.Addr().String(), socks})
	}
	return fmt.Errorf("unknown helper mode %q", mode)
}

type unprivReport struct {
	PID      int
	Listener string
	Sockets  []Socket
}

// helperCmd returns a command re-running this test binary as a helper.
func helperCmd(mode string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(append(os.Environ(), "NETSENTINEL_TEST_HELPER="+mode), env...)
	cmd.Stderr = os.Stderr
	return cmd
}

func raiseNoFile(n uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Cur >= n {
		return nil
	}
	if lim.Max < n {
		return fmt.Errorf("RLIMIT_NOFILE hard limit %d below %d", lim.Max, n)
	}
	lim.Cur = n
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}

func refreshProcs(t testing.TB, pt *procTable) map[int32]*Process {
	t.Helper()
	procs, err := pt.Refresh()
	if procs == nil {
		t.Fatalf("procTable.Refresh: %v", err)
	}
	return procs
}

func dumpAll(t testing.TB, d *sockDiag) []Socket {
	t.Helper()
	socks, err := d.Dump(nil)
	if err != nil {
		t.Fatalf("Dump: %v", err)
	}
	return socks
}

func TestPIDCacheAttributesOwnSocketsIncrementally(t *testing.T) {
	d, err := openSockDiag()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	pt := newProcTable("/proc")
	c := newPIDCache("/proc")
	me := int32(os.Getpid())

	p := openLoopPair(t, "tcp4", "127.0.0.1:0")
	defer p.close()
	socks := dumpAll(t, d)
	c.Attribute(socks, refreshProcs(t, pt))
	for _, a := range [][2]net.Addr{{p.ln.Addr(), nil}, {p.client.LocalAddr(), p.client.RemoteAddr()}, {p.serv.LocalAddr(), p.serv.RemoteAddr()}} {
		s := findSockAddrs(socks, a[0], a[1])
		if s == nil {
			t.Fatalf("socket %v→%v not in dump", a[0], a[1])
		}
		if s.PID != me {
			t.Errorf("socket %s→%s PID %d, want %d", s.Local, s.Remote, s.PID, me)
		}
	}

	// A new connection in this (now known, socket-active) process is found at
	// the next call without walking every process.
	p2 := openLoopPair(t, "tcp6", "[::1]:0")
	defer p2.close()
	socks = dumpAll(t, d)
	procs := refreshProcs(t, pt)
	c.Attribute(socks, procs)
	s := findSockAddrs(socks, p2.client.LocalAddr(), p2.client.RemoteAddr())
	if s == nil || s.PID != me {
		t.Fatalf("new connection of a known process not attributed at once: %+v", s)
	}
	if w := c.Stats().Walked; w >= len(procs) {
		t.Errorf("incremental call walked %d of %d processes", w, len(procs))
	}

	// Steady state: nothing new, nothing walked.
	c.Attribute(dumpAll(t, d), refreshProcs(t, pt))
	if w := c.Stats().Walked; w > 3 {
		t.Errorf("steady-state call walked %d processes", w)
	}
}

func findSockAddrs(socks []Socket, local, remote net.Addr) *Socket {
	l := ap(local)
	for i := range socks {
		s := &socks[i]
		if s.Local != l {
			continue
		}
		if remote == nil {
			if s.State == StateListen {
				return s
			}
			continue
		}
		if s.Remote == ap(remote) {
			return s
		}
	}
	return nil
}

func TestPIDCacheFindsSocketOfQuietProcessAfterOnePoll(t *testing.T) {
	d, err := openSockDiag()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	cmd := helperCmd("socket-on-request")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	if err != nil {
		t.Fatalf("helper pid: %v", err)
	}
	child, _ := strconv.Atoi(strings.TrimSpace(line))

	pt := newProcTable("/proc")
	c := newPIDCache("/proc")
	c.Attribute(dumpAll(t, d), refreshProcs(t, pt)) // the child is known now, with no socket
	c.Attribute(dumpAll(t, d), refreshProcs(t, pt))

	io.WriteString(stdin, "open\n")
	line, err = out.ReadString('\n')
	if err != nil {
		t.Fatalf("helper port: %v", err)
	}
	port, _ := strconv.Atoi(strings.TrimSpace(line))
	find := func(socks []Socket) *Socket {
		for i := range socks {
			if socks[i].Proto == ProtoUDP && socks[i].Local.Port() == uint16(port) {
				return &socks[i]
			}
		}
		return nil
	}
	// First call: unknown inode of a quiet, non-new process gets one poll.
	socks := dumpAll(t, d)
	c.Attribute(socks, refreshProcs(t, pt))
	s := find(socks)
	if s == nil {
		t.Fatalf("helper's UDP socket :%d not in dump", port)
	}
	if s.PID != 0 && s.PID != int32(child) {
		t.Fatalf("socket attributed to %d, want %d", s.PID, child)
	}
	// Second call: the full walk finds it.
	socks = dumpAll(t, d)
	c.Attribute(socks, refreshProcs(t, pt))
	if s = find(socks); s == nil || s.PID != int32(child) {
		t.Fatalf("socket of helper %d after second call: %+v", child, s)
	}
}

func TestPIDCacheStdioSocketsWithoutModifyingTable(t *testing.T) {
	d, err := openSockDiag()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	pt := newProcTable("/proc")
	c := newPIDCache("/proc")
	c.Attribute(dumpAll(t, d), refreshProcs(t, pt))

	// A child whose stdin and stdout are a TCP socket, like a reverse shell.
	p := openLoopPair(t, "tcp4", "127.0.0.1:0")
	defer p.close()
	f, err := p.client.(*net.TCPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("sleep", "30")
	cmd.Stdin, cmd.Stdout = f, f
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot run sleep: %v", err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	child := int32(cmd.Process.Pid)

	socks := dumpAll(t, d)
	want := findSockAddrs(socks, p.client.LocalAddr(), p.client.RemoteAddr())
	if want == nil {
		t.Fatal("client socket not in dump")
	}
	var procs map[int32]*Process
	for i := 0; i < 50; i++ { // until the child has exec'd and the table lists it
		procs = refreshProcs(t, pt)
		if p := procs[child]; p != nil && p.Name == "sleep" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	orig := procs[child]
	if orig == nil {
		t.Fatalf("child %d not in process table", child)
	}
	c.Attribute(socks, procs)
	got := procs[child]
	if len(got.StdioSockets) != 2 || got.StdioSockets[0] != want.Inode || got.StdioSockets[1] != want.Inode {
		t.Errorf("child StdioSockets %v, want [%d %d]", got.StdioSockets, want.Inode, want.Inode)
	}
	if orig.StdioSockets != nil {
		t.Error("Attribute modified the process table's shared *Process")
	}
	if me := procs[int32(os.Getpid())]; me != nil && len(me.StdioSockets) != 0 {
		t.Errorf("test process has stdio sockets %v", me.StdioSockets)
	}
}

// Unprivileged, sockets of other users' processes are reported with PID 0,
// never dropped; the process's own sockets keep their PID.
func TestPIDCacheUnprivilegedReportsUnreadableSocketsWithoutPID(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to start a helper as another user")
	}
	p := openLoopPair(t, "tcp4", "127.0.0.1:0") // owned by root (this process)
	defer p.close()

	// The test binary may sit in a 0700 build directory: copy it where
	// nobody can run it.
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "collector.test")
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = []string{"NETSENTINEL_TEST_HELPER=unprivileged-collect", "PATH=/usr/bin:/bin"}
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("unprivileged helper: %v", err)
	}
	var rep unprivReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("helper output: %v", err)
	}
	socks := rep.Sockets
	own := false
	for _, s := range socks {
		if s.State == StateListen && s.Local.String() == rep.Listener {
			own = true
			if s.PID != int32(rep.PID) || s.UID != 65534 {
				t.Errorf("helper's own listener %s: PID %d uid %d, want %d/65534", rep.Listener, s.PID, s.UID, rep.PID)
			}
		}
	}
	if !own {
		t.Errorf("helper's own listener %s not in its dump", rep.Listener)
	}
	s := findSockAddrs(socks, p.client.LocalAddr(), p.client.RemoteAddr())
	if s == nil {
		t.Fatal("root's connection missing from the unprivileged dump: dropped")
	}
	if s.PID != 0 {
		t.Errorf("root's socket attributed to PID %d by an unprivileged reader", s.PID)
	}
	if s.Inode == 0 || s.UID != 0 {
		t.Errorf("unprivileged dump lost inode/uid: %+v", *s)
	}
}

func TestParseSocketLink(t *testing.T) {
	for in, want := range map[string]uint64{"socket:[123]": 123, "socket:[4294967295]": 4294967295} {
		if got, ok := parseSocketLink([]byte(in)); !ok || got != want {
			t.Errorf("%q: %d %v", in, got, ok)
		}
	}
	for _, bad := range []string{"", "socket:[]", "socket:[12", "pipe:[123]", "socket:[1a]", "/dev/null", "socket:[99999999999999999999999]"} {
		if _, ok := parseSocketLink([]byte(bad)); ok {
			t.Errorf("%q parsed as a socket", bad)
		}
	}
}

// A cache that has seen a listing gives the owners a fresh cache finds by
// walking /proc, whatever changed since: the order, sockets gone, an inode
// listed twice, the owner gone from the process table, and its PID back with
// a new start time (reuse). A wrong answer kept from an earlier call fails
// it (checked against a cache that answered from the previous listing's
// positions without comparing inodes).
func TestPIDCacheKnownOwnersMatchAFreshWalk(t *testing.T) {
	d, err := openSockDiag()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, a := range []string{"127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"} {
		p := openLoopPair(t, "tcp4", a)
		defer p.close()
	}
	// A child holds the client ends of 20 more connections: owners
	// alternate through the listing, so a wrong position shows.
	h := startHold(20)
	if h.err != nil {
		t.Fatal(h.err)
	}
	defer func() {
		h.stdin.Close()
		h.cmd.Wait()
		for _, c := range h.conns {
			c.Close()
		}
		h.ln.Close()
	}()
	pt := newProcTable("/proc")
	procs := refreshProcs(t, pt)
	base := dumpAll(t, d)
	me := int32(os.Getpid())
	mine, twice := 0, 0
	c := newPIDCache("/proc")
	first := slices.Clone(base)
	c.Attribute(first, procs)
	// The first call finds every owner by walking; its memo must hold
	// them all, in dump order, so the second poll needs no map look-up.
	var inodes []memoEntry
	for _, s := range first {
		if s.Inode != 0 {
			inodes = append(inodes, memoEntry{s.Inode, owner{pid: s.PID}})
		}
	}
	if len(c.memo) != len(inodes) {
		t.Fatalf("after the first call the memo has %d entries, want one per listed inode (%d)", len(c.memo), len(inodes))
	}
	for i, e := range c.memo {
		if e.ino != inodes[i].ino || e.o.pid != inodes[i].o.pid {
			t.Fatalf("memo entry %d: inode %d owner %d, the listing has inode %d attributed to %d",
				i, e.ino, e.o.pid, inodes[i].ino, inodes[i].o.pid)
		}
	}
	c.Attribute(slices.Clone(base), procs) // every owner known
	without := maps.Clone(procs)
	delete(without, me)
	reused := maps.Clone(procs)
	cp := *procs[me]
	cp.StartTime = cp.StartTime.Add(-time.Hour)
	reused[me] = &cp
	for _, v := range []struct {
		name  string
		socks []Socket
		procs map[int32]*Process
	}{
		{"same", slices.Clone(base), procs},
		{"reversed", func() []Socket { s := slices.Clone(base); slices.Reverse(s); return s }(), procs},
		{"every third gone", func() []Socket {
			var s []Socket
			for i, x := range base {
				if i%3 != 1 {
					s = append(s, x)
				}
			}
			return s
		}(), procs},
		{"every third back", slices.Clone(base), procs},
		{"listed twice", append(slices.Clone(base), base...), procs},
		{"owner not in the table", slices.Clone(base), without},
		{"owner's PID reused", slices.Clone(base), reused},
		{"back to the first listing", slices.Clone(base), reused},
	} {
		got := slices.Clone(v.socks)
		c.Attribute(got, v.procs)
		want := slices.Clone(v.socks)
		newPIDCache("/proc").Attribute(want, v.procs)
		for i := range got {
			if got[i].PID != want[i].PID {
				t.Errorf("%s: socket %d (%s→%s inode %d) PID %d, a fresh walk finds %d",
					v.name, i, got[i].Local, got[i].Remote, got[i].Inode, got[i].PID, want[i].PID)
			}
			if v.name == "same" && got[i].PID == me {
				mine++
			}
			if v.name == "listed twice" && want[i].PID == me {
				twice++ // a fresh cache: every listing of an unknown inode
			}
		}
	}
	if mine < 29 {
		t.Fatalf("only %d of this process's sockets attributed to it, want its 29", mine)
	}
	if twice < 2*29 {
		t.Fatalf("listed twice, a fresh cache attributed %d listings of this process's sockets, want both of its 29", twice)
	}
}
