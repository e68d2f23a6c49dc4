//go:build linux

package tmuxtest

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// WaitExit returns the exit status of every run, even when tmux loses the
// process's SIGCHLD (under load it does for about one short run in seven:
// the pane is dead, the process a zombie and the status never comes, which
// made the dashboard's Ctrl+C test hang after "dashboard closed"). The runs
// are short so their exits land near tmux's own pty-EOF handling.
func TestWaitExitStatus(t *testing.T) {
	Require(t)
	for i := 0; i < 20; i++ {
		s := Start(t, 40, 5, nil, "sh", "-c", "echo bye; exit "+strconv.Itoa(i%4+1))
		if status, screen := s.WaitExit(20 * time.Second); status != i%4+1 {
			t.Fatalf("run %d: exit status %d, want %d; screen:\n%s", i, status, i%4+1, strings.Join(screen, "\n"))
		}
	}
}

// A program still running when its test ends is killed, even one that
// ignores the hangup that kill-server sends (netsentinel takes SIGHUP as
// "reload"), so a failed test leaves nothing running.
func TestStopsProgramLeftRunning(t *testing.T) {
	Require(t)
	var pid int
	t.Run("left running", func(t *testing.T) {
		s := Start(t, 40, 5, nil, "sh", "-c", `trap "" HUP; echo ready; exec sleep 600`)
		s.WaitText(20*time.Second, "ready")
		pid = s.pane().pid
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := os.Stat("/proc/" + strconv.Itoa(pid))
		if os.IsNotExist(err) || zombie(pid) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pane process %d still runs after its test ended", pid)
		}
		time.Sleep(50 * time.Millisecond) // a poll step
	}
}
