package sinks_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/detect"
	"github.com/netsentinel/netsentinel/internal/testserver"
	"github.com/netsentinel/netsentinel/schemas"
	"github.com/netsentinel/netsentinel/sinks"
)

// TestCEFFromRealFormatters renders an alert with the ECS and native
// formatters, converts each document to CEF and parses it back strictly: the
// CEF mapping must follow the documents the formatters really produce.
func TestCEFFromRealFormatters(t *testing.T) {
	hostile := "evil|name\\x=y\nnext line"
	a := &detect.Alert{
		ID: "a-1", RuleID: "suspicious_port", ThreatType: "SUSPICIOUS_PORT", Technique: "T1071.004",
		Severity: detect.SeverityCritical, Time: time.Date(2026, 11, 25, 21, 45, 0, 0, time.UTC),
		Message: "msg " + hostile, Transport: "udp", Direction: "egress",
		Source: netip.MustParseAddrPort("10.0.0.5:40000"), Dest: netip.MustParseAddrPort("203.0.113.7:53"),
		Process: &detect.ProcessInfo{PID: 99, Name: "dig"}, Entity: "ent " + hostile, Count: 2,
	}
	ecs, err := schemas.NewECS(schemas.Host{Hostname: "sensor-01"}, schemas.Meta{Version: "1.2.3"}, schemas.DetectLookup)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []schemas.Formatter{ecs, schemas.NewNative(schemas.DetectLookup)} {
		body, err := f.Format(a)
		if err != nil {
			t.Fatal(err)
		}
		line, err := sinks.FormatCEF(body, "1.2.3")
		if err != nil {
			t.Fatalf("%s: %v", f.Name(), err)
		}
		c, err := testserver.ParseCEF(string(line))
		if err != nil {
			t.Fatalf("%s: %v\n%s", f.Name(), err, line)
		}
		if c.Header[2] != "1.2.3" || c.Header[3] != "suspicious_port" || c.Header[5] != "10" {
			t.Errorf("%s: header %q", f.Name(), c.Header)
		}
		want := map[string]string{
			"rt": "1795643100000", "msg": "msg " + hostile, "externalId": "a-1",
			"src": "10.0.0.5", "spt": "40000", "dst": "203.0.113.7", "dpt": "53", "proto": "UDP",
			"deviceDirection": "1", "cnt": "2", "sproc": "dig", "spid": "99", "cs6": "ent " + hostile,
		}
		for k, v := range want {
			if c.Ext[k] != v {
				t.Errorf("%s: %s = %q, want %q\n%s", f.Name(), k, c.Ext[k], v, line)
			}
		}
		if c.Ext["cs1"] == "" || c.Ext["cs2"] == "" {
			t.Errorf("%s: no ATT&CK ids: cs1 %q cs2 %q", f.Name(), c.Ext["cs1"], c.Ext["cs2"])
		}
	}
}
