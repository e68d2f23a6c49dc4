package sinks

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/internal/testserver"
)

// Tests against a real rsyslogd (Debian packages rsyslog, rsyslog-gnutls),
// started per test on a loopback port (internal/testserver/rsyslog.go).

// openSyslogTest opens a syslog sink with a dead-letter file; it is closed
// at cleanup.
func openSyslogTest(t *testing.T, target string, base SyslogConfig) (*Syslog, *Stats, string) {
	t.Helper()
	base.Hostname = "sensor-test"
	cfg, err := ParseSyslogTarget(target, base)
	if err != nil {
		t.Fatal(err)
	}
	dlPath := filepath.Join(t.TempDir(), "deadletter.ndjson")
	cfg.DeadLetter = dlPath
	stats := &Stats{}
	s, err := NewSyslog(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	trackStats(t, s, stats)
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s, stats, dlPath
}

// idsOf maps the event.id of every JSON message to how often it arrived.
func idsOf(t testing.TB, msgs []testserver.RsyslogMessage) map[string]int {
	t.Helper()
	ids := map[string]int{}
	for _, m := range msgs {
		var doc struct {
			Event struct {
				ID string `json:"id"`
			} `json:"event"`
		}
		if err := json.Unmarshal([]byte(m.Msg), &doc); err != nil {
			t.Fatalf("message payload is not JSON: %v: %.200s", err, m.Msg)
		}
		ids[doc.Event.ID]++
	}
	return ids
}

func syslogTestEvents(t testing.TB, prefix string, n int) []Event {
	doc := syslogAlert(t)
	out := make([]Event, n)
	for i := range out {
		out[i] = syslogTestEvent(t, doc, prefix, i)
	}
	return out
}

// checkRFC5424 asserts what rsyslog parsed out of our header.
func checkRFC5424(t *testing.T, m testserver.RsyslogMessage, ev Event) {
	t.Helper()
	// local0 (16) * 8 + error (3: high severity) = 131.
	if m.PRI != "131" || m.Hostname != "sensor-test" || m.AppName != SyslogAppName ||
		m.ProcID != strconv.Itoa(os.Getpid()) || m.MsgID != "suspicious_port" {
		t.Errorf("parsed header pri=%s host=%s app=%s procid=%s msgid=%s", m.PRI, m.Hostname, m.AppName, m.ProcID, m.MsgID)
	}
	if ts, err := time.Parse(time.RFC3339Nano, m.Timestamp); err != nil || !ts.Equal(time.Date(2026, 11, 25, 21, 45, 0, 0, time.UTC)) {
		t.Errorf("timestamp %q (%v), want the alert's", m.Timestamp, err)
	}
	if ev.Body != nil && m.Msg != string(ev.Body) {
		t.Errorf("payload differs from the event body:\n got %.300s\nwant %.300s", m.Msg, ev.Body)
	}
}

func TestSyslogTCPToRsyslog(t *testing.T) {
	rs := testserver.StartRsyslog(t, testserver.RsyslogOptions{Proto: "tcp"})
	s, stats, _ := openSyslogTest(t, "tcp://"+rs.Addr, SyslogConfig{})
	evs := syslogTestEvents(t, "tcp", 60)
	for _, b := range [][]Event{evs[:25], evs[25:]} {
		if err := countedWrite(t, s, t.Context(), b); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatalf("close: %v", err)
	}
	msgs := rs.WaitMessages(30*time.Second, func(m []testserver.RsyslogMessage) bool { return len(m) >= len(evs) })
	if len(msgs) != len(evs) || stats.Sent.Load() != uint64(len(evs)) {
		t.Fatalf("received %d, sent counted %d, want %d", len(msgs), stats.Sent.Load(), len(evs))
	}
	for i, m := range msgs { // one connection: in order
		checkRFC5424(t, m, evs[i])
	}
}

func TestSyslogUDPToRsyslogWithSizeCap(t *testing.T) {
	rs := testserver.StartRsyslog(t, testserver.RsyslogOptions{Proto: "udp"})
	s, stats, dlPath := openSyslogTest(t, "udp://"+rs.Addr, SyslogConfig{})
	evs := syslogTestEvents(t, "udp", 20)
	doc := syslogAlert(t)
	doc["message"] = strings.Repeat("x", DefaultSyslogUDPMaxBytes)
	big := syslogTestEvent(t, doc, "udp-big", 0)
	batch := append([]Event{big}, evs...)
	if err := countedWrite(t, s, t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	msgs := rs.WaitMessages(30*time.Second, func(m []testserver.RsyslogMessage) bool { return len(m) >= len(evs) })
	ids := idsOf(t, msgs)
	for _, ev := range evs {
		if ids[ev.ID] != 1 {
			t.Errorf("%s arrived %d times", ev.ID, ids[ev.ID])
		}
	}
	checkRFC5424(t, msgs[0], Event{})
	if ids[big.ID] != 0 || stats.DeadLettered.Load() != 1 || stats.Sent.Load() != uint64(len(evs)) {
		t.Errorf("oversized event: received %d, dead-lettered %d, sent %d", ids[big.ID], stats.DeadLettered.Load(), stats.Sent.Load())
	}
	dl, err := os.ReadFile(dlPath)
	if err != nil || !strings.Contains(string(dl), big.ID) || !strings.Contains(string(dl), "exceeds udp_max_bytes 8192") {
		t.Errorf("dead-letter file (%v): %.300s", err, dl)
	}
}

func TestSyslogCEFEscapingThroughRsyslog(t *testing.T) {
	rs := testserver.StartRsyslog(t, testserver.RsyslogOptions{Proto: "tcp"})
	s, _, _ := openSyslogTest(t, "tcp://"+rs.Addr+"?format=cef", SyslogConfig{})
	ev := Event{ID: "id-1", Body: cefTestDoc(t), Fields: map[string]string{"rule": "suspicious_port", "severity": "3"}}
	if err := countedWrite(t, s, t.Context(), []Event{ev}); err != nil {
		t.Fatal(err)
	}
	msgs := rs.WaitMessages(30*time.Second, func(m []testserver.RsyslogMessage) bool { return len(m) >= 1 })
	checkRFC5424(t, msgs[0], Event{})
	c, err := testserver.ParseCEF(msgs[0].Msg)
	if err != nil {
		t.Fatalf("what rsyslog received does not parse as CEF: %v\n%s", err, msgs[0].Raw)
	}
	if c.Ext["msg"] != "msg "+hostileText || c.Ext["cs6"] != "ent "+hostileText || c.Header[3] != "suspicious_port" || c.Header[5] != "8" {
		t.Errorf("round trip through rsyslog: header %q msg %q cs6 %q", c.Header, c.Ext["msg"], c.Ext["cs6"])
	}
}

// writeServerPEM writes the PKI's server certificate chain and key for
// rsyslog.
func writeServerPEM(t *testing.T, p *testPKI) (certFile, keyFile string) {
	t.Helper()
	var chain []byte
	for _, der := range p.serverCert.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	key, err := x509.MarshalPKCS8PrivateKey(p.serverCert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(p.dir, "server.pem"), filepath.Join(p.dir, "server-key.pem")
	if err := os.WriteFile(certFile, chain, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestSyslogTLSToRsyslog(t *testing.T) {
	pki := newTestPKI(t)
	cert, key := writeServerPEM(t, pki)
	rs := testserver.StartRsyslog(t, testserver.RsyslogOptions{Proto: "tls", CertFile: cert, KeyFile: key, CAFile: pki.caFile})

	// Refused: the system roots (the default), another CA, a wrong name.
	other := newTestPKI(t)
	for _, c := range []struct {
		name, target, want string
	}{
		{"system roots", "tls://" + rs.Addr, "certificate"},
		{"other CA", "tls://" + rs.Addr + "?ca_file=" + other.caFile, "certificate"},
		{"wrong server name", "tls://" + rs.Addr + "?ca_file=" + pki.caFile + "&server_name=siem.example.com", "siem.example.com"},
	} {
		s, stats, _ := openSyslogTest(t, c.target, SyslogConfig{})
		err := countedWrite(t, s, t.Context(), syslogTestEvents(t, "untrusted", 1))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Write error %v, want a refusal mentioning %q", c.name, err, c.want)
		}
		if stats.Sent.Load() != 0 {
			t.Errorf("%s: counted %d sent", c.name, stats.Sent.Load())
		}
	}

	s, stats, _ := openSyslogTest(t, "tls://"+rs.Addr+"?ca_file="+pki.caFile, SyslogConfig{})
	evs := syslogTestEvents(t, "tls", 30)
	if err := countedWrite(t, s, t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatalf("close: %v", err)
	}
	msgs := rs.WaitMessages(30*time.Second, func(m []testserver.RsyslogMessage) bool { return len(m) >= len(evs) })
	if len(msgs) != len(evs) || stats.Sent.Load() != uint64(len(evs)) {
		t.Fatalf("received %d (the refused sinks must add none), sent %d, want %d", len(msgs), stats.Sent.Load(), len(evs))
	}
	for i, m := range msgs {
		checkRFC5424(t, m, evs[i])
	}
}

// TestSyslogRsyslogKilledMidStream kills rsyslogd twice while a runner
// streams events over TCP: once frozen with unread events in its socket
// buffer (written and counted as sent, then lost with the process), once
// while events keep coming. Every event must arrive after the restarts.
func TestSyslogRsyslogKilledMidStream(t *testing.T) {
	rs := testserver.StartRsyslog(t, testserver.RsyslogOptions{Proto: "tcp"})
	s, stats, _ := openSyslogTest(t, "tcp://"+rs.Addr, SyslogConfig{ReconnectInitial: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond})
	r := NewRunner(s, RunnerConfig{BatchSize: 20, MaxRetries: -1, BackoffInitial: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond}, stats, nil)
	evs := syslogTestEvents(t, "kill", 900)
	arrived := func(n int) func([]testserver.RsyslogMessage) bool {
		return func(m []testserver.RsyslogMessage) bool { return len(idsOf(t, m)) >= n }
	}

	// 1. 100 events delivered, then rsyslogd frozen and 100 more written
	// into its socket buffer, then killed: those 100 are lost by the server.
	for _, ev := range evs[:100] {
		r.Publish(ev)
	}
	rs.WaitMessages(30*time.Second, arrived(100))
	if err := rs.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs[100:200] {
		r.Publish(ev)
	}
	waitFor(t, "200 events counted as sent", 30*time.Second, func() bool { return stats.Sent.Load() >= 200 })
	rs.Kill()
	rs.Restart()
	rs.WaitMessages(30*time.Second, arrived(200))

	// 2. Killed while events are published, more published during the
	// outage and while the sink reconnects.
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	publish := func(evs []Event) {
		for _, ev := range evs {
			<-tick.C
			r.Publish(ev)
		}
	}
	done := make(chan struct{})
	go func() { defer close(done); publish(evs[200:500]) }()
	rs.WaitMessages(30*time.Second, arrived(250))
	rs.Kill()
	<-done
	publish(evs[500:700])
	rs.Restart()
	publish(evs[700:])

	msgs := rs.WaitMessages(60*time.Second, arrived(len(evs)))
	ids := idsOf(t, msgs)
	dups := 0
	for _, ev := range evs {
		if ids[ev.ID] == 0 {
			t.Errorf("%s never arrived", ev.ID)
		}
		dups += ids[ev.ID] - 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Errorf("runner close: %v", err)
	}
	snap := stats.Snapshot()
	t.Logf("%d events, %d received, %d duplicates (at least once), re-sent %d, dropped %d", len(evs), len(msgs), dups, snap.Retried, snap.Dropped)
	if snap.Dropped != 0 {
		t.Errorf("dropped %v", snap.DroppedBy)
	}
}
