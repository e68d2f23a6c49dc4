package collector

import (
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseSNMPFixture(t *testing.T) {
	// testdata/proc/net/snmp is a copy of a real machine's file.
	got, err := parseSNMP(readFixture(t, "proc", "net", "snmp"))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Valid {
		t.Fatal("not valid")
	}
	// Values as in the copied file (Tcp: 1 200 120000 -1 60 17 0 0 0 21886 14787 0 0 2 0 ...).
	want := Counters{
		TCPActiveOpens: 60, TCPPassiveOpens: 17, TCPInSegs: 21886, TCPOutSegs: 14787, TCPOutRsts: 2,
		UDPInDatagrams: 52, UDPOutDatagrams: 53, Valid: true,
	}
	if got != want {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestParseSNMPByName(t *testing.T) {
	// Columns reordered and extra ones added: values follow the names.
	data := "Ip: Forwarding DefaultTTL\nIp: 1 64\n" +
		"Tcp: OutRsts NewColumn InErrs RetransSegs OutSegs InSegs CurrEstab EstabResets AttemptFails PassiveOpens ActiveOpens MaxConn\n" +
		"Tcp: 10 999 9 8 7 6 5 4 3 2 1 -1\n" +
		"Udp: OutDatagrams InErrors NoPorts InDatagrams\n" +
		"Udp: 14 13 12 11\n"
	got, err := parseSNMP([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	want := Counters{
		TCPActiveOpens: 1, TCPPassiveOpens: 2, TCPAttemptFails: 3, TCPEstabResets: 4, TCPCurrEstab: 5,
		TCPInSegs: 6, TCPOutSegs: 7, TCPRetransSegs: 8, TCPInErrs: 9, TCPOutRsts: 10,
		UDPInDatagrams: 11, UDPNoPorts: 12, UDPInErrors: 13, UDPOutDatagrams: 14, Valid: true,
	}
	if got != want {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestParseSNMPMalformed(t *testing.T) {
	tests := []struct {
		name, data, wantInErr string
	}{
		{"no udp", "Tcp: ActiveOpens PassiveOpens\nTcp: 1 2\n", "missing columns"},
		{"value count mismatch", "Tcp: ActiveOpens PassiveOpens\nTcp: 1\n", "line 2"},
		{"bad value", "Udp: InDatagrams NoPorts\nUdp: x 2\n", "line 2"},
		{"header without values", "Tcp: ActiveOpens\nUdp: NoPorts\nUdp: 3\n", "line 1"},
		{"empty", "", "missing columns"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSNMP([]byte(tt.data))
			if got.Valid {
				t.Error("Valid with missing data")
			}
			if !errors.Is(err, ErrFileParse) || !strings.Contains(err.Error(), tt.wantInErr) {
				t.Errorf("err = %v, want one containing %q", err, tt.wantInErr)
			}
		})
	}
}

// TestReadCountersRealProc opens a loopback TCP connection and sees the
// kernel count it.
func TestReadCountersRealProc(t *testing.T) {
	requireProcFS(t)
	root := ProcRootFromEnv("")
	before, err := readCounters(root)
	if err != nil {
		t.Fatalf("real /proc/net/snmp: %v", err)
	}
	if !before.Valid {
		t.Fatal("not valid")
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, err = c.Write([]byte("x"))
			c.Close()
		}
		done <- err
	}()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if _, err := c.Read(buf); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	after, err := readCounters(root)
	if err != nil {
		t.Fatal(err)
	}
	if after.TCPActiveOpens < before.TCPActiveOpens+1 || after.TCPPassiveOpens < before.TCPPassiveOpens+1 {
		t.Errorf("opens not counted: before %+v after %+v", before, after)
	}
	if after.TCPInSegs == 0 || after.TCPOutSegs == 0 || after.TCPInSegs <= before.TCPInSegs {
		t.Errorf("segments not counted: before %+v after %+v", before, after)
	}
	if _, err := readCounters(filepath.Join(t.TempDir())); err == nil {
		t.Error("missing file: no error")
	}
}
