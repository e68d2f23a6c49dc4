package collector

// Pure parsing of rtnetlink neighbour messages (RTM_NEWNEIGH, RTM_DELNEIGH),
// as the kernel sends them in a RTM_GETNEIGH dump and to the RTNLGRP_NEIGH
// multicast group. No build tag and no I/O, so it is fuzzed and tested on any
// system; the socket side lives in neigh_linux.go.
//
// Layouts (include/uapi/linux/neighbour.h, rtnetlink.h), host byte order:
//
//	nlmsghdr  len u32 | type u16 | flags u16 | seq u32 | pid u32       (16 bytes)
//	ndmsg     family u8 | pad u8 | pad u16 | ifindex s32 | state u16 | flags u8 | type u8   (12 bytes)
//	rtattr    len u16 | type u16 | payload, padded to 4 bytes: NDA_DST (address), NDA_LLADDR (MAC)

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
)

const (
	rtmNewNeigh = 28
	rtmDelNeigh = 29
	rtmGetNeigh = 30

	ndMsgLen  = 12
	ndaDst    = 1
	ndaLLAddr = 2

	// NUD states (include/uapi/linux/neighbour.h).
	nudIncomplete = 0x01
	nudReachable  = 0x02
	nudStale      = 0x04
	nudDelay      = 0x08
	nudProbe      = 0x10
	nudFailed     = 0x20
	nudNoARP      = 0x40
	nudPermanent  = 0x80
	// nudValid: the link-layer address is known (the kernel's NUD_VALID).
	nudValid = nudPermanent | nudNoARP | nudReachable | nudProbe | nudStale | nudDelay

	ntfProxy  = 0x08
	ntfRouter = 0x80
)

// neighMsg is one parsed neighbour message; the device is still an ifindex.
type neighMsg struct {
	Ifindex int32
	Deleted bool // RTM_DELNEIGH
	N       Neighbor
}

// appendNeighDumpRequest appends a RTM_GETNEIGH dump request for every
// neighbour of every family (AF_UNSPEC: the ARP and the NDP table).
func appendNeighDumpRequest(b []byte, seq uint32) []byte {
	ne := binary.NativeEndian
	b = ne.AppendUint32(b, nlmsgHdrLen+ndMsgLen)
	b = ne.AppendUint16(b, rtmGetNeigh)
	b = ne.AppendUint16(b, nlmFRequest|nlmFDump)
	b = ne.AppendUint32(b, seq)
	b = ne.AppendUint32(b, 0)
	return append(b, make([]byte, ndMsgLen)...)
}

// neighBatch is the result of parsing one buffer of neighbour messages.
type neighBatch struct {
	Done     bool // NLMSG_DONE seen: the dump is complete
	Messages int  // neighbour messages seen (kept or skipped)
}

// parseNeighMessages parses every netlink message in buf (one recv) and
// appends one neighMsg per IPv4 or IPv6 neighbour message to dst. Other
// families (the bridge FDB shares the multicast group) and proxy entries are
// skipped. seq, when non-zero, must match each message's sequence number.
// It never panics on malformed input: a truncated message ends the parse
// with an error wrapping ErrNetlinkTruncated, keeping what was parsed.
func parseNeighMessages(buf []byte, seq uint32, dst []neighMsg) ([]neighMsg, neighBatch, error) {
	var res neighBatch
	for len(buf) > 0 {
		typ, mseq, msg, rest, err := nlNext(buf)
		if err != nil {
			return dst, res, err
		}
		buf = rest
		if seq != 0 && mseq != seq {
			continue
		}
		if typ < nlmsgMinType {
			if done, err := nlControl(typ, msg); done || err != nil {
				res.Done = done
				return dst, res, err
			}
			continue
		}
		if typ != rtmNewNeigh && typ != rtmDelNeigh {
			continue
		}
		res.Messages++
		m, ok, err := parseNdMsg(msg)
		if err != nil {
			return dst, res, err
		}
		if ok {
			m.Deleted = typ == rtmDelNeigh
			dst = append(dst, m)
		}
	}
	return dst, res, nil
}

// parseNdMsg decodes one ndmsg and its attributes. ok is false for entries
// that are not IPv4/IPv6 neighbours (bridge FDB, proxy entries, no address).
func parseNdMsg(b []byte) (neighMsg, bool, error) {
	var m neighMsg
	if len(b) < ndMsgLen {
		return m, false, fmt.Errorf("%w: ndmsg %d bytes, need %d", ErrNetlinkTruncated, len(b), ndMsgLen)
	}
	ne := binary.NativeEndian
	family := b[0]
	m.Ifindex = int32(ne.Uint32(b[4:8]))
	state := ne.Uint16(b[8:10])
	flags := b[10]
	var dst, ll []byte
	attrs := b[ndMsgLen:]
	for len(attrs) > 0 {
		if len(attrs) < 4 {
			return m, false, fmt.Errorf("%w: %d attribute bytes left, header needs 4", ErrNetlinkTruncated, len(attrs))
		}
		alen := int(ne.Uint16(attrs[0:2]))
		atyp := ne.Uint16(attrs[2:4]) & 0x3fff
		if alen < 4 || alen > len(attrs) {
			return m, false, fmt.Errorf("%w: attribute %d length %d, %d bytes available", ErrNetlinkTruncated, atyp, alen, len(attrs))
		}
		switch atyp {
		case ndaDst:
			dst = attrs[4:alen]
		case ndaLLAddr:
			ll = attrs[4:alen]
		}
		next := (alen + 3) &^ 3
		if next > len(attrs) {
			next = len(attrs)
		}
		attrs = attrs[next:]
	}
	if flags&ntfProxy != 0 {
		return m, false, nil
	}
	switch {
	case family == afInet && len(dst) == 4:
		m.N.IP = netip.AddrFrom4([4]byte(dst))
	case family == afInet6 && len(dst) == 16:
		m.N.IP = netip.AddrFrom16([16]byte(dst))
	default:
		return m, false, nil
	}
	m.N.State = nudName(state)
	m.N.Router = flags&ntfRouter != 0
	m.N.Permanent = state&nudPermanent != 0
	if state&nudValid != 0 && len(ll) > 0 && len(ll) <= 20 {
		if mac := formatMAC(ll); mac != "00:00:00:00:00:00" {
			m.N.MAC = mac
			m.N.Complete = true
		}
	}
	// The /proc/net/arp flags, so both sources mean the same by Flags.
	if m.N.Complete {
		m.N.Flags |= atfComplete
	}
	if m.N.Permanent {
		m.N.Flags |= atfPermanent
	}
	return m, true, nil
}

// formatMAC prints a hardware address as lower-case colon-separated hex.
func formatMAC(b []byte) string {
	const hexd = "0123456789abcdef"
	var sb strings.Builder
	sb.Grow(len(b) * 3)
	for i, c := range b {
		if i > 0 {
			sb.WriteByte(':')
		}
		sb.WriteByte(hexd[c>>4])
		sb.WriteByte(hexd[c&0xf])
	}
	return sb.String()
}

// nudName names a NUD state as `ip neigh` does ("REACHABLE", "STALE" ...).
func nudName(s uint16) string {
	names := [...]struct {
		bit  uint16
		name string
	}{
		{nudPermanent, "PERMANENT"}, {nudNoARP, "NOARP"}, {nudReachable, "REACHABLE"}, {nudStale, "STALE"},
		{nudDelay, "DELAY"}, {nudProbe, "PROBE"}, {nudIncomplete, "INCOMPLETE"}, {nudFailed, "FAILED"},
	}
	for _, n := range names {
		if s&n.bit != 0 {
			return n.name
		}
	}
	return "NONE"
}
