package collector

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Recordings are NDJSON files of snapshots, one per line, gzip-compressed
// when the name ends in .gz. `netsentinel record` writes them and `netsentinel
// replay` feeds them back through detection: the snapshot times are the
// detectors' clock, so a replay gives the same alerts every time.

// Recorder appends snapshots to a recording.
type Recorder struct {
	f  *os.File
	gz *gzip.Writer
	bw *bufio.Writer
	n  int
}

// CreateRecording creates (truncating) a recording file, mode 0600.
func CreateRecording(path string) (*Recorder, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("recording: %w", err)
	}
	r := &Recorder{f: f}
	var w io.Writer = f
	if strings.HasSuffix(path, ".gz") {
		r.gz = gzip.NewWriter(f)
		w = r.gz
	}
	r.bw = bufio.NewWriterSize(w, 256<<10)
	return r, nil
}

// Write appends one snapshot.
func (r *Recorder) Write(s *Snapshot) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("recording snapshot: %w", err)
	}
	b = append(b, '\n')
	if _, err := r.bw.Write(b); err != nil {
		return fmt.Errorf("recording %s: %w", r.f.Name(), err)
	}
	r.n++
	return nil
}

// Count is the number of snapshots written.
func (r *Recorder) Count() int { return r.n }

// Close flushes and closes the file.
func (r *Recorder) Close() error {
	err := r.bw.Flush()
	if r.gz != nil {
		if e := r.gz.Close(); err == nil {
			err = e
		}
	}
	if e := r.f.Sync(); err == nil {
		err = e
	}
	if e := r.f.Close(); err == nil {
		err = e
	}
	return err
}

// Replay is a Source that yields the snapshots of a recording in order and
// io.EOF after the last.
type Replay struct {
	c    io.Closer
	dec  *json.Decoder
	line int
	name string
	prev []Socket // the previous snapshot's sockets, for SameAs
}

// OpenReplay opens a recording.
func OpenReplay(path string) (*Replay, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	var r io.Reader = bufio.NewReaderSize(f, 256<<10)
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(r)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("replay %s: %w", path, err)
		}
		r = gz
	}
	return &Replay{c: f, dec: json.NewDecoder(r), name: path}, nil
}

// Collect returns the next recorded snapshot.
func (r *Replay) Collect(ctx context.Context) (*Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return nil, io.EOF
	}
	var s Snapshot
	r.line++
	if err := r.dec.Decode(&s); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("replay %s: snapshot %d: %w", r.name, r.line, err)
	}
	if s.Processes == nil {
		s.Processes = map[int32]*Process{}
	}
	// Seq and SameAs as the live source's tracker sets them (they are not
	// recorded): by cookie, against the previous snapshot.
	s.Seq = uint64(r.line)
	s.SameAs = LinkSameAs(r.prev, s.Sockets)
	r.prev = s.Sockets
	return &s, nil
}

// LinkSameAs returns Snapshot.SameAs for socks following prev, matching
// sockets by cookie (sockets without one are never the same).
func LinkSameAs(prev, socks []Socket) []int32 {
	at := make(map[uint64]int32, len(prev))
	for i := range prev {
		if c := prev[i].Cookie; c != 0 {
			at[c] = int32(i)
		}
	}
	same := make([]int32, len(socks))
	for i := range socks {
		same[i] = -1
		if k, ok := at[socks[i].Cookie]; ok && socks[i].Cookie != 0 && SameObservation(&socks[i], &prev[k]) {
			same[i] = k
		}
	}
	return same
}

// Close closes the file.
func (r *Replay) Close() error { return r.c.Close() }
