package sinks

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// DeadLetter is a local NDJSON file of events a sink rejected permanently
// (mapping errors, oversized messages). Each line holds the time, the sink,
// the reason and the original event, so nothing is lost silently and an
// operator can replay the file after fixing the cause. Mode 0600.
type DeadLetter struct {
	mu   sync.Mutex
	path string
	f    *os.File
}

// OpenDeadLetter opens (creating, appending) the dead-letter file at path.
func OpenDeadLetter(path string) (*DeadLetter, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("dead-letter directory %s: %w", filepath.Dir(path), err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("dead-letter file: %w", err)
	}
	return &DeadLetter{path: path, f: f}, nil
}

// deadLetterRecord is one line of the dead-letter file.
type deadLetterRecord struct {
	Time   time.Time       `json:"time"`
	Sink   string          `json:"sink"`
	Reason string          `json:"reason"`
	ID     string          `json:"event_id"`
	Event  json.RawMessage `json:"event"`
}

// Write appends ev with the reason it was rejected.
func (d *DeadLetter) Write(sink string, ev Event, reason string) error {
	body := json.RawMessage(ev.Body)
	if !json.Valid(body) {
		// Keep the bytes, as a JSON string, rather than corrupting the file.
		b, _ := json.Marshal(string(ev.Body))
		body = b
	}
	line, err := json.Marshal(deadLetterRecord{Time: time.Now().UTC(), Sink: sink, Reason: reason, ID: ev.ID, Event: body})
	if err != nil {
		return err
	}
	line = append(line, '\n')
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		return fmt.Errorf("dead-letter write %s: %w", d.path, os.ErrClosed)
	}
	if _, err := d.f.Write(line); err != nil {
		return fmt.Errorf("dead-letter write %s: %w", d.path, err)
	}
	return nil
}

// Path is the file's location.
func (d *DeadLetter) Path() string { return d.path }

// Close closes the file; later calls do nothing.
func (d *DeadLetter) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		return nil
	}
	err := d.f.Close()
	d.f = nil
	return err
}
