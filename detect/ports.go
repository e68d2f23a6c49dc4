package detect

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// PortSet is a set of ports.
type PortSet map[uint16]struct{}

// NewPortSet returns a set holding ports.
func NewPortSet(ports ...uint16) PortSet {
	s := make(PortSet, len(ports))
	for _, p := range ports {
		s[p] = struct{}{}
	}
	return s
}

// maxPortSpan bounds how many ports one ParsePorts call may expand to.
const maxPortSpan = 65536

// ParsePorts parses port specs: "80" or an inclusive range "6666-6669".
// Port 0 and reversed ranges are errors naming the spec.
func ParsePorts(specs []string) (PortSet, error) {
	s := PortSet{}
	for _, spec := range specs {
		spec = strings.TrimSpace(spec)
		lo, hi, isRange := strings.Cut(spec, "-")
		a, err := parsePort(lo)
		if err != nil {
			return nil, fmt.Errorf("port %q: %w", spec, err)
		}
		b := a
		if isRange {
			if b, err = parsePort(hi); err != nil {
				return nil, fmt.Errorf("port range %q: %w", spec, err)
			}
			if b < a {
				return nil, fmt.Errorf("port range %q: end before start", spec)
			}
		}
		for p := int(a); p <= int(b) && len(s) < maxPortSpan; p++ {
			s[uint16(p)] = struct{}{}
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
	_, ok := s[p]
	return ok
}

// Sorted returns the ports in ascending order.
func (s PortSet) Sorted() []uint16 {
	out := make([]uint16, 0, len(s))
	for p := range s {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
