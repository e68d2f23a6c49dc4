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
func (p Proto) String() string {
	if int(p) < len(protoNames) {
		return protoNames[p]
	}
	return "unknown"
}

// MarshalText returns the protocol's name.
func (p Proto) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText reads a protocol's name; a name it does not know is an
// error naming it.
func (p *Proto) UnmarshalText(b []byte) error {
	v, ok := ParseProto(string(b))
	if !ok {
		return fmt.Errorf("unknown socket protocol %q (want tcp or udp)", b)
	}
	*p = v
	return nil
}

// ParseProto returns the protocol named s.
func ParseProto(s string) (Proto, bool) {
	for i, n := range protoNames {
		if n == s {
			return Proto(i), true
		}
	}
	return ProtoNone, false
}

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
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "UNKNOWN"
}

// MarshalText returns the state's name.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a state's name; a name it does not know is an error
// naming it.
func (s *State) UnmarshalText(b []byte) error {
	v, ok := ParseState(string(b))
	if !ok {
		return fmt.Errorf("unknown socket state %q", b)
	}
	*s = v
	return nil
}

// ParseState returns the state named s.
func ParseState(s string) (State, bool) {
	for i, n := range stateNames {
		if n == s {
			return State(i), true
		}
	}
	return StateNone, false
}
