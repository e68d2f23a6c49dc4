package sinks

import (
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Route decides which alerts a sink gets (falcosidekick's per-output minimum
// priority, plus include lists): an alert passes when its severity is at
// least MinSeverity and, when the lists are set, its rule is in Rules and its
// technique (or the technique's parent) in Techniques. The zero Route passes
// everything. The report still counts every alert; a sink's statistics count
// what it was offered and what its route filtered out.
type Route struct {
	MinSeverity int      // 0 (any) or 1 low .. 4 critical
	Rules       []string // rule ids; empty: any rule
	Techniques  []string // ATT&CK ids; T1071 also passes T1071.004; empty: any
}

// Route option keys, in a sink spec's query (`file:/x.ndjson?min_severity=high`)
// or a sink's config.
const (
	RouteMinSeverity = "min_severity"
	RouteRules       = "rules"
	RouteTechniques  = "techniques"
)

// severityLevels maps severity names to detect.Severity values.
var severityLevels = map[string]int{"low": 1, "medium": 2, "high": 3, "critical": 4}

// ParseSeverity reads a severity name (low, medium, high, critical; any case).
func ParseSeverity(s string) (int, error) {
	if v, ok := severityLevels[strings.ToLower(strings.TrimSpace(s))]; ok {
		return v, nil
	}
	return 0, fmt.Errorf("%s: unknown severity %q (want low, medium, high or critical)", RouteMinSeverity, s)
}

var techniqueID = regexp.MustCompile(`^T[0-9]{4}(\.[0-9]{3})?$`)

// ParseRoute reads route options; lists may be comma-separated or repeated.
// An unknown option is an error naming it.
func ParseRoute(q url.Values) (Route, error) {
	var r Route
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var items []string
		for _, v := range q[k] {
			for _, item := range strings.Split(v, ",") {
				if item = strings.TrimSpace(item); item != "" {
					items = append(items, item)
				}
			}
		}
		switch k {
		case RouteMinSeverity:
			if len(items) != 1 {
				return Route{}, fmt.Errorf("%s: want one severity, got %d", k, len(items))
			}
			v, err := ParseSeverity(items[0])
			if err != nil {
				return Route{}, err
			}
			r.MinSeverity = v
		case RouteRules:
			if len(items) == 0 {
				return Route{}, fmt.Errorf("%s: empty list", k)
			}
			r.Rules = items
		case RouteTechniques:
			if len(items) == 0 {
				return Route{}, fmt.Errorf("%s: empty list", k)
			}
			for i, t := range items {
				items[i] = strings.ToUpper(t)
				if !techniqueID.MatchString(items[i]) {
					return Route{}, fmt.Errorf("%s: %q is not an ATT&CK technique id (like T1071 or T1071.004)", k, t)
				}
			}
			r.Techniques = items
		default:
			return Route{}, fmt.Errorf("unknown sink option %q (want buffer, %s, %s or %s)", k, RouteMinSeverity, RouteRules, RouteTechniques)
		}
	}
	return r, nil
}

// SplitRoute separates a sink spec's options (after the last '?') from
// the spec itself and returns the route among them (SplitOptions):
// "file:/x.ndjson?min_severity=high" gives "file:/x.ndjson" and a
// high-severity route. A spec without options has the zero Route.
func SplitRoute(spec string) (string, Route, error) {
	base, o, err := SplitOptions(spec)
	return base, o.Route, err
}

// IsZero reports whether r passes everything.
func (r Route) IsZero() bool {
	return r.MinSeverity == 0 && len(r.Rules) == 0 && len(r.Techniques) == 0
}

// Allows reports whether an alert of rule, technique and severity (1 low ..
// 4 critical) passes.
func (r Route) Allows(rule, technique string, severity int) bool {
	if severity < r.MinSeverity {
		return false
	}
	if len(r.Rules) > 0 && !contains(r.Rules, rule) {
		return false
	}
	if len(r.Techniques) > 0 {
		parent, _, _ := strings.Cut(technique, ".")
		if !contains(r.Techniques, technique) && !contains(r.Techniques, parent) {
			return false
		}
	}
	return true
}

// Match applies Allows to an event's "rule", "technique" and "severity"
// fields (as the pipeline sets them).
func (r Route) Match(ev Event) bool {
	if r.IsZero() {
		return true
	}
	sev, _ := strconv.Atoi(ev.Fields["severity"])
	return r.Allows(ev.Fields["rule"], ev.Fields["technique"], sev)
}

// String is the route as spec options ("" for the zero Route).
func (r Route) String() string {
	q := url.Values{}
	for name, v := range severityLevels {
		if v == r.MinSeverity {
			q.Set(RouteMinSeverity, name)
		}
	}
	if len(r.Rules) > 0 {
		q.Set(RouteRules, strings.Join(r.Rules, ","))
	}
	if len(r.Techniques) > 0 {
		q.Set(RouteTechniques, strings.Join(r.Techniques, ","))
	}
	return q.Encode()
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
