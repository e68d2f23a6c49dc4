// Package fsutil holds the file helpers shared by collector, detect, schemas
// and sinks: reads capped at a size the caller chooses (files under /proc
// report size 0 and downloads can be any size, so no read trusts a stat) and
// an atomic, fsync'd file replacement.
package fsutil

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrTooLarge is returned (wrapped) when the input holds more than the cap.
var ErrTooLarge = errors.New("larger than the read cap")

// ReadCapped reads r to its end, but at most limit bytes. When r holds more,
// it returns the first limit bytes together with an error wrapping
// ErrTooLarge; callers that must not use cut data drop them. Errors name name
// (a path, "relay list download", ...).
func ReadCapped(r io.Reader, name string, limit int64) ([]byte, error) {
	// One byte more than the limit tells a full input from a cut one.
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(data)) > limit {
		return data[:limit], tooLarge(name, limit)
	}
	return data, nil
}

// ReadFileCapped is ReadCapped on the file at path.
func ReadFileCapped(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadCapped(f, path, limit)
}

// ReadFileCappedBuf is ReadFileCapped reading into buf (grown as needed up to
// limit) to spare the allocation of a fresh buffer per file on hot paths
// such as the process table. The returned slice aliases buf; copy what is
// kept. Open errors are returned unwrapped (errors.Is(err, os.ErrNotExist)).
func ReadFileCappedBuf(path string, buf []byte, limit int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return buf[:0], err
	}
	defer f.Close()
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // grow
		}
		n, err := f.Read(buf[len(buf):min(cap(buf), limit+1)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			return buf[:limit], tooLarge(path, int64(limit))
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf[:0], fmt.Errorf("read %s: %w", path, err)
		}
	}
}

func tooLarge(name string, limit int64) error {
	return fmt.Errorf("read %s: %w of %d bytes", name, ErrTooLarge, limit)
}
