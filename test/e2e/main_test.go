// Package e2e runs the built netsentinel binary against real traffic in
// network namespaces (see test/netns) and checks what a user sees: alerts on
// stdout and the report on disk.
package e2e

import (
	"strings"
	"sync"
	"testing"

	"github.com/netsentinel/netsentinel/test/sensortest"
)

var binary string

func TestMain(m *testing.M) { sensortest.Main(m, "netsentinel-e2e", &binary, nil) }

// Shared with test/scenarios (test/sensortest).
var (
	readEvents = sensortest.ReadEvents
	field      = sensortest.Field
	hasString  = sensortest.HasString
)

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
