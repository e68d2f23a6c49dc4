package collector

import (
	"bufio"
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/netsentinel/netsentinel/internal/fsutil"
)

// readCounters reads the host-wide TCP and UDP counters from
// <procRoot>/net/snmp. Valid is true only when every wanted column was found.
func readCounters(procRoot string) (Counters, error) {
	data, err := fsutil.ReadFileCapped(procPath(procRoot, "net", "snmp"), maxSmallFileBytes)
	if data == nil {
		return Counters{}, err
	}
	c, perr := parseSNMP(data)
	if err == nil {
		err = perr
	}
	return c, err
}

// snmpColumns maps "Section:Column" of /proc/net/snmp to the counter it fills.
var snmpColumns = map[string]func(*Counters) *uint64{
	"Tcp:ActiveOpens":  func(c *Counters) *uint64 { return &c.TCPActiveOpens },
	"Tcp:PassiveOpens": func(c *Counters) *uint64 { return &c.TCPPassiveOpens },
	"Tcp:AttemptFails": func(c *Counters) *uint64 { return &c.TCPAttemptFails },
	"Tcp:EstabResets":  func(c *Counters) *uint64 { return &c.TCPEstabResets },
	"Tcp:CurrEstab":    func(c *Counters) *uint64 { return &c.TCPCurrEstab },
	"Tcp:InSegs":       func(c *Counters) *uint64 { return &c.TCPInSegs },
	"Tcp:OutSegs":      func(c *Counters) *uint64 { return &c.TCPOutSegs },
	"Tcp:RetransSegs":  func(c *Counters) *uint64 { return &c.TCPRetransSegs },
	"Tcp:InErrs":       func(c *Counters) *uint64 { return &c.TCPInErrs },
	"Tcp:OutRsts":      func(c *Counters) *uint64 { return &c.TCPOutRsts },
	"Udp:InDatagrams":  func(c *Counters) *uint64 { return &c.UDPInDatagrams },
	"Udp:NoPorts":      func(c *Counters) *uint64 { return &c.UDPNoPorts },
	"Udp:InErrors":     func(c *Counters) *uint64 { return &c.UDPInErrors },
	"Udp:OutDatagrams": func(c *Counters) *uint64 { return &c.UDPOutDatagrams },
}

// parseSNMP parses /proc/net/snmp. Each section is a header line of column
// names followed by a value line with the same "Name:" prefix:
//
//	Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens ...
//	Tcp: 1 200 120000 -1 26 ...
//
// Columns are matched by name, never by position, so kernels that add or
// reorder columns parse the same. Sections other than Tcp and Udp are
// ignored. Valid is true when all wanted columns were found.
func parseSNMP(data []byte) (Counters, error) {
	errs := lineErrors{file: "net/snmp"}
	var c Counters
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxSmallFileBytes)
	var header []string // the pending header line's fields, prefix included
	headerLine := 0
	lineNo := 0
	seen := make(map[string]bool, len(snmpColumns))
	for sc.Scan() {
		lineNo++
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if header == nil || header[0] != f[0] {
			if header != nil {
				errs.add(headerLine, "header %s has no value line", header[0])
			}
			header, headerLine = f, lineNo
			continue
		}
		// f is the value line of header.
		if len(f) != len(header) {
			errs.add(lineNo, "%s has %d values for %d columns", f[0], len(f)-1, len(header)-1)
			header = nil
			continue
		}
		section := f[0]
		for i := 1; i < len(f); i++ {
			key := section + header[i]
			field, ok := snmpColumns[key]
			if !ok || seen[key] {
				continue
			}
			v, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				errs.add(lineNo, "%s%s: bad value %q", section, header[i], f[i])
				continue
			}
			*field(&c) = v
			seen[key] = true
			found++
		}
		header = nil
	}
	if header != nil {
		errs.add(headerLine, "header %s has no value line", header[0])
	}
	if err := sc.Err(); err != nil {
		errs.add(lineNo+1, "%v", err)
	}
	if found == len(snmpColumns) {
		c.Valid = true
	} else {
		var missing []string
		for k := range snmpColumns {
			if !seen[k] {
				missing = append(missing, k)
			}
		}
		slices.Sort(missing)
		errs.errs = append(errs.errs, fmt.Errorf("net/snmp: %w: missing columns %s", ErrFileParse, strings.Join(missing, ", ")))
	}
	return c, errs.err()
}
