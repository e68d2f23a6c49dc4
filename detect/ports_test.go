package detect

import (
	"reflect"
	"testing"
)

func TestParsePorts(t *testing.T) {
	s, err := ParsePorts([]string{"1080", " 6666-6669 ", "31337", "1080"})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Sorted(); !reflect.DeepEqual(got, []uint16{1080, 6666, 6667, 6668, 6669, 31337}) {
		t.Fatalf("Sorted = %v", got)
	}
	for _, bad := range []string{"0", "65536", "abc", "10-5", "1-", ""} {
		if _, err := ParsePorts([]string{bad}); err == nil {
			t.Errorf("ParsePorts(%q) accepted", bad)
		}
	}
}
