package collector

import (
	"bufio"
	"bytes"
	"net/netip"
	"strconv"
	"strings"

	"github.com/netsentinel/netsentinel/internal/fsutil"
)

// ARP entry flags from <linux/if_arp.h>.
const (
	atfComplete  = 0x2 // ATF_COM: the hardware address is known
	atfPermanent = 0x4 // ATF_PERM: static entry
)

// readARP reads the IPv4 neighbour table from <procRoot>/net/arp. Entries are
// returned even when the error is non-nil: the error then names the lines
// that were skipped.
func readARP(procRoot string) ([]Neighbor, error) {
	data, err := fsutil.ReadFileCapped(procPath(procRoot, "net", "arp"), maxProcFileBytes)
	if data == nil {
		return nil, err
	}
	n, perr := parseARP(data)
	if err == nil {
		err = perr
	}
	return n, err
}

// parseARP parses the content of /proc/net/arp:
//
//	IP address       HW type     Flags       HW address            Mask     Device
//	192.0.2.1        0x1         0x2         02:fc:00:00:00:05     *        eth0
//
// Complete is set by flag 0x2, Permanent by 0x4; the MAC is lower-case and
// empty when the entry is incomplete. Malformed lines are skipped and named in
// the returned error.
func parseARP(data []byte) ([]Neighbor, error) {
	errs := lineErrors{file: "net/arp"}
	var out []Neighbor
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxProcFileBytes)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		if lineNo == 1 && strings.HasPrefix(line, "IP address") {
			continue
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 6 {
			errs.add(lineNo, "want 6 fields, got %d", len(f))
			continue
		}
		ip, err := netip.ParseAddr(f[0])
		if err != nil || !ip.Is4() {
			errs.add(lineNo, "bad IPv4 address %q", f[0])
			continue
		}
		flags, err := strconv.ParseUint(strings.TrimPrefix(f[2], "0x"), 16, 32)
		if err != nil {
			errs.add(lineNo, "bad flags %q", f[2])
			continue
		}
		n := Neighbor{
			IP:        ip,
			Device:    f[5],
			Flags:     uint32(flags),
			Complete:  flags&atfComplete != 0,
			Permanent: flags&atfPermanent != 0,
		}
		if n.Complete || n.Permanent {
			mac := strings.ToLower(f[3])
			if !validMAC(mac) || (f[1] == "0x1" && len(mac) != len("00:00:00:00:00:00")) {
				errs.add(lineNo, "bad hardware address %q", f[3])
				continue
			}
			if mac != "00:00:00:00:00:00" {
				n.MAC = mac
			} else {
				n.Complete = false
			}
		}
		out = append(out, n)
	}
	if err := sc.Err(); err != nil {
		errs.add(lineNo+1, "%v", err)
	}
	return out, errs.err()
}

// validMAC accepts colon-separated hex octets (6 for Ethernet, up to 20 for
// InfiniBand-style hardware addresses).
func validMAC(s string) bool {
	if len(s) < 2 || len(s) > 20*3-1 || (len(s)+1)%3 != 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i%3 == 2 {
			if c != ':' {
				return false
			}
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
