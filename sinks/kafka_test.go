package sinks

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// kafkaAlertTemplate is an ECS alert document (testdata/kafka_alert.json).
func kafkaAlertTemplate(t testing.TB) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "kafka_alert.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("testdata/kafka_alert.json: %v", err)
	}
	return doc
}

// kafkaTestEvent builds alert number i of host, with the Fields the
// pipeline provides.
func kafkaTestEvent(t testing.TB, tmpl map[string]any, prefix string, i int, host string) Event {
	t.Helper()
	id := fmt.Sprintf("%s-%05d", prefix, i)
	tmpl["event"].(map[string]any)["id"] = id
	tmpl["host"].(map[string]any)["id"] = host
	tmpl["source"].(map[string]any)["port"] = 40000 + i%20000
	body, err := json.Marshal(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	return Event{ID: id, Body: body, Fields: map[string]string{
		"rule": "non_standard_port", "technique": "T1571", "severity": "5", "host.id": host,
	}}
}

func kafkaTestEvents(t testing.TB, prefix string, n, hosts int) []Event {
	tmpl := kafkaAlertTemplate(t)
	out := make([]Event, n)
	for i := range out {
		out[i] = kafkaTestEvent(t, tmpl, prefix, i, fmt.Sprintf("host-%02d", i%hosts))
	}
	return out
}

func TestKafkaDefaultsAreDurableAndFast(t *testing.T) {
	cfg := DefaultKafkaConfig()
	cfg.Brokers, cfg.Topic = []string{"127.0.0.1:9092"}, "alerts"
	k, err := NewKafka(cfg, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close(context.Background())
	w := k.w
	if w.RequiredAcks != kafka.RequireAll {
		t.Errorf("acks = %v, want all", w.RequiredAcks)
	}
	if w.Compression != kafka.Zstd {
		t.Errorf("compression = %v, want zstd", w.Compression)
	}
	if w.BatchTimeout <= 0 || w.BatchTimeout > 50*time.Millisecond {
		t.Errorf("batch timeout = %s, want (0, 50ms] (kafka-go's default is 1s)", w.BatchTimeout)
	}
	if _, ok := w.Balancer.(*kafka.Murmur2Balancer); !ok {
		t.Errorf("balancer = %T, want *kafka.Murmur2Balancer (Java-compatible)", w.Balancer)
	}
	if w.AllowAutoTopicCreation {
		t.Error("topic auto-creation is on by default")
	}
	if w.Async {
		t.Error("writer is asynchronous: errors would be hidden")
	}
	if cfg.KeyField != "host.id" || !cfg.HeadersEnabled() {
		t.Errorf("key_field = %q, headers = %v; want host.id, true", cfg.KeyField, cfg.HeadersEnabled())
	}
	if int64(cfg.MaxMessageBytes) > cfg.BatchBytes || cfg.MaxMessageBytes != 1000000 {
		t.Errorf("max_message_bytes = %d (batch_bytes %d)", cfg.MaxMessageBytes, cfg.BatchBytes)
	}
	if k.Name() != "kafka" {
		t.Errorf("Name = %q", k.Name())
	}
}

func TestKafkaConfigValidate(t *testing.T) {
	base := func() KafkaConfig {
		c := DefaultKafkaConfig()
		c.Brokers, c.Topic = []string{"127.0.0.1:9092", "[::1]:9093"}, "netsentinel.alerts"
		return c
	}
	if err := base().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	zero := KafkaConfig{Brokers: []string{"localhost:9092"}, Topic: "t"}
	if err := zero.Validate(); err != nil {
		t.Fatalf("zero values should take the defaults: %v", err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*KafkaConfig)
		want string // substring naming the key and value
	}{
		{"no brokers", func(c *KafkaConfig) { c.Brokers = nil }, "brokers"},
		{"broker without port", func(c *KafkaConfig) { c.Brokers = []string{"kafka1"} }, `"kafka1" is not host:port`},
		{"bad port", func(c *KafkaConfig) { c.Brokers = []string{"h:99999"} }, `"h:99999" has an invalid port`},
		{"empty topic", func(c *KafkaConfig) { c.Topic = "" }, "topic"},
		{"bad topic", func(c *KafkaConfig) { c.Topic = "a/b" }, `topic "a/b"`},
		{"acks", func(c *KafkaConfig) { c.Acks = "most" }, `acks: "most"`},
		{"compression", func(c *KafkaConfig) { c.Compression = "brotli" }, `compression: "brotli"`},
		{"batch timeout too long", func(c *KafkaConfig) { c.BatchTimeout = time.Second }, "batch_timeout: 1s"},
		{"negative batch size", func(c *KafkaConfig) { c.BatchSize = -1 }, "batch_size: -1"},
		{"max message above batch", func(c *KafkaConfig) { c.MaxMessageBytes = 2 << 20 }, "max_message_bytes: 2097152"},
		{"retry attempts", func(c *KafkaConfig) { c.Retry.MaxAttempts = 1000 }, "retry.max_attempts: 1000"},
		{"retry order", func(c *KafkaConfig) { c.Retry.Initial, c.Retry.Max = time.Second, time.Millisecond }, "retry: initial 1s and max 1ms"},
		{"sasl mechanism", func(c *KafkaConfig) { c.SASL = KafkaSASL{Mechanism: "gssapi", Username: "u"} }, `sasl.mechanism: "gssapi"`},
		{"sasl user", func(c *KafkaConfig) { c.SASL = KafkaSASL{Mechanism: "plain"} }, "sasl.username"},
		{"sasl both passwords", func(c *KafkaConfig) {
			c.SASL = KafkaSASL{Mechanism: "scram-sha-512", Username: "u", Password: "p", PasswordFile: "/f"}
		}, "password or password_file"},
		{"sasl creds without mechanism", func(c *KafkaConfig) { c.SASL = KafkaSASL{Username: "u", Password: "p"} }, "sasl.mechanism is empty"},
		{"tls options while disabled", func(c *KafkaConfig) { c.TLS.CAFile = "/ca.pem" }, "tls.enabled is false"},
		{"tls cert without key", func(c *KafkaConfig) {
			c.TLS.Enabled, c.TLS.CertFile = true, "/c.pem"
		}, "cert_file and key_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.mod(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
			if _, nerr := NewKafka(c, nil, nil); !errors.Is(nerr, ErrPermanent) {
				t.Fatalf("NewKafka error %v does not wrap ErrPermanent", nerr)
			}
		})
	}
}

func TestKafkaPasswordSourcesAndRedaction(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("from-file-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := KafkaSASL{Mechanism: "plain", Username: "alice", Password: "inline-secret"}
	if pw, err := s.password(); err != nil || pw != "inline-secret" {
		t.Fatalf("inline: %q %v", pw, err)
	}
	s = KafkaSASL{Mechanism: "plain", Username: "alice", PasswordFile: pwFile}
	if pw, err := s.password(); err != nil || pw != "from-file-secret" {
		t.Fatalf("file (trailing newline trimmed): %q %v", pw, err)
	}
	t.Setenv(KafkaPasswordEnv, "from-env-secret")
	if pw, err := s.password(); err != nil || pw != "from-env-secret" {
		t.Fatalf("env must win: %q %v", pw, err)
	}
	t.Setenv(KafkaPasswordEnv, "")
	s = KafkaSASL{Mechanism: "plain", Username: "alice", PasswordFile: filepath.Join(dir, "missing")}
	if _, err := s.password(); err == nil || !strings.Contains(err.Error(), "sasl.password_file") {
		t.Fatalf("missing file: %v", err)
	}
	s = KafkaSASL{Mechanism: "plain", Username: "alice", Password: "inline-secret"}
	cfg := KafkaConfig{Brokers: []string{"127.0.0.1:9"}, Topic: "t", SASL: s}
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s", s, s, s, s), fmt.Sprintf("%+v %#v", cfg, cfg)} {
		if strings.Contains(out, "inline-secret") {
			t.Fatalf("password printed: %s", out)
		}
	}
}

func TestKafkaExtractField(t *testing.T) {
	body := []byte(`{"host":{"id":"h1","os":{"name":"debian"},"ip":["10.9.9.9","::1"]},
		"source.ip":"127.0.0.5","event":{"severity":7,"risk.score":12.5,"ok":true},
		"threat":{"technique":{"id":["T1571"]}},"labels":{"a":{"b":1}},"empty":[],"nul":null}`)
	for _, tc := range []struct {
		path, want string
		ok         bool
	}{
		{"host.id", "h1", true},
		{"host.os.name", "debian", true},
		{"host.ip", "10.9.9.9", true}, // first element of an array
		{"source.ip", "127.0.0.5", true},
		{"event.severity", "7", true},
		{"event.risk.score", "12.5", true}, // dotted key inside an object
		{"event.ok", "true", true},
		{"threat.technique.id", "T1571", true},
		{"labels.a", `{"b":1}`, true},
		{"host", `{"id":"h1","ip":["10.9.9.9","::1"],"os":{"name":"debian"}}`, true},
		{"host.missing", "", false},
		{"empty", "", false},
		{"nul", "", false},
		{"", "", false},
		{"host.id.deeper", "", false},
	} {
		got, ok := kafkaExtractField(body, tc.path)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%q: got (%q, %v), want (%q, %v)", tc.path, got, ok, tc.want, tc.ok)
		}
	}
	if _, ok := kafkaExtractField([]byte(`not json`), "host.id"); ok {
		t.Error("found a field in invalid JSON")
	}
	if _, ok := kafkaExtractField([]byte(`["host"]`), "host"); ok {
		t.Error("found a field in a JSON array")
	}
}

func FuzzKafkaExtractField(f *testing.F) {
	f.Add([]byte(`{"host":{"id":"h"}}`), "host.id")
	f.Add([]byte(`{"a.b":{"c":[1,2]},"a":{"b.c":"x"}}`), "a.b.c")
	f.Add([]byte(`{"a":{"b":{"c":{"d":true}}}}`), "a.b.c.d")
	f.Add([]byte(`{}`), "...")
	f.Fuzz(func(t *testing.T, body []byte, path string) {
		v, ok := kafkaExtractField(body, path)
		if !ok && v != "" {
			t.Fatalf("not found but value %q", v)
		}
		// A flat key that exists verbatim is always found, with its value.
		var doc map[string]any
		if json.Unmarshal(body, &doc) == nil && path != "" {
			if s, isStr := doc[path].(string); isStr && (!ok || v != s) {
				t.Fatalf("flat key %q = %q, extracted (%q, %v)", path, s, v, ok)
			}
		}
	})
}

func TestKafkaMessageKeyAndHeaders(t *testing.T) {
	tmpl := kafkaAlertTemplate(t)
	ev := kafkaTestEvent(t, tmpl, "msg", 1, "host-07")
	build := func(mod func(*KafkaConfig)) *Kafka {
		c := DefaultKafkaConfig()
		c.Brokers, c.Topic = []string{"127.0.0.1:9"}, "t"
		if mod != nil {
			mod(&c)
		}
		k, err := NewKafka(c, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { k.Close(context.Background()) })
		return k
	}
	headers := func(m kafka.Message) map[string]string {
		out := map[string]string{}
		for _, h := range m.Headers {
			out[h.Key] = string(h.Value)
		}
		return out
	}

	m := build(nil).message(ev)
	if string(m.Key) != "host-07" || string(m.Value) != string(ev.Body) {
		t.Fatalf("default key = %q", m.Key)
	}
	want := map[string]string{"rule": "non_standard_port", "technique": "T1571", "severity": "5", "event.id": ev.ID}
	if got := headers(m); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("headers = %v, want %v", got, want)
	}

	// A key field the pipeline does not provide comes from the body.
	m = build(func(c *KafkaConfig) { c.KeyField = "destination.ip" }).message(ev)
	if string(m.Key) != "127.0.0.2" {
		t.Fatalf("key from body = %q", m.Key)
	}
	// Without Fields, headers fall back to the ECS body.
	bare := Event{ID: ev.ID, Body: ev.Body}
	m = build(nil).message(bare)
	if got := headers(m); got["rule"] != "non_standard_port" || got["technique"] != "T1571" || got["severity"] != "5" {
		t.Fatalf("headers from body = %v", got)
	}
	if string(m.Key) != "PLACEHOLDER" && string(m.Key) != "host-07" {
		t.Fatalf("key from body host.id = %q", m.Key)
	}
	// No key field: nil key (random partition); headers off.
	off := false
	m = build(func(c *KafkaConfig) { c.KeyField = ""; c.Headers = &off }).message(ev)
	if m.Key != nil || len(m.Headers) != 0 {
		t.Fatalf("key %q headers %v, want none", m.Key, m.Headers)
	}
}

func TestKafkaClassify(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	for _, tc := range []struct {
		err        error
		autoCreate bool
		want       kafkaErrClass
	}{
		{kafka.MessageSizeTooLarge, false, kafkaTooLarge},
		{fmt.Errorf("produce: %w", kafka.RecordListTooLarge), false, kafkaTooLarge},
		{kafka.MessageTooLargeError{}, false, kafkaTooLarge},
		{kafka.LeaderNotAvailable, false, kafkaTransient},
		{kafka.NotLeaderForPartition, false, kafkaTransient},
		{kafka.RequestTimedOut, false, kafkaTransient},
		{kafka.NotEnoughReplicas, false, kafkaTransient},
		{refused, false, kafkaTransient},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), false, kafkaTransient},
		{context.DeadlineExceeded, false, kafkaTransient},
		{kafka.UnknownTopicOrPartition, false, kafkaMissingTopic},
		{kafka.UnknownTopicOrPartition, true, kafkaTransient},
		{kafka.SASLAuthenticationFailed, false, kafkaPermanent},
		{kafka.TopicAuthorizationFailed, false, kafkaPermanent},
		{kafka.InvalidRequiredAcks, false, kafkaPermanent},
	} {
		if got := kafkaClassify(tc.err, tc.autoCreate); got != tc.want {
			t.Errorf("classify(%v, auto=%v) = %d, want %d", tc.err, tc.autoCreate, got, tc.want)
		}
	}
}

func TestKafkaBackoffBounds(t *testing.T) {
	for n := 1; n < 12; n++ {
		ceil := min(100*time.Millisecond<<(n-1), 2*time.Second)
		for range 50 {
			d := kafkaBackoff(100*time.Millisecond, 2*time.Second, n)
			if d < ceil/2 || d > ceil {
				t.Fatalf("retry %d: %s outside [%s, %s]", n, d, ceil/2, ceil)
			}
		}
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// readDeadLetters parses a dead-letter NDJSON file (shared by the sink tests).
func readDeadLetters(t *testing.T, path string) []deadLetterRecord {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []deadLetterRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	for sc.Scan() {
		var r deadLetterRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("dead-letter line is not JSON: %v: %s", err, sc.Text())
		}
		out = append(out, r)
	}
	return out
}

func TestKafkaOversizedIsDeadLetteredLocally(t *testing.T) {
	dlPath := filepath.Join(t.TempDir(), "dl", "kafka.ndjson")
	cfg := DefaultKafkaConfig()
	cfg.Brokers, cfg.Topic, cfg.DeadLetter = []string{closedPort(t)}, "t", dlPath
	cfg.MaxMessageBytes = 2000
	stats := &Stats{}
	k, err := NewKafka(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	trackStats(t, k, stats)
	big := Event{ID: "big-1", Body: []byte(`{"event":{"id":"big-1"},"message":"` + strings.Repeat("x", 3000) + `"}`)}
	// Only the oversized event: nothing is sent, so the closed port does not matter.
	if err := countedWrite(t, k, context.Background(), []Event{big}); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := k.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := stats.Snapshot(); s.DeadLettered != 1 || s.Sent != 0 || s.Failed != 0 {
		t.Fatalf("stats %+v", s)
	}
	recs := readDeadLetters(t, dlPath)
	if len(recs) != 1 || recs[0].ID != "big-1" || recs[0].Sink != "kafka" || !strings.Contains(recs[0].Reason, "max_message_bytes 2000") {
		t.Fatalf("dead letters %+v", recs)
	}
	if st, _ := os.Stat(dlPath); st.Mode().Perm() != 0o600 {
		t.Fatalf("dead-letter mode %v", st.Mode().Perm())
	}
}

func TestKafkaUnreachableReturnsExactlyTheUndelivered(t *testing.T) {
	cfg := DefaultKafkaConfig()
	cfg.Brokers, cfg.Topic = []string{closedPort(t)}, "t"
	cfg.Retry = KafkaRetry{Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond, MaxAttempts: 3}
	cfg.MaxMessageBytes = 3000
	stats := &Stats{}
	core, logs := observer.New(zapcore.DebugLevel)
	k, err := NewKafka(cfg, nil, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	trackStats(t, k, stats)
	defer k.Close(context.Background())
	batch := kafkaTestEvents(t, "unreach", 5, 2)
	batch = append(batch, Event{ID: "too-big", Body: []byte(`{"m":"` + strings.Repeat("y", 4000) + `"}`)})
	start := time.Now()
	err = countedWrite(t, k, context.Background(), batch)
	var re *RetryableError
	if !errors.As(err, &re) {
		t.Fatalf("Write = %v, want *RetryableError", err)
	}
	if len(re.Remaining) != 5 {
		t.Fatalf("remaining %d events, want the 5 deliverable ones", len(re.Remaining))
	}
	for i, ev := range re.Remaining {
		if ev.ID != batch[i].ID {
			t.Fatalf("remaining[%d] = %s, want %s", i, ev.ID, batch[i].ID)
		}
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("retry budget not bounded: %s", time.Since(start))
	}
	s := stats.Snapshot()
	if s.Failed != 1 || s.Retried != 10 || s.Sent != 0 || s.Dropped != 1 {
		t.Fatalf("stats %+v, want 1 failed write, 2x5 retried, 1 dropped (no dead-letter file)", s)
	}
	if logs.FilterMessageSnippet("retrying").Len() != 2 {
		t.Fatalf("want 2 retry warnings, got %d", logs.FilterMessageSnippet("retrying").Len())
	}
	// Cancelled context: returns at once with the events.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := countedWrite(t, k, ctx, batch[:2]); !errors.As(err, &re) || len(re.Remaining) != 2 {
		t.Fatalf("cancelled Write = %v", err)
	}
}

// TestKafkaSilentBrokerHonoursContext: a listener that accepts connections
// and never answers must not hold Write past its context, nor Close.
// (TestKafkaRealCloseDeadline freezes a real broker mid-produce.)
func TestKafkaSilentBrokerHonoursContext(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { // read and never answer
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	cfg := DefaultKafkaConfig()
	cfg.Brokers, cfg.Topic = []string{l.Addr().String()}, "t"
	cfg.CloseTimeout = 300 * time.Millisecond
	k, err := NewKafka(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = countedWrite(t, k, ctx, kafkaTestEvents(t, "hang", 3, 1))
	var re *RetryableError
	if !errors.As(err, &re) || len(re.Remaining) != 3 {
		t.Fatalf("Write against a silent broker = %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Write ignored its context: %s", d)
	}
	start = time.Now()
	err = k.Close(context.Background())
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %s, want about close_timeout 300ms", d)
	}
	t.Logf("Close after %s: %v", time.Since(start), err)
}
