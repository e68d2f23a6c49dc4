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

func TestReadResolvConf(t *testing.T) {
	ip := netip.MustParseAddr
	tests := []struct {
		file    string
		want    []netip.Addr
		errLine []string // lines the error must name; nil: no error
	}{
		{file: "systemd-resolved.conf", want: []netip.Addr{ip("127.0.0.53")}},
		{file: "mixed.conf", want: []netip.Addr{ip("192.0.2.53"), ip("2001:db8::53"), ip("fe80::1%eth0"), ip("198.51.100.53")}},
		{file: "empty.conf"},
		{
			file:    "garbage.conf",
			want:    []netip.Addr{ip("192.0.2.1"), ip("203.0.113.10"), ip("192.0.2.3")},
			errLine: []string{"line 3", "line 4", "line 5"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := readResolvConf(filepath.Join("testdata", "resolv", tt.file))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			if tt.errLine == nil {
				if err != nil {
					t.Errorf("unexpected error %v", err)
				}
				return
			}
			if !errors.Is(err, ErrFileParse) {
				t.Fatalf("err = %v, want ErrFileParse", err)
			}
			for _, l := range tt.errLine {
				if !strings.Contains(err.Error(), tt.file+" "+l) {
					t.Errorf("error does not name %s %s: %v", tt.file, l, err)
				}
			}
		})
	}
	if _, err := readResolvConf(filepath.Join(t.TempDir(), "none")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestParseResolvConfZoneKept(t *testing.T) {
	got, _ := parseResolvConf([]byte("nameserver fe80::53%wlan0\n"), "resolv.conf")
	if len(got) != 1 || got[0].Zone() != "wlan0" {
		t.Errorf("got %v", got)
	}
}
