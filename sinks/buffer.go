package sinks

import (
	"errors"
	"fmt"
	"sync"
)

// Buffer types, the `buffer.type` of a sink.
const (
	BufferMemory = "memory" // bounded in-memory queue: lost on a crash
	BufferDisk   = "disk"   // the on-disk spool: survives crashes and restarts
)

// Buffer holds one sink's undelivered events in publication order. The
// Runner puts events in, and its worker peeks the oldest batch, writes it
// to the sink and acknowledges it: one buffer, one loop. Implementations
// are safe for concurrent use; only one goroutine (the worker) calls Peek
// and Ack.
type Buffer interface {
	// Put appends events. When they do not fit, nothing is appended and
	// the error wraps ErrBufferFull (memory) or ErrSpoolFull (disk).
	Put(events []Event) error
	// Peek returns up to max of the oldest events without removing them.
	Peek(max int) ([]Event, error)
	// Ack removes the first n events of the last Peek.
	Ack(n int) error
	// Len is the number of events held (peeked but not acknowledged included).
	Len() int
	// Bytes is the space the events take (memory: body bytes; disk: file bytes).
	Bytes() int64
	// Durable reports whether the events survive a crash of the process.
	// A durable buffer keeps what a sink refuses until it is fixed or the
	// next run; a memory buffer drops it (counted) after max_retries.
	Durable() bool
	// Close releases the buffer; a durable one keeps its events on disk.
	Close() error
}

// BufferConfig is the `buffer` section of the config: the buffer type of
// every sink that does not choose its own with `?buffer=` (stdout always
// keeps memory unless its spec says otherwise).
type BufferConfig struct {
	Type string `yaml:"type"` // memory, disk, or empty for each kind's default
}

// Validate rejects an unknown type, naming the key.
func (c BufferConfig) Validate() error {
	switch c.Type {
	case "", BufferMemory, BufferDisk:
		return nil
	}
	return fmt.Errorf("buffer.type: unknown value %q (want memory or disk)", c.Type)
}

// BufferType is the buffer a sink gets: its spec's option, else the
// config's type (except for stdout), else the kind's registered default:
// disk for the network sinks (crash-safe by default), memory for stdout and
// file (a local file gains nothing from a second copy on the same disk).
func BufferType(spec Spec, cfg BufferConfig) string {
	if spec.Options.Buffer != "" {
		return spec.Options.Buffer
	}
	k, ok := lookupKind(spec.Kind)
	switch {
	case !ok:
		return BufferMemory
	case cfg.Type != "" && !k.NoConfigBuffer:
		return cfg.Type
	default:
		return k.Buffer
	}
}

// ErrBufferFull is returned by MemoryBuffer.Put when the queue is full.
var ErrBufferFull = errors.New("buffer full")

// MemoryBuffer is a bounded FIFO of events in memory: a ring that grows
// (into a new array, so a peeked batch is never overwritten) up to its cap.
type MemoryBuffer struct {
	mu    sync.Mutex
	max   int
	ring  []Event
	head  int // index of the oldest event
	n     int // events held
	bytes int64
}

// NewMemoryBuffer holds up to max events (DefaultQueueSize when max <= 0).
func NewMemoryBuffer(max int) *MemoryBuffer {
	if max <= 0 {
		max = DefaultQueueSize
	}
	return &MemoryBuffer{max: max}
}

// Put appends events, or none of them when they would exceed the cap.
func (b *MemoryBuffer) Put(events []Event) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.n+len(events) > b.max {
		return ErrBufferFull
	}
	for _, e := range events {
		b.pushLocked(e)
	}
	return nil
}

// push appends one event; false when the buffer is full. It is Put
// without the slice (Publish's path: no allocation).
func (b *MemoryBuffer) push(e Event) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.n >= b.max {
		return false
	}
	b.pushLocked(e)
	return true
}

func (b *MemoryBuffer) pushLocked(e Event) {
	if b.n == len(b.ring) {
		grown := make([]Event, min(max(2*len(b.ring), 64), b.max))
		k := copy(grown, b.ring[b.head:])
		copy(grown[k:], b.ring[:b.head])
		b.ring, b.head = grown, 0
	}
	b.ring[(b.head+b.n)%len(b.ring)] = e
	b.n++
	b.bytes += int64(len(e.Body))
}

// Peek returns up to max of the oldest events, stopping at the ring's wrap
// point. The slice shares the ring (no copy); it stays valid until Ack.
func (b *MemoryBuffer) Peek(max int) ([]Event, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := min(max, b.n, len(b.ring)-b.head)
	if k <= 0 {
		return nil, nil
	}
	return b.ring[b.head : b.head+k : b.head+k], nil
}

// Ack removes the n oldest events.
func (b *MemoryBuffer) Ack(n int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.n {
		return fmt.Errorf("memory buffer: ack of %d events but only %d held", n, b.n)
	}
	for range n {
		b.bytes -= int64(len(b.ring[b.head].Body))
		b.ring[b.head] = Event{} // let the body be collected
		b.head = (b.head + 1) % len(b.ring)
		b.n--
	}
	return nil
}

// Len is the number of events held.
func (b *MemoryBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

// Bytes is the size of the held event bodies.
func (b *MemoryBuffer) Bytes() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bytes
}

// Durable is false: a crash loses what the buffer holds.
func (b *MemoryBuffer) Durable() bool { return false }

// Close is a no-op: the runner accounts for what is left.
func (b *MemoryBuffer) Close() error { return nil }
