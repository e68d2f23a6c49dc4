package schemas

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"net/netip"
)

// CommunityID returns the Community ID v1 flow hash
// (https://github.com/corelight/community-id-spec) of a TCP or UDP flow, or
// "" for any other transport or an incomplete tuple. The result is the same
// for both directions of a flow.
func CommunityID(transport string, src, dst netip.AddrPort, seed uint16) string {
	var proto byte
	switch transport {
	case "tcp":
		proto = 6
	case "udp":
		proto = 17
	default:
		return ""
	}
	if !src.IsValid() || !dst.IsValid() || src.Port() == 0 || dst.Port() == 0 {
		return ""
	}
	sa, da := src.Addr().Unmap(), dst.Addr().Unmap()
	if sa.Is4() != da.Is4() {
		return ""
	}
	sb, db := sa.AsSlice(), da.AsSlice()
	sp, dp := src.Port(), dst.Port()
	// Order the endpoints so both directions hash the same.
	if c := bytes.Compare(sb, db); c > 0 || (c == 0 && sp > dp) {
		sb, db = db, sb
		sp, dp = dp, sp
	}
	h := sha1.New()
	var buf [2]byte
	binary.BigEndian.PutUint16(buf[:], seed)
	h.Write(buf[:])
	h.Write(sb)
	h.Write(db)
	h.Write([]byte{proto, 0})
	binary.BigEndian.PutUint16(buf[:], sp)
	h.Write(buf[:])
	binary.BigEndian.PutUint16(buf[:], dp)
	h.Write(buf[:])
	return "1:" + base64.StdEncoding.EncodeToString(h.Sum(nil))
}
