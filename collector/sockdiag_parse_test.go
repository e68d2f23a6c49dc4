package collector

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// fixtureScenario is what TestRecordNetlinkFixtures did when it recorded
// testdata/netlink: the sockets it opened and the bytes it sent.
type fixtureScenario struct {
	TimeWaitLocal, TimeWaitRemote string
	Listener4, Client4, Server4   string
	Bytes4                        uint64
	Client6, Server6              string
	Bytes6                        uint64
	UDP4                          string
	UDP6Local, UDP6Remote         string
}

func readNetlinkFixture(t testing.TB, name string) []byte {
	t.Helper()
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("fixtures were recorded on a little-endian host")
	}
	b, err := os.ReadFile(filepath.Join("testdata", "netlink", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func loadScenario(t *testing.T) fixtureScenario {
	t.Helper()
	var sc fixtureScenario
	if err := json.Unmarshal(readNetlinkFixture(t, "scenario.json"), &sc); err != nil {
		t.Fatal(err)
	}
	return sc
}

func parseFixture(t *testing.T, name string, proto uint8, destroyed bool) []Socket {
	t.Helper()
	socks, res, err := parseDiagMessages(readNetlinkFixture(t, name), proto, 0, destroyed, nil)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if !destroyed && !res.Done {
		t.Errorf("%s: NLMSG_DONE not seen", name)
	}
	return socks
}

func sockAt(socks []Socket, local string, state string) *Socket {
	for i := range socks {
		if socks[i].Local.String() == local && (state == "" || socks[i].State.String() == state) {
			return &socks[i]
		}
	}
	return nil
}

func TestParseTCP4DumpFixture(t *testing.T) {
	sc := loadScenario(t)
	socks := parseFixture(t, "tcp4_dump.bin", ipprotoTCP, false)
	l := sockAt(socks, sc.Listener4, "LISTEN")
	c := sockAt(socks, sc.Client4, "")
	s := sockAt(socks, sc.Server4, "ESTABLISHED")
	tw := sockAt(socks, sc.TimeWaitLocal, "")
	if l == nil || c == nil || s == nil || tw == nil {
		t.Fatalf("listener %v client %v server %v time-wait %v", l, c, s, tw)
	}
	for _, x := range []*Socket{l, c, s, tw} {
		if x.Proto != ProtoTCP || x.Family != 4 || x.Cookie == 0 {
			t.Errorf("%s: proto %q family %d cookie %d", x.Local, x.Proto, x.Family, x.Cookie)
		}
	}
	if c.State != StateEstablished || c.Remote.String() != sc.Listener4 || s.Remote.String() != sc.Client4 {
		t.Errorf("client %s→%s %s, server %s→%s", c.Local, c.Remote, c.State, s.Local, s.Remote)
	}
	if c.BytesSent != sc.Bytes4 || c.BytesAcked != sc.Bytes4+1 || s.BytesReceived != sc.Bytes4 {
		t.Errorf("client sent %d acked %d, server received %d; the test sent %d", c.BytesSent, c.BytesAcked, s.BytesReceived, sc.Bytes4)
	}
	if l.Inode == 0 || c.Inode == 0 || l.Inode == c.Inode {
		t.Errorf("inodes listener %d client %d", l.Inode, c.Inode)
	}
	if tw.State != StateTimeWait || tw.Inode != 0 || tw.Remote.String() != sc.TimeWaitRemote || tw.BytesAcked != 0 {
		t.Errorf("time-wait socket %+v", *tw)
	}
}

func TestParseTCP6AndUDPFixtures(t *testing.T) {
	sc := loadScenario(t)
	socks := parseFixture(t, "tcp6_dump.bin", ipprotoTCP, false)
	c := sockAt(socks, sc.Client6, "ESTABLISHED")
	if c == nil || c.Family != 6 || c.BytesSent != sc.Bytes6 || c.Remote.Addr() != netip.IPv6Loopback() {
		t.Errorf("v6 client %+v, want %d bytes sent to ::1", c, sc.Bytes6)
	}
	u4 := parseFixture(t, "udp4_dump.bin", ipprotoUDP, false)
	if u := sockAt(u4, sc.UDP4, "UNCONN"); u == nil || u.Proto != ProtoUDP || u.Remote.Port() != 0 || u.BytesSent != 0 {
		t.Errorf("unconnected UDP %s: %+v", sc.UDP4, u)
	}
	u6 := parseFixture(t, "udp6_dump.bin", ipprotoUDP, false)
	if u := sockAt(u6, sc.UDP6Local, "ESTABLISHED"); u == nil || u.Remote.String() != sc.UDP6Remote || u.Family != 6 {
		t.Errorf("connected UDP6 %s: %+v", sc.UDP6Local, u)
	}
}

func TestParseDestroyFixtures(t *testing.T) {
	sc := loadScenario(t)
	// The protocol comes from the INET_DIAG_PROTOCOL attribute, not the caller.
	tcp := parseFixture(t, "destroy_tcp6.bin", 0, true)
	c := sockAt(tcp, sc.Client6, "")
	if c == nil || c.Proto != ProtoTCP || !c.Destroyed || c.Inode != 0 || c.Cookie == 0 {
		t.Fatalf("destroyed TCP client %+v", c)
	}
	if c.BytesSent != sc.Bytes6 || c.Remote.String() != sc.Server6 {
		t.Errorf("destroyed client sent %d to %s, want %d to %s", c.BytesSent, c.Remote, sc.Bytes6, sc.Server6)
	}
	udp := parseFixture(t, "destroy_udp6.bin", 0, true)
	if u := sockAt(udp, sc.UDP6Local, ""); u == nil || u.Proto != ProtoUDP || !u.Destroyed {
		t.Errorf("destroyed UDP %+v", u)
	}
}

// nlmsg builds one netlink message (host order) for the malformed cases.
func nlmsg(typ uint16, seq uint32, payload []byte) []byte {
	b := binary.NativeEndian.AppendUint32(nil, uint32(nlmsgHdrLen+len(payload)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, 0)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = append(b, payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func TestParseMalformedMessages(t *testing.T) {
	good := readNetlinkFixture(t, "tcp4_dump.bin")
	all, _, _ := parseDiagMessages(good, ipprotoTCP, 0, false, nil)
	// Every truncation returns an error or fewer sockets, never a panic.
	for n := 0; n < len(good); n++ {
		socks, res, err := parseDiagMessages(good[:n], ipprotoTCP, 0, false, nil)
		if res.Done {
			t.Fatalf("truncated at %d: DONE reported", n)
		}
		if len(socks) > len(all) {
			t.Fatalf("truncated at %d: %d sockets from %d", n, len(socks), len(all))
		}
		if err != nil && !errors.Is(err, ErrNetlinkTruncated) {
			t.Fatalf("truncated at %d: %v", n, err)
		}
		if _, err := countDiagMessages(good[:n], 0); err != nil && !errors.Is(err, ErrNetlinkTruncated) {
			t.Fatalf("count truncated at %d: %v", n, err)
		}
	}

	msg := make([]byte, inetDiagMsgLen)
	msg[0] = afInet
	cases := []struct {
		name string
		buf  []byte
		want error
	}{
		{"header length below 16", []byte{4, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, ErrNetlinkTruncated},
		{"length beyond buffer", append(nlmsg(sockDiagByFamily, 0, msg)[:8], make([]byte, 8)...), ErrNetlinkTruncated},
		{"short inet_diag_msg", nlmsg(sockDiagByFamily, 0, msg[:40]), ErrNetlinkTruncated},
		{"attribute longer than message", nlmsg(sockDiagByFamily, 0, append(append([]byte{}, msg...), 200, 0, 2, 0)), ErrNetlinkTruncated},
		{"attribute length below 4", nlmsg(sockDiagByFamily, 0, append(append([]byte{}, msg...), 2, 0, 2, 0)), ErrNetlinkTruncated},
		{"error reply", nlmsg(nlmsgError, 0, binary.NativeEndian.AppendUint32(nil, uint32(0xfffffff3))), ErrNetlinkError},
		{"short error reply", nlmsg(nlmsgError, 0, []byte{1}), ErrNetlinkTruncated},
		{"overrun", nlmsg(nlmsgOverrun, 0, nil), ErrNetlinkOverrun},
	}
	for _, tc := range cases {
		_, _, err := parseDiagMessages(tc.buf, ipprotoTCP, 0, false, nil)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
	}
	bad := append([]byte{}, msg...)
	bad[0] = 99
	if _, _, err := parseDiagMessages(nlmsg(sockDiagByFamily, 0, bad), ipprotoTCP, 0, false, nil); err == nil {
		t.Error("unknown address family accepted")
	}
	// A short tcp_info (old kernel) leaves the counters it lacks at zero.
	short := append(append([]byte{}, msg...), 4+136, 0, inetDiagInfo, 0)
	short = append(short, make([]byte, 136)...)
	binary.NativeEndian.PutUint64(short[inetDiagMsgLen+4+tcpiBytesAckedOff:], 55)
	socks, _, err := parseDiagMessages(nlmsg(sockDiagByFamily, 0, short), ipprotoTCP, 0, false, nil)
	if err != nil || len(socks) != 1 || socks[0].BytesAcked != 55 || socks[0].BytesSent != 0 {
		t.Errorf("short tcp_info: %v %+v", err, socks)
	}
	// Replies of another request (sequence) are skipped; an ACK is not an error.
	buf := append(nlmsg(sockDiagByFamily, 7, msg), nlmsg(nlmsgError, 8, make([]byte, 4))...)
	buf = append(buf, nlmsg(nlmsgDone, 8, make([]byte, 4))...)
	socks, res, err := parseDiagMessages(buf, ipprotoTCP, 8, false, nil)
	if err != nil || len(socks) != 0 || !res.Done {
		t.Errorf("stale sequence: %v %d sockets done %v", err, len(socks), res.Done)
	}
}

func TestAppendDiagRequest(t *testing.T) {
	b := appendDiagRequest(nil, 42, afInet6, ipprotoTCP, 0xffffffff, 1<<(inetDiagInfo-1))
	ne := binary.NativeEndian
	if len(b) != 72 || ne.Uint32(b) != 72 || ne.Uint16(b[4:]) != sockDiagByFamily || ne.Uint16(b[6:]) != nlmFRequest|nlmFDump || ne.Uint32(b[8:]) != 42 {
		t.Fatalf("header % x", b[:16])
	}
	if b[16] != afInet6 || b[17] != ipprotoTCP || b[18] != 2 || ne.Uint32(b[20:]) != 0xffffffff {
		t.Errorf("request body % x", b[16:24])
	}
}

func TestAppendTCPCompatRequest(t *testing.T) {
	b := appendTCPCompatRequest(nil, 9, 0xffffffff, 1<<(inetDiagInfo-1))
	ne := binary.NativeEndian
	if len(b) != nlmsgHdrLen+inetDiagReqV1 || ne.Uint32(b) != uint32(len(b)) || ne.Uint16(b[4:]) != tcpDiagGetSock || ne.Uint16(b[6:]) != nlmFRequest|nlmFDump || ne.Uint32(b[8:]) != 9 {
		t.Fatalf("header % x", b[:16])
	}
	// inet_diag_req: family, src_len, dst_len, ext, sockid (48), states, dbs.
	if b[16] != 0 || b[19] != 2 || ne.Uint32(b[16+4+48:]) != 0xffffffff || ne.Uint32(b[16+4+48+4:]) != 0 {
		t.Errorf("request body % x", b[16:])
	}
}

// TestParseTCPCompatReply: a TCPDIAG_GETSOCK reply is an inet_diag_msg like
// SOCK_DIAG_BY_FAMILY's, under the request's message type.
func TestParseTCPCompatReply(t *testing.T) {
	v4 := make([]byte, inetDiagMsgLen)
	v4[0], v4[1] = afInet, 1
	copy(v4[8:12], []byte{127, 0, 0, 1})
	v6 := make([]byte, inetDiagMsgLen)
	v6[0], v6[1] = afInet6, 10
	v6[23] = 1
	buf := append(nlmsg(tcpDiagGetSock, 3, v4), nlmsg(tcpDiagGetSock, 3, v6)...)
	buf = append(buf, nlmsg(nlmsgDone, 3, make([]byte, 4))...)
	socks, res, err := parseDiagMessages(buf, ipprotoTCP, 3, false, nil)
	if err != nil || !res.Done || res.Messages != 2 || len(socks) != 2 {
		t.Fatalf("err %v done %v messages %d sockets %d", err, res.Done, res.Messages, len(socks))
	}
	if s := socks[0]; s.Proto != ProtoTCP || s.Family != 4 || s.State != StateEstablished || s.Local.Addr().String() != "127.0.0.1" {
		t.Errorf("v4 socket %+v", s)
	}
	if s := socks[1]; s.Proto != ProtoTCP || s.Family != 6 || s.State != StateListen || s.Local.Addr().String() != "::1" {
		t.Errorf("v6 socket %+v", s)
	}
	if n, err := countDiagMessages(buf, 3); err != nil || n.Messages != 2 || !n.Done {
		t.Errorf("count: %+v %v", n, err)
	}
}

func FuzzParseDiagMessages(f *testing.F) {
	for _, name := range []string{"tcp4_dump.bin", "tcp6_dump.bin", "udp4_dump.bin", "udp6_dump.bin", "destroy_tcp6.bin", "destroy_udp6.bin"} {
		b, err := os.ReadFile(filepath.Join("testdata", "netlink", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(nlmsg(nlmsgError, 0, []byte{0xf3, 0xff, 0xff, 0xff}))
	f.Fuzz(func(t *testing.T, b []byte) {
		socks, res, err := parseDiagMessages(b, ipprotoTCP, 0, false, nil)
		if len(socks) > res.Messages {
			t.Fatalf("%d sockets from %d messages", len(socks), res.Messages)
		}
		for _, s := range socks {
			if s.Family != 4 && s.Family != 6 {
				t.Fatalf("family %d", s.Family)
			}
			if s.State == StateNone || s.Proto == ProtoNone {
				t.Fatalf("empty state/proto: %+v", s)
			}
		}
		cres, cerr := countDiagMessages(b, 0)
		if err == nil && cerr == nil && cres.Messages < len(socks) {
			t.Fatalf("count %d < parsed %d", cres.Messages, len(socks))
		}
	})
}
