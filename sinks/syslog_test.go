package sinks

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseSyslogTarget(t *testing.T) {
	ok := []struct {
		target, network, addr, format string
	}{
		{"tcp://127.0.0.1:5514", "tcp", "127.0.0.1:5514", "json"},
		{"udp://siem.example.com", "udp", "siem.example.com:514", "json"},
		{"tls://siem.example.com?format=cef&ca_file=/etc/ca.pem&server_name=siem", "tls", "siem.example.com:6514", "cef"},
		{"TCP://[::1]:514?format=CEF&facility=auth", "tcp", "[::1]:514", "cef"},
	}
	for _, c := range ok {
		cfg, err := ParseSyslogTarget(c.target, SyslogConfig{})
		if err != nil {
			t.Errorf("%s: %v", c.target, err)
			continue
		}
		cfg = cfg.withDefaults()
		if cfg.Network != c.network || cfg.Address != c.addr || cfg.Format != c.format {
			t.Errorf("%s: got %s %s %s", c.target, cfg.Network, cfg.Address, cfg.Format)
		}
	}
	cfg, _ := ParseSyslogTarget("tls://h?ca_file=/etc/ca.pem&server_name=siem", SyslogConfig{Format: "cef"})
	if cfg.TLS.CAFile != "/etc/ca.pem" || cfg.TLS.ServerName != "siem" || cfg.Format != "cef" {
		t.Errorf("options and base config not merged: %+v", cfg)
	}
	bad := []struct{ target, want string }{
		{"", "empty target"},
		{"local0", "scheme must be tcp, udp or tls"},
		{"http://h:514", "scheme must be tcp, udp or tls"},
		{"tcp://", "no host"},
		{"tcp://h:99999", "bad port"},
		{"tcp://h/x", "unexpected path"},
		{"tcp://u:secret@h", "user info"},
		{"tcp://h?format=xml", `format: "xml" unknown`},
		{"tcp://h?colour=red", `option "colour" unknown`},
		{"tcp://h?format=cef&format=json", "given 2 times"},
		{"udp://h?udp_max_bytes=100", "udp_max_bytes: 100"},
		{"udp://h?udp_max_bytes=big", "not a number"},
		{"tcp://h?facility=local9", `facility: "local9" unknown`},
		{"tcp://h?hostname=a%20b", "hostname"},
		{"tcp://h?ca_file=/x", "transport is tcp"},
	}
	for _, c := range bad {
		_, err := ParseSyslogTarget(c.target, SyslogConfig{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want one containing %q", c.target, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%q: error shows the password: %v", c.target, err)
		}
	}
}

func TestSyslogSpecWithRouteOptions(t *testing.T) {
	base, rt, err := SplitRoute("syslog:udp://h?format=cef&rules=tor")
	if err != nil || base != "syslog:udp://h?format=cef" || len(rt.Rules) != 1 {
		t.Fatalf("split: %q %+v %v", base, rt, err)
	}
	sp, err := ParseSpec(base)
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err := ParseSyslogTarget(sp.Target, SyslogConfig{}); err != nil || cfg.Format != SyslogFormatCEF {
		t.Errorf("target %q: %+v %v", sp.Target, cfg, err)
	}
	sp, err = ParseSpec("syslog:tcp://h?format=cef&buffer=memory&min_severity=high")
	if err != nil || sp.Target != "tcp://h?format=cef" || sp.Options.Buffer != BufferMemory || sp.Options.Route.MinSeverity != 3 {
		t.Errorf("common options beside syslog's: %+v %v", sp, err)
	}
	base, _, err = SplitRoute("syslog:tcp://h?colour=red&min_severity=low")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseSpec(base); err == nil || !strings.Contains(err.Error(), `option "colour" unknown`) {
		t.Errorf("unknown option: %v", err)
	}
}

// syslogTestEvent is the fixture alert number i, with the fields the
// pipeline sets (severity 3 = high).
func syslogTestEvent(t testing.TB, doc map[string]any, prefix string, i int) Event {
	t.Helper()
	id := fmt.Sprintf("%s-%05d", prefix, i)
	doc["event"].(map[string]any)["id"] = id
	body, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return Event{ID: id, Body: body, Fields: map[string]string{"rule": "suspicious_port", "severity": "3", "event.id": id}}
}

func TestSyslogMessageRFC5424(t *testing.T) {
	s, err := NewSyslog(SyslogConfig{Network: "tcp", Address: "127.0.0.1:1", Hostname: "sensor-test", Facility: "local4"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(t.Context())
	ev := syslogTestEvent(t, syslogAlert(t), "m", 1)
	msg, err := s.message(ev)
	if err != nil {
		t.Fatal(err)
	}
	// local4 (20) * 8 + error (3) = 163; the alert's time in microseconds.
	want := fmt.Sprintf("<163>1 2026-11-25T21:45:00.000000Z sensor-test netsentinel %d suspicious_port - ", os.Getpid())
	if !strings.HasPrefix(string(msg), want) || string(msg[len(want):]) != string(ev.Body) {
		t.Errorf("message\n%s\nwant prefix\n%s\nthen the body", msg, want)
	}
	framed := appendFrame(nil, msg)
	if want := fmt.Sprintf("%d %s", len(msg), msg); string(framed) != want {
		t.Errorf("frame %q", framed[:20])
	}

	// Severity by level, and by name when the level is missing.
	for level, sev := range map[string]int{"1": 5, "2": 4, "3": 3, "4": 2} {
		if got := syslogSeverity(Event{Fields: map[string]string{"severity": level}}, ""); got != sev {
			t.Errorf("level %s: severity %d, want %d", level, got, sev)
		}
	}
	if got := syslogSeverity(Event{}, "CRITICAL"); got != 2 {
		t.Errorf("CRITICAL: %d", got)
	}
	// MSGID: at most 32 printable characters.
	if got := string(appendMsgID(nil, "a rule\twith spaces and a very long name")); got != "a_rule_with_spaces_and_a_very_lo" {
		t.Errorf("msgid %q", got)
	}
	s.now = func() time.Time { return time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC) }
	msg, _ = s.message(Event{Body: []byte(`{"rule":"r","severity":"LOW"}`)})
	if !strings.HasPrefix(string(msg), "<165>1 2030-01-02T03:04:05.000006Z sensor-test netsentinel ") {
		t.Errorf("no-timestamp message %q", msg)
	}
}
