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
//	file:/var/log/netsentinel/alerts.ndjson?buffer=disk
//
// The text after the last '?' is taken as options only when it is a list
// of key=value pairs with lower-case keys; anything else (a '?' inside a
// file name) stays part of the target. An unknown key is an error naming it.
type Options struct {
	// Buffer is "memory", "disk", or "" for the kind's default.
	Buffer string
}

// optionKeys are the accepted keys; each parse function validates one.
var optionKeys = map[string]func(*Options, string) error{
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

// splitOptions cuts the options off a spec's target.
func splitOptions(target string) (string, Options, error) {
	var o Options
	i := strings.LastIndexByte(target, '?')
	if i < 0 || !optionsQuery.MatchString(target[i+1:]) {
		return target, o, nil
	}
	q, err := url.ParseQuery(target[i+1:])
	if err != nil {
		return target, o, nil
	}
	for k, vs := range q {
		set, ok := optionKeys[k]
		if !ok {
			return "", o, fmt.Errorf("unknown option %q", k)
		}
		if err := set(&o, vs[len(vs)-1]); err != nil {
			return "", o, err
		}
	}
	return target[:i], o, nil
}
