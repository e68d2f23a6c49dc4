package detect

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/netsentinel/netsentinel/collector"
)

// maxTorrcBytes caps how much of a torrc named on a command line is read.
const maxTorrcBytes = 256 << 10

// DefaultTransportNames are Tor pluggable-transport clients (executable or
// process names).
var DefaultTransportNames = []string{"obfs4proxy", "lyrebird", "snowflake-client", "meek-client",
	"meek-client-torbrowser", "webtunnel-client", "conjure-client"}

// torUniqueOptions are Tor options no other common program takes. On a
// command line they count as "--Name", "-Name" (any case, as Tor reads them)
// or the bare canonical "Name value" form Tor also accepts.
var torUniqueOptions = canonicalSet("SocksPort", "UseBridges", "ClientTransportPlugin", "ServerTransportPlugin",
	"HiddenServiceDir", "HiddenServicePort", "ExitNodes", "EntryNodes", "ExcludeNodes", "ExcludeExitNodes",
	"ExitPolicy", "ExitRelay", "ORPort", "DirPort", "HashedControlPassword", "CookieAuthentication",
	"__OwningControllerProcess", "defaults-torrc", "torrc-file", "hash-password", "list-fingerprint")

// torCaseOptions count only in Tor's own spelling ("--Bridge", not
// "--bridge", which other programs use).
var torCaseOptions = map[string]bool{"Bridge": true, "ControlPort": true, "TransPort": true, "DNSPort": true,
	"DataDirectory": true}

// torrcStrong are torrc keywords that make a file a torrc on their own;
// "Bridge" lines count with UseBridges or a transport plugin.
var torrcStrong = canonicalSet("SocksPort", "UseBridges", "ClientTransportPlugin", "ServerTransportPlugin",
	"HiddenServiceDir", "HiddenServicePort", "ORPort", "ExitPolicy", "ExitNodes", "EntryNodes", "ExitRelay")

func canonicalSet(names ...string) map[string]string {
	m := make(map[string]string, len(names))
	for _, n := range names {
		m[strings.ToLower(n)] = n
	}
	return m
}

// torSigns is what makes one process Tor (or a Tor pluggable transport), from
// what /proc shows every user: its names, its command line, and the torrc it
// names when the sensor can read it.
type torSigns struct {
	reasons    []string         // sorted: tor_process, tor_options, torrc, pluggable_transport
	options    []string         // Tor options on the command line, canonical names
	torrc      string           // torrc path from -f / --torrc-file / --defaults-torrc
	torrcRead  string           // "read", or why it was not
	torrcKeys  []string         // Tor keywords found in the torrc
	bridges    []netip.AddrPort // Bridge lines (command line and torrc)
	transports []string         // ClientTransportPlugin transports
	socksPorts []uint16         // SocksPort values (command line and torrc)
}

func (s *torSigns) isTor() bool {
	for _, r := range s.reasons {
		if r != "pluggable_transport" {
			return true
		}
	}
	return false
}

func (s *torSigns) add(reason string) {
	for _, r := range s.reasons {
		if r == reason {
			return
		}
	}
	s.reasons = append(s.reasons, reason)
	sort.Strings(s.reasons)
}

// torClassifier caches each process's signs by pid and start time, so a
// torrc is read once per process.
type torClassifier struct {
	names      map[string]bool
	transports map[string]bool
	readTorrc  bool
	cache      map[torProcKey]*torSigns          // nil value: not Tor
	pending    atomic.Int32                      // torrc reads not finished
	read       func(path string) ([]byte, error) // nil: readRegularCapped (tests replace it)
}

type torProcKey struct {
	pid   int32
	start time.Time
}

func newTorClassifier(names, transports []string, readTorrc bool) *torClassifier {
	c := &torClassifier{names: map[string]bool{}, transports: map[string]bool{}, readTorrc: readTorrc,
		cache: map[torProcKey]*torSigns{}}
	for _, n := range names {
		if n = strings.TrimSpace(n); n != "" {
			c.names[n] = true
		}
	}
	for _, n := range transports {
		if n = strings.TrimSpace(n); n != "" {
			c.transports[n] = true
		}
	}
	return c
}

// classify returns p's signs, or nil when p shows none.
func (c *torClassifier) classify(p *collector.Process) *torSigns {
	if p == nil {
		return nil
	}
	k := torProcKey{p.PID, p.StartTime}
	if s, ok := c.cache[k]; ok {
		return s
	}
	s := c.signs(p)
	c.cache[k] = s
	return s
}

// prune drops cached processes that are gone from snap.
func (c *torClassifier) prune(snap *collector.Snapshot) {
	for k := range c.cache {
		if p := snap.Processes[k.pid]; p == nil || !p.StartTime.Equal(k.start) {
			delete(c.cache, k)
		}
	}
}

func hasName(set map[string]bool, p *collector.Process) bool {
	return set[p.Name] || (p.Exe != "" && set[filepath.Base(p.Exe)])
}

func (c *torClassifier) signs(p *collector.Process) *torSigns {
	s := &torSigns{}
	if hasName(c.names, p) {
		s.add("tor_process")
	}
	if hasName(c.transports, p) {
		s.add("pluggable_transport")
	}
	c.cmdline(p, s)
	if len(s.reasons) == 0 {
		return nil
	}
	return s
}

// cmdline reads Tor options, bridges and the torrc from p's command line.
func (c *torClassifier) cmdline(p *collector.Process, s *torSigns) {
	args := p.Cmdline
	seen := map[string]bool{}
	for i := 1; i < len(args); i++ {
		a := args[i]
		name, dashed := strings.TrimLeft(a, "-"), strings.HasPrefix(a, "-")
		canon := ""
		if u, ok := torUniqueOptions[strings.ToLower(name)]; ok && (dashed || name == u) {
			canon = u
		} else if dashed && torCaseOptions[name] {
			canon = name
		}
		value := ""
		if i+1 < len(args) {
			value = args[i+1]
		}
		if (a == "-f" || canon == "torrc-file" || canon == "defaults-torrc") && value != "" {
			c.torrcArg(p, value, a == "-f", s)
		}
		if canon == "" {
			continue
		}
		if !seen[canon] {
			seen[canon] = true
			s.options = append(s.options, canon)
		}
		switch canon {
		case "Bridge":
			if ap, ok := bridgeAddr(value); ok {
				s.bridges = appendUniqueAP(s.bridges, ap)
			}
		case "SocksPort":
			if port, ok := socksPortValue(value); ok {
				s.socksPorts = appendUniquePort(s.socksPorts, port)
			}
		case "ClientTransportPlugin":
			s.transports = appendTransports(s.transports, value)
		}
	}
	// DataDirectory, ControlPort, TransPort and DNSPort alone are not Tor's
	// own; one unique option or a torrc is needed.
	for _, o := range s.options {
		if _, unique := torUniqueOptions[strings.ToLower(o)]; unique && o != "torrc-file" {
			s.add("tor_options")
			break
		}
	}
	sort.Strings(s.options)
}

// torrcArg handles "-f PATH", "--torrc-file PATH" and "--defaults-torrc
// PATH": the file is read when it is readable and a regular file; a bare -f
// counts only when the name or the content says torrc.
func (c *torClassifier) torrcArg(p *collector.Process, path string, bareF bool, s *torSigns) {
	named := strings.Contains(strings.ToLower(filepath.Base(path)), "torrc")
	if bareF && !named && !c.readTorrc {
		return
	}
	keys, bridges, transports, socks, err := c.readTorrcFile(p, path)
	isTorrc := named || torrcLooksTor(keys)
	if !isTorrc {
		return
	}
	if s.torrc == "" || !bareF {
		s.torrc = path
	}
	s.add("torrc")
	if err != nil {
		s.torrcRead = err.Error()
		return
	}
	s.torrcRead = "read"
	for _, k := range keys {
		if !containsString(s.torrcKeys, k) {
			s.torrcKeys = append(s.torrcKeys, k)
		}
	}
	sort.Strings(s.torrcKeys)
	for _, b := range bridges {
		s.bridges = appendUniqueAP(s.bridges, b)
	}
	for _, t := range transports {
		if !containsString(s.transports, t) {
			s.transports = append(s.transports, t)
		}
	}
	for _, port := range socks {
		s.socksPorts = appendUniquePort(s.socksPorts, port)
	}
}

func torrcLooksTor(keys []string) bool {
	bridge, bridges := false, false
	for _, k := range keys {
		if _, ok := torrcStrong[strings.ToLower(k)]; ok {
			return true
		}
		bridge = bridge || k == "Bridge"
		bridges = bridges || k == "UseBridges" || k == "ClientTransportPlugin"
	}
	return bridge && bridges
}

// Torrc reads run off the detection goroutine: a file on a hung network
// mount or a user's FUSE file system must not stall the sensor.
const (
	torrcReadTimeout     = 250 * time.Millisecond
	maxPendingTorrcReads = 4
)

// readTorrcFile reads a torrc named on p's command line: an absolute path as
// is, a relative one under p's working directory (readable when privileged or
// p is the sensor's user). Only regular files are read (a FIFO never blocks
// the sensor), at most maxTorrcBytes, within torrcReadTimeout; while
// maxPendingTorrcReads reads are still blocked no other is started.
func (c *torClassifier) readTorrcFile(p *collector.Process, path string) (keys []string, bridges []netip.AddrPort, transports []string, socks []uint16, err error) {
	if !c.readTorrc {
		return nil, nil, nil, nil, errors.New("torrc reading disabled (read_torrc: false)")
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join("/proc", strconv.Itoa(int(p.PID)), "cwd", path)
	}
	if c.pending.Add(1) > maxPendingTorrcReads {
		c.pending.Add(-1)
		return nil, nil, nil, nil, fmt.Errorf("not read: %d earlier torrc reads are still blocked", maxPendingTorrcReads)
	}
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	read := c.read
	if read == nil {
		read = readRegularCapped
	}
	go func() {
		defer c.pending.Add(-1)
		data, err := read(path)
		done <- result{data, err}
	}()
	timer := time.NewTimer(torrcReadTimeout)
	defer timer.Stop()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, nil, nil, nil, r.err
		}
		keys, bridges, transports, socks = parseTorrc(r.data)
		return keys, bridges, transports, socks, nil
	case <-timer.C:
		return nil, nil, nil, nil, fmt.Errorf("not read: no answer within %v", torrcReadTimeout)
	}
}

// readRegularCapped reads up to maxTorrcBytes of a regular file.
func readRegularCapped(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("not readable: %w", errors.Unwrap(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	return io.ReadAll(io.LimitReader(f, maxTorrcBytes))
}

// parseTorrc returns the Tor keywords of data (canonical spelling, in file
// order, once each), its bridges, client transports and SOCKS ports.
func parseTorrc(data []byte) (keys []string, bridges []netip.AddrPort, transports []string, socks []uint16) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		kw, rest := line, ""
		if i := strings.IndexAny(line, " \t"); i >= 0 {
			kw, rest = line[:i], line[i+1:]
		}
		if kw == "" {
			continue
		}
		rest = strings.TrimSpace(rest)
		canon, ok := torrcStrong[strings.ToLower(kw)]
		if !ok {
			switch strings.ToLower(kw) {
			case "bridge":
				canon = "Bridge"
			case "datadirectory":
				canon = "DataDirectory"
			default:
				continue
			}
		}
		if !containsString(keys, canon) {
			keys = append(keys, canon)
		}
		switch canon {
		case "Bridge":
			if ap, ok := bridgeAddr(rest); ok {
				bridges = appendUniqueAP(bridges, ap)
			}
		case "SocksPort":
			if port, ok := socksPortValue(rest); ok {
				socks = appendUniquePort(socks, port)
			}
		case "ClientTransportPlugin":
			transports = appendTransports(transports, rest)
		}
	}
	return keys, bridges, transports, socks
}

// bridgeAddr reads "[transport] IP:PORT [fingerprint] [k=v ...]".
func bridgeAddr(v string) (netip.AddrPort, bool) {
	fields := strings.Fields(v)
	for i := 0; i < len(fields) && i < 2; i++ {
		if ap, err := netip.ParseAddrPort(fields[i]); err == nil && ap.Port() != 0 {
			return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
		}
	}
	return netip.AddrPort{}, false
}

// socksPortValue reads "9050", "127.0.0.1:9050" or "[::1]:9050 flags...".
func socksPortValue(v string) (uint16, bool) {
	f := strings.Fields(v)
	if len(f) == 0 {
		return 0, false
	}
	if n, err := strconv.ParseUint(f[0], 10, 16); err == nil && n > 0 {
		return uint16(n), true
	}
	if ap, err := netip.ParseAddrPort(f[0]); err == nil && ap.Port() > 0 {
		return ap.Port(), true
	}
	return 0, false
}

// appendTransports adds the transports of "obfs4,meek exec /path ...".
func appendTransports(to []string, v string) []string {
	f := strings.Fields(v)
	if len(f) == 0 {
		return to
	}
	for _, t := range strings.Split(f[0], ",") {
		if t != "" && !containsString(to, t) {
			to = append(to, t)
		}
	}
	return to
}

func appendUniqueAP(to []netip.AddrPort, ap netip.AddrPort) []netip.AddrPort {
	for _, x := range to {
		if x == ap {
			return to
		}
	}
	return append(to, ap)
}

func appendUniquePort(to []uint16, p uint16) []uint16 {
	for _, x := range to {
		if x == p {
			return to
		}
	}
	return append(to, p)
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
