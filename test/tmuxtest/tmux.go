//go:build linux

// Package tmuxtest drives a terminal program inside a private tmux server:
// start it at a given size, send keys, resize, read the screen
// (capture-pane) and wait for screen content with a deadline.
package tmuxtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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
		s.stop()
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

// stop kills the pane's process if it is still running when the test ends
// (a failed test): kill-server only hangs it up, and a program that takes
// SIGHUP as "reload", as netsentinel does, would outlive the test.
func (s *Session) stop() {
	out, err := exec.Command("tmux", "-S", s.sock, "display-message", "-p", "-t", "t",
		"#{pane_dead}:#{pane_dead_status}:#{pane_dead_signal}:#{pane_pid}").Output()
	if err != nil {
		return // no server: nothing runs
	}
	// Running and not reaped by tmux: the pid is still the pane's.
	f := strings.Split(strings.TrimSpace(string(out)), ":")
	if n, err := strconv.Atoi(f[len(f)-1]); err == nil && n > 1 && len(f) == 4 && f[0] == "0" && f[1] == "" && f[2] == "" {
		_ = syscall.Kill(n, syscall.SIGKILL)
	}
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
//
// tmux can lose the SIGCHLD of a pane's process: Debian's tmux 3.3a is
// built with libutempter, whose helper runs with SIGCHLD at its default
// (discarded) while tmux removes the pane's utmp record, which it does when
// the pty reaches EOF, that is as the process exits. Under load the exit
// falls in that window: the pane is dead, the process a zombie, and
// #{pane_dead_status} stays empty for ever (tmux issues 311 and 4559). A
// SIGCHLD to our own tmux server makes it reap the process and record the
// status, so WaitExit sends one whenever the pane is dead or its process a
// zombie and the status is still unknown.
func (s *Session) WaitExit(d time.Duration) (int, []string) {
	s.t.Helper()
	status := -1
	deadline := time.Now().Add(d)
	nudged := false
	s.WaitFor("the program's exit", d+5*time.Second, func([]string) bool {
		if time.Now().After(deadline) {
			s.diagnose()
		}
		p := s.pane()
		if !p.dead && !zombie(p.pid) {
			return false
		}
		if p.signal != "" && p.signal != "0" {
			s.t.Fatalf("the program died of signal %s; screen:\n%s", p.signal, strings.Join(s.Screen(), "\n"))
		}
		if p.status == "" {
			if !nudged {
				s.t.Logf("tmuxtest: the program has exited but tmux has no exit status yet (pane dead %v, zombie %v): sending SIGCHLD to the tmux server", p.dead, zombie(p.pid))
				nudged = true
			}
			s.reap()
			return false
		}
		_, err := fmt.Sscan(p.status, &status)
		return err == nil
	})
	return status, s.Screen()
}

// Hangup closes the terminal under the program, as a dropped ssh session or
// a closed terminal window does (the server goes: SIGHUP, then end of
// input), and waits until the program has ended, failing the test after d.
func (s *Session) Hangup(d time.Duration) {
	s.t.Helper()
	pid := s.pane().pid
	s.tmux("kill-server")
	deadline := time.Now().Add(d)
	for {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); os.IsNotExist(err) || zombie(pid) {
			return
		}
		if time.Now().After(deadline) {
			ps, _ := exec.Command("ps", "-o", "pid,ppid,stat,wchan:30,cmd", "-p", strconv.Itoa(pid)).CombinedOutput()
			_ = syscall.Kill(pid, syscall.SIGKILL)
			s.t.Fatalf("the program still ran %s after its terminal closed:\n%s", d, ps)
		}
		time.Sleep(50 * time.Millisecond) // a poll step
	}
}

// paneInfo is what tmux knows of the pane's process.
type paneInfo struct {
	dead           bool
	status, signal string // exit status or signal, once tmux has reaped it
	pid            int
}

func (s *Session) pane() paneInfo {
	s.t.Helper()
	out := strings.TrimSpace(s.tmux("display-message", "-p", "-t", "t", "#{pane_dead}:#{pane_dead_status}:#{pane_dead_signal}:#{pane_pid}"))
	f := strings.Split(out, ":")
	if len(f) != 4 {
		s.t.Fatalf("tmux pane state %q: want dead:status:signal:pid", out)
	}
	pid, _ := strconv.Atoi(f[3])
	return paneInfo{dead: f[0] == "1", status: f[1], signal: f[2], pid: pid}
}

// reap sends SIGCHLD to this session's tmux server (never another one), so
// it collects an exited pane process whose SIGCHLD it lost.
func (s *Session) reap() {
	s.t.Helper()
	pid, err := strconv.Atoi(strings.TrimSpace(s.tmux("display-message", "-p", "#{pid}")))
	if err != nil || pid <= 1 {
		s.t.Fatalf("tmux server pid: %v", err)
	}
	_ = syscall.Kill(pid, syscall.SIGCHLD)
}

// zombie reports whether process pid has exited and waits to be reaped.
func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	return i >= 0 && i+2 < len(b) && b[i+2] == 'Z'
}

// diagnose fails the test with the hung program's state and goroutines
// (SIGQUIT makes a Go program print them and exit).
func (s *Session) diagnose() {
	s.t.Helper()
	p := s.pane()
	ps, _ := exec.Command("ps", "-o", "pid,ppid,stat,wchan:30,cmd", "-p", strconv.Itoa(p.pid)).CombinedOutput()
	if zombie(p.pid) {
		s.t.Fatalf("the program exited but tmux did not reap it, even after SIGCHLD:\n%s\n%s", ps, s.tmux("capture-pane", "-p", "-S", "-", "-t", "t"))
	}
	_ = syscall.Kill(p.pid, syscall.SIGQUIT)
	// Wait for the dump: the program exits once it is written.
	until := time.Now().Add(10 * time.Second)
	for !s.pane().dead && !zombie(p.pid) && time.Now().Before(until) {
		time.Sleep(50 * time.Millisecond) // a poll step
	}
	s.t.Fatalf("the program did not exit:\n%s\n%s", ps, s.tmux("capture-pane", "-p", "-S", "-", "-t", "t"))
}
