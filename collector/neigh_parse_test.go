package collector

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// ndMsgBytes builds one neighbour message as the kernel sends it.
func ndMsgBytes(typ uint16, seq uint32, family uint8, ifindex int32, state uint16, flags uint8, dst, ll []byte) []byte {
	ne := binary.NativeEndian
	body := []byte{family, 0, 0, 0}
	body = ne.AppendUint32(body, uint32(ifindex))
	body = ne.AppendUint16(body, state)
	body = append(body, flags, 1)
	attr := func(t uint16, p []byte) {
		if p == nil {
			return
		}
		body = ne.AppendUint16(body, uint16(4+len(p)))
		body = ne.AppendUint16(body, t)
		body = append(body, p...)
		for len(body)%4 != 0 {
			body = append(body, 0)
		}
	}
	attr(ndaDst, dst)
	attr(ndaLLAddr, ll)
	var b []byte
	b = ne.AppendUint32(b, uint32(nlmsgHdrLen+len(body)))
	b = ne.AppendUint16(b, typ)
	b = ne.AppendUint16(b, 0)
	b = ne.AppendUint32(b, seq)
	b = ne.AppendUint32(b, 0)
	return append(b, body...)
}

func nlDone(seq uint32) []byte {
	ne := binary.NativeEndian
	var b []byte
	b = ne.AppendUint32(b, nlmsgHdrLen+4)
	b = ne.AppendUint16(b, nlmsgDone)
	b = ne.AppendUint16(b, 0)
	b = ne.AppendUint32(b, seq)
	b = ne.AppendUint32(b, 0)
	return ne.AppendUint32(b, 0)
}

var (
	macGW = []byte{0x52, 0x54, 0x00, 0x00, 0x00, 0x01}
	v4GW  = []byte{10, 0, 0, 1}
	v6GW  = netip.MustParseAddr("fe80::5054:ff:fe00:1").AsSlice()
)

func TestParseNeighMessages(t *testing.T) {
	var buf []byte
	buf = append(buf, ndMsgBytes(rtmNewNeigh, 7, afInet, 2, nudReachable, 0, v4GW, macGW)...)
	buf = append(buf, ndMsgBytes(rtmNewNeigh, 7, afInet6, 2, nudStale, ntfRouter, v6GW, macGW)...)
	buf = append(buf, ndMsgBytes(rtmNewNeigh, 7, afInet, 2, nudIncomplete, 0, []byte{10, 0, 0, 9}, nil)...)
	buf = append(buf, ndMsgBytes(rtmNewNeigh, 7, afInet, 2, nudFailed, 0, []byte{10, 0, 0, 8}, macGW)...)         // FAILED keeps a stale lladdr: not a valid MAC
	buf = append(buf, ndMsgBytes(rtmNewNeigh, 7, 7 /* AF_BRIDGE */, 3, nudReachable, 0, nil, macGW)...)           // bridge FDB: skipped
	buf = append(buf, ndMsgBytes(rtmNewNeigh, 7, afInet, 2, nudReachable, ntfProxy, []byte{10, 0, 0, 7}, nil)...) // proxy entry: skipped
	buf = append(buf, ndMsgBytes(rtmNewNeigh, 6, afInet, 2, nudReachable, 0, []byte{10, 0, 0, 6}, macGW)...)      // stale sequence: skipped
	buf = append(buf, ndMsgBytes(rtmDelNeigh, 7, afInet, 2, nudPermanent, 0, []byte{10, 0, 0, 5}, macGW)...)
	buf = append(buf, nlDone(7)...)
	buf = append(buf, ndMsgBytes(rtmNewNeigh, 7, afInet, 2, nudReachable, 0, []byte{10, 0, 0, 4}, macGW)...) // after DONE

	got, res, err := parseNeighMessages(buf, 7, nil)
	if err != nil || !res.Done || res.Messages != 7 {
		t.Fatalf("err %v, res %+v", err, res)
	}
	want := []struct {
		ip, mac, state   string
		complete, router bool
		deleted, perm    bool
		flags            uint32
	}{
		{"10.0.0.1", "52:54:00:00:00:01", "REACHABLE", true, false, false, false, atfComplete},
		{"fe80::5054:ff:fe00:1", "52:54:00:00:00:01", "STALE", true, true, false, false, atfComplete},
		{"10.0.0.9", "", "INCOMPLETE", false, false, false, false, 0},
		{"10.0.0.8", "", "FAILED", false, false, false, false, 0},
		{"10.0.0.5", "52:54:00:00:00:01", "PERMANENT", true, false, true, true, atfComplete | atfPermanent},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d neighbours %+v, want %d", len(got), got, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.N.IP.String() != w.ip || g.N.MAC != w.mac || g.N.State != w.state || g.N.Complete != w.complete ||
			g.N.Router != w.router || g.Deleted != w.deleted || g.N.Permanent != w.perm || g.N.Flags != w.flags || g.Ifindex != 2 {
			t.Errorf("neighbour %d: got %+v, want %+v", i, g, w)
		}
	}
}

func TestParseNeighMessagesMalformed(t *testing.T) {
	good := ndMsgBytes(rtmNewNeigh, 0, afInet, 2, nudReachable, 0, v4GW, macGW)
	for name, b := range map[string][]byte{
		"short header":    good[:10],
		"length too long": good[:len(good)-4],
		"short ndmsg":     ndMsgTruncated(),
	} {
		got, _, err := parseNeighMessages(b, 0, nil)
		if !errors.Is(err, ErrNetlinkTruncated) || len(got) != 0 {
			t.Errorf("%s: got %+v, %v; want ErrNetlinkTruncated", name, got, err)
		}
	}
	// A message before the damage is kept.
	b := append(append([]byte{}, good...), good[:20]...)
	got, _, err := parseNeighMessages(b, 0, nil)
	if err == nil || len(got) != 1 {
		t.Errorf("got %d, %v", len(got), err)
	}
	// An error reply names the errno.
	ne := binary.NativeEndian
	var e []byte
	e = ne.AppendUint32(e, nlmsgHdrLen+4)
	e = ne.AppendUint16(e, nlmsgError)
	e = ne.AppendUint16(e, 0)
	e = ne.AppendUint32(e, 0)
	e = ne.AppendUint32(e, 0)
	e = ne.AppendUint32(e, uint32(0xffffffff-12)) // -13 EACCES
	if _, _, err := parseNeighMessages(e, 0, nil); !errors.Is(err, ErrNetlinkError) || !strings.Contains(err.Error(), "13") {
		t.Errorf("error reply: %v", err)
	}
}

func ndMsgTruncated() []byte {
	ne := binary.NativeEndian
	var b []byte
	b = ne.AppendUint32(b, nlmsgHdrLen+8)
	b = ne.AppendUint16(b, rtmNewNeigh)
	b = ne.AppendUint16(b, 0)
	b = ne.AppendUint32(b, 0)
	b = ne.AppendUint32(b, 0)
	return append(b, make([]byte, 8)...)
}

func TestNeighDumpRequest(t *testing.T) {
	b := appendNeighDumpRequest(nil, 42)
	ne := binary.NativeEndian
	if len(b) != nlmsgHdrLen+ndMsgLen || ne.Uint32(b) != uint32(len(b)) || ne.Uint16(b[4:]) != rtmGetNeigh ||
		ne.Uint16(b[6:]) != nlmFRequest|nlmFDump || ne.Uint32(b[8:]) != 42 || b[16] != 0 {
		t.Errorf("request % x", b)
	}
}

func FuzzParseNeighMessages(f *testing.F) {
	f.Add(append(ndMsgBytes(rtmNewNeigh, 1, afInet6, 2, nudStale, ntfRouter, v6GW, macGW), nlDone(1)...))
	f.Add(ndMsgBytes(rtmDelNeigh, 0, afInet, 2, nudReachable, 0, v4GW, macGW))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, _, _ := parseNeighMessages(data, 0, nil)
		for _, m := range got {
			if !m.N.IP.IsValid() || (m.N.Complete != (m.N.MAC != "")) || (m.N.MAC != "" && !validMAC(m.N.MAC)) {
				t.Errorf("bad neighbour %+v", m)
			}
		}
	})
}
