package collector

import (
	"net"
	"net/netip"
	"slices"
)

// hostIPs returns this host's own interface addresses (loopback and link-local
// included), sorted and without duplicates; nil when they cannot be listed.
func hostIPs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	return hostIPsFrom(addrs)
}

// hostIPsFrom converts interface addresses (*net.IPNet or *net.IPAddr).
func hostIPsFrom(addrs []net.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		var ip net.IP
		switch v := a.(type) {
		case *net.IPNet:
			ip = v.IP
		case *net.IPAddr:
			ip = v.IP
		default:
			continue
		}
		if addr, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, addr.Unmap())
		}
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return slices.Compact(out)
}
