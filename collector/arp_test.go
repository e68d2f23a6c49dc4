package collector

import (
	"errors"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseARPFixture(t *testing.T) {
	got, err := parseARP(readFixture(t, "proc", "net", "arp"))
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr
	want := []Neighbor{
		{IP: ip("192.0.2.1"), MAC: "02:fc:00:00:00:05", Device: "eth0", Flags: 2, Complete: true},
		// same MAC as the gateway: what ARP spoofing looks like
		{IP: ip("192.0.2.77"), MAC: "02:fc:00:00:00:05", Device: "eth0", Flags: 2, Complete: true},
		{IP: ip("192.0.2.9"), Device: "eth0"},
		{IP: ip("198.51.100.1"), MAC: "52:54:00:12:34:56", Device: "br0", Flags: 6, Complete: true, Permanent: true},
		{IP: ip("198.51.100.20"), MAC: "52:54:00:ab:cd:ef", Device: "br0", Flags: 2, Complete: true},
		{IP: ip("203.0.113.5"), Device: "wlan0"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestParseARPMalformed(t *testing.T) {
	data := "IP address       HW type     Flags       HW address            Mask     Device\n" +
		"192.0.2.1        0x1         0x2         02:fc:00:00:00:05     *        eth0\n" +
		"192.0.2.2        0x1         0x2\n" + // line 3: cut
		"not-an-ip        0x1         0x2         02:fc:00:00:00:06     *        eth0\n" + // line 4
		"192.0.2.4        0x1         0xZZ        02:fc:00:00:00:07     *        eth0\n" + // line 5
		"192.0.2.5        0x1         0x2         02:fc:00:00:00        *        eth0\n" + // line 6
		"\n" +
		"192.0.2.6        0x1         0x2         02:FC:00:00:00:08     *        eth0\n"
	got, err := parseARP([]byte(data))
	if len(got) != 2 || got[1].MAC != "02:fc:00:00:00:08" {
		t.Errorf("good lines not kept: %+v", got)
	}
	if !errors.Is(err, ErrFileParse) {
		t.Fatalf("err = %v, want ErrFileParse", err)
	}
	for _, line := range []string{"line 3", "line 4", "line 5", "line 6"} {
		if !strings.Contains(err.Error(), "net/arp "+line) {
			t.Errorf("error does not name %s: %v", line, err)
		}
	}
}

func TestParseARPManyBadLinesBounded(t *testing.T) {
	data := strings.Repeat("garbage\n", 1000)
	_, err := parseARP([]byte(data))
	if err == nil || !strings.Contains(err.Error(), "more malformed lines") || len(err.Error()) > 2000 {
		t.Errorf("error not bounded: %d bytes", len(err.Error()))
	}
}

func TestReadARP(t *testing.T) {
	got, err := readARP(filepath.Join("testdata", "proc"))
	if err != nil || len(got) != 6 {
		t.Errorf("fixture root: %d entries, %v", len(got), err)
	}
	if _, err := readARP(t.TempDir()); err == nil {
		t.Error("missing file: no error")
	}
	// The real table parses without error (it may be empty).
	requireProcFS(t)
	real, err := readARP(ProcRootFromEnv(""))
	if err != nil {
		t.Fatalf("real /proc/net/arp: %v", err)
	}
	for _, n := range real {
		if !n.IP.Is4() || n.Device == "" || n.Complete != (n.MAC != "") {
			t.Errorf("bad entry %+v", n)
		}
	}
}
