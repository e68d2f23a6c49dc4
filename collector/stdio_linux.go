//go:build linux

package collector

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// stdioNames are the NUL-terminated names of fds 0, 1 and 2.
var stdioNames = [3][]byte{[]byte("0\x00"), []byte("1\x00"), []byte("2\x00")}

// maxFDLink is the longest fd link target kept; a longer path is cut (only
// its kind matters to detectors).
const maxFDLink = 128

// readStdioFDs reads what fds 0-2 under dirfd (an open /proc/<pid>/fd) point
// to. It returns nil, without allocating, when none of them is a socket,
// pipe, FIFO or terminal (a daemon on /dev/null or log files), so that only
// processes worth a look carry a Stdio list.
func (c *pidCache) readStdioFDs(dirfd int) []StdioFD {
	var (
		links [3][maxFDLink]byte
		lens  [3]int
		fds   [3]StdioFD
	)
	interesting := false
	n := 0
	for fd, name := range stdioNames {
		r, _, e := unix.Syscall6(unix.SYS_READLINKAT, uintptr(dirfd), uintptr(unsafe.Pointer(&name[0])),
			uintptr(unsafe.Pointer(&links[n][0])), maxFDLink, 0, 0)
		if e != 0 {
			continue // closed fd
		}
		link := links[n][:r]
		f := StdioFD{FD: fd, Kind: fdLinkKind(link)}
		switch f.Kind {
		case StdioSocket:
			f.Inode, _ = parseSocketLink(link)
			if !c.isInetSocket(f.Inode) {
				f.Kind = StdioUnix
			}
		case StdioPipe:
			f.Inode, _ = parseBracketLink(link, "pipe:[")
		case StdioFile:
			var st unix.Stat_t
			// fstatat follows the fd link to the open file itself.
			if unix.Fstatat(dirfd, stdioPath[fd], &st, 0) == nil && st.Mode&unix.S_IFMT == unix.S_IFIFO {
				f.Kind, f.Inode = StdioFIFO, st.Ino
			}
		}
		if f.Kind != StdioNull && f.Kind != StdioFile {
			interesting = true
		}
		lens[n] = int(r)
		fds[n] = f
		n++
	}
	if !interesting {
		return nil
	}
	out := make([]StdioFD, n)
	copy(out, fds[:n])
	for i := range out {
		switch out[i].Kind {
		case StdioPTY, StdioPTMX, StdioTTY, StdioFIFO, StdioFile:
			out[i].Path = validUTF8(string(links[i][:lens[i]]))
		}
	}
	return out
}

var stdioPath = [3]string{"0", "1", "2"}

// fdLinkKind classifies the target of a /proc/<pid>/fd link. StdioSocket
// (TCP/UDP of the dump, or else StdioUnix) and StdioFile (or a FIFO) are
// refined by the caller.
func fdLinkKind(link []byte) string {
	if _, ok := parseSocketLink(link); ok {
		return StdioSocket
	}
	if _, ok := parseBracketLink(link, "pipe:["); ok {
		return StdioPipe
	}
	switch {
	case string(link) == "/dev/null":
		return StdioNull
	case string(link) == "/dev/ptmx" || string(link) == "/dev/pts/ptmx":
		return StdioPTMX
	case bytes.HasPrefix(link, []byte("/dev/pts/")):
		if _, ok := parseDecimal(link[len("/dev/pts/"):], 1<<31-1); ok {
			return StdioPTY
		}
	case string(link) == "/dev/console" || bytes.HasPrefix(link, []byte("/dev/tty")):
		return StdioTTY
	}
	return StdioFile
}

// parseBracketLink parses "<prefix>N]", as in "pipe:[12345]".
func parseBracketLink(b []byte, prefix string) (uint64, bool) {
	if len(b) < len(prefix)+2 || string(b[:len(prefix)]) != prefix || b[len(b)-1] != ']' {
		return 0, false
	}
	return parseDecimal(b[len(prefix):len(b)-1], 1<<64-1)
}

// stdioSockets returns the TCP/UDP socket inodes of fds.
func stdioSockets(fds []StdioFD) []uint64 {
	var out []uint64
	for _, f := range fds {
		if f.Kind == StdioSocket {
			out = append(out, f.Inode)
		}
	}
	return out
}

// ptyMasterHolder returns the first of candidates that holds the master side
// of /dev/pts/n (a /dev/ptmx fd whose fdinfo says tty-index n), or 0. Each
// candidate's fd directory is read in full: this runs once per process on a
// pty, for at most two candidates.
func ptyMasterHolder(root string, n int, candidates ...int32) int32 {
	want := []byte("tty-index:\t" + strconv.Itoa(n) + "\n")
	for _, pid := range candidates {
		if pid <= 1 {
			continue
		}
		dir := filepath.Join(root, strconv.Itoa(int(pid)))
		ents, err := os.ReadDir(filepath.Join(dir, "fd"))
		if err != nil {
			continue
		}
		for i, e := range ents {
			if i >= 4096 {
				break
			}
			link, err := os.Readlink(filepath.Join(dir, "fd", e.Name()))
			if err != nil || (link != "/dev/ptmx" && link != "/dev/pts/ptmx") {
				continue
			}
			info, err := os.ReadFile(filepath.Join(dir, "fdinfo", e.Name()))
			if err == nil && bytes.Contains(info, want) {
				return pid
			}
		}
	}
	return 0
}
