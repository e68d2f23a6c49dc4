package detect

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/netsentinel/netsentinel/collector"
	"github.com/netsentinel/netsentinel/internal/fsutil"
)

// Threat-intel IP lists: files of known C2 addresses, one IP or CIDR per line
// ('#' starts a comment). Any socket (either direction, open or closed
// between polls) whose peer is listed raises a T1071 alert naming the list.
// Lists are read once when the detector is built.

// RuleThreatIntel is the registry name (and rule id) of the threat-intel
// detector.
const RuleThreatIntel = "threat_intel"

// IntelList names one list file.
type IntelList struct {
	Name string `yaml:"name"`
	Path string `yaml:"path"`
}

// ThreatIntelConfig configures the threat-intel detector.
type ThreatIntelConfig struct {
	Lists []IntelList `yaml:"lists"`
}

// Bounds on list files.
const (
	maxIntelFileBytes = 64 << 20
	maxIntelEntries   = 2_000_000
)

func init() {
	registerConfig(RuleThreatIntel, func() *ThreatIntelConfig { return &ThreatIntelConfig{} }, newThreatIntel)
}

// ParseIntelList parses a list: one IP or CIDR per line, blank lines and
// '#' comments (whole-line or trailing) ignored. A bad line is an error
// naming its number.
func ParseIntelList(data []byte) ([]netip.Prefix, error) {
	var out []netip.Prefix
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		s := sc.Text()
		if i := strings.IndexByte(s, '#'); i >= 0 {
			s = s[:i]
		}
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		p, err := parsePrefixOrAddr(s)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if len(out) >= maxIntelEntries {
			return nil, fmt.Errorf("line %d: more than %d entries", line, maxIntelEntries)
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", line+1, err)
	}
	return out, nil
}

// intelSet matches addresses against prefixes: exact hosts in a map, other
// prefixes grouped by length.
type intelSet struct {
	lens  []int // prefix lengths present (shorter than a host route), descending
	byLen map[int]map[netip.Prefix][]string
	hosts map[netip.Addr][]string
	total int
}

func newIntelSet() *intelSet {
	return &intelSet{byLen: map[int]map[netip.Prefix][]string{}, hosts: map[netip.Addr][]string{}}
}

func (s *intelSet) add(p netip.Prefix, list string) {
	s.total++
	if p.Bits() == p.Addr().BitLen() {
		s.hosts[p.Addr()] = appendUnique(s.hosts[p.Addr()], list)
		return
	}
	// v4 and v6 lengths are kept apart by offsetting v6 by 1000.
	key := p.Bits()
	if p.Addr().Is6() {
		key += 1000
	}
	m := s.byLen[key]
	if m == nil {
		m = map[netip.Prefix][]string{}
		s.byLen[key] = m
		s.lens = append(s.lens, key)
		sort.Sort(sort.Reverse(sort.IntSlice(s.lens)))
	}
	m[p] = appendUnique(m[p], list)
}

func appendUnique(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

// match returns the lists containing a and the matching prefix.
func (s *intelSet) match(a netip.Addr) ([]string, netip.Prefix) {
	a = a.Unmap()
	if l, ok := s.hosts[a]; ok {
		return l, netip.PrefixFrom(a, a.BitLen())
	}
	for _, key := range s.lens {
		bits := key
		if key >= 1000 {
			if !a.Is6() {
				continue
			}
			bits -= 1000
		} else if !a.Is4() {
			continue
		}
		p, err := a.Prefix(bits)
		if err != nil {
			continue
		}
		if l, ok := s.byLen[key][p]; ok {
			return l, p
		}
	}
	return nil, netip.Prefix{}
}

type threatIntel struct {
	cfg ThreatIntelConfig
	set *intelSet
}

func newThreatIntel(c ThreatIntelConfig) (*threatIntel, error) {
	d := &threatIntel{cfg: c, set: newIntelSet()}
	names := map[string]bool{}
	for i, l := range c.Lists {
		if l.Name == "" || l.Path == "" {
			return nil, fmt.Errorf("lists[%d]: name and path are required", i)
		}
		if names[l.Name] {
			return nil, fmt.Errorf("lists[%d]: duplicate name %q", i, l.Name)
		}
		names[l.Name] = true
		data, err := readIntelFile(l.Path)
		if err != nil {
			return nil, fmt.Errorf("list %q: %w", l.Name, err)
		}
		ps, err := ParseIntelList(data)
		if err != nil {
			return nil, fmt.Errorf("list %q (%s): %w", l.Name, l.Path, err)
		}
		for _, p := range ps {
			d.set.add(p, l.Name)
		}
	}
	return d, nil
}

// readIntelFile reads a list file, at most maxIntelFileBytes.
func readIntelFile(path string) ([]byte, error) {
	return fsutil.ReadFileCapped(path, maxIntelFileBytes)
}

func (d *threatIntel) Name() string { return RuleThreatIntel }

func (d *threatIntel) Rules() []RuleInfo {
	lists := make([]string, len(d.cfg.Lists))
	for i, l := range d.cfg.Lists {
		lists[i] = l.Name
	}
	return []RuleInfo{{
		ID: RuleThreatIntel, Name: "Connection to a threat-intel listed address", ThreatType: ThreatIntelMatch,
		Technique: "T1071", Severity: SeverityHigh,
		Description: "A socket's peer is in a configured list of known C2 addresses (IP or CIDR per line).",
		Thresholds:  map[string]any{"lists": lists, "entries": d.set.total},
		Sees: Visibility{
			Privileged: "Every socket's peer address (open, and closed between polls through destroy notifications) " +
				"with its process.",
			Unprivileged: "Every socket's peer address as well; another user's socket is reported by its uid and " +
				"user name, its process only when inferred from /proc (marked inferred).",
		},
	}}
}

func (d *threatIntel) Detect(snap *collector.Snapshot, env *Env) []Alert {
	if d.set.total == 0 {
		return nil
	}
	var out []Alert
	done := map[string]bool{}
	check := func(s *collector.Socket) {
		if !s.Remote.IsValid() || s.Remote.Addr().IsUnspecified() || IsListener(s) {
			return
		}
		lists, p := d.set.match(s.Remote.Addr())
		if lists == nil {
			return
		}
		ra := s.Remote.Addr().Unmap()
		pkey := OwnerKey(snap, env, s)
		entity := strings.Join(lists, ",") + "|" + ra.String() + "|" + pkey
		if done[entity] {
			return
		}
		done[entity] = true
		ev := map[string]any{"lists": lists, "matched": p.String(), "state": s.State.String()}
		proc := ownerContext(snap, env, s, ev)
		out = append(out, Alert{
			RuleID: RuleThreatIntel, ThreatType: ThreatIntelMatch, Technique: "T1071", Severity: SeverityHigh,
			Message:   fmt.Sprintf("connection to %s listed in threat-intel list %s (%s) by %s", ra, strings.Join(lists, ", "), p, describeOwner(snap, proc, s)),
			Transport: s.Proto.String(), Direction: Direction(snap, env, s), Source: s.Local, Dest: s.Remote,
			Process: proc, Evidence: ev,
			Entity: entity, Recommendation: Recommendation(ThreatIntelMatch),
		})
	}
	for i := range snap.Sockets {
		check(&snap.Sockets[i])
	}
	for i := range snap.Closed {
		check(&snap.Closed[i])
	}
	return out
}
