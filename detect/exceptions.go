package detect

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Exceptions (Falco style) silence a known-benign source without turning a
// rule off: an alert of one of the exception's rules (every rule when the
// list is empty) whose fields match every listed field (AND across fields,
// OR within a field's values) is not emitted; it is counted per exception.
// The per-detector allow-lists (beaconing exclude_*, port_scan
// known_scanners, arp_spoofing allowed_macs ...) remain as shorthands.

// Exception fields: the ECS names of the alert fields an exception matches.
const (
	FieldProcessName       = "process.name"
	FieldProcessExecutable = "process.executable"
	FieldUserName          = "user.name"
	FieldUserID            = "user.id"
	FieldSourceIP          = "source.ip"
	FieldDestinationIP     = "destination.ip"
	FieldSourcePort        = "source.port"
	FieldDestinationPort   = "destination.port"
	FieldTransport         = "network.transport"
	FieldTechnique         = "threat.technique.id"
)

// ExceptionFields lists the fields an exception can match, in documentation
// order.
var ExceptionFields = []string{
	FieldProcessName, FieldProcessExecutable, FieldUserName, FieldUserID,
	FieldSourceIP, FieldDestinationIP, FieldSourcePort, FieldDestinationPort,
	FieldTransport, FieldTechnique,
}

// ExceptionSpec is one exception as configured.
type ExceptionSpec struct {
	Name string `yaml:"name"`
	// Rules the exception applies to; empty means every rule.
	Rules []string `yaml:"rules"`
	// Match maps a field (ExceptionFields) to the values it may take.
	Match map[string][]string `yaml:"match"`
}

// MaxExceptions caps the configured exceptions (each alert is checked against
// every one).
const MaxExceptions = 1000

// Exceptions is a compiled, immutable exception list. A nil *Exceptions
// matches nothing.
type Exceptions struct {
	list []exception
}

type exception struct {
	name  string
	rules map[string]bool // empty: every rule
	conds []exceptionCond
}

// exceptionCond is one field's values; exactly one of the value sets is used,
// by field kind.
type exceptionCond struct {
	field    string
	exact    map[string]bool
	globs    []string       // values holding * ? or [ (path.Match)
	prefixes []netip.Prefix // IP fields: addresses and CIDRs
	ports    [][2]uint16    // port fields: single ports and lo-hi ranges
}

// CompileExceptions validates and compiles specs. knownRules are the rule ids
// an exception may name (AllRuleIDs). Errors name the exception and the bad
// rule, field or value.
func CompileExceptions(specs []ExceptionSpec, knownRules []string) (*Exceptions, error) {
	if len(specs) > MaxExceptions {
		return nil, fmt.Errorf("%d exceptions: more than the %d allowed", len(specs), MaxExceptions)
	}
	known := map[string]bool{}
	for _, r := range knownRules {
		known[r] = true
	}
	seen := map[string]bool{}
	x := &Exceptions{}
	for i, s := range specs {
		name := strings.TrimSpace(s.Name)
		where := fmt.Sprintf("[%d]", i)
		if name == "" {
			return nil, fmt.Errorf("%s: name: empty (each exception needs a name, used in its counters)", where)
		}
		where = fmt.Sprintf("[%d] %q", i, name)
		if seen[name] {
			return nil, fmt.Errorf("%s: name: duplicate", where)
		}
		seen[name] = true
		ex := exception{name: name, rules: map[string]bool{}}
		for _, r := range s.Rules {
			r = strings.TrimSpace(r)
			if !known[r] {
				return nil, fmt.Errorf("%s: rules: unknown rule %q (see `netsentinel rules`)", where, r)
			}
			ex.rules[r] = true
		}
		if len(s.Match) == 0 {
			return nil, fmt.Errorf("%s: match: empty (to silence a rule entirely, use detect.disabled)", where)
		}
		fields := make([]string, 0, len(s.Match))
		for f := range s.Match {
			fields = append(fields, f)
		}
		sort.Strings(fields)
		for _, f := range fields {
			c, err := compileCond(f, s.Match[f])
			if err != nil {
				return nil, fmt.Errorf("%s: match: %w", where, err)
			}
			ex.conds = append(ex.conds, c)
		}
		x.list = append(x.list, ex)
	}
	return x, nil
}

func compileCond(field string, values []string) (exceptionCond, error) {
	c := exceptionCond{field: field, exact: map[string]bool{}}
	if len(values) == 0 {
		return c, fmt.Errorf("%s: no values", field)
	}
	for _, raw := range values {
		v := strings.TrimSpace(raw)
		bad := func(why string) (exceptionCond, error) {
			return c, fmt.Errorf("%s: value %q: %s", field, raw, why)
		}
		if v == "" {
			return bad("empty")
		}
		switch field {
		case FieldProcessName, FieldProcessExecutable, FieldUserName:
			if strings.ContainsAny(v, "*?[") {
				if _, err := path.Match(v, ""); err != nil {
					return bad("bad pattern")
				}
				c.globs = append(c.globs, v)
			} else {
				c.exact[v] = true
			}
		case FieldUserID:
			if _, err := strconv.ParseUint(v, 10, 32); err != nil {
				return bad("want a numeric uid")
			}
			c.exact[v] = true
		case FieldSourceIP, FieldDestinationIP:
			p, err := parseIPOrPrefix(v)
			if err != nil {
				return bad("want an IP address or CIDR")
			}
			c.prefixes = append(c.prefixes, p)
		case FieldSourcePort, FieldDestinationPort:
			r, err := parsePortRange(v)
			if err != nil {
				return bad(err.Error())
			}
			c.ports = append(c.ports, r)
		case FieldTransport:
			v = strings.ToLower(v)
			if v != "tcp" && v != "udp" {
				return bad("want tcp or udp")
			}
			c.exact[v] = true
		case FieldTechnique:
			v = strings.ToUpper(v)
			if t, ok := Technique(v); !ok || !t.Live() {
				return bad("not a live ATT&CK technique id")
			}
			c.exact[v] = true
		default:
			return c, fmt.Errorf("unknown field %q (want one of %s)", field, strings.Join(ExceptionFields, ", "))
		}
	}
	return c, nil
}

func parseIPOrPrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, err
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func parsePortRange(s string) ([2]uint16, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	a, err := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
	if err != nil || a == 0 {
		return [2]uint16{}, errors.New("want a port 1-65535 or a range like 8000-8100")
	}
	b := a
	if isRange {
		if b, err = strconv.ParseUint(strings.TrimSpace(hi), 10, 16); err != nil || b < a {
			return [2]uint16{}, errors.New("want a port 1-65535 or a range like 8000-8100")
		}
	}
	return [2]uint16{uint16(a), uint16(b)}, nil
}

// Len is the number of exceptions.
func (x *Exceptions) Len() int {
	if x == nil {
		return 0
	}
	return len(x.list)
}

// Names are the exceptions' names in configuration order.
func (x *Exceptions) Names() []string {
	if x == nil {
		return nil
	}
	out := make([]string, len(x.list))
	for i, e := range x.list {
		out[i] = e.name
	}
	return out
}

// Match returns the name of the first exception that matches a.
func (x *Exceptions) Match(a *Alert) (string, bool) {
	if x == nil {
		return "", false
	}
	for i := range x.list {
		e := &x.list[i]
		if len(e.rules) > 0 && !e.rules[a.RuleID] {
			continue
		}
		ok := true
		for j := range e.conds {
			if !e.conds[j].match(a) {
				ok = false
				break
			}
		}
		if ok {
			return e.name, true
		}
	}
	return "", false
}

// match reports whether a's field takes one of the condition's values; an
// alert without the field does not match.
func (c *exceptionCond) match(a *Alert) bool {
	switch c.field {
	case FieldProcessName:
		return a.Process != nil && c.matchString(a.Process.Name)
	case FieldProcessExecutable:
		return a.Process != nil && c.matchString(a.Process.Executable)
	case FieldUserName:
		return a.Process != nil && c.matchString(a.Process.User)
	case FieldUserID:
		// As in the ECS document: the uid is known only with the process.
		return a.Process != nil && a.Process.PID > 0 && c.exact[strconv.FormatUint(uint64(a.Process.UID), 10)]
	case FieldSourceIP:
		return c.matchAddr(a.Source)
	case FieldDestinationIP:
		return c.matchAddr(a.Dest)
	case FieldSourcePort:
		return c.matchPort(a.Source)
	case FieldDestinationPort:
		return c.matchPort(a.Dest)
	case FieldTransport:
		return c.exact[strings.ToLower(a.Transport)]
	case FieldTechnique:
		// A technique matches its sub-techniques too (T1021 covers T1021.004).
		t := strings.ToUpper(a.Technique)
		if c.exact[t] {
			return true
		}
		parent, _, sub := strings.Cut(t, ".")
		return sub && c.exact[parent]
	}
	return false
}

func (c *exceptionCond) matchString(s string) bool {
	if s == "" {
		return false
	}
	if c.exact[s] {
		return true
	}
	for _, g := range c.globs {
		if ok, _ := path.Match(g, s); ok {
			return true
		}
	}
	return false
}

func (c *exceptionCond) matchAddr(ap netip.AddrPort) bool {
	if !ap.IsValid() {
		return false
	}
	a := ap.Addr().Unmap()
	for _, p := range c.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (c *exceptionCond) matchPort(ap netip.AddrPort) bool {
	if !ap.IsValid() || ap.Port() == 0 {
		return false
	}
	p := ap.Port()
	for _, r := range c.ports {
		if p >= r[0] && p <= r[1] {
			return true
		}
	}
	return false
}

// ExceptionCounts counts alerts suppressed per exception name since start. It
// is safe for concurrent use; the metrics endpoint reads Snapshot.
type ExceptionCounts struct {
	mu sync.Mutex
	n  map[string]uint64
}

// Add counts one suppressed alert for exception name.
func (c *ExceptionCounts) Add(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]uint64{}
	}
	c.n[name]++
}

// Snapshot copies the counts (exception name → alerts suppressed).
func (c *ExceptionCounts) Snapshot() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]uint64, len(c.n))
	for k, v := range c.n {
		out[k] = v
	}
	return out
}
