// Package e2e runs the built netsentinel binary against real traffic in
// network namespaces (see test/netns) and checks what a user sees: alerts on
// stdout and the report on disk.
package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "netsentinel-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// World-readable, so the unprivileged test can run the binary as nobody.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "netsentinel")
	build := exec.Command("go", "build", "-o", binary, "./cmd/netsentinel")
	build.Dir = repoRoot()
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building netsentinel:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func repoRoot() string {
	wd, _ := os.Getwd()
	for d := wd; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil && !strings.Contains(d, "test/servers") {
			if b, _ := os.ReadFile(filepath.Join(d, "go.mod")); strings.Contains(string(b), "module github.com/netsentinel/netsentinel\n") {
				return d
			}
		}
	}
	return wd
}

// eventStream collects NDJSON lines from the sensor's stdout.
type eventStream struct {
	mu     sync.Mutex
	events []map[string]any
	bad    []string
	cond   chan struct{}
}

func readEvents(t *testing.T, r io.Reader) *eventStream {
	s := &eventStream{cond: make(chan struct{}, 1)}
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var m map[string]any
			line := sc.Text()
			s.mu.Lock()
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				s.bad = append(s.bad, line)
			} else {
				s.events = append(s.events, m)
			}
			s.mu.Unlock()
			select {
			case s.cond <- struct{}{}:
			default:
			}
		}
	}()
	return s
}

// waitFor waits until an event matching fn arrives, or fails the test.
func (s *eventStream) waitFor(t *testing.T, what string, d time.Duration, fn func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.After(d)
	for {
		s.mu.Lock()
		for _, e := range s.events {
			if fn(e) {
				s.mu.Unlock()
				return e
			}
		}
		n := len(s.events)
		s.mu.Unlock()
		select {
		case <-s.cond:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no %s within %s (%d events seen)", what, d, n)
		}
	}
}

func (s *eventStream) badLines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.bad...)
}

// field reads a dotted path from a nested JSON object.
func field(m map[string]any, path string) any {
	var cur any = m
	for _, p := range strings.Split(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = obj[p]
	}
	return cur
}

// hasString reports whether the field (a string or an array of strings)
// contains want.
func hasString(m map[string]any, path, want string) bool {
	switch v := field(m, path).(type) {
	case string:
		return v == want
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok && s == want {
				return true
			}
		}
	}
	return false
}

// syncBuffer is an io.Writer safe for a process's output and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
