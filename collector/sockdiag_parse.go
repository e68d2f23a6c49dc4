package collector

// Pure parsing of NETLINK_SOCK_DIAG (inet_diag) messages. No build tag and no
// I/O, so it is fuzzed and tested on recorded fixtures on any system; the
// socket side lives in sockdiag_linux.go and destroy_linux.go.
//
// Layouts (include/uapi/linux/netlink.h, inet_diag.h, tcp.h), all in host
// byte order except ports and addresses, which are big-endian:
//
//	nlmsghdr        len u32 | type u16 | flags u16 | seq u32 | pid u32      (16 bytes)
//	inet_diag_sockid sport be16 | dport be16 | src [16]byte | dst [16]byte | if u32 | cookie [2]u32 (48 bytes)
//	inet_diag_msg   family u8 | state u8 | timer u8 | retrans u8 | sockid | expires u32 | rqueue u32 | wqueue u32 | uid u32 | inode u32 (72 bytes)
//	inet_diag_req_v2 family u8 | protocol u8 | ext u8 | pad u8 | states u32 | sockid (56 bytes)
//	inet_diag_req   family u8 | src_len u8 | dst_len u8 | ext u8 | sockid | states u32 | dbs u32 (60 bytes)
//	rtattr          len u16 | type u16 | payload, padded to 4 bytes

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Netlink and inet_diag constants (values from the Linux UAPI headers; kept
// here so this file builds on every OS).
const (
	nlmsgHdrLen      = 16
	nlmsgMinType     = 0x10 // types below are netlink's own control messages
	nlmsgError       = 2
	nlmsgDone        = 3
	nlmsgOverrun     = 4
	sockDiagByFamily = 20
	// tcpDiagGetSock is the old TCP request (TCPDIAG_GETSOCK, struct
	// inet_diag_req): the kernel dumps IPv4 and IPv6 sockets in one walk of
	// the TCP hash (it asks with family AF_UNSPEC); replies carry this type.
	tcpDiagGetSock = 18

	nlmFRequest = 0x1
	nlmFRoot    = 0x100
	nlmFMatch   = 0x200
	nlmFDump    = nlmFRoot | nlmFMatch

	inetDiagMsgLen = 72
	inetDiagReqLen = 56
	inetDiagReqV1  = 60

	inetDiagInfo     = 2  // INET_DIAG_INFO: struct tcp_info
	inetDiagProtocol = 10 // INET_DIAG_PROTOCOL: u8 IPPROTO_*

	afInet  = 2
	afInet6 = 10

	ipprotoTCP = 6
	ipprotoUDP = 17

	// tcp_info offsets (struct tcp_info, include/uapi/linux/tcp.h). Values are
	// reported as the kernel counts them: tcpi_bytes_acked includes the SYN
	// and FIN, tcpi_bytes_received the peer's FIN, as one byte each;
	// tcpi_bytes_sent counts payload only (retransmits included).
	tcpiLastDataSentOff  = 44 // ms since, as are the next
	tcpiLastDataRecvOff  = 52
	tcpiBytesAckedOff    = 120
	tcpiBytesReceivedOff = 128
	tcpiBytesSentOff     = 200 // kernel >= 4.19
)

// Errors returned by the parser. They are wrapped with the offending detail.
var (
	// ErrNetlinkTruncated means a message or attribute is shorter than its
	// header or declared length.
	ErrNetlinkTruncated = errors.New("netlink: truncated message")
	// ErrNetlinkError is a NLMSG_ERROR reply carrying a non-zero errno.
	ErrNetlinkError = errors.New("netlink: error reply")
	// ErrNetlinkOverrun is a NLMSG_OVERRUN reply: the kernel dropped data.
	ErrNetlinkOverrun = errors.New("netlink: overrun")
)

// tcpStates maps the kernel's TCP state numbers (include/net/tcp_states.h) to
// Socket.State. NEW_SYN_RECV (12) is reported by the kernel as SYN_RECV
// already; it is mapped for safety.
var tcpStates = [...]State{
	0:  StateUnknown,
	1:  StateEstablished,
	2:  StateSynSent,
	3:  StateSynRecv,
	4:  StateFinWait1,
	5:  StateFinWait2,
	6:  StateTimeWait,
	7:  StateClose,
	8:  StateCloseWait,
	9:  StateLastAck,
	10: StateListen,
	11: StateClosing,
	12: StateSynRecv,
}

// stateOf returns Socket.State for a kernel state of protocol proto. UDP
// sockets are ESTABLISHED when connected and UNCONN otherwise (as ss prints).
func stateOf(proto uint8, st uint8) State {
	if proto == ipprotoUDP {
		if st == 1 {
			return StateEstablished
		}
		return StateUnconn
	}
	if int(st) < len(tcpStates) {
		return tcpStates[st]
	}
	return StateUnknown
}

func protoOf(proto uint8) Proto {
	switch proto {
	case ipprotoTCP:
		return ProtoTCP
	case ipprotoUDP:
		return ProtoUDP
	}
	return ProtoUnknown
}

// appendDiagRequest appends a SOCK_DIAG_BY_FAMILY dump request for every
// socket of (family, proto) in the given state mask, asking for the
// extensions in ext (a bitmask of 1<<(INET_DIAG_x-1)).
func appendDiagRequest(b []byte, seq uint32, family, proto uint8, states uint32, ext uint8) []byte {
	const total = nlmsgHdrLen + inetDiagReqLen
	ne := binary.NativeEndian
	b = ne.AppendUint32(b, total)
	b = ne.AppendUint16(b, sockDiagByFamily)
	b = ne.AppendUint16(b, nlmFRequest|nlmFDump)
	b = ne.AppendUint32(b, seq)
	b = ne.AppendUint32(b, 0) // pid: the kernel
	b = append(b, family, proto, ext, 0)
	b = ne.AppendUint32(b, states)
	return append(b, make([]byte, 48)...) // zero sockid: match all
}

// appendTCPCompatRequest appends a TCPDIAG_GETSOCK dump request: every TCP
// socket of both address families in the given states, with the extensions
// in ext.
func appendTCPCompatRequest(b []byte, seq uint32, states uint32, ext uint8) []byte {
	const total = nlmsgHdrLen + inetDiagReqV1
	ne := binary.NativeEndian
	b = ne.AppendUint32(b, total)
	b = ne.AppendUint16(b, tcpDiagGetSock)
	b = ne.AppendUint16(b, nlmFRequest|nlmFDump)
	b = ne.AppendUint32(b, seq)
	b = ne.AppendUint32(b, 0)
	b = append(b, 0, 0, 0, ext)        // family (ignored: both), src_len, dst_len, ext
	b = append(b, make([]byte, 48)...) // zero sockid: match all
	b = ne.AppendUint32(b, states)     // idiag_states
	return ne.AppendUint32(b, 0)       // idiag_dbs
}

// diagBatch is the result of parsing one buffer of netlink messages.
type diagBatch struct {
	Done     bool // NLMSG_DONE seen: the dump is complete
	Messages int  // sock_diag messages seen (parsed or skipped)
}

// parseDiagMessages parses every netlink message in buf (the bytes of one
// recv) and appends one Socket per SOCK_DIAG_BY_FAMILY message to dst.
// defProto is the IP protocol the dump was asked for; an INET_DIAG_PROTOCOL
// attribute (always present in destroy notifications) overrides it. seq, when
// non-zero, must match each message's sequence number (stale replies are
// skipped). It never panics on malformed input: a truncated message ends the
// parse with an error wrapping ErrNetlinkTruncated, and the sockets parsed
// before it are returned.
func parseDiagMessages(buf []byte, defProto uint8, seq uint32, destroyed bool, dst []Socket) ([]Socket, diagBatch, error) {
	var res diagBatch
	for len(buf) > 0 {
		typ, mseq, msg, rest, err := nlNext(buf)
		if err != nil {
			return dst, res, err
		}
		buf = rest
		if seq != 0 && mseq != seq {
			continue // a stale reply
		}
		if typ < nlmsgMinType {
			if done, err := nlControl(typ, msg); done || err != nil {
				res.Done = done
				return dst, res, err
			}
			continue
		}
		if typ != sockDiagByFamily && typ != tcpDiagGetSock {
			continue // unknown message types are skipped, not fatal
		}
		res.Messages++
		dst = append(dst, Socket{})
		s := &dst[len(dst)-1]
		if err := parseInetDiagMsg(msg, defProto, s); err != nil {
			dst = dst[:len(dst)-1]
			return dst, res, err
		}
		s.Destroyed = destroyed
	}
	return dst, res, nil
}

// nlNext splits the first netlink message off buf: its type, sequence
// number and payload, and the rest of buf (past its 4-byte alignment; the
// last message may be unpadded). A truncated message is an error wrapping
// ErrNetlinkTruncated. The collector's netlink parsers walk a receive with
// it and nlControl.
func nlNext(buf []byte) (typ uint16, seq uint32, msg, rest []byte, err error) {
	if len(buf) < nlmsgHdrLen {
		return 0, 0, nil, nil, nlTruncated(len(buf), 0)
	}
	mlen := binary.NativeEndian.Uint32(buf[0:4])
	if mlen < nlmsgHdrLen || uint64(mlen) > uint64(len(buf)) {
		return 0, 0, nil, nil, nlTruncated(len(buf), mlen)
	}
	return binary.NativeEndian.Uint16(buf[4:6]), binary.NativeEndian.Uint32(buf[8:12]), buf[nlmsgHdrLen:mlen], buf[min((mlen+3)&^3, uint32(len(buf))):], nil
}

// nlTruncated is the error of nlNext for a buffer of left bytes.
func nlTruncated(left int, mlen uint32) error {
	if left < nlmsgHdrLen {
		return fmt.Errorf("%w: %d bytes left, header needs %d", ErrNetlinkTruncated, left, nlmsgHdrLen)
	}
	return fmt.Errorf("%w: message length %d, %d bytes available", ErrNetlinkTruncated, mlen, left)
}

// nlControl handles one of netlink's own control messages (a type below
// nlmsgMinType): NLMSG_DONE ends a dump (done); an NLMSG_ERROR carrying an
// errno is an error wrapping ErrNetlinkError and NLMSG_OVERRUN is
// ErrNetlinkOverrun; acknowledgements, NLMSG_NOOP and unknown control types
// are nothing.
func nlControl(typ uint16, msg []byte) (done bool, err error) {
	switch typ {
	case nlmsgDone:
		return true, nil
	case nlmsgError:
		if len(msg) < 4 {
			return false, fmt.Errorf("%w: NLMSG_ERROR payload %d bytes", ErrNetlinkTruncated, len(msg))
		}
		if errno := int32(binary.NativeEndian.Uint32(msg[0:4])); errno != 0 {
			return false, fmt.Errorf("%w: errno %d", ErrNetlinkError, -errno)
		}
	case nlmsgOverrun:
		return false, ErrNetlinkOverrun
	}
	return false, nil
}

// parseInetDiagMsg fills s from one inet_diag_msg and its attributes.
func parseInetDiagMsg(b []byte, defProto uint8, s *Socket) error {
	if len(b) < inetDiagMsgLen {
		return fmt.Errorf("%w: inet_diag_msg %d bytes, need %d", ErrNetlinkTruncated, len(b), inetDiagMsgLen)
	}
	ne := binary.NativeEndian
	family := b[0]
	state := b[1]
	sport := binary.BigEndian.Uint16(b[4:6])
	dport := binary.BigEndian.Uint16(b[6:8])
	var src, dstA netip.Addr
	switch family {
	case afInet:
		src = netip.AddrFrom4([4]byte(b[8:12]))
		dstA = netip.AddrFrom4([4]byte(b[24:28]))
		s.Family = 4
	case afInet6:
		src = netip.AddrFrom16([16]byte(b[8:24]))
		dstA = netip.AddrFrom16([16]byte(b[24:40]))
		s.Family = 6
	default:
		return fmt.Errorf("netlink: inet_diag_msg with unknown address family %d", family)
	}
	s.Local = netip.AddrPortFrom(src, sport)
	s.Remote = netip.AddrPortFrom(dstA, dport)
	s.Cookie = uint64(ne.Uint32(b[44:48])) | uint64(ne.Uint32(b[48:52]))<<32
	s.UID = ne.Uint32(b[64:68])
	s.Inode = uint64(ne.Uint32(b[68:72]))

	proto := defProto
	var info []byte
	attrs := b[inetDiagMsgLen:]
	for len(attrs) > 0 {
		if len(attrs) < 4 {
			return fmt.Errorf("%w: %d attribute bytes left, header needs 4", ErrNetlinkTruncated, len(attrs))
		}
		alen := int(ne.Uint16(attrs[0:2]))
		atyp := ne.Uint16(attrs[2:4]) & 0x3fff // strip NLA_F_NESTED / NLA_F_NET_BYTEORDER
		if alen < 4 || alen > len(attrs) {
			return fmt.Errorf("%w: attribute %d length %d, %d bytes available", ErrNetlinkTruncated, atyp, alen, len(attrs))
		}
		payload := attrs[4:alen]
		switch atyp {
		case inetDiagInfo:
			info = payload
		case inetDiagProtocol:
			if len(payload) >= 1 && payload[0] != 0 {
				proto = payload[0]
			}
		}
		next := (alen + 3) &^ 3
		if next > len(attrs) {
			next = len(attrs)
		}
		attrs = attrs[next:]
	}
	s.Proto = protoOf(proto)
	s.State = stateOf(proto, state)
	if proto == ipprotoTCP && info != nil {
		if len(info) >= tcpiLastDataRecvOff+4 {
			s.DataIdleMs = min(ne.Uint32(info[tcpiLastDataSentOff:]), ne.Uint32(info[tcpiLastDataRecvOff:]))
		}
		if len(info) >= tcpiBytesReceivedOff+8 {
			s.BytesAcked = ne.Uint64(info[tcpiBytesAckedOff:])
			s.BytesReceived = ne.Uint64(info[tcpiBytesReceivedOff:])
		}
		if len(info) >= tcpiBytesSentOff+8 {
			s.BytesSent = ne.Uint64(info[tcpiBytesSentOff:])
		}
	}
	return nil
}

// countDiagMessages walks the netlink headers of buf without decoding the
// sockets: the floor cost of reading a dump, used by the benchmark's bare
// dump. It returns the number of sock_diag messages and whether NLMSG_DONE
// was seen.
func countDiagMessages(buf []byte, seq uint32) (diagBatch, error) {
	var res diagBatch
	ne := binary.NativeEndian
	for len(buf) >= nlmsgHdrLen {
		mlen := ne.Uint32(buf[0:4])
		if mlen < nlmsgHdrLen || uint64(mlen) > uint64(len(buf)) {
			return res, fmt.Errorf("%w: message length %d, %d bytes available", ErrNetlinkTruncated, mlen, len(buf))
		}
		typ := ne.Uint16(buf[4:6])
		if seq == 0 || ne.Uint32(buf[8:12]) == seq {
			switch typ {
			case nlmsgDone:
				res.Done = true
				return res, nil
			case nlmsgError:
				if mlen >= nlmsgHdrLen+4 && ne.Uint32(buf[16:20]) != 0 {
					return res, fmt.Errorf("%w: errno %d", ErrNetlinkError, -int32(ne.Uint32(buf[16:20])))
				}
			case sockDiagByFamily, tcpDiagGetSock:
				res.Messages++
			}
		}
		next := (int(mlen) + 3) &^ 3
		if next > len(buf) {
			next = len(buf)
		}
		buf = buf[next:]
	}
	if len(buf) > 0 {
		return res, fmt.Errorf("%w: %d trailing bytes", ErrNetlinkTruncated, len(buf))
	}
	return res, nil
}
