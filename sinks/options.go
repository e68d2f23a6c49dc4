package sinks

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Options are the per-sink options common to every kind, parsed once from
// the spec's query string before the kind sees its target:
//
//	elasticsearch:https://es:9200?buffer=memory
//	file:/var/log/netsentinel/alerts.ndjson?buffer=disk&min_severity=high
//	stdout?rules=reverse_shell
//
// The text after the last '?' is taken as options only when it is a list
// of key=value pairs with lower-case keys; anything else (a '?' inside a
// file name) stays part of the spec. An unknown key is an error naming it.
// A new common option is one entry in commonOptions (and a field here).
type Options struct {
	// Buffer is "memory", "disk", or "" for the kind's default (BufferType).
	Buffer string
	// Route filters which alerts the sink gets (route.go).
	Route Route
}

// commonOptions parse the non-route keys; each validates its value.
var commonOptions = map[string]func(*Options, string) error{
	"buffer": func(o *Options, v string) error {
		switch v {
		case BufferMemory, BufferDisk:
			o.Buffer = v
			return nil
		}
		return fmt.Errorf("option buffer=%q: want memory or disk", v)
	},
}

var optionsQuery = regexp.MustCompile(`^[a-z_]+=[^&=]*(&[a-z_]+=[^&=]*)*$`)

// SplitOptions cuts the options off a spec: "file:/x.ndjson?buffer=disk"
// gives "file:/x.ndjson" and Options{Buffer: "disk"}.
func SplitOptions(spec string) (string, Options, error) {
	var o Options
	i := strings.LastIndexByte(spec, '?')
	if i < 0 || !optionsQuery.MatchString(spec[i+1:]) {
		return spec, o, nil
	}
	base := spec[:i]
	q, err := url.ParseQuery(spec[i+1:])
	if err != nil {
		return "", o, fmt.Errorf("%w %q: options: %v", ErrBadSpec, redactSpec(base), err)
	}
	// A kind with options of its own (syslog: format, facility ...) keeps
	// them in its target, where its parser checks them.
	kind, _, _ := strings.Cut(base, ":")
	k, _ := lookupKind(strings.ToLower(strings.TrimSpace(kind)))
	ownOptions := k.OwnOptions
	route, own := url.Values{}, map[string]bool{}
	for k, vs := range q {
		if set, ok := commonOptions[k]; ok {
			if err := set(&o, vs[len(vs)-1]); err != nil {
				return "", o, fmt.Errorf("%w %q: %v", ErrBadSpec, redactSpec(base), err)
			}
			continue
		}
		if ownOptions && k != RouteMinSeverity && k != RouteRules && k != RouteTechniques {
			own[k] = true
			continue
		}
		route[k] = vs
	}
	if o.Route, err = ParseRoute(route); err != nil {
		return "", o, fmt.Errorf("%w %q: %v", ErrBadSpec, redactSpec(base), err)
	}
	if len(own) > 0 { // as written, in their order
		var kept []string
		for _, pair := range strings.Split(spec[i+1:], "&") {
			if k, _, _ := strings.Cut(pair, "="); own[k] {
				kept = append(kept, pair)
			}
		}
		base += "?" + strings.Join(kept, "&")
	}
	return base, o, nil
}
