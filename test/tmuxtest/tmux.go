// Package tmuxtest drives a terminal program inside a private tmux server:
// start it at a given size, send keys, resize, read the screen
// (capture-pane) and wait for screen content with a deadline.
package tmuxtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Session is one detached tmux session running one command, on its own
// server (socket in a temporary directory), so tests never touch a user's
// tmux and can run in parallel.
type Session struct {
	t    testing.TB
	sock string
	conf string
}

// Require skips the test when tmux is missing, or fails it when
// NETSENTINEL_REQUIRE_ROOT=1 (scripts/test.sh installs tmux).
func Require(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err == nil {
		return
	}
	if os.Getenv("NETSENTINEL_REQUIRE_ROOT") == "1" {
		t.Fatal("!!! tmux is not installed (scripts/test.sh installs it)")
	}
	t.Skip("!!! SKIPPING: tmux is not installed (scripts/test.sh installs it)")
}

// Start runs argv in a new w x h session with env added to its environment.
// The pane stays after the command exits, so its last screen and exit status
// can be read. The server is killed when the test ends.
func Start(t testing.TB, w, h int, env []string, argv ...string) *Session {
	t.Helper()
	Require(t)
	dir, err := os.MkdirTemp("", "tmuxtest") // short: socket paths are limited to ~100 bytes
	if err != nil {
		t.Fatal(err)
	}
	s := &Session{t: t, sock: filepath.Join(dir, "s"), conf: filepath.Join(dir, "tmux.conf")}
	conf := "set -g remain-on-exit on\nset -g status off\nset -g default-terminal tmux-256color\nset -g history-limit 5000\n"
	if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = exec.Command("tmux", "-S", s.sock, "kill-server").Run()
		os.RemoveAll(dir)
	})
	args := []string{"new-session", "-d", "-s", "t", "-x", fmt.Sprint(w), "-y", fmt.Sprint(h)}
	for _, e := range env {
		args = append(args, "-e", e)
	}
	// tmux runs a single argument through the shell: quote each word.
	quoted := make([]string, len(argv))
	for i, a := range argv {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	args = append(args, "exec "+strings.Join(quoted, " "))
	s.tmux(args...)
	return s
}

func (s *Session) tmux(args ...string) string {
	s.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", s.sock, "-f", s.conf}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Screen is the pane's visible text, one string per row, without colours.
func (s *Session) Screen() []string {
	s.t.Helper()
	out := strings.TrimSuffix(s.tmux("capture-pane", "-p", "-t", "t"), "\n")
	return strings.Split(out, "\n")
}

// ScreenEscapes is the pane's text with its colour escape sequences
// (capture-pane -e), for rendering a screenshot.
func (s *Session) ScreenEscapes() string {
	s.t.Helper()
	return s.tmux("capture-pane", "-p", "-e", "-t", "t")
}

// Title is the pane's title, which a program can set with an escape
// sequence (a hostile string must not).
func (s *Session) Title() string {
	s.t.Helper()
	return strings.TrimSpace(s.tmux("display-message", "-p", "-t", "t", "#{pane_title}"))
}

// Keys sends keys: tmux key names ("Enter", "Escape", "C-c", "Down") or
// literal text with Literal.
func (s *Session) Keys(keys ...string) {
	s.t.Helper()
	s.tmux(append([]string{"send-keys", "-t", "t"}, keys...)...)
}

// Literal types text as it is.
func (s *Session) Literal(text string) {
	s.t.Helper()
	s.tmux("send-keys", "-t", "t", "-l", text)
}

// Resize sets the window to w x h.
func (s *Session) Resize(w, h int) {
	s.t.Helper()
	s.tmux("resize-window", "-t", "t", "-x", fmt.Sprint(w), "-y", fmt.Sprint(h))
}

// WaitFor polls the screen until ok accepts it or d passes (then it fails
// the test showing the last screen). It returns the accepted screen.
func (s *Session) WaitFor(what string, d time.Duration, ok func(screen []string) bool) []string {
	s.t.Helper()
	deadline := time.Now().Add(d)
	for {
		screen := s.Screen()
		if ok(screen) {
			return screen
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("screen did not show %s within %s; last screen:\n%s", what, d, strings.Join(screen, "\n"))
		}
		time.Sleep(50 * time.Millisecond) // a poll step, not a wait for an event
	}
}

// WaitText waits until every one of texts is on the screen.
func (s *Session) WaitText(d time.Duration, texts ...string) []string {
	s.t.Helper()
	return s.WaitFor(fmt.Sprintf("%q", texts), d, func(screen []string) bool {
		all := strings.Join(screen, "\n")
		for _, t := range texts {
			if !strings.Contains(all, t) {
				return false
			}
		}
		return true
	})
}

// WaitExit waits until the command has exited and returns its exit status
// and the pane's last screen (read after the exit, so it is complete). A
// death by signal fails the test.
func (s *Session) WaitExit(d time.Duration) (int, []string) {
	s.t.Helper()
	status := -1
	deadline := time.Now().Add(d)
	s.WaitFor("the program's exit", d+5*time.Second, func([]string) bool {
		if time.Now().After(deadline) {
			s.diagnose()
		}
		out := strings.TrimSpace(s.tmux("display-message", "-p", "-t", "t", "#{pane_dead}:#{pane_dead_status}:#{pane_dead_signal}"))
		f := strings.Split(out, ":")
		if len(f) != 3 || f[0] != "1" {
			return false
		}
		if f[2] != "" && f[2] != "0" {
			s.t.Fatalf("the program died of signal %s; screen:\n%s", f[2], strings.Join(s.Screen(), "\n"))
		}
		_, err := fmt.Sscan(f[1], &status)
		return err == nil
	})
	return status, s.Screen()
}

// diagnose fails the test with the hung program's state and goroutines
// (SIGQUIT makes a Go program print them).
func (s *Session) diagnose() {
	s.t.Helper()
	pid := strings.TrimSpace(s.tmux("display-message", "-p", "-t", "t", "#{pane_pid}"))
	ps, _ := exec.Command("ps", "-o", "pid,stat,wchan:30,cmd", "-p", pid).CombinedOutput()
	_ = exec.Command("kill", "-QUIT", pid).Run()
	time.Sleep(time.Second) // let the dump reach the pane
	s.t.Fatalf("the program did not exit:\n%s\n%s", ps, s.tmux("capture-pane", "-p", "-S", "-", "-t", "t"))
}
