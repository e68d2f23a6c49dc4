package collector

import (
	"net"
	"net/netip"
	"reflect"
	"testing"
)

func TestHostIPsFrom(t *testing.T) {
	in := []net.Addr{
		&net.IPNet{IP: net.ParseIP("192.0.2.2"), Mask: net.CIDRMask(24, 32)}, // 16-byte form: unmapped
		&net.IPNet{IP: net.ParseIP("::1"), Mask: net.CIDRMask(128, 128)},
		&net.IPNet{IP: net.IPv4(127, 0, 0, 1).To4(), Mask: net.CIDRMask(8, 32)},
		&net.IPAddr{IP: net.ParseIP("fd00::2")},
		&net.IPNet{IP: net.ParseIP("192.0.2.2"), Mask: net.CIDRMask(32, 32)}, // duplicate
		&net.UnixAddr{Name: "/x", Net: "unix"},
		&net.IPNet{IP: net.IP{1, 2, 3}}, // invalid length
	}
	want := []netip.Addr{
		netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.0.2.2"),
		netip.MustParseAddr("::1"), netip.MustParseAddr("fd00::2"),
	}
	if got := hostIPsFrom(in); !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestHostIPsReal(t *testing.T) {
	ips := hostIPs()
	found := false
	for _, ip := range ips {
		if ip.Is4In6() {
			t.Errorf("mapped address %v", ip)
		}
		if ip == netip.MustParseAddr("127.0.0.1") {
			found = true
		}
	}
	if !found {
		t.Errorf("127.0.0.1 not among %v", ips)
	}
}
