package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/netsentinel/netsentinel/detect"
	"github.com/netsentinel/netsentinel/sinks"
)

// SinkSpec is one configured sink: its spec without route options, and its
// route.
type SinkSpec struct {
	Spec  sinks.Spec
	Route sinks.Route
}

// SinkSpecs parses every sink spec with its route options
// (`file:/x.ndjson?min_severity=high&rules=tor,exfiltration`); a route naming
// an unknown rule is an error.
func (c *Config) SinkSpecs() ([]SinkSpec, error) {
	var rules []string
	out := make([]SinkSpec, 0, len(c.Sinks))
	for _, raw := range c.Sinks {
		sp, err := sinks.ParseSpec(raw) // options (buffer, route) included
		if err != nil {
			return nil, fmt.Errorf("sink: %w", err)
		}
		rt := sp.Options.Route
		for _, r := range rt.Rules {
			if rules == nil {
				rules = detect.AllRuleIDs()
			}
			if !slices.Contains(rules, r) {
				return nil, fmt.Errorf("sink %q: rules: unknown rule %q (see `netsentinel rules`)", sp.Redacted(), r)
			}
		}
		for _, t := range rt.Techniques {
			if ti, ok := detect.Technique(t); !ok || !ti.Live() {
				return nil, fmt.Errorf("sink %q: techniques: %q is not a live ATT&CK technique", sp.Redacted(), t)
			}
		}
		out = append(out, SinkSpec{Spec: sp, Route: rt})
	}
	return out, nil
}

// CompileExceptions compiles the exceptions: section; an unknown rule or
// field is an error naming it.
func (c *Config) CompileExceptions() (*detect.Exceptions, error) {
	x, err := detect.CompileExceptions(c.Exceptions, detect.AllRuleIDs())
	if err != nil {
		return nil, fmt.Errorf("exceptions%w", err) // "exceptions[2] "name": ..."
	}
	return x, nil
}

// reloadable are the top-level keys a SIGHUP applies without a restart; sinks
// are compared without their route options, which reload too.
var reloadable = map[string]bool{"detect": true, "exceptions": true}

// RestartRequired lists the top-level keys (and sink specs, redacted) that
// differ between the running config and next and that only a restart
// applies: sink endpoints and credentials, queues, collection, logging ...
// Values are never included (they may hold credentials).
func RestartRequired(running, next *Config) []string {
	var out []string
	a, b := reflect.ValueOf(*running), reflect.ValueOf(*next)
	t := a.Type()
	for i := 0; i < t.NumField(); i++ {
		key, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if key == "" || key == "-" || reloadable[key] {
			continue
		}
		if key == "sinks" {
			if !slices.Equal(sinkBases(running.Sinks), sinkBases(next.Sinks)) {
				out = append(out, key)
			}
			continue
		}
		if !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			out = append(out, key)
		}
	}
	return out
}

// sinkBases are the sinks as a restart sees them: the spec and every option
// but the route (a buffer change needs a restart; a route change does not).
func sinkBases(specs []string) []string {
	out := make([]string, len(specs))
	for i, s := range specs {
		sp, err := sinks.ParseSpec(s)
		if err != nil {
			out[i] = s
			continue
		}
		out[i] = sp.String() + "?buffer=" + sp.Options.Buffer
	}
	return out
}
