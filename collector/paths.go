package collector

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// defaultProcRoot is where procfs is mounted when nothing says otherwise.
const defaultProcRoot = "/proc"

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
	return defaultProcRoot
}

// procPath joins the proc root and a path under it ("net/arp").
func procPath(procRoot string, elem ...string) string {
	if procRoot == "" {
		procRoot = defaultProcRoot
	}
	return filepath.Join(append([]string{procRoot}, elem...)...)
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
