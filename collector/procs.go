package collector

import (
	"bufio"
	"bytes"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// procStat is what the collector uses of /proc/<pid>/stat.
type procStat struct {
	PID   int32
	Comm  string // the command name, at most 15 bytes, as the kernel keeps it
	State byte   // R, S, D, Z, T, ...
	PPID  int32
	PGID  int32 // field 5, the process group
	// Session is field 6, the session ID (the PID of the session leader).
	Session int32
	// TTY is field 7, tty_nr: the controlling terminal's device number in
	// the kernel's old encoding (see TTYDevice); 0 when there is none.
	TTY uint32
	// StartTicks is field 22: the start time in clock ticks after boot.
	StartTicks uint64
}

// parseProcStat parses /proc/<pid>/stat without allocating (beyond the
// command name). The command name sits between the first '(' and the LAST
// ')': it may itself hold spaces and parentheses, as in
// "42 (my (evil) proc) S 1 ...".
func parseProcStat(data []byte) (procStat, error) {
	var st procStat
	open := bytes.IndexByte(data, '(')
	closing := bytes.LastIndexByte(data, ')')
	if open < 0 || closing < open {
		return st, fmt.Errorf("stat: %w: no (comm)", ErrFileParse)
	}
	pid, ok := parseDecimal(bytes.TrimSpace(data[:open]), 1<<31-1)
	if !ok {
		return st, fmt.Errorf("stat: %w: bad pid %q", ErrFileParse, bytes.TrimSpace(data[:open]))
	}
	st.PID = int32(pid)
	// Fields after the comm, starting with field 3 (state); only the
	// state, ppid, pgrp, session, tty_nr and starttime are needed.
	const (
		ppidField  = 4 - 3 // then pgrp (5) and session (6)
		ttyField   = 7 - 3
		startField = 22 - 3
	)
	var fields [startField + 1][]byte
	n := 0
	for field := range bytes.FieldsSeq(data[closing+1:]) {
		fields[n] = field
		n++
		if n > startField {
			break
		}
	}
	if n <= startField {
		return st, fmt.Errorf("stat: %w: %d fields after comm, want at least %d", ErrFileParse, n, startField+1)
	}
	if len(fields[0]) != 1 {
		return st, fmt.Errorf("stat: %w: bad state %q", ErrFileParse, fields[0])
	}
	st.State = fields[0][0]
	var ids [3]int32 // ppid, pgrp, session
	for i, name := range [...]string{"ppid", "pgrp", "session"} {
		v, ok := parseDecimal(fields[ppidField+i], 1<<31-1)
		if !ok {
			return st, fmt.Errorf("stat: %w: bad %s %q", ErrFileParse, name, fields[ppidField+i])
		}
		ids[i] = int32(v)
	}
	st.PPID, st.PGID, st.Session = ids[0], ids[1], ids[2]
	// tty_nr is printed as a signed int; a device number never is negative.
	tty, ok := parseDecimal(fields[ttyField], 1<<32-1)
	if !ok {
		return st, fmt.Errorf("stat: %w: bad tty_nr %q", ErrFileParse, fields[ttyField])
	}
	st.TTY = uint32(tty)
	st.StartTicks, ok = parseDecimal(fields[startField], 1<<64-1)
	if !ok {
		return st, fmt.Errorf("stat: %w: bad starttime %q", ErrFileParse, fields[startField])
	}
	st.Comm = validUTF8(string(data[open+1 : closing]))
	return st, nil
}

// parseDecimal parses an unsigned decimal of at most max, without
// allocating; no sign, no spaces, no empty string.
func parseDecimal(b []byte, max uint64) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (max-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// TTYDevice splits a tty_nr (Process.TTY) into the device's major and minor
// numbers (the kernel's old_encode_dev: minor bits 0-7 and 20-31, major bits
// 8-19).
func TTYDevice(tty uint32) (major, minor uint32) {
	return (tty >> 8) & 0xfff, (tty & 0xff) | ((tty >> 12) & 0xfff00)
}

// PTSIndex returns N when tty_nr is the pseudo-terminal /dev/pts/N (Unix98
// pty slaves, majors 136-143).
func PTSIndex(tty uint32) (int, bool) {
	major, minor := TTYDevice(tty)
	if tty == 0 || major < 136 || major > 143 {
		return 0, false
	}
	return int((major-136)<<20 | minor), true
}

// procStatus is what the collector uses of /proc/<pid>/status.
type procStatus struct {
	Name string
	PPID int32
	// UIDs are the real, effective, saved and filesystem user IDs.
	UIDs [4]uint32
}

// parseProcStatus parses /proc/<pid>/status ("Key:\tvalue" lines). Name,
// PPid and Uid are required; other keys are ignored.
func parseProcStatus(data []byte) (procStatus, error) {
	var st procStatus
	var haveName, havePPID, haveUID bool
	lineNo := 0
	for line := range bytes.Lines(data) {
		lineNo++
		key, val, ok := bytes.Cut(bytes.TrimSuffix(line, []byte("\n")), []byte(":"))
		if !ok {
			continue
		}
		switch string(key) {
		case "Name":
			// The kernel escapes '\n' and '\\' in this line; Name is
			// kept as written there.
			st.Name = validUTF8(string(bytes.TrimPrefix(val, []byte("\t"))))
			haveName = true
		case "PPid":
			v, err := strconv.ParseInt(string(bytes.TrimSpace(val)), 10, 32)
			if err != nil || v < 0 {
				return st, lineError("status", lineNo, "bad PPid %q", val)
			}
			st.PPID = int32(v)
			havePPID = true
		case "Uid":
			i := 0
			for f := range bytes.FieldsSeq(val) {
				if i == len(st.UIDs) {
					i++
					break
				}
				v, err := strconv.ParseUint(string(f), 10, 32)
				if err != nil {
					return st, lineError("status", lineNo, "bad Uid %q", f)
				}
				st.UIDs[i] = uint32(v)
				i++
			}
			if i != len(st.UIDs) {
				return st, lineError("status", lineNo, "Uid wants 4 values: %q", val)
			}
			haveUID = true
		}
		if haveName && havePPID && haveUID {
			break
		}
	}
	if !haveName || !havePPID || !haveUID {
		return st, fmt.Errorf("status: %w: missing Name, PPid or Uid", ErrFileParse)
	}
	return st, nil
}

// parseCmdline splits /proc/<pid>/cmdline into arguments. Arguments are
// NUL-terminated; a missing final NUL (a cut read, or a process that rewrote
// its argv) still yields the last argument. Empty arguments in the middle are
// kept, trailing NULs are not. Invalid UTF-8 is replaced by U+FFFD so that
// what detectors match is what the JSON output shows; newlines are kept.
// Kernel threads and zombies have an empty cmdline: nil.
func parseCmdline(data []byte) []string {
	data = bytes.TrimRight(data, "\x00")
	if len(data) == 0 {
		return nil
	}
	parts := strings.Split(string(data), "\x00")
	for i, p := range parts {
		parts[i] = validUTF8(p)
	}
	return parts
}

// parseBootTime returns the "btime" line of /proc/stat: the boot time in
// seconds since the Unix epoch.
func parseBootTime(data []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), maxProcFileBytes)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte("btime")) {
			continue
		}
		f := strings.Fields(string(line))
		if len(f) != 2 || f[0] != "btime" {
			return 0, lineError("stat", lineNo, "bad btime line %q", line)
		}
		v, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || v <= 0 {
			return 0, lineError("stat", lineNo, "bad btime %q", f[1])
		}
		return v, nil
	}
	if err := sc.Err(); err != nil {
		return 0, lineError("stat", lineNo+1, "%v", err)
	}
	return 0, fmt.Errorf("stat: %w: no btime line", ErrFileParse)
}

// parseUptime returns the first number of /proc/uptime ("350.27 690.12"):
// the time since boot, in seconds with two decimals.
func parseUptime(data []byte) (time.Duration, error) {
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0, fmt.Errorf("uptime: %w: empty", ErrFileParse)
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil || !(v >= 0 && v <= 1e9) { // ~31 years; NaN fails too
		return 0, fmt.Errorf("uptime: %w: bad value %q", ErrFileParse, f[0])
	}
	return time.Duration(v * float64(time.Second)), nil
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// processName is the command name, completed from the command line or exe
// when the kernel cut it at 15 bytes.
func processName(comm string, cmdline []string, exe string) string {
	const taskCommLen = 15
	if len(comm) < taskCommLen {
		return comm
	}
	for _, cand := range []string{exe, firstArg(cmdline)} {
		base := filepath.Base(strings.TrimSuffix(cand, " (deleted)"))
		if cand != "" && len(base) > len(comm) && strings.HasPrefix(base, comm) {
			return base
		}
	}
	return comm
}

func firstArg(cmdline []string) string {
	if len(cmdline) == 0 {
		return ""
	}
	// Some programs rewrite argv[0] to a space-separated title.
	first, _, _ := strings.Cut(cmdline[0], " ")
	return first
}
