// Package sensortest holds what the end-to-end and scenario tests share:
// building the netsentinel binary once per test binary, and reading its
// NDJSON alerts from stdout as they arrive.
package sensortest

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

// RepoRoot is the directory of this module's go.mod, found from the working
// directory (go test runs in the package's directory).
func RepoRoot() string {
	wd, _ := os.Getwd()
	for d := wd; d != "/"; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/netsentinel/netsentinel\n") {
			return d
		}
	}
	return wd
}

// Main builds the binary into *bin, runs the tests, calls after (if any)
// with the exit code to get the final one, removes the binary and exits:
// the whole TestMain of a suite that drives netsentinel.
func Main(m *testing.M, prefix string, bin *string, after func(code int) int) {
	b, dir, err := BuildBinary(prefix)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	*bin = b
	code := m.Run()
	if after != nil {
		code = after(code)
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// BuildBinary builds ./cmd/netsentinel into a new world-readable temporary
// directory (so tests can also run it as an unprivileged user) and returns
// the binary's path; remove the directory when done.
func BuildBinary(prefix string) (bin, dir string, err error) {
	dir, err = os.MkdirTemp("", prefix)
	if err != nil {
		return "", "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", dir, err
	}
	bin = filepath.Join(dir, "netsentinel")
	build := exec.Command("go", "build", "-o", bin, "./cmd/netsentinel")
	build.Dir = RepoRoot()
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return "", dir, fmt.Errorf("building netsentinel: %w", err)
	}
	return bin, dir, nil
}

// Event is one NDJSON line from the sensor's stdout and when it arrived.
type Event struct {
	At time.Time
	M  map[string]any
}

// EventStream collects NDJSON lines from the sensor's stdout.
type EventStream struct {
	mu     sync.Mutex
	events []Event
	bad    []string
	cond   chan struct{}
}

func ReadEvents(r io.Reader) *EventStream {
	s := &EventStream{cond: make(chan struct{}, 1)}
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			now := time.Now()
			var m map[string]any
			line := sc.Text()
			s.mu.Lock()
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				s.bad = append(s.bad, line)
			} else {
				s.events = append(s.events, Event{At: now, M: m})
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

// WaitFor waits until an event matching fn arrives (or has arrived), or fails
// the test. It returns the event and its arrival time.
func (s *EventStream) WaitFor(t *testing.T, what string, d time.Duration, fn func(map[string]any) bool) (map[string]any, time.Time) {
	t.Helper()
	deadline := time.After(d)
	for {
		s.mu.Lock()
		for _, e := range s.events {
			if fn(e.M) {
				s.mu.Unlock()
				return e.M, e.At
			}
		}
		n := len(s.events)
		s.mu.Unlock()
		select {
		case <-s.cond:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no %s within %s (%d events seen: %s)", what, d, n, s.Summary())
		}
	}
}

// Arrivals returns the events received so far with their arrival times.
func (s *EventStream) Arrivals() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

// All returns the events received so far.
func (s *EventStream) All() []map[string]any {
	evs := s.Arrivals()
	out := make([]map[string]any, len(evs))
	for i, e := range evs {
		out[i] = e.M
	}
	return out
}

// Summary names the events seen, for failure messages.
func (s *EventStream) Summary() string {
	var parts []string
	for _, e := range s.All() {
		parts = append(parts, Describe(e))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}

func (s *EventStream) BadLines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.bad...)
}

// Describe is a one-line summary of an alert.
func Describe(e map[string]any) string {
	return fmt.Sprintf("%v %v src=%v:%v dst=%v:%v proc=%v (%v)", Field(e, "rule.id"), Techniques(e),
		Field(e, "source.ip"), Field(e, "source.port"), Field(e, "destination.ip"), Field(e, "destination.port"),
		Field(e, "process.name"), Field(e, "message"))
}

// Field reads a dotted path from a nested JSON object.
func Field(m map[string]any, path string) any {
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

func Str(m map[string]any, path string) string {
	s, _ := Field(m, path).(string)
	return s
}

// HasString reports whether the field (a string or an array of strings)
// contains want.
func HasString(m map[string]any, path, want string) bool {
	switch v := Field(m, path).(type) {
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

// Techniques lists the technique and sub-technique ids of an alert.
func Techniques(e map[string]any) []string {
	var out []string
	for _, p := range []string{"threat.technique.id", "threat.technique.subtechnique.id"} {
		switch v := Field(e, p).(type) {
		case string:
			out = append(out, v)
		case []any:
			for _, x := range v {
				if s, ok := x.(string); ok {
					out = append(out, s)
				}
			}
		}
	}
	return out
}
