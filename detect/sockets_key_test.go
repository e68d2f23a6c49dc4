package detect

import (
	"net/netip"
	"testing"

	"github.com/netsentinel/netsentinel/collector"
)

// ConnKey's format is what detectors store and compare across polls: the
// cookie in hex, else proto|local|remote.
func TestConnKeyFormat(t *testing.T) {
	s := collector.Socket{Proto: collector.ProtoTCP, Local: netip.MustParseAddrPort("[2001:db8::1]:443"), Remote: netip.MustParseAddrPort("198.51.100.7:51000")}
	if got, want := ConnKey(&s), "tcp|[2001:db8::1]:443|198.51.100.7:51000"; got != want {
		t.Errorf("ConnKey without cookie = %q, want %q", got, want)
	}
	s.Cookie = 0xdeadbeef12345678
	if got, want := ConnKey(&s), "c:deadbeef12345678"; got != want {
		t.Errorf("ConnKey with cookie = %q, want %q", got, want)
	}
	if n := testing.AllocsPerRun(100, func() { _ = ConnKey(&s) }); n > 1 {
		t.Errorf("ConnKey allocates %.0f times per call, want 1", n)
	}
}
