package collector

import "fmt"

// Proto is a socket's transport protocol. It is one byte in Socket (a
// string there took 16) and reads and writes as its name ("tcp", "udp") in
// JSON and text, so recordings and reports are unchanged.
type Proto uint8

// The protocols. The zero value is no protocol (the empty name).
const (
	ProtoNone    Proto = iota // ""
	ProtoTCP                  // "tcp"
	ProtoUDP                  // "udp"
	ProtoUnknown              // "unknown": a protocol the collector does not parse
)

var protoNames = [...]string{ProtoNone: "", ProtoTCP: "tcp", ProtoUDP: "udp", ProtoUnknown: "unknown"}

// String returns the protocol's name.
func (p Proto) String() string { return nameOf(protoNames[:], p, "unknown") }

// MarshalText returns the protocol's name.
func (p Proto) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText reads a protocol's name; a name it does not know is an
// error naming it.
func (p *Proto) UnmarshalText(b []byte) error {
	return unmarshalName(protoNames[:], b, "socket protocol", p)
}

// ParseProto returns the protocol named s.
func ParseProto(s string) (Proto, bool) { return parseName[Proto](protoNames[:], s) }

// State is a socket's state, one byte in Socket, read and written as the
// names ss prints (ESTABLISHED, LISTEN, ...; UNCONN for an unconnected UDP
// socket).
type State uint8

// The states: the kernel's TCP states (include/net/tcp_states.h) under the
// names Linux tools use, and UDP's UNCONN. The zero value is no state.
const (
	StateNone State = iota // ""
	StateUnknown
	StateEstablished
	StateSynSent
	StateSynRecv
	StateFinWait1
	StateFinWait2
	StateTimeWait
	StateClose
	StateCloseWait
	StateLastAck
	StateListen
	StateClosing
	StateUnconn
)

var stateNames = [...]string{
	StateNone:        "",
	StateUnknown:     "UNKNOWN",
	StateEstablished: "ESTABLISHED",
	StateSynSent:     "SYN_SENT",
	StateSynRecv:     "SYN_RECV",
	StateFinWait1:    "FIN_WAIT1",
	StateFinWait2:    "FIN_WAIT2",
	StateTimeWait:    "TIME_WAIT",
	StateClose:       "CLOSE",
	StateCloseWait:   "CLOSE_WAIT",
	StateLastAck:     "LAST_ACK",
	StateListen:      "LISTEN",
	StateClosing:     "CLOSING",
	StateUnconn:      "UNCONN",
}

// String returns the state's name.
func (s State) String() string { return nameOf(stateNames[:], s, "UNKNOWN") }

// MarshalText returns the state's name.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a state's name; a name it does not know is an error
// naming it.
func (s *State) UnmarshalText(b []byte) error {
	return unmarshalName(stateNames[:], b, "socket state", s)
}

// ParseState returns the state named s.
func ParseState(s string) (State, bool) { return parseName[State](stateNames[:], s) }

// nameOf is names[v], or unknown past the table.
func nameOf[T ~uint8](names []string, v T, unknown string) string {
	if int(v) < len(names) {
		return names[v]
	}
	return unknown
}

// unmarshalName sets *dst to the value named b; an unknown name is an error
// naming it and what it was meant to be.
func unmarshalName[T ~uint8](names []string, b []byte, what string, dst *T) error {
	v, ok := parseName[T](names, string(b))
	if !ok {
		return fmt.Errorf("unknown %s %q (want one of %q)", what, b, names[1:])
	}
	*dst = v
	return nil
}

// parseName is the value whose name is s (the zero value and false when none).
func parseName[T ~uint8](names []string, s string) (T, bool) {
	for i, n := range names {
		if n == s {
			return T(i), true
		}
	}
	return 0, false
}
