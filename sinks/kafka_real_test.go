package sinks

// Tests against a real Kafka-protocol broker (kfake, built by
// test/servers/build-kafkabroker.sh into test/servers/bin/kafkabroker) on
// loopback, read back by kcat (librdkafka) as an independent client.
// Without the binary or kcat they skip loudly, or fail when CI is set or
// NETSENTINEL_REQUIRE_SERVERS=1.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/netsentinel/netsentinel/internal/testserver"
)

// The broker and kcat come from internal/testserver, shared with the
// end-to-end and fault tests.
type kafkaTestBroker = testserver.KafkaBroker

func startKafkaBroker(t testing.TB, args ...string) *kafkaTestBroker {
	t.Helper()
	return testserver.StartKafkaBroker(t, args...)
}

func kcatConsume(t testing.TB, addr, topic string) []testserver.KcatRecord {
	t.Helper()
	return testserver.KcatConsume(t, addr, topic)
}

// kcatBinary fails or skips before any work when kcat is missing.
func kcatBinary(t testing.TB) { t.Helper(); testserver.RequireKcat(t) }

func kafkaRealSink(t testing.TB, b *kafkaTestBroker, topic string, mod func(*KafkaConfig)) (*Kafka, *Stats) {
	t.Helper()
	cfg := DefaultKafkaConfig()
	cfg.Brokers, cfg.Topic = []string{b.Addr}, topic
	if mod != nil {
		mod(&cfg)
	}
	stats := &Stats{}
	k, err := NewKafka(cfg, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	trackStats(t, k, stats)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		k.Close(ctx)
	})
	return k, stats
}

func kafkaWriteAll(t testing.TB, k *Kafka, evs []Event, chunk int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := 0; i < len(evs); i += chunk {
		if err := countedWrite(t, k, ctx, evs[i:min(i+chunk, len(evs))]); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
}

// ecsReference loads ../shared/reference/ecs-fields.json (beside the repo).
type ecsReference struct {
	Fields        map[string]json.RawMessage `json:"fields"`
	CategoryTypes map[string][]string        `json:"event_category_expected_types"`
}

func loadECSReference(t testing.TB) ecsReference {
	t.Helper()
	root, _ := filepath.Abs("..")
	p := filepath.Join(root, "..", "shared", "reference", "ecs-fields.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("ECS reference (shared/ beside the repo): %v", err)
	}
	var ref ecsReference
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return ref
}

func flattenJSON(prefix string, v any, out map[string]any) {
	m, ok := v.(map[string]any)
	if !ok {
		out[prefix] = v
		return
	}
	for k, sub := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		flattenJSON(p, sub, out)
	}
}

// checkECSAlert returns what makes line not a valid ECS alert.
func checkECSAlert(ref ecsReference, line []byte) (string, error) {
	var doc map[string]any
	if err := json.Unmarshal(line, &doc); err != nil {
		return "", fmt.Errorf("not JSON: %w", err)
	}
	flat := map[string]any{}
	flattenJSON("", doc, flat)
	for f := range flat {
		if _, ok := ref.Fields[f]; !ok && !strings.HasPrefix(f, "netsentinel.") {
			return "", fmt.Errorf("field %q is neither ECS nor under netsentinel.*", f)
		}
	}
	ts, _ := flat["@timestamp"].(string)
	if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
		return "", fmt.Errorf("@timestamp %q: %w", ts, err)
	}
	if v, _ := flat["ecs.version"].(string); v == "" {
		return "", errors.New("no ecs.version")
	}
	if k, _ := flat["event.kind"].(string); k != "alert" {
		return "", fmt.Errorf("event.kind %q, want alert", k)
	}
	cats, _ := flat["event.category"].([]any)
	types, _ := flat["event.type"].([]any)
	if len(cats) == 0 || len(types) == 0 {
		return "", errors.New("event.category / event.type missing")
	}
	for _, c := range cats {
		allowed, ok := ref.CategoryTypes[fmt.Sprint(c)]
		if !ok {
			return "", fmt.Errorf("event.category %v unknown", c)
		}
		for _, ty := range types {
			if !slices.Contains(allowed, fmt.Sprint(ty)) {
				return "", fmt.Errorf("event.type %v not expected for category %v", ty, c)
			}
		}
	}
	if fw, _ := flat["threat.framework"].(string); fw != "MITRE ATT&CK" {
		return "", fmt.Errorf("threat.framework %q", fw)
	}
	id, _ := flat["event.id"].(string)
	if id == "" {
		return "", errors.New("no event.id")
	}
	return id, nil
}

// TestKafkaRealKcatReadsValidECSAlerts: what the sink writes at the
// defaults, kcat (librdkafka) reads back as valid ECS alerts, every
// event.id sent exactly once.
func TestKafkaRealKcatReadsValidECSAlerts(t *testing.T) {
	kcatBinary(t)
	b := startKafkaBroker(t, "-topics", "alerts", "-partitions", "3")
	k, stats := kafkaRealSink(t, b, "alerts", nil)
	if err := k.Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	evs := kafkaTestEvents(t, "ecs", 300, 7)
	kafkaWriteAll(t, k, evs, 100)
	if s := stats.Snapshot(); s.Sent != 300 || s.Failed != 0 || s.DeadLettered != 0 {
		t.Fatalf("stats %+v", s)
	}
	ref := loadECSReference(t)
	recs := kcatConsume(t, b.Addr, "alerts")
	seen := map[string]int{}
	for _, r := range recs {
		if r.Payload == nil {
			t.Fatalf("record without payload at %d/%d", r.Partition, r.Offset)
		}
		id, err := checkECSAlert(ref, []byte(*r.Payload))
		if err != nil {
			t.Fatalf("partition %d offset %d: %v", r.Partition, r.Offset, err)
		}
		if h, _ := r.Header("event.id"); h != id {
			t.Fatalf("event.id header %q, body %q", h, id)
		}
		seen[id]++
	}
	for _, ev := range evs {
		if seen[ev.ID] != 1 {
			t.Fatalf("event %s read %d times", ev.ID, seen[ev.ID])
		}
	}
	if len(recs) != len(evs) {
		t.Fatalf("read %d records, sent %d", len(recs), len(evs))
	}
}

// TestKafkaRealEveryCodec round-trips with each compression codec.
func TestKafkaRealEveryCodec(t *testing.T) {
	kcatBinary(t)
	codecs := []string{"none", "gzip", "snappy", "lz4", "zstd"}
	topics := make([]string, len(codecs))
	for i, c := range codecs {
		topics[i] = "codec-" + c
	}
	b := startKafkaBroker(t, "-topics", strings.Join(topics, ","), "-partitions", "2")
	for i, codec := range codecs {
		t.Run(codec, func(t *testing.T) {
			k, stats := kafkaRealSink(t, b, topics[i], func(c *KafkaConfig) { c.Compression = codec })
			evs := kafkaTestEvents(t, codec, 120, 5)
			kafkaWriteAll(t, k, evs, 60)
			if s := stats.Snapshot(); s.Sent != 120 {
				t.Fatalf("stats %+v", s)
			}
			want := map[string]string{}
			for _, ev := range evs {
				want[ev.ID] = string(ev.Body)
			}
			recs := kcatConsume(t, b.Addr, topics[i])
			if len(recs) != len(evs) {
				t.Fatalf("read %d, sent %d", len(recs), len(evs))
			}
			for _, r := range recs {
				id, _ := r.Header("event.id")
				if r.Payload == nil || want[id] != *r.Payload {
					t.Fatalf("event %s: payload differs after %s round trip", id, codec)
				}
				delete(want, id)
			}
		})
	}
}

// javaMurmur2 is Kafka's Utils.murmur2 (the Java client's default
// partitioner hash), written from the Java source, independent of kafka-go.
func javaMurmur2(data []byte) int32 {
	const seed, m, r = uint32(0x9747b28c), uint32(0x5bd1e995), 24
	n := len(data)
	h := seed ^ uint32(n)
	for i := 0; i+4 <= n; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := data[n&^3:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

func TestJavaMurmur2Vectors(t *testing.T) {
	// Values of org.apache.kafka.common.utils.Utils.murmur2.
	for s, want := range map[string]int32{"1": -1993445489, "12": 126087238, "123": -267702483, "1234": -1614185708, "12345": -1188365604} {
		if got := javaMurmur2([]byte(s)); got != want {
			t.Errorf("murmur2(%q) = %d, want %d", s, got, want)
		}
	}
}

// TestKafkaRealKeysHeadersPartitioning: keys and headers as configured,
// and each key lands on the partition the Java client would choose.
func TestKafkaRealKeysHeadersPartitioning(t *testing.T) {
	kcatBinary(t)
	const parts = 6
	b := startKafkaBroker(t, "-topics", "bykey,bysrc", "-partitions", strconv.Itoa(parts))

	t.Run("host.id default", func(t *testing.T) {
		k, _ := kafkaRealSink(t, b, "bykey", nil)
		evs := kafkaTestEvents(t, "key", 200, 23)
		kafkaWriteAll(t, k, evs, 50)
		byID := map[string]Event{}
		for _, ev := range evs {
			byID[ev.ID] = ev
		}
		recs := kcatConsume(t, b.Addr, "bykey")
		if len(recs) != len(evs) {
			t.Fatalf("read %d, sent %d", len(recs), len(evs))
		}
		used := map[int]bool{}
		for _, r := range recs {
			id, _ := r.Header("event.id")
			ev, ok := byID[id]
			if !ok || r.Key == nil {
				t.Fatalf("record %+v: unknown event or no key", r)
			}
			if *r.Key != ev.Fields["host.id"] {
				t.Fatalf("key %q, want host.id %q", *r.Key, ev.Fields["host.id"])
			}
			want := int(uint32(javaMurmur2([]byte(*r.Key)))&0x7fffffff) % parts
			if r.Partition != want {
				t.Fatalf("key %q on partition %d, Java's murmur2 says %d", *r.Key, r.Partition, want)
			}
			used[r.Partition] = true
			for name, field := range map[string]string{"rule": "rule", "technique": "technique", "severity": "severity"} {
				if h, _ := r.Header(name); h != ev.Fields[field] {
					t.Fatalf("header %s = %q, want %q", name, h, ev.Fields[field])
				}
			}
		}
		if len(used) < 3 {
			t.Fatalf("23 hosts used only partitions %v", used)
		}
	})

	t.Run("key from body, headers off", func(t *testing.T) {
		off := false
		k, _ := kafkaRealSink(t, b, "bysrc", func(c *KafkaConfig) { c.KeyField = "destination.port"; c.Headers = &off })
		evs := kafkaTestEvents(t, "src", 20, 3)
		kafkaWriteAll(t, k, evs, 20)
		for _, r := range kcatConsume(t, b.Addr, "bysrc") {
			if r.Key == nil || *r.Key != "8443" || len(r.Headers) != 0 {
				t.Fatalf("key %v headers %v; want key 8443 (destination.port from the body), no headers", r.Key, r.Headers)
			}
		}
	})
}

// TestKafkaRealSASL logs in with each mechanism; a wrong password is a
// permanent error at Check and Write, and no password reaches the logs.
func TestKafkaRealSASL(t *testing.T) {
	const user, pass = "sensor", "s3cret-Pa55"
	b := startKafkaBroker(t, "-topics", "sasl", "-partitions", "1",
		"-sasl", "PLAIN:"+user+":"+pass+",SCRAM-SHA-256:"+user+":"+pass+",SCRAM-SHA-512:"+user+":"+pass)
	for _, mech := range []string{"plain", "scram-sha-256", "scram-sha-512"} {
		t.Run(mech, func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			newSink := func(pw string) (*Kafka, *Stats) {
				cfg := DefaultKafkaConfig()
				cfg.Brokers, cfg.Topic = []string{b.Addr}, "sasl"
				cfg.SASL = KafkaSASL{Mechanism: mech, Username: user, Password: pw}
				cfg.Retry.MaxAttempts = 2
				stats := &Stats{}
				k, err := NewKafka(cfg, nil, zap.New(core))
				if err != nil {
					t.Fatal(err)
				}
				trackStats(t, k, stats)
				t.Cleanup(func() { k.Close(context.Background()) })
				return k, stats
			}
			k, stats := newSink(pass)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := k.Check(ctx); err != nil {
				t.Fatalf("Check: %v", err)
			}
			evs := kafkaTestEvents(t, mech, 10, 2)
			if err := countedWrite(t, k, ctx, evs); err != nil {
				t.Fatalf("Write: %v", err)
			}
			if stats.Sent.Load() != 10 {
				t.Fatalf("sent %d", stats.Sent.Load())
			}
			// Read back with an authenticated kafka-go reader (kcat cannot
			// log in to kfake).
			var m sasl.Mechanism = plain.Mechanism{Username: user, Password: pass}
			if mech != "plain" {
				algo := scram.SHA256
				if mech == "scram-sha-512" {
					algo = scram.SHA512
				}
				var err error
				if m, err = scram.Mechanism(algo, user, pass); err != nil {
					t.Fatal(err)
				}
			}
			got := readAllKafkaGo(t, b.Addr, "sasl", m)
			for _, ev := range evs {
				if !got[ev.ID] {
					t.Fatalf("event %s not read back", ev.ID)
				}
			}

			// A wrong password must fail, never deliver. Real Kafka answers
			// SASL_AUTHENTICATION_FAILED (classified permanent, see
			// TestKafkaClassify); kfake just closes the connection, which
			// looks like any broker failure, so either error is accepted here.
			bad, badStats := newSink("wrong-password")
			if err := bad.Check(ctx); err == nil {
				t.Fatal("Check with a wrong password succeeded")
			}
			err := countedWrite(t, bad, ctx, evs[:2])
			var re *RetryableError
			if !errors.As(err, &re) || len(re.Remaining) != 2 || badStats.Sent.Load() != 0 {
				t.Fatalf("Write with a wrong password = %v (sent %d), want both events handed back", err, badStats.Sent.Load())
			}
			for _, e := range logs.All() {
				line := e.Message + fmt.Sprint(e.ContextMap())
				if strings.Contains(line, pass) || strings.Contains(line, "wrong-password") {
					t.Fatalf("password in log: %s", line)
				}
			}
		})
	}
}

// readAllKafkaGo reads partition 0 of topic to the end and returns the
// event.id headers seen.
func readAllKafkaGo(t testing.TB, addr, topic string, m sasl.Mechanism) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d := &kafka.Dialer{Timeout: 5 * time.Second, SASLMechanism: m}
	conn, err := d.DialLeader(ctx, "tcp", addr, topic, 0)
	if err != nil {
		t.Fatalf("dial leader: %v", err)
	}
	defer conn.Close()
	last, err := conn.ReadLastOffset()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	batch := conn.ReadBatch(1, 10<<20)
	for off := int64(0); off < last; off++ {
		msg, err := batch.ReadMessage()
		if err != nil {
			// A batch ends at a size limit: open the next.
			batch.Close()
			if _, err := conn.Seek(off, kafka.SeekAbsolute); err != nil {
				t.Fatal(err)
			}
			batch = conn.ReadBatch(1, 10<<20)
			if msg, err = batch.ReadMessage(); err != nil {
				t.Fatalf("read offset %d: %v", off, err)
			}
		}
		for _, h := range msg.Headers {
			if h.Key == "event.id" {
				seen[string(h.Value)] = true
			}
		}
	}
	batch.Close()
	return seen
}

// TestKafkaRealMissingTopic: with auto-creation off a missing topic is a
// clear error naming it; with it on, the first write creates the topic.
func TestKafkaRealMissingTopic(t *testing.T) {
	kcatBinary(t)
	b := startKafkaBroker(t, "-topics", "exists", "-auto-create")
	k, stats := kafkaRealSink(t, b, "no-such-topic", func(c *KafkaConfig) { c.Retry.MaxAttempts = 2 })
	err := k.Check(context.Background())
	if err == nil || !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), `"no-such-topic"`) {
		t.Fatalf("Check = %v, want ErrPermanent naming the topic", err)
	}
	// Even though this broker would auto-create, the sink does not ask it to.
	evs := kafkaTestEvents(t, "missing", 3, 1)
	err = countedWrite(t, k, context.Background(), evs)
	var re *RetryableError
	if !errors.As(err, &re) || len(re.Remaining) != 3 || !strings.Contains(err.Error(), `"no-such-topic"`) ||
		!strings.Contains(err.Error(), "allow_auto_topic_creation") {
		t.Fatalf("Write = %v, want the 3 events back and an error naming the topic and the setting", err)
	}
	if stats.Sent.Load() != 0 {
		t.Fatalf("sent %d", stats.Sent.Load())
	}
	for _, r := range kcatConsume(t, b.Addr, "exists") {
		t.Fatalf("unexpected record %+v", r)
	}

	auto, _ := kafkaRealSink(t, b, "created-on-write", func(c *KafkaConfig) { c.AllowAutoTopicCreation = true })
	if err := auto.Check(context.Background()); err != nil {
		t.Fatalf("Check with auto-creation: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := countedWrite(t, auto, ctx, evs); err != nil {
		t.Fatalf("Write with auto-creation: %v", err)
	}
	if n := len(kcatConsume(t, b.Addr, "created-on-write")); n != 3 {
		t.Fatalf("auto-created topic holds %d records", n)
	}
}

// TestKafkaRealOversizedToDeadLetter: the broker refuses a message larger
// than its message.max.bytes; that message is dead-lettered with the
// reason and counted, the rest of its batch is delivered.
func TestKafkaRealOversizedToDeadLetter(t *testing.T) {
	kcatBinary(t)
	b := startKafkaBroker(t, "-topics", "small", "-partitions", "1", "-message-max-bytes", "8192")
	dlPath := filepath.Join(t.TempDir(), "kafka-dead.ndjson")
	k, stats := kafkaRealSink(t, b, "small", func(c *KafkaConfig) { c.DeadLetter = dlPath })
	evs := kafkaTestEvents(t, "size", 6, 1)
	// Incompressible payload, so zstd cannot shrink it under the limit.
	noise := make([]byte, 24<<10)
	rand.Read(noise)
	big := Event{ID: "oversized-1", Body: []byte(fmt.Sprintf(`{"event":{"id":"oversized-1"},"message":%q}`, fmt.Sprintf("%x", noise))),
		Fields: map[string]string{"host.id": "host-00"}}
	batch := append(append(slices.Clone(evs[:3]), big), evs[3:]...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := countedWrite(t, k, ctx, batch); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if s := stats.Snapshot(); s.Sent != 6 || s.DeadLettered != 1 {
		t.Fatalf("stats %+v, want 6 sent 1 dead-lettered", s)
	}
	recs := readDeadLetters(t, dlPath)
	if len(recs) != 1 || recs[0].ID != "oversized-1" || !strings.Contains(recs[0].Reason, "too large") {
		t.Fatalf("dead letters %+v", recs)
	}
	got := kcatConsume(t, b.Addr, "small")
	if len(got) != 6 {
		t.Fatalf("topic holds %d records, want the 6 normal ones", len(got))
	}
	for _, r := range got {
		if id, _ := r.Header("event.id"); id == "oversized-1" {
			t.Fatal("oversized message reached the topic")
		}
	}
}

// TestKafkaRealBrokerRestart stops the broker mid-stream and restarts it on
// the same port: the same sink recovers by itself and every alert arrives
// (duplicates allowed, found by event.id).
func TestKafkaRealBrokerRestart(t *testing.T) {
	kcatBinary(t)
	dataDir := t.TempDir()
	b := startKafkaBroker(t, "-topics", "restart", "-partitions", "3", "-data-dir", dataDir, "-sync-writes")
	k, stats := kafkaRealSink(t, b, "restart", func(c *KafkaConfig) {
		c.Retry = KafkaRetry{Initial: 50 * time.Millisecond, Max: 500 * time.Millisecond, MaxAttempts: 4}
		c.WriteTimeout = 3 * time.Second
	})
	evs := kafkaTestEvents(t, "restart", 1200, 9)
	const chunk = 40
	// The broker goes down once 400 events are acknowledged and comes back
	// 1.5 s later on the same port, while the writer keeps going.
	var acked sync.WaitGroup
	acked.Add(1)
	bounced := make(chan struct{})
	go func() {
		defer close(bounced)
		acked.Wait()
		b.Stop()
		time.Sleep(1500 * time.Millisecond)
		b.Restart()
	}()
	deadline := time.Now().Add(90 * time.Second)
	handedBack := 0
	for i := 0; i < len(evs); i += chunk {
		if i == 400 {
			acked.Done()
		}
		pending := evs[i:min(i+chunk, len(evs))]
		for len(pending) > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("not recovered after 90s: %d events pending at %d; stats %+v", len(pending), i, stats.Snapshot())
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			err := countedWrite(t, k, ctx, pending)
			cancel()
			if err == nil {
				break
			}
			var re *RetryableError
			if !errors.As(err, &re) || errors.Is(err, ErrPermanent) {
				t.Fatalf("broker restart: Write = %v, want a transient *RetryableError", err)
			}
			handedBack += len(re.Remaining)
			pending = re.Remaining // what a Runner does: only the undelivered again
		}
	}
	<-bounced
	s := stats.Snapshot()
	t.Logf("stats after restart: %+v; %d events handed back during the outage", s, handedBack)
	if s.Failed == 0 || handedBack == 0 {
		t.Fatalf("the outage was not noticed: %+v", s)
	}
	seen := map[string]int{}
	for _, r := range kcatConsume(t, b.Addr, "restart") {
		id, _ := r.Header("event.id")
		seen[id]++
	}
	dups := 0
	for _, ev := range evs {
		switch n := seen[ev.ID]; {
		case n == 0:
			t.Fatalf("event %s lost across the broker restart", ev.ID)
		case n > 1:
			dups += n - 1
		}
	}
	t.Logf("%d events delivered, %d duplicates (detected by event.id)", len(evs), dups)
}

// TestKafkaRealCloseDeadline freezes the broker (SIGSTOP) while a produce
// request is in flight: Write returns at its context's deadline with the
// events, and Close returns at close_timeout instead of hanging shutdown.
func TestKafkaRealCloseDeadline(t *testing.T) {
	b := startKafkaBroker(t, "-topics", "frozen", "-partitions", "1")
	k, stats := kafkaRealSink(t, b, "frozen", func(c *KafkaConfig) {
		c.CloseTimeout = 500 * time.Millisecond
		c.Retry.MaxAttempts = 1
	})
	evs := kafkaTestEvents(t, "frozen", 4, 1)
	kafkaWriteAll(t, k, evs[:2], 2) // connection and metadata are now cached
	if err := b.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer b.Signal(syscall.SIGCONT)

	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := countedWrite(t, k, ctx, evs[2:])
	var re *RetryableError
	if !errors.As(err, &re) || len(re.Remaining) != 2 {
		t.Fatalf("Write to a frozen broker = %v, want both events handed back", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Write took %s with a 700ms context", d)
	}
	start = time.Now()
	err = k.Close(context.Background())
	d := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "close_timeout") {
		t.Fatalf("Close with a batch stuck in flight = %v, want the close_timeout error", err)
	}
	if d < 400*time.Millisecond || d > 2*time.Second {
		t.Fatalf("Close returned after %s, want about close_timeout 500ms", d)
	}
	if s := stats.Snapshot(); s.Sent != 2 {
		t.Fatalf("stats %+v", s)
	}
}

// TestKafkaRealTLS: TLS with a private CA and a client certificate;
// verification is on by default.
func TestKafkaRealTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := kafkaTestCA(t, dir, "ca")
	kafkaTestLeaf(t, dir, "server", ca, caKey, true)
	kafkaTestLeaf(t, dir, "client", ca, caKey, false)
	otherCA, _ := kafkaTestCA(t, dir, "other-ca")
	_ = otherCA
	p := func(n string) string { return filepath.Join(dir, n) }
	b := startKafkaBroker(t, "-topics", "tls", "-partitions", "1",
		"-tls-cert", p("server.pem"), "-tls-key", p("server-key.pem"), "-tls-client-ca", p("ca.pem"))
	try := func(tc KafkaTLSConfig) error {
		k, _ := kafkaRealSink(t, b, "tls", func(c *KafkaConfig) { c.TLS = tc; c.Retry.MaxAttempts = 1 })
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := k.Check(ctx); err != nil {
			return err
		}
		return countedWrite(t, k, ctx, kafkaTestEvents(t, "tls", 5, 1))
	}
	ok := KafkaTLSConfig{Enabled: true, TLSConfig: TLSConfig{CAFile: p("ca.pem"), CertFile: p("client.pem"), KeyFile: p("client-key.pem")}}
	if err := try(ok); err != nil {
		t.Fatalf("TLS with CA and client certificate: %v", err)
	}
	noClientCert := KafkaTLSConfig{Enabled: true, TLSConfig: TLSConfig{CAFile: p("ca.pem")}}
	if err := try(noClientCert); err == nil {
		t.Fatal("broker requiring a client certificate accepted none")
	}
	wrongCA := KafkaTLSConfig{Enabled: true, TLSConfig: TLSConfig{CAFile: p("other-ca.pem"), CertFile: p("client.pem"), KeyFile: p("client-key.pem")}}
	if err := try(wrongCA); err == nil {
		t.Fatal("a server certificate from an untrusted CA was accepted: verification is off")
	}
	if err := try(KafkaTLSConfig{}); err == nil {
		t.Fatal("plaintext client talked to a TLS broker")
	}
}

func kafkaTestCA(t *testing.T, dir, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "netsentinel test " + name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, name+".pem"), "CERTIFICATE", der)
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

func kafkaTestLeaf(t *testing.T, dir, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, server bool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, name+".pem"), "CERTIFICATE", der)
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, name+"-key.pem"), "EC PRIVATE KEY", kb)
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
