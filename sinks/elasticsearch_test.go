package sinks

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/netsentinel/netsentinel/internal/testserver"
)

// ecsTechniques are the ATT&CK entries the test alerts cycle through.
var ecsTechniques = []struct {
	rule, tactic, tacticName, tech, techName, sub, subName string
	severity, risk                                         int
}{
	{"port_scan", "TA0007", "Discovery", "T1046", "Network Service Discovery", "", "", 5, 63},
	{"suspicious_port", "TA0011", "Command and Control", "T1571", "Non-Standard Port", "", "", 4, 47},
	{"tor", "TA0011", "Command and Control", "T1090", "Proxy", "T1090.003", "Multi-hop Proxy", 6, 73},
	{"dns_tunnel", "TA0011", "Command and Control", "T1071", "Application Layer Protocol", "T1071.004", "DNS", 6, 70},
}

// communityIDOf makes a Community ID-shaped value ("1:" + base64 SHA-1).
func communityIDOf(s string) string {
	sum := sha1.Sum([]byte(s))
	return "1:" + base64.StdEncoding.EncodeToString(sum[:])
}

var ecsHosts = []string{"sensor-a", "sensor-b", "sensor-c"}

// makeECSAlerts builds n realistic ECS alert documents (the shape
// schemas.ECS emits) with ids prefix-0..prefix-(n-1). Alert i uses
// technique i%4 and host i%3.
func makeECSAlerts(prefix string, n int) []Event {
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	out := make([]Event, n)
	for i := range n {
		tq := ecsTechniques[i%len(ecsTechniques)]
		host := ecsHosts[i%len(ecsHosts)]
		id := fmt.Sprintf("%s-%06d", prefix, i)
		ts := base.Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano)
		technique := map[string]any{"id": []string{tq.tech}, "name": []string{tq.techName},
			"reference": []string{"https://attack.mitre.org/techniques/" + tq.tech + "/"}}
		if tq.sub != "" {
			technique["subtechnique"] = map[string]any{"id": []string{tq.sub}, "name": []string{tq.subName},
				"reference": []string{"https://attack.mitre.org/techniques/" + strings.ReplaceAll(tq.sub, ".", "/") + "/"}}
		}
		src := fmt.Sprintf("10.20.%d.%d", i%200, 1+i%250)
		doc := map[string]any{
			"@timestamp": ts,
			"message":    fmt.Sprintf("%s: %s from %s on %s", tq.rule, tq.techName, src, host),
			"ecs":        map[string]any{"version": "9.4.0"},
			"event": map[string]any{
				"kind": "alert", "category": []string{"network", "intrusion_detection"}, "type": []string{"info"},
				"action": tq.rule, "id": id, "dataset": "netsentinel.alert", "module": "netsentinel",
				"severity": tq.severity, "risk_score": tq.risk, "risk_score_norm": tq.risk, "created": ts,
			},
			"rule": map[string]any{"id": "NS-" + strings.ToUpper(tq.rule), "name": tq.rule, "ruleset": "netsentinel",
				"category": tq.tacticName, "version": "1"},
			"threat": map[string]any{"framework": "MITRE ATT&CK",
				"tactic":    map[string]any{"id": []string{tq.tactic}, "name": []string{tq.tacticName}, "reference": []string{"https://attack.mitre.org/tactics/" + tq.tactic + "/"}},
				"technique": technique},
			"source":      map[string]any{"ip": src, "port": 40000 + i%20000},
			"destination": map[string]any{"ip": "192.168.1.10", "port": 22 + i%1000},
			"network":     map[string]any{"transport": "tcp", "type": "ipv4", "direction": "ingress", "community_id": communityIDOf(id)},
			"host":        map[string]any{"name": host, "hostname": host, "id": "id-" + host, "os": map[string]any{"type": "linux", "family": "debian"}},
			"observer":    map[string]any{"type": "sensor", "product": "NetSentinel", "vendor": "NetSentinel", "version": "0.1.0", "hostname": host},
			"agent":       map[string]any{"type": "netsentinel", "version": "0.1.0"},
			"related":     map[string]any{"ip": []string{src, "192.168.1.10"}},
			"data_stream": map[string]any{"type": "logs", "dataset": "netsentinel.alert", "namespace": "default"},
		}
		b, err := json.Marshal(doc)
		if err != nil {
			panic(err)
		}
		out[i] = Event{ID: id, Body: b, Fields: map[string]string{"rule": tq.rule, "technique": tq.tech, "host.name": host}}
	}
	return out
}

// testESConfig is a config pointing at url with tiny retry delays.
func testESConfig(url string) ElasticsearchConfig {
	return ElasticsearchConfig{
		URL:            url,
		RequestTimeout: 5 * time.Second,
		Retry:          RetryConfig{Initial: time.Millisecond, Max: 4 * time.Millisecond, MaxAttempts: 4},
	}
}

type esHarness struct {
	es     *Elasticsearch
	stats  *Stats
	dl     *DeadLetter
	dlPath string
	logs   *observer.ObservedLogs
}

func newTestES(t *testing.T, cfg ElasticsearchConfig) *esHarness {
	t.Helper()
	dlPath := filepath.Join(t.TempDir(), "dead.ndjson")
	dl, err := OpenDeadLetter(dlPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dl.Close() })
	core, logs := observer.New(zapcore.DebugLevel)
	stats := &Stats{}
	es, err := NewElasticsearch(cfg, dl, zap.New(core))
	if err != nil {
		t.Fatalf("NewElasticsearch: %v", err)
	}
	t.Cleanup(func() { es.Close(context.Background()) })
	trackStats(t, es, stats)
	return &esHarness{es: es, stats: stats, dl: dl, dlPath: dlPath, logs: logs}
}

func eventIDs(evs []Event) []string {
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	return ids
}

const dsName = "logs-netsentinel.alert-default"

func TestElasticsearchConfigValidate(t *testing.T) {
	ok := func(c *ElasticsearchConfig) {}
	cases := []struct {
		name    string
		mod     func(c *ElasticsearchConfig)
		wantKey string // "" = valid
	}{
		{"defaults", ok, ""},
		{"no url", func(c *ElasticsearchConfig) { c.URL = "" }, "elasticsearch.url: required"},
		{"ftp", func(c *ElasticsearchConfig) { c.URL = "ftp://h:21" }, "elasticsearch.url: scheme"},
		{"second url bad", func(c *ElasticsearchConfig) { c.URLs = []string{"https://b:9200", "nohost"} }, "elasticsearch.urls[1]"},
		{"dataset dash", func(c *ElasticsearchConfig) { c.DataStream = &DataStreamConfig{Dataset: "net-sentinel"} }, "data_stream.dataset"},
		{"dataset upper", func(c *ElasticsearchConfig) { c.DataStream = &DataStreamConfig{Dataset: "NetSentinel"} }, "data_stream.dataset"},
		{"namespace long", func(c *ElasticsearchConfig) { c.DataStream = &DataStreamConfig{Namespace: strings.Repeat("a", 101)} }, "data_stream.namespace"},
		{"namespace star", func(c *ElasticsearchConfig) { c.DataStream = &DataStreamConfig{Namespace: "prod*"} }, "data_stream.namespace"},
		{"type", func(c *ElasticsearchConfig) { c.DataStream = &DataStreamConfig{Type: "alerts"} }, "data_stream.type"},
		{"both targets", func(c *ElasticsearchConfig) { c.DataStream = &DataStreamConfig{}; c.Index = "alerts" }, "data_stream or index"},
		{"index ok", func(c *ElasticsearchConfig) { c.Index = "netsentinel-alerts" }, ""},
		{"index bad", func(c *ElasticsearchConfig) { c.Index = "_alerts" }, "elasticsearch.index"},
		{"batch size", func(c *ElasticsearchConfig) { c.BatchSize = -1 }, "elasticsearch.batch_size"},
		{"batch bytes", func(c *ElasticsearchConfig) { c.BatchBytes = 10 }, "elasticsearch.batch_bytes"},
		{"workers", func(c *ElasticsearchConfig) { c.Workers = 1000 }, "elasticsearch.workers"},
		{"compression", func(c *ElasticsearchConfig) { c.Compression = "zstd" }, "elasticsearch.compression"},
		{"attempts", func(c *ElasticsearchConfig) { c.Retry.MaxAttempts = -3 }, "elasticsearch.retry.max_attempts"},
		{"key and user", func(c *ElasticsearchConfig) { c.APIKey = "a:b"; c.Username = "u" }, "api_key or username"},
		{"key twice", func(c *ElasticsearchConfig) { c.APIKey = "a:b"; c.APIKeyFile = "/k" }, "api_key or api_key_file"},
		{"password no user", func(c *ElasticsearchConfig) { c.Password = "p" }, "elasticsearch.username"},
		{"cert no key", func(c *ElasticsearchConfig) { c.TLS.CertFile = "c.pem" }, "cert_file and key_file"},
		{"fingerprint", func(c *ElasticsearchConfig) { c.TLS.CAFingerprint = "abc" }, "tls.ca_fingerprint"},
		{"tls on http", func(c *ElasticsearchConfig) { c.URL = "http://h:9200"; c.TLS.CAFile = "ca.pem" }, "elasticsearch.tls"},
		{"auth header", func(c *ElasticsearchConfig) { c.Headers = map[string]string{"authorization": "x"} }, "elasticsearch.headers"},
		{"header newline", func(c *ElasticsearchConfig) { c.Headers = map[string]string{"VL-Msg-Field": "a\nb"} }, "elasticsearch.headers"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ElasticsearchConfig{URL: "https://es.example:9200"}
			tc.mod(&c)
			err := c.Validate()
			if tc.wantKey == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantKey) {
				t.Fatalf("want error naming %q, got %v", tc.wantKey, err)
			}
		})
	}
}

func TestElasticsearchConfigDefaults(t *testing.T) {
	c := ElasticsearchConfig{URL: "https://h:9200"}.WithDefaults()
	if c.Target() != dsName {
		t.Errorf("target %q, want %q", c.Target(), dsName)
	}
	if c.BatchSize != 1600 || c.BatchBytes != 5<<20 || c.FlushInterval != time.Second ||
		c.Compression != "gzip" || c.Retry.Initial != time.Second || c.Retry.Max != time.Minute || c.Workers != 1 {
		t.Errorf("defaults not Filebeat-like: %+v", c)
	}
	if got := (ElasticsearchConfig{URL: "https://h", DataStream: &DataStreamConfig{Namespace: "prod"}}).Target(); got != "logs-netsentinel.alert-prod" {
		t.Errorf("namespace only: target %q", got)
	}
}

func TestElasticsearchSecretsFromEnvAndFilesNeverLogged(t *testing.T) {
	d := newESDouble(t)
	d.APIKey = "kid:s3cr3t-from-file"
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(d.APIKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testESConfig(d.URL())
	cfg.APIKeyFile = keyFile
	h := newTestES(t, cfg)
	if err := countedWrite(t, h.es, context.Background(), makeECSAlerts("f", 3)); err != nil {
		t.Fatalf("api_key_file: %v", err)
	}

	// The env variable overrides the file.
	d.APIKey = "kid:s3cr3t-from-env"
	t.Setenv(EnvESAPIKey, d.APIKey)
	h2 := newTestES(t, cfg)
	if err := countedWrite(t, h2.es, context.Background(), makeECSAlerts("e", 3)); err != nil {
		t.Fatalf("env api key: %v", err)
	}
	for _, h := range []*esHarness{h, h2} {
		for _, e := range h.logs.All() {
			line := fmt.Sprintf("%s %v", e.Message, e.ContextMap())
			if strings.Contains(line, "s3cr3t") || strings.Contains(line, base64.StdEncoding.EncodeToString([]byte("kid:s3cr3t-from-env"))) {
				t.Fatalf("secret logged: %s", line)
			}
		}
	}

	// Basic auth with a password in the URL: rejected credentials give a
	// clear error that does not echo the password.
	d.APIKey, d.User, d.Pass = "", "elastic", "right"
	t.Setenv(EnvESAPIKey, "")
	cfg = testESConfig(strings.Replace(d.URL(), "http://", "http://elastic:wr0ngpass@", 1))
	h3 := newTestES(t, cfg)
	err := h3.es.Check(context.Background())
	if !errors.Is(err, ErrESAuth) || strings.Contains(err.Error(), "wr0ngpass") {
		t.Fatalf("want ErrESAuth without the password, got %v", err)
	}
	t.Setenv(EnvESPassword, "right")
	cfg = testESConfig(d.URL())
	cfg.Username = "elastic"
	cfg.PasswordFile = filepath.Join(t.TempDir(), "missing")
	h4 := newTestES(t, cfg) // env wins over the (missing) file
	if err := h4.es.Check(context.Background()); err != nil {
		t.Fatalf("password from env: %v", err)
	}
}

func TestESDeliversBatchAsCreateWithIDGzipAndAPIKey(t *testing.T) {
	d := newESDouble(t)
	d.APIKey = "abc:def"
	cfg := testESConfig(d.URL())
	cfg.APIKey = "abc:def"
	cfg.Headers = map[string]string{"VL-Msg-Field": "message"}
	h := newTestES(t, cfg)
	if err := h.es.Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	evs := makeECSAlerts("a", 25)
	if err := countedWrite(t, h.es, context.Background(), evs); err != nil {
		t.Fatalf("Write: %v", err)
	}
	reqs := d.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d bulk requests, want 1", len(reqs))
	}
	r := reqs[0]
	if !r.Gzip {
		t.Error("body not gzip-compressed")
	}
	if want := "apikey " + base64.StdEncoding.EncodeToString([]byte("abc:def")); strings.ToLower(r.Auth[:7])+r.Auth[7:] != want {
		t.Errorf("Authorization %q, want %q", r.Auth, want)
	}
	if r.Header.Get("VL-Msg-Field") != "message" {
		t.Error("configured header not sent")
	}
	if !slices.Equal(r.IDs, eventIDs(evs)) {
		t.Errorf("ids sent %v", r.IDs)
	}
	for i := range r.Actions {
		if r.Actions[i] != "create" || r.Indices[i] != dsName {
			t.Fatalf("item %d: %s into %s, want create into %s", i, r.Actions[i], r.Indices[i], dsName)
		}
	}
	if d.Count(dsName) != 25 {
		t.Fatalf("double holds %d docs", d.Count(dsName))
	}
	got, _ := d.Doc(dsName, evs[7].ID)
	if string(got) != string(evs[7].Body) {
		t.Errorf("stored source differs:\n%s\n%s", got, evs[7].Body)
	}
	if s := h.stats.Snapshot(); s.DeadLettered != 0 || s.Duplicate != 0 || s.Retried != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestESPlainIndexAndNoCompression(t *testing.T) {
	d := newESDouble(t)
	cfg := testESConfig(d.URL())
	cfg.Index = "netsentinel-alerts"
	cfg.Compression = "none"
	h := newTestES(t, cfg)
	evs := makeECSAlerts("p", 3)
	if err := countedWrite(t, h.es, context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	r := d.Requests()[0]
	if r.Gzip || r.Indices[0] != "netsentinel-alerts" || r.Actions[0] != "create" {
		t.Fatalf("request %+v", r)
	}
	if d.Count("netsentinel-alerts") != 3 {
		t.Fatal("docs not in the plain index")
	}
}

func TestESRetriesExactlyTheFailedItems(t *testing.T) {
	d := newESDouble(t)
	evs := makeECSAlerts("m", 10)
	// m-1: 429 twice; m-4: 503 once; m-6: 400 mapping error; m-8 already stored (409).
	d.Put(dsName, evs[8].ID, string(evs[8].Body))
	d.ItemFault = func(id string, n int) (int, string) {
		switch {
		case id == evs[1].ID && n <= 2:
			return 429, "es_rejected_execution_exception"
		case id == evs[4].ID && n == 1:
			return 503, "unavailable_shards_exception"
		case id == evs[6].ID:
			return 400, "document_parsing_exception"
		}
		return 0, ""
	}
	h := newTestES(t, testESConfig(d.URL()))
	if err := countedWrite(t, h.es, context.Background(), evs); err != nil {
		t.Fatalf("Write: %v", err)
	}
	reqs := d.Requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	if !slices.Equal(reqs[0].IDs, eventIDs(evs)) {
		t.Errorf("first request %v", reqs[0].IDs)
	}
	if want := []string{evs[1].ID, evs[4].ID}; !slices.Equal(reqs[1].IDs, want) {
		t.Errorf("second request re-sent %v, want exactly %v", reqs[1].IDs, want)
	}
	if want := []string{evs[1].ID}; !slices.Equal(reqs[2].IDs, want) {
		t.Errorf("third request re-sent %v, want exactly %v", reqs[2].IDs, want)
	}
	if d.Count(dsName) != 9 { // 10 - the 400
		t.Errorf("%d docs stored, want 9", d.Count(dsName))
	}
	s := h.stats.Snapshot()
	if s.Retried != 3 || s.Duplicate != 1 || s.DeadLettered != 1 {
		t.Errorf("stats %+v, want retried 3, duplicate 1, dead-lettered 1", s)
	}
	dls := readDeadLetters(t, h.dlPath)
	if len(dls) != 1 || dls[0].ID != evs[6].ID || dls[0].Sink != "elasticsearch" ||
		!strings.Contains(dls[0].Reason, "400") || !strings.Contains(dls[0].Reason, "document_parsing_exception") {
		t.Fatalf("dead letters %+v", dls)
	}
	if string(dls[0].Event) != string(evs[6].Body) {
		t.Errorf("dead letter lost the original event")
	}
}

func TestES400NeverLoops(t *testing.T) {
	d := newESDouble(t)
	evs := makeECSAlerts("n", 5)
	d.ItemFault = func(id string, n int) (int, string) {
		if id == evs[2].ID || id == evs[3].ID {
			return 400, "mapper_parsing_exception"
		}
		return 0, ""
	}
	h := newTestES(t, testESConfig(d.URL()))
	if err := countedWrite(t, h.es, context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	if n := len(d.Requests()); n != 1 {
		t.Fatalf("%d requests for a 400, want 1 (never retried)", n)
	}
	if s := h.stats.Snapshot(); s.DeadLettered != 2 || s.Retried != 0 {
		t.Fatalf("stats %+v", s)
	}
	// Logged once per cause, not once per event.
	if n := h.logs.FilterMessageSnippet("dead-lettered").Len(); n != 1 {
		t.Errorf("cause logged %d times, want 1", n)
	}
	// A second Write with the same cause logs nothing new.
	if err := countedWrite(t, h.es, context.Background(), evs[2:3]); err != nil {
		t.Fatal(err)
	}
	if n := h.logs.FilterMessageSnippet("dead-lettered").Len(); n != 1 {
		t.Errorf("cause logged %d times after a repeat, want 1", n)
	}
}

func TestESPersistent429HandsBackRemaining(t *testing.T) {
	d := newESDouble(t)
	evs := makeECSAlerts("r", 6)
	d.ItemFault = func(id string, n int) (int, string) {
		if id == evs[0].ID || id == evs[5].ID {
			return 429, "es_rejected_execution_exception"
		}
		return 0, ""
	}
	h := newTestES(t, testESConfig(d.URL()))
	err := countedWrite(t, h.es, context.Background(), evs)
	var re *RetryableError
	if !errors.As(err, &re) {
		t.Fatalf("want *RetryableError, got %v", err)
	}
	if want := []string{evs[0].ID, evs[5].ID}; !slices.Equal(eventIDs(re.Remaining), want) {
		t.Fatalf("remaining %v, want %v", eventIDs(re.Remaining), want)
	}
	if errors.Is(err, ErrPermanent) {
		t.Error("a 429 must not look permanent to the runner")
	}
	if n := len(d.Requests()); n != 4 { // MaxAttempts
		t.Fatalf("%d requests, want 4 (max_attempts)", n)
	}
	if s := h.stats.Snapshot(); s.Retried != 6 || s.DeadLettered != 0 {
		t.Fatalf("stats %+v, want 3 retries x 2 items", s)
	}
	if !strings.Contains(err.Error(), "429") {
		t.Errorf("error does not say why: %v", err)
	}
}

func TestESJitteredBackoffBounds(t *testing.T) {
	initial, maxD := 100*time.Millisecond, 1600*time.Millisecond
	for n := 1; n <= 8; n++ {
		ceil := min(initial<<(n-1), maxD)
		lo := jitteredBackoff(initial, maxD, n, func(int64) int64 { return 0 })
		hi := jitteredBackoff(initial, maxD, n, func(k int64) int64 { return k - 1 })
		if lo != ceil/2 || hi != ceil {
			t.Errorf("retry %d: range [%v, %v], want [%v, %v]", n, lo, hi, ceil/2, ceil)
		}
		for range 200 {
			if d := jitteredBackoff(initial, maxD, n, func(k int64) int64 { return int64(time.Now().UnixNano()) % k }); d < ceil/2 || d > ceil {
				t.Fatalf("retry %d: %v outside [%v, %v]", n, d, ceil/2, ceil)
			}
		}
	}
	if d := jitteredBackoff(time.Second, time.Minute, 1000, func(k int64) int64 { return k - 1 }); d != time.Minute {
		t.Errorf("huge attempt: %v, want the 60 s cap", d)
	}
}

func TestESBackoffTimingBounds(t *testing.T) {
	d := newESDouble(t)
	evs := makeECSAlerts("b", 2)
	d.ItemFault = func(id string, n int) (int, string) {
		if id == evs[0].ID {
			return 429, "es_rejected_execution_exception"
		}
		return 0, ""
	}
	cfg := testESConfig(d.URL())
	cfg.Retry = RetryConfig{Initial: 40 * time.Millisecond, Max: 100 * time.Millisecond, MaxAttempts: 5}
	h := newTestES(t, cfg)
	start := time.Now()
	err := countedWrite(t, h.es, context.Background(), evs)
	elapsed := time.Since(start)
	var re *RetryableError
	if !errors.As(err, &re) || len(re.Remaining) != 1 {
		t.Fatalf("want 1 remaining, got %v", err)
	}
	reqs := d.Requests()
	if len(reqs) != 5 {
		t.Fatalf("%d requests, want 5", len(reqs))
	}
	// Waits before retries 1..4: ceilings 40, 80, 100, 100 ms; each wait is in
	// [ceiling/2, ceiling] plus scheduling slack on a busy machine.
	ceilings := []time.Duration{40, 80, 100, 100}
	const slack = 250 * time.Millisecond
	for i, c := range ceilings {
		c *= time.Millisecond
		gap := reqs[i+1].At.Sub(reqs[i].At)
		if gap < c/2 || gap > c+slack {
			t.Errorf("gap before retry %d: %v, want in [%v, %v+slack]", i+1, gap, c/2, c)
		}
	}
	if elapsed < 160*time.Millisecond { // sum of the lower bounds: 20+40+50+50
		t.Errorf("whole Write took %v, shorter than the backoff floor", elapsed)
	}
}

func TestESConnectionErrorRetried(t *testing.T) {
	d := newESDouble(t)
	d.RequestFault = func(n int, ids []string) int {
		if n == 1 {
			return -1 // connection dropped before anything happened
		}
		return 0
	}
	h := newTestES(t, testESConfig(d.URL()))
	evs := makeECSAlerts("c", 4)
	if err := countedWrite(t, h.es, context.Background(), evs); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if n := len(d.Requests()); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
	if d.Count(dsName) != 4 || h.stats.Retried.Load() != 4 {
		t.Fatalf("docs %d, retried %d", d.Count(dsName), h.stats.Retried.Load())
	}
}

func TestESLostAnswerRetryCountsDuplicates(t *testing.T) {
	d := newESDouble(t)
	d.RequestFault = func(n int, ids []string) int {
		if n == 1 {
			return -2 // indexed, then the answer is lost
		}
		return 0
	}
	h := newTestES(t, testESConfig(d.URL()))
	evs := makeECSAlerts("l", 5)
	if err := countedWrite(t, h.es, context.Background(), evs); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if d.Count(dsName) != 5 {
		t.Fatalf("%d docs: a retry must not double documents", d.Count(dsName))
	}
	if s := h.stats.Snapshot(); s.Duplicate != 5 || s.DeadLettered != 0 {
		t.Fatalf("stats %+v: the 409s of the retry are deliveries", s)
	}
}

func TestESUnreachableHandsBackEverything(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	h := newTestES(t, testESConfig("http://"+addr))
	evs := makeECSAlerts("u", 3)
	err = countedWrite(t, h.es, context.Background(), evs)
	var re *RetryableError
	if !errors.As(err, &re) || len(re.Remaining) != 3 || !errors.Is(err, ErrESUnreachable) {
		t.Fatalf("want RetryableError(ErrESUnreachable) with 3 events, got %v", err)
	}
	if err := h.es.Check(context.Background()); !errors.Is(err, ErrESUnreachable) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Check: %v", err)
	}
}

func TestESAuthFailureStopsAndNamesTheCause(t *testing.T) {
	d := newESDouble(t)
	d.APIKey = "good:key"
	cfg := testESConfig(d.URL())
	cfg.APIKey = "bad:key"
	h := newTestES(t, cfg)
	evs := makeECSAlerts("x", 3)
	err := countedWrite(t, h.es, context.Background(), evs)
	var re *RetryableError
	if !errors.As(err, &re) || len(re.Remaining) != 3 || !errors.Is(err, ErrESAuth) {
		t.Fatalf("want RetryableError(ErrESAuth), got %v", err)
	}
	if strings.Contains(err.Error(), "bad:key") {
		t.Fatal("error leaks the key")
	}
	if err := h.es.Check(context.Background()); !errors.Is(err, ErrESAuth) || !strings.Contains(err.Error(), "401") {
		t.Fatalf("Check: %v", err)
	}
}

func TestESNotElasticsearch(t *testing.T) {
	d := newESDouble(t)
	d.NotElasticsearch = true
	cfg := testESConfig(d.URL())
	h := newTestES(t, cfg)
	if err := h.es.Check(context.Background()); !errors.Is(err, ErrNotElasticsearch) {
		t.Fatalf("Check: %v", err)
	}
	err := countedWrite(t, h.es, context.Background(), makeECSAlerts("z", 2))
	var re *RetryableError
	if !errors.As(err, &re) || !errors.Is(err, ErrNotElasticsearch) || len(re.Remaining) != 2 {
		t.Fatalf("Write: %v", err)
	}
	if n := len(d.Requests()); n != 1 {
		t.Errorf("%d requests to a non-Elasticsearch server, want 1 (no retry loop)", n)
	}
}

func TestESCheckStartupFailFast(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	cfg := testESConfig(url)
	h := newTestES(t, cfg)
	if err := h.es.CheckStartup(context.Background()); err != nil {
		t.Fatalf("without fail_fast start-up must go on, got %v", err)
	}
	if h.logs.FilterMessageSnippet("not ready").Len() != 1 {
		t.Error("the failure was not logged")
	}
	cfg.FailFast = true
	h2 := newTestES(t, cfg)
	if err := h2.es.CheckStartup(context.Background()); !errors.Is(err, ErrESUnreachable) {
		t.Fatalf("fail_fast: %v", err)
	}
}

func TestESSplitsBySizeAndBytesWithWorkers(t *testing.T) {
	d := newESDouble(t)
	cfg := testESConfig(d.URL())
	cfg.BatchSize = 4
	cfg.Workers = 3
	h := newTestES(t, cfg)
	evs := makeECSAlerts("s", 10)
	if err := countedWrite(t, h.es, context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	reqs := d.Requests()
	var sizes []int
	var all []string
	for _, r := range reqs {
		sizes = append(sizes, len(r.IDs))
		all = append(all, r.IDs...)
	}
	slices.Sort(sizes)
	slices.Sort(all)
	if !slices.Equal(sizes, []int{2, 4, 4}) || !slices.Equal(all, eventIDs(evs)) {
		t.Fatalf("request sizes %v ids %v", sizes, all)
	}

	// Byte limit: each alert is ~1.5 KiB, so 4 KiB holds at most 2.
	cfg.BatchSize, cfg.BatchBytes = 100, 4096
	d2 := newESDouble(t)
	cfg.URL = d2.URL()
	h2 := newTestES(t, cfg)
	if err := countedWrite(t, h2.es, context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	for _, r := range d2.Requests() {
		var n int
		for _, id := range r.IDs {
			i := slices.Index(eventIDs(evs), id)
			n += h2.es.itemSize(evs[i])
		}
		if n > 4096 && len(r.IDs) > 1 {
			t.Fatalf("request of %d bytes over batch_bytes", n)
		}
	}
	if d2.Count(dsName) != 10 {
		t.Fatal("lost events while splitting")
	}
}

func TestESWholeRequest400Bisects(t *testing.T) {
	d := newESDouble(t)
	evs := makeECSAlerts("w", 8)
	poison := evs[5].ID
	d.RequestFault = func(n int, ids []string) int {
		if slices.Contains(ids, poison) {
			return 400 // like VictoriaLogs: one bad document fails the request
		}
		return 0
	}
	h := newTestES(t, testESConfig(d.URL()))
	if err := countedWrite(t, h.es, context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	if d.Count(dsName) != 7 {
		t.Fatalf("%d docs, want 7", d.Count(dsName))
	}
	dls := readDeadLetters(t, h.dlPath)
	if len(dls) != 1 || dls[0].ID != poison {
		t.Fatalf("dead letters %+v", dls)
	}
	if n := len(d.Requests()); n > 2*len(evs) {
		t.Fatalf("%d requests: bisection is not bounded", n)
	}
}

func TestESInvalidJSONDeadLetteredNotSent(t *testing.T) {
	d := newESDouble(t)
	h := newTestES(t, testESConfig(d.URL()))
	evs := makeECSAlerts("j", 2)
	evs = append(evs, Event{ID: "broken", Body: []byte("{\"a\":\n")})
	if err := countedWrite(t, h.es, context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(d.Requests()[0].IDs, "broken") {
		t.Fatal("invalid JSON was sent")
	}
	if dls := readDeadLetters(t, h.dlPath); len(dls) != 1 || dls[0].ID != "broken" || !strings.Contains(dls[0].Reason, "not valid JSON") {
		t.Fatalf("dead letters %+v", dls)
	}
}

func TestESDeadLetterFailureHandsEventBack(t *testing.T) {
	d := newESDouble(t)
	evs := makeECSAlerts("k", 3)
	d.ItemFault = func(id string, n int) (int, string) {
		if id == evs[1].ID {
			return 400, "mapper_parsing_exception"
		}
		return 0, ""
	}
	h := newTestES(t, testESConfig(d.URL()))
	h.dl.Close() // the dead-letter file can no longer be written
	err := countedWrite(t, h.es, context.Background(), evs)
	var re *RetryableError
	if !errors.As(err, &re) || !slices.Equal(eventIDs(re.Remaining), []string{evs[1].ID}) {
		t.Fatalf("want the rejected event handed back, got %v", err)
	}
	if n := len(d.Requests()); n != 1 {
		t.Errorf("%d requests: a rejected event must not be re-sent in the loop", n)
	}
}

func TestESContextCancelHandsBack(t *testing.T) {
	d := newESDouble(t)
	evs := makeECSAlerts("q", 2)
	d.ItemFault = func(id string, n int) (int, string) { return 503, "unavailable" }
	cfg := testESConfig(d.URL())
	cfg.Retry = RetryConfig{Initial: time.Hour, Max: time.Hour, MaxAttempts: 3}
	h := newTestES(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := countedWrite(t, h.es, ctx, evs)
	var re *RetryableError
	if !errors.As(err, &re) || len(re.Remaining) != 2 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("backoff ignored the context")
	}
}

func TestESWithRunnerCountsForTheReport(t *testing.T) {
	d := newESDouble(t)
	evs := makeECSAlerts("g", 20)
	d.Put(dsName, evs[3].ID, string(evs[3].Body))
	d.ItemFault = func(id string, n int) (int, string) {
		switch {
		case id == evs[7].ID:
			return 400, "document_parsing_exception"
		case id == evs[9].ID && n == 1:
			return 429, "es_rejected_execution_exception"
		}
		return 0, ""
	}
	h := newTestES(t, testESConfig(d.URL()))
	r := NewRunner(h.es, RunnerConfig{BatchSize: 50, FlushInterval: 20 * time.Millisecond}, h.stats, zap.NewNop())
	for _, ev := range evs {
		r.Publish(ev)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s := r.Stats()
	if s.Sent != 19 || s.Duplicate != 1 || s.DeadLettered != 1 || s.Retried != 1 || s.Dropped != 0 {
		t.Fatalf("report counters %+v, want sent 19 (incl. 1 duplicate), dead-lettered 1, retried 1", s)
	}
	if d.Count(dsName) != 19 {
		t.Fatalf("%d docs", d.Count(dsName))
	}
}

func TestESSetupTemplateIdempotent(t *testing.T) {
	tmpl, err := os.ReadFile("testdata/es-index-template.json")
	if err != nil {
		t.Fatal(err)
	}
	d := newESDouble(t)
	d.APIKey = "setup:key"
	cfg := testESConfig(d.URL())
	cfg.APIKey = "setup:key"
	ctx := context.Background()

	rep, err := SetupElasticsearch(ctx, cfg, tmpl, zap.NewNop())
	if err != nil || !strings.Contains(rep, "created") || !strings.Contains(rep, DefaultESTemplateName) || !strings.Contains(rep, "priority 200") {
		t.Fatalf("first setup: %q, %v", rep, err)
	}
	rep, err = SetupElasticsearch(ctx, cfg, tmpl, zap.NewNop())
	if err != nil || !strings.Contains(rep, "unchanged") {
		t.Fatalf("second setup: %q, %v", rep, err)
	}
	if d.puts != 1 {
		t.Fatalf("%d PUTs, want 1 (unchanged must not write)", d.puts)
	}
	changed := strings.Replace(string(tmpl), `"version": 1`, `"version": 2`, 1)
	rep, err = SetupElasticsearch(ctx, cfg, []byte(changed), zap.NewNop())
	if err != nil || !strings.Contains(rep, "updated") || d.puts != 2 {
		t.Fatalf("changed template: %q, %v, puts %d", rep, err, d.puts)
	}

	if _, err := SetupElasticsearch(ctx, cfg, []byte("{not json"), zap.NewNop()); err == nil {
		t.Fatal("invalid template accepted")
	}
	cfg.APIKey = "setup:wrong"
	if _, err := SetupElasticsearch(ctx, cfg, tmpl, zap.NewNop()); !errors.Is(err, ErrESAuth) {
		t.Fatalf("bad key: %v", err)
	}
}

func TestESConcurrentWritesAreSafe(t *testing.T) {
	d := newESDouble(t)
	evs := makeECSAlerts("cc", 40)
	d.ItemFault = func(id string, n int) (int, string) {
		if strings.HasSuffix(id, "7") && n == 1 {
			return 429, "es_rejected_execution_exception"
		}
		return 0, ""
	}
	cfg := testESConfig(d.URL())
	cfg.BatchSize, cfg.Workers = 5, 2
	h := newTestES(t, cfg)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			if err := countedWrite(t, h.es, context.Background(), evs[i*10:(i+1)*10]); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if d.Count(dsName) != 40 || h.stats.Retried.Load() != 4 {
		t.Fatalf("docs %d retried %d", d.Count(dsName), h.stats.Retried.Load())
	}
}

// TestESSetupShippedTemplate installs the template the schemas package
// embeds (read as a file: schemas imports sinks) and checks what the issue
// requires of it: composed on ES's built-in logs templates, priority above
// 100 (logs@template's), idempotent.
func TestESSetupShippedTemplate(t *testing.T) {
	tmpl, err := os.ReadFile(filepath.Join(testserver.RepoRoot(t), "schemas", "elasticsearch", "index-template.json"))
	if err != nil {
		t.Skipf("schemas/elasticsearch/index-template.json not there yet: %v", err)
	}
	var parsed struct {
		IndexPatterns []string `json:"index_patterns"`
		Priority      int      `json:"priority"`
		ComposedOf    []string `json:"composed_of"`
	}
	if err := json.Unmarshal(tmpl, &parsed); err != nil {
		t.Fatal(err)
	}
	if parsed.Priority <= 100 || !slices.Contains(parsed.ComposedOf, "logs@mappings") ||
		!slices.Contains(parsed.IndexPatterns, "logs-netsentinel.alert-*") {
		t.Fatalf("template %+v: want priority > 100, composed of logs@mappings, pattern logs-netsentinel.alert-*", parsed)
	}
	d := newESDouble(t)
	cfg := testESConfig(d.URL())
	for i, want := range []string{SetupCreated, SetupUnchanged, SetupUnchanged} {
		rep, err := SetupElasticsearch(context.Background(), cfg, tmpl, zap.NewNop())
		if err != nil || !strings.Contains(rep, ": "+want+" ") {
			t.Fatalf("setup run %d: %q, %v; want %s", i+1, rep, err, want)
		}
	}
	if d.puts != 1 {
		t.Fatalf("%d PUTs for three runs", d.puts)
	}
}

// The runner of an Elasticsearch sink batches as the bulk requests do, and
// closing the sink closes its dead-letter file.
func TestESTunesItsRunnerAndClosesItsDeadLetter(t *testing.T) {
	cfg := testESConfig("http://127.0.0.1:9")
	cfg.BatchSize, cfg.FlushInterval = 123, 250*time.Millisecond
	h := newTestES(t, cfg)
	var rc RunnerConfig
	var s Sink = h.es
	tuner, ok := s.(RunnerTuner)
	if !ok {
		t.Fatal("the Elasticsearch sink does not tune its runner")
	}
	tuner.TuneRunner(&rc)
	if rc.BatchSize != 123 || rc.FlushInterval != 250*time.Millisecond {
		t.Fatalf("runner config %+v, want batch 123 every 250ms", rc)
	}
	if err := h.es.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := h.dl.Write("es", Event{ID: "x", Body: []byte(`{}`)}, "test"); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("dead-letter write after the sink closed: %v, want closed", err)
	}
}
