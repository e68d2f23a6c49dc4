//go:build linux

package detect

import (
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/collector"
)

// InferOwner on a real snapshot: a child process connects with its peer on
// its command line; with its socket's PID taken away (as an unprivileged
// sensor sees another user's socket), the process table read from /proc
// (command line, uid, start time, parent) ties the socket back to it.
func TestInferOwnerOnRealProc(t *testing.T) {
	nc, err := exec.LookPath("ncat")
	if err != nil {
		if os.Getenv("NETSENTINEL_REQUIRE_ROOT") == "1" {
			t.Fatal("!!! ncat (Debian package ncat) is missing, and NETSENTINEL_REQUIRE_ROOT=1 forbids skipping")
		}
		t.Skip("ncat not installed")
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A shell that starts the tool, as an attacker's one-liner does: both
	// name the peer, the tool holds the socket.
	cmd := exec.CommandContext(ctx, "sh", "-c", "sleep 20 | "+nc+" --send-only 127.0.0.1 "+port)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); cmd.Wait() }()
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	peer := netip.MustParseAddrPort("127.0.0.1:" + port)

	src, err := collector.NewSource(collector.Options{ProcRoot: "/proc"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var s *collector.Socket
	var snap *collector.Snapshot
	// The child's socket is attributed once the process table lists it.
	for deadline := time.Now().Add(10 * time.Second); s == nil && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if snap, err = src.Collect(ctx); err != nil {
			t.Fatal(err)
		}
		for i := range snap.Sockets {
			if c := &snap.Sockets[i]; c.Proto == collector.ProtoTCP && c.Remote == peer && c.PID > 0 {
				s = c
			}
		}
	}
	if s == nil {
		t.Fatal("the child's connection was never listed with its PID")
	}
	owner := s.PID
	if p := snap.Processes[owner]; p == nil || p.Name != "ncat" {
		t.Fatalf("the connection's owner %d is %+v, want ncat", owner, p)
	}
	unowned := *s
	unowned.PID = 0
	pid, by := InferOwner(snap, testEnv(), &unowned)
	if pid != owner || by != InferredByCmdline {
		t.Errorf("InferOwner = %d %q, want ncat's pid %d by its command line (shell pid %d names the peer too)", pid, by, owner, cmd.Process.Pid)
	}
	// Its uid differing, nothing is inferred.
	unowned.UID++
	if pid, by := InferOwner(snap, testEnv(), &unowned); pid == owner {
		t.Errorf("InferOwner tied a socket of another uid to ncat (%s)", by)
	}
}
