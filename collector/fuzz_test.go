package collector

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

// Fuzz targets for the /proc and config parsers. Seed corpora live in
// testdata/fuzz/<FuzzName>/; run one with
//
//	go test ./collector/ -run '^$' -fuzz '^FuzzParseARP$' -fuzztime 10s
//
// Beyond "never panics", each target checks what callers rely on.

func FuzzParseProcStat(f *testing.F) {
	f.Add([]byte("1 (init) S 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseProcStat(data)
		if err != nil {
			return
		}
		if st.PID < 0 || st.PPID < 0 || !utf8.ValidString(st.Comm) {
			t.Errorf("bad result %+v", st)
		}
	})
}

func FuzzParseProcStatus(f *testing.F) {
	f.Add([]byte("Name:\tx\nPPid:\t1\nUid:\t0\t0\t0\t0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseProcStatus(data)
		if err != nil {
			return
		}
		if st.PPID < 0 || !utf8.ValidString(st.Name) {
			t.Errorf("bad result %+v", st)
		}
	})
}

func FuzzParseCmdline(f *testing.F) {
	f.Add([]byte("a\x00b\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		args := parseCmdline(data)
		if len(args) > bytes.Count(data, []byte{0})+1 {
			t.Errorf("%d args from %d NULs", len(args), bytes.Count(data, []byte{0}))
		}
		for _, a := range args {
			if strings.IndexByte(a, 0) >= 0 || !utf8.ValidString(a) {
				t.Errorf("bad argument %q", a)
			}
		}
		if len(args) > 0 && args[len(args)-1] == "" {
			t.Error("trailing empty argument")
		}
	})
}

func FuzzParseBootTime(f *testing.F) {
	f.Add([]byte("cpu 1 2\nbtime 1700000000\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if bt, err := parseBootTime(data); err == nil && bt <= 0 {
			t.Errorf("boot time %d without error", bt)
		}
	})
}

func FuzzParseUptime(f *testing.F) {
	f.Add([]byte("350.27 690.12\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if d, err := parseUptime(data); err == nil && d < 0 {
			t.Errorf("negative uptime %v", d)
		}
	})
}

func FuzzParseARP(f *testing.F) {
	f.Add([]byte("IP address HW type Flags HW address Mask Device\n192.0.2.1 0x1 0x2 02:fc:00:00:00:05 * eth0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, _ := parseARP(data)
		for _, n := range entries {
			if !n.IP.Is4() || n.Device == "" {
				t.Errorf("bad entry %+v", n)
			}
			if n.Complete && (n.MAC == "" || n.MAC != strings.ToLower(n.MAC)) {
				t.Errorf("complete entry with MAC %q", n.MAC)
			}
		}
	})
}

func FuzzParseRoutes(f *testing.F) {
	f.Add([]byte("Iface Destination Gateway Flags RefCnt Use Metric Mask MTU Window IRTT\neth0 00000000 010200C0 0003 0 0 0 00000000 0 0 0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		routes, _ := parseRoutes(data)
		for _, r := range routes {
			if !r.Gateway.Is4() || r.Device == "" {
				t.Errorf("bad route %+v", r)
			}
		}
	})
}

func FuzzParseIPv6Routes(f *testing.F) {
	f.Add([]byte("00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003 eth0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		routes, _ := parseIPv6Routes(data)
		for _, r := range routes {
			if !r.Gateway.Is6() || r.Gateway.IsUnspecified() || r.Device == "" {
				t.Errorf("bad route %+v", r)
			}
		}
	})
}

func FuzzParseResolvConf(f *testing.F) {
	f.Add([]byte("nameserver 192.0.2.53\nnameserver fe80::1%eth0 # x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		addrs, _ := parseResolvConf(data, "resolv.conf")
		if len(addrs) > bytes.Count(data, []byte("nameserver")) {
			t.Errorf("%d addresses from %d nameserver words", len(addrs), bytes.Count(data, []byte("nameserver")))
		}
		for _, a := range addrs {
			if !a.IsValid() || a.Is4In6() {
				t.Errorf("bad address %v", a)
			}
		}
	})
}

func FuzzParseSNMP(f *testing.F) {
	f.Add([]byte("Tcp: ActiveOpens\nTcp: 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Valid may come with an error about an unrelated section; an
		// invalid result always says why.
		c, err := parseSNMP(data)
		if !c.Valid && err == nil {
			t.Error("not Valid without an error")
		}
	})
}
