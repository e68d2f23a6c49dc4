package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
)

// Stdout writes events as NDJSON to a writer (normally os.Stdout): one
// compact object per line, one write per event, nothing held back between
// events, so `netsentinel | jq` shows alerts as they are detected.
//
// A closed reader (EPIPE, e.g. `netsentinel | head`) is a permanent error:
// the runner drops and counts the batch and the process keeps running.
// The Go runtime kills a process writing to a broken pipe on fd 1 unless
// SIGPIPE is ignored or notified: main must call signal.Ignore(syscall.SIGPIPE)
// (or signal.Notify for it) for this error to reach the sink.
type Stdout struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

// NewStdout returns a sink writing to w. If w has a Flush() error method
// (a bufio.Writer), it is flushed after every event.
func NewStdout(w io.Writer) *Stdout { return &Stdout{w: w} }

// Name is "stdout".
func (s *Stdout) Name() string { return KindStdout }

type flusher interface{ Flush() error }

// Write writes each event's Body followed by "\n", flushing per event. On a
// write error the events not yet written are Retry, with an error wrapping
// ErrPermanent for EPIPE (nobody is reading any more).
func (s *Stdout) Write(ctx context.Context, batch []Event) ([]Outcome, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, ev := range batch {
		if err := ctx.Err(); err != nil {
			return retryRest(batch, i, err)
		}
		s.buf = appendLine(s.buf[:0], ev.Body)
		_, err := s.w.Write(s.buf)
		if err == nil {
			if f, ok := s.w.(flusher); ok {
				err = f.Flush()
			}
		}
		if err != nil {
			if errors.Is(err, syscall.EPIPE) {
				return retryRest(batch, i, fmt.Errorf("stdout: reader went away: %w: %w", ErrPermanent, err))
			}
			return retryRest(batch, i, fmt.Errorf("stdout: %w", err))
		}
	}
	if cap(s.buf) > 1<<20 {
		s.buf = nil // do not keep one huge event's buffer forever
	}
	return retryRest(batch, len(batch), nil)
}

// Close flushes a buffered writer; it never closes w.
func (s *Stdout) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.w.(flusher); ok {
		return f.Flush()
	}
	return nil
}

// appendLine appends body and a newline to dst, keeping the record on one
// line: a body holding a raw newline (not compact JSON) is compacted, and if
// it is not JSON its CR/LF bytes are replaced by spaces.
func appendLine(dst, body []byte) []byte {
	if bytes.IndexAny(body, "\r\n") < 0 {
		return append(append(dst, body...), '\n')
	}
	start := len(dst)
	var b bytes.Buffer
	if err := json.Compact(&b, body); err == nil && bytes.IndexAny(b.Bytes(), "\r\n") < 0 {
		return append(append(dst, b.Bytes()...), '\n')
	}
	dst = append(dst, body...)
	for i := start; i < len(dst); i++ {
		if dst[i] == '\n' || dst[i] == '\r' {
			dst[i] = ' '
		}
	}
	return append(dst, '\n')
}
