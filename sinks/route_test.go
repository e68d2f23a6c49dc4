package sinks

import (
	"errors"
	"strings"
	"testing"
)

func alertEv(rule, technique, severity string) Event {
	return Event{ID: "x", Fields: map[string]string{"rule": rule, "technique": technique, "severity": severity}}
}

func TestSplitRouteAndMatch(t *testing.T) {
	for _, tc := range []struct {
		spec, base string
		pass, drop []Event
	}{
		{"stdout", "stdout", []Event{alertEv("tor", "T1090.003", "1")}, nil},
		{"file:/var/log/ns/high.ndjson?min_severity=high", "file:/var/log/ns/high.ndjson",
			[]Event{alertEv("tor", "T1090.003", "3"), alertEv("reverse_shell", "T1059.004", "4")},
			[]Event{alertEv("beaconing", "T1071", "2"), alertEv("port_scan", "T1046", "1")}},
		{"kafka:k1:9092,k2:9092/alerts?rules=tor,exfiltration&min_severity=HIGH", "kafka:k1:9092,k2:9092/alerts",
			[]Event{alertEv("exfiltration", "T1048", "3")},
			[]Event{alertEv("lateral_movement", "T1021.004", "4"), alertEv("tor", "T1090.003", "2")}},
		{"elasticsearch:https://es:9200?techniques=T1071&techniques=t1021.004", "elasticsearch:https://es:9200",
			[]Event{alertEv("suspicious_dns", "T1071.004", "2"), alertEv("beaconing", "T1071", "2"), alertEv("lateral_movement", "T1021.004", "4")},
			[]Event{alertEv("lateral_movement", "T1021.002", "4"), alertEv("tor", "T1090.003", "3")}},
		// syslog keeps its own options in the spec.
		{"syslog:tcp://h:514?format=cef&min_severity=high&facility=local4", "syslog:tcp://h:514?format=cef&facility=local4",
			[]Event{alertEv("tor", "T1090.003", "3")}, []Event{alertEv("port_scan", "T1046", "1")}},
	} {
		base, rt, err := SplitRoute(tc.spec)
		if err != nil {
			t.Fatalf("%s: %v", tc.spec, err)
		}
		if base != tc.base {
			t.Errorf("%s: base %q, want %q", tc.spec, base, tc.base)
		}
		if _, err := ParseSpec(base); err != nil {
			t.Errorf("%s: base does not parse: %v", tc.spec, err)
		}
		for _, e := range tc.pass {
			if !rt.Match(e) {
				t.Errorf("%s: %v dropped", tc.spec, e.Fields)
			}
		}
		for _, e := range tc.drop {
			if rt.Match(e) {
				t.Errorf("%s: %v passed", tc.spec, e.Fields)
			}
		}
		// String round-trips through the spec options.
		if _, again, err := SplitRoute(base + "?" + rt.String()); err != nil || again.String() != rt.String() {
			t.Errorf("%s: round trip %q: %v", tc.spec, rt.String(), err)
		}
	}
}

func TestSplitRouteErrors(t *testing.T) {
	for spec, want := range map[string]string{
		"file:/x?min_severity=urgent":       `unknown severity "urgent"`,
		"file:/x?min_severity=low,high":     "want one severity",
		"file:/x?rules=":                    "rules: empty list",
		"file:/x?techniques=C2":             `"C2" is not an ATT&CK technique id`,
		"file:/x?colour=red":                `unknown sink option "colour"`,
		"file:/x?min_severity=%zz":          "options",
		"elasticsearch:https://u:pw@es?x=1": `unknown sink option "x"`,
	} {
		_, _, err := SplitRoute(spec)
		if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, ErrBadSpec) {
			t.Errorf("%s: %v, want an ErrBadSpec containing %q", spec, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("%s: password in the error: %v", spec, err)
		}
	}
}
