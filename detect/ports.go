package detect

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// PortSet is a set of ports: a bitmap, so Has (asked for every socket of
// every poll by several detectors) is a shift and a mask, not a map
// look-up. The zero value is the empty set; copies share the bitmap.
type PortSet struct {
	bits *[1024]uint64
}

// NewPortSet returns a set holding ports.
func NewPortSet(ports ...uint16) PortSet {
	var s PortSet
	for _, p := range ports {
		s.Add(p)
	}
	return s
}

// Add puts p in the set.
func (s *PortSet) Add(p uint16) {
	if s.bits == nil {
		s.bits = new([1024]uint64)
	}
	s.bits[p>>6] |= 1 << (p & 63)
}

// clear empties the set, keeping its memory.
func (s *PortSet) clear() {
	if s.bits != nil {
		*s.bits = [1024]uint64{}
	}
}

// Len is the number of ports in the set.
func (s PortSet) Len() int {
	if s.bits == nil {
		return 0
	}
	n := 0
	for _, w := range s.bits {
		n += bits.OnesCount64(w)
	}
	return n
}

// ParsePorts parses port specs: "80" or an inclusive range "6666-6669".
// Port 0 and reversed ranges are errors naming the spec.
func ParsePorts(specs []string) (PortSet, error) {
	var s PortSet
	for _, spec := range specs {
		spec = strings.TrimSpace(spec)
		lo, hi, isRange := strings.Cut(spec, "-")
		a, err := parsePort(lo)
		if err != nil {
			return PortSet{}, fmt.Errorf("port %q: %w", spec, err)
		}
		b := a
		if isRange {
			if b, err = parsePort(hi); err != nil {
				return PortSet{}, fmt.Errorf("port range %q: %w", spec, err)
			}
			if b < a {
				return PortSet{}, fmt.Errorf("port range %q: end before start", spec)
			}
		}
		for p := int(a); p <= int(b); p++ {
			s.Add(uint16(p))
		}
	}
	return s, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("not a port number in 1-65535")
	}
	return uint16(n), nil
}

// Has reports whether p is in the set.
func (s PortSet) Has(p uint16) bool {
	return s.bits != nil && s.bits[p>>6]&(1<<(p&63)) != 0
}

// Sorted returns the ports in ascending order.
func (s PortSet) Sorted() []uint16 {
	var out []uint16
	if s.bits == nil {
		return out
	}
	for i, w := range s.bits {
		for w != 0 {
			b := bits.TrailingZeros64(w)
			out = append(out, uint16(i<<6+b))
			w &= w - 1
		}
	}
	return out
}
