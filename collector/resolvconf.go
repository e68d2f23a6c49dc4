package collector

import (
	"bufio"
	"bytes"
	"net/netip"
	"strings"

	"github.com/netsentinel/netsentinel/internal/fsutil"
)

// defaultResolvConf is the resolver configuration read when Options.ResolvConf
// is empty.
const defaultResolvConf = "/etc/resolv.conf"

// readResolvConf returns the nameservers listed in a resolv.conf file, in
// file order. Addresses are returned even when the error is non-nil: the
// error then names the lines that were skipped.
func readResolvConf(path string) ([]netip.Addr, error) {
	if path == "" {
		path = defaultResolvConf
	}
	data, err := fsutil.ReadFileCapped(path, maxSmallFileBytes)
	if data == nil {
		return nil, err
	}
	addrs, perr := parseResolvConf(data, path)
	if err == nil {
		err = perr
	}
	return addrs, err
}

// parseResolvConf parses resolv.conf content. Only "nameserver ADDR" lines
// count; ADDR is IPv4 or IPv6, optionally with a %zone. Comments start with
// '#' or ';' (at line start or after the address); other keywords (search,
// domain, options, sortlist) and unknown lines are ignored. A nameserver line
// whose address does not parse is skipped and named in the error.
// Errors name file.
func parseResolvConf(data []byte, file string) ([]netip.Addr, error) {
	errs := lineErrors{file: file}
	var out []netip.Addr
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxSmallFileBytes)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "nameserver" {
			continue
		}
		if len(f) < 2 {
			errs.add(lineNo, "nameserver without an address")
			continue
		}
		a, err := netip.ParseAddr(f[1])
		if err != nil {
			errs.add(lineNo, "bad nameserver address %q", f[1])
			continue
		}
		out = append(out, a.Unmap())
	}
	if err := sc.Err(); err != nil {
		errs.add(lineNo+1, "%v", err)
	}
	return out, errs.err()
}
