package collector

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// DefaultProcRoot is where procfs is mounted when nothing says otherwise.
const DefaultProcRoot = "/proc"

// Read caps. procfs reports a size of 0 for most files (and sometimes lies), so
// reads are bounded by these limits rather than by stat.
const (
	// maxProcFileBytes bounds a table file such as /proc/net/arp or
	// /proc/net/ipv6_route; 4 MiB is ~30k IPv6 routes.
	maxProcFileBytes = 4 << 20
	// maxSmallFileBytes bounds per-process and small config files
	// (/proc/<pid>/stat, status, /etc/resolv.conf, /proc/net/snmp).
	maxSmallFileBytes = 1 << 20
	// maxCmdlineBytes bounds one /proc/<pid>/cmdline. Linux allows argument
	// vectors of several MiB; what lies past this cap is dropped (the last
	// argument is then truncated).
	maxCmdlineBytes = 1 << 20
)

// ErrFileParse marks content that could not be parsed. Parse errors wrap it and
// name the file and line: errors.Is(err, ErrFileParse).
var ErrFileParse = errors.New("parse error")

// ErrFileTooLarge is returned (wrapped) with the first limit bytes when a
// file is larger than the cap it was read with.
var ErrFileTooLarge = errors.New("file larger than read cap")

// ProcRootFromEnv returns the procfs root to use: flag when non-empty, else
// $HOST_PROC when set, else "/proc".
//
// gopsutil (system metrics, and the whole source on other systems) reads
// HOST_PROC on its own. So that both agree, a non-empty flag is also exported
// as HOST_PROC for this process: a side effect on the environment, meant to be
// called once at start-up before any goroutine reads it.
func ProcRootFromEnv(flag string) string {
	if flag != "" {
		// Setenv only fails for a name or value holding NUL or '=' in the
		// name; a path with NUL would fail every later open anyway.
		_ = os.Setenv("HOST_PROC", flag)
		return flag
	}
	if v := os.Getenv("HOST_PROC"); v != "" {
		return v
	}
	return DefaultProcRoot
}

// procPath joins the proc root and a path under it ("net/arp").
func procPath(procRoot string, elem ...string) string {
	if procRoot == "" {
		procRoot = DefaultProcRoot
	}
	return filepath.Join(append([]string{procRoot}, elem...)...)
}

// readCappedFile reads at most limit bytes of path without trusting its size.
// When the file holds more, the first limit bytes are returned together with
// an error wrapping ErrFileTooLarge.
func readCappedFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readCapped(f, path, limit)
}

// readCappedBuf is readCappedFile reading into buf (grown as needed up to
// limit) to spare the allocations of a fresh buffer per file: the hot path
// of the process table. The returned slice aliases buf; copy what is kept.
func readCappedBuf(path string, buf []byte, limit int) ([]byte, error) {
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
			return buf[:limit], fmt.Errorf("read %s: %w (%d bytes)", path, ErrFileTooLarge, limit)
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf[:0], fmt.Errorf("read %s: %w", path, err)
		}
	}
}

func readCapped(r io.Reader, name string, limit int64) ([]byte, error) {
	// One byte more than the limit tells a full file from a cut one.
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(data)) > limit {
		return data[:limit], fmt.Errorf("read %s: %w (%d bytes)", name, ErrFileTooLarge, limit)
	}
	return data, nil
}

// lineError builds the error for one malformed line of a file.
func lineError(file string, line int, format string, args ...any) error {
	return fmt.Errorf("%s line %d: %w: %s", file, line, ErrFileParse, fmt.Sprintf(format, args...))
}

// maxLineErrors bounds how many malformed lines one parse reports; the rest
// are counted in a final summary error.
const maxLineErrors = 8

// lineErrors collects errors for malformed lines, keeping memory bounded.
type lineErrors struct {
	file    string
	errs    []error
	dropped int
}

func (l *lineErrors) add(line int, format string, args ...any) {
	if len(l.errs) >= maxLineErrors {
		l.dropped++
		return
	}
	l.errs = append(l.errs, lineError(l.file, line, format, args...))
}

func (l *lineErrors) err() error {
	if l.dropped > 0 {
		l.errs = append(l.errs, fmt.Errorf("%s: %w: %d more malformed lines", l.file, ErrFileParse, l.dropped))
	}
	return errors.Join(l.errs...)
}
