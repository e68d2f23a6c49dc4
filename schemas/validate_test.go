package schemas

import (
	"encoding/json"
	"strings"
	"testing"
)

func mustValidator(t *testing.T) *Validator {
	t.Helper()
	v, err := NewValidator()
	if err != nil {
		t.Fatalf("embedded schemas do not compile: %v", err)
	}
	return v
}

// TestFormatterOutputMatchesSchemas validates real formatter output for every
// fixture alert.
func TestFormatterOutputMatchesSchemas(t *testing.T) {
	v := mustValidator(t)
	for _, f := range []Formatter{testECS(t), NewNative(attackLookup(t)), NewNative(nil)} {
		for _, na := range fixtureAlerts() {
			b, err := f.Format(&na.alert)
			if err != nil {
				t.Fatal(err)
			}
			if err := v.Validate(f.Name(), b); err != nil {
				t.Errorf("%s/%s: %v\n%s", f.Name(), na.name, err, b)
			}
		}
	}
}

// remove deletes a dotted path from a decoded document.
func remove(m map[string]any, path string) {
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		m = m[p].(map[string]any)
	}
	delete(m, parts[len(parts)-1])
}

func set(m map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		m = m[p].(map[string]any)
	}
	m[parts[len(parts)-1]] = v
}

// TestSchemasRejectBadDocuments: a document missing a required field, or
// with a wrong value, fails.
func TestSchemasRejectBadDocuments(t *testing.T) {
	v := mustValidator(t)
	a := alertNamed(t, "suspicious_port")
	ecsDoc, _ := testECS(t).Format(&a)
	nativeDoc, _ := NewNative(attackLookup(t)).Format(&a)
	reportDoc, err := MarshalReport(BuildReport(reportFixture(t)))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		format string
		doc    []byte
		edit   func(m map[string]any)
	}{
		{"ecs", ecsDoc, func(m map[string]any) { remove(m, "@timestamp") }},
		{"ecs", ecsDoc, func(m map[string]any) { remove(m, "event.id") }},
		{"ecs", ecsDoc, func(m map[string]any) { remove(m, "ecs") }},
		{"ecs", ecsDoc, func(m map[string]any) { set(m, "event.kind", "signal") }},
		{"ecs", ecsDoc, func(m map[string]any) { set(m, "event.severity", "high") }},
		{"ecs", ecsDoc, func(m map[string]any) { set(m, "source.ip", "not-an-ip") }},
		{"ecs", ecsDoc, func(m map[string]any) { set(m, "threat_type", "top-level custom field") }},
		{"ecs", ecsDoc, func(m map[string]any) { set(m, "data_stream.namespace", "has-dash") }},
		{"native", nativeDoc, func(m map[string]any) { remove(m, "mitre_technique") }},
		{"native", nativeDoc, func(m map[string]any) { remove(m, "timestamp") }},
		{"native", nativeDoc, func(m map[string]any) { set(m, "severity", "SEVERE") }},
		{"native", nativeDoc, func(m map[string]any) { set(m, "timestamp", "2026-11-25T21:45:00") }}, // no zone
		{"report", reportDoc, func(m map[string]any) { remove(m, "executive_summary.risk_level") }},
		{"report", reportDoc, func(m map[string]any) { remove(m, "network_state.arp_table") }},
		{"report", reportDoc, func(m map[string]any) { set(m, "executive_summary.risk_level", "SEVERE") }},
		{"report", reportDoc, func(m map[string]any) { remove(m, "sink_statistics.stdout.delivered") }},
	}
	for i, c := range cases {
		// The unedited document passes ...
		if err := v.Validate(c.format, c.doc); err != nil {
			t.Fatalf("case %d: original %s document fails: %v", i, c.format, err)
		}
		var m map[string]any
		if err := json.Unmarshal(c.doc, &m); err != nil {
			t.Fatal(err)
		}
		c.edit(m)
		b, _ := json.Marshal(m)
		// ... and the edited one does not.
		if err := v.Validate(c.format, b); err == nil {
			t.Errorf("case %d: invalid %s document accepted:\n%s", i, c.format, b)
		}
	}
	if err := v.Validate("xml", ecsDoc); err == nil || !strings.Contains(err.Error(), `"xml"`) {
		t.Errorf("unknown format error should name it: %v", err)
	}
	if err := v.ValidateECS([]byte("{not json")); err == nil {
		t.Error("non-JSON accepted")
	}
}
