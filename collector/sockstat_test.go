package collector

import "testing"

func TestParseSockstat(t *testing.T) {
	v4 := "sockets: used 20004\nTCP: inuse 20002 orphan 0 tw 7 alloc 20019 mem 202\nUDP: inuse 3 mem 0\nUDPLITE: inuse 9\nRAW: inuse 1\nFRAG: inuse 0 memory 0\n"
	v6 := "TCP6: inuse 4\nUDP6: inuse 2\nUDPLITE6: inuse 0\nRAW6: inuse 0\nFRAG6: inuse 0 memory 0\n"
	if got := parseSockstat([]byte(v4)) + parseSockstat([]byte(v6)); got != 20002+7+3+4+2 {
		t.Errorf("estimate %d, want %d", got, 20002+7+3+4+2)
	}
	for _, bad := range []string{"", "TCP: inuse", "TCP: inuse -5 tw x", "TCP inuse 5", "TCP: inuse 99999999999"} {
		if got := parseSockstat([]byte(bad)); got != 0 {
			t.Errorf("%q: estimate %d, want 0", bad, got)
		}
	}
}
