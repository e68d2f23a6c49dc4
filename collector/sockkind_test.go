package collector

import (
	"encoding/json"
	"strings"
	"testing"
)

// Protocol and state are one byte each in Socket, but recordings, reports
// and every JSON document carry their names, as when they were strings: a
// recording made before the change reads back the same.
func TestSocketProtoAndStateReadAndWriteAsNames(t *testing.T) {
	for _, st := range stateNames {
		for _, p := range []string{"tcp", "udp", "unknown", ""} {
			in := `{"proto":"` + p + `","family":4,"state":"` + st + `","uid":0,"local":"10.0.0.1:22","remote":"198.51.100.7:40000","first_seen":"0001-01-01T00:00:00Z"}`
			var s Socket
			if err := json.Unmarshal([]byte(in), &s); err != nil {
				t.Fatalf("%s: %v", in, err)
			}
			if s.Proto.String() != p || s.State.String() != st {
				t.Errorf("%s read as proto %q state %q", in, s.Proto, s.State)
			}
			out, err := json.Marshal(&s)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != in {
				t.Errorf("written back as\n%s\nwant\n%s", out, in)
			}
		}
	}
	// Names it does not know are errors that name them, not silent zeros.
	for _, bad := range []string{`{"proto":"sctp"}`, `{"state":"NEW_SYN_RECV"}`, `{"state":"established"}`} {
		var s Socket
		err := json.Unmarshal([]byte(bad), &s)
		if err == nil || !strings.Contains(err.Error(), strings.Split(bad, `"`)[3]) {
			t.Errorf("%s: error %v, want one naming the value", bad, err)
		}
	}
	// Every kernel TCP state has a name, and UDP's two.
	for k := range tcpStates {
		if tcpStates[k] == StateNone || tcpStates[k].String() == "" {
			t.Errorf("kernel TCP state %d has no name", k)
		}
	}
	if stateOf(ipprotoUDP, 1) != StateEstablished || stateOf(ipprotoUDP, 7) != StateUnconn || stateOf(ipprotoTCP, 200) != StateUnknown {
		t.Error("UDP connected/unconnected or an out-of-range TCP state is misnamed")
	}
}
