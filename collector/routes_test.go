package collector

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseRoutesFixture(t *testing.T) {
	got, err := parseRoutes(readFixture(t, "proc", "net", "route"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Route{
		{Device: "eth0", Gateway: netip.MustParseAddr("192.0.2.1"), Metric: 100},
		{Device: "wlan0", Gateway: netip.MustParseAddr("203.0.113.1"), Metric: 600},
		// tun0: default without a gateway; eth1: gateway set but no
		// RTF_GATEWAY flag. Neither is a default gateway.
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestParseIPv6RoutesFixture(t *testing.T) {
	got, err := parseIPv6Routes(readFixture(t, "proc", "net", "ipv6_route"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Route{
		{Device: "eth0", Gateway: netip.MustParseAddr("fd00::1"), Metric: 1024},
		{Device: "wlan0", Gateway: netip.MustParseAddr("fe80::1"), Metric: 600},
		// tun0 ::/0 without next hop and lo's unreachable ::/0 are left out
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestParseRoutesMalformed(t *testing.T) {
	data := "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
		"eth0\t00000000\t0102C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" + // line 3: short hex
		"eth0\t00000000\t010200C0\t0003\t0\t0\tx\t00000000\t0\t0\t0\n" + // line 4: metric
		"eth0\t00000000\n" // line 5: cut
	got, err := parseRoutes([]byte(data))
	if len(got) != 1 {
		t.Errorf("got %+v", got)
	}
	for _, line := range []string{"net/route line 3", "line 4", "line 5"} {
		if err == nil || !strings.Contains(err.Error(), line) {
			t.Errorf("error does not name %q: %v", line, err)
		}
	}
	_, err = parseIPv6Routes([]byte("00000000000000000000000000000000 00 zz\n" +
		"0000000000000000000000000000000g 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003 eth0\n"))
	if !errors.Is(err, ErrFileParse) || !strings.Contains(err.Error(), "net/ipv6_route line 1") ||
		!strings.Contains(err.Error(), "line 2") {
		t.Errorf("ipv6: err = %v", err)
	}
}

func TestReadDefaultRoutes(t *testing.T) {
	got, err := readDefaultRoutes(filepath.Join("testdata", "proc"))
	if err != nil || len(got) != 4 {
		t.Errorf("fixture: %+v, %v", got, err)
	}
	// One file missing: the other's routes are still returned.
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "net"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "net", "route"), readFixture(t, "proc", "net", "route"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err = readDefaultRoutes(root)
	if len(got) != 2 || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("without ipv6_route: %+v, %v", got, err)
	}
	// The real tables parse.
	requireProcFS(t)
	real, err := readDefaultRoutes(ProcRootFromEnv(""))
	if err != nil && !errors.Is(err, os.ErrNotExist) { // ipv6 may be disabled
		t.Fatalf("real routes: %v", err)
	}
	for _, r := range real {
		if !r.Gateway.IsValid() || r.Gateway.IsUnspecified() || r.Device == "" {
			t.Errorf("bad route %+v", r)
		}
	}
}
