package collector

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/netip"
	"strconv"
	"strings"

	"github.com/netsentinel/netsentinel/internal/fsutil"
)

// Route flags from <linux/route.h>.
const (
	rtfUp      = 0x0001
	rtfGateway = 0x0002
	rtfReject  = 0x0200
)

// readDefaultRoutes returns the default gateways from <procRoot>/net/route
// (IPv4) and <procRoot>/net/ipv6_route (IPv6). A missing or unreadable file
// is reported in the error while the other one's routes are still returned.
func readDefaultRoutes(procRoot string) ([]Route, error) {
	var errs []error
	var out []Route
	if data, err := fsutil.ReadFileCapped(procPath(procRoot, "net", "route"), maxProcFileBytes); data != nil {
		r, perr := parseRoutes(data)
		out = append(out, r...)
		errs = append(errs, err, perr)
	} else {
		errs = append(errs, err)
	}
	if data, err := fsutil.ReadFileCapped(procPath(procRoot, "net", "ipv6_route"), maxProcFileBytes); data != nil {
		r, perr := parseIPv6Routes(data)
		out = append(out, r...)
		errs = append(errs, err, perr)
	} else {
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

// parseRoutes returns the IPv4 default routes of /proc/net/route: destination
// and mask 0.0.0.0, flags UP|GATEWAY. Addresses there are the kernel's
// network-order words printed in host byte order ("010200C0" is 192.0.2.1 on
// a little-endian machine); the metric is decimal.
func parseRoutes(data []byte) ([]Route, error) {
	errs := lineErrors{file: "net/route"}
	var out []Route
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxProcFileBytes)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		f := strings.Fields(sc.Text())
		if len(f) == 0 || (lineNo == 1 && f[0] == "Iface") {
			continue
		}
		if len(f) < 8 {
			errs.add(lineNo, "want at least 8 fields, got %d", len(f))
			continue
		}
		dst, err1 := parseHexIPv4(f[1])
		gw, err2 := parseHexIPv4(f[2])
		flags, err3 := strconv.ParseUint(f[3], 16, 32)
		metric, err4 := strconv.ParseUint(f[6], 10, 32)
		mask, err5 := parseHexIPv4(f[7])
		if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
			errs.add(lineNo, "%v", err)
			continue
		}
		if !dst.IsUnspecified() || !mask.IsUnspecified() ||
			flags&(rtfUp|rtfGateway) != rtfUp|rtfGateway || flags&rtfReject != 0 {
			continue
		}
		out = append(out, Route{Device: f[0], Gateway: gw, Metric: uint32(metric)})
	}
	if err := sc.Err(); err != nil {
		errs.add(lineNo+1, "%v", err)
	}
	return out, errs.err()
}

// parseIPv6Routes returns the IPv6 default routes of /proc/net/ipv6_route:
// destination ::/0 with a non-zero next hop and flags UP|GATEWAY. Columns are
// dest, dest prefix length, source, source prefix length, next hop, metric,
// refcount, use, flags, device; everything but the device is hex.
func parseIPv6Routes(data []byte) ([]Route, error) {
	errs := lineErrors{file: "net/ipv6_route"}
	var out []Route
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxProcFileBytes)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) < 10 {
			errs.add(lineNo, "want 10 fields, got %d", len(f))
			continue
		}
		dst, err1 := parseHexIPv6(f[0])
		plen, err2 := strconv.ParseUint(f[1], 16, 8)
		gw, err3 := parseHexIPv6(f[4])
		metric, err4 := strconv.ParseUint(f[5], 16, 32)
		flags, err5 := strconv.ParseUint(f[8], 16, 32)
		if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
			errs.add(lineNo, "%v", err)
			continue
		}
		if !dst.IsUnspecified() || plen != 0 || gw.IsUnspecified() ||
			flags&(rtfUp|rtfGateway) != rtfUp|rtfGateway || flags&rtfReject != 0 {
			continue
		}
		out = append(out, Route{Device: f[9], Gateway: gw, Metric: uint32(metric)})
	}
	if err := sc.Err(); err != nil {
		errs.add(lineNo+1, "%v", err)
	}
	return out, errs.err()
}

// parseHexIPv4 decodes an 8-digit /proc/net/route address.
func parseHexIPv4(s string) (netip.Addr, error) {
	if len(s) != 8 {
		return netip.Addr{}, errors.New("bad IPv4 hex address " + strconv.Quote(s))
	}
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return netip.Addr{}, errors.New("bad IPv4 hex address " + strconv.Quote(s))
	}
	var b [4]byte
	// The kernel prints the in-memory __be32 as a native integer.
	binary.NativeEndian.PutUint32(b[:], uint32(v))
	return netip.AddrFrom4(b), nil
}

// parseHexIPv6 decodes a 32-digit /proc/net/ipv6_route address (network order).
func parseHexIPv6(s string) (netip.Addr, error) {
	var b [16]byte
	if len(s) != 32 {
		return netip.Addr{}, errors.New("bad IPv6 hex address " + strconv.Quote(s))
	}
	if _, err := hex.Decode(b[:], []byte(s)); err != nil {
		return netip.Addr{}, errors.New("bad IPv6 hex address " + strconv.Quote(s))
	}
	return netip.AddrFrom16(b), nil
}
