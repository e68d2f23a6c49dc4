package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
	"go.uber.org/zap"
)

// Kafka ships events to one Kafka topic with a synchronous kafka-go Writer:
// each Write returns once the broker acknowledged (acks=all by default) or
// the bounded retry budget is spent. Messages are keyed by an event field
// (host.id by default) and partitioned with the Java client's murmur2, so
// one host's alerts stay in order on one partition.
//
// Failures are sorted per message: a message the broker can never take (too
// large, invalid) is dead-lettered; leader changes, restarts and
// timeouts are retried with jittered backoff; what is still undelivered is
// reported as Retry (Write's outcomes).
type Kafka struct {
	cfg       KafkaConfig
	w         *kafka.Writer
	transport *kafka.Transport
	dl        *DeadLetter

	log     *zap.Logger
	headers bool

	closeOnce sync.Once
	closeErr  error
}

// kafkaHeaders are the message headers and the event fields they come from,
// with the body paths used when the pipeline did not provide the field.
var kafkaHeaders = []struct {
	name, field string
	bodyPaths   []string
}{
	{"rule", "rule", []string{"event.action", "rule.id"}},
	{"technique", "technique", []string{"threat.technique.subtechnique.id", "threat.technique.id"}},
	{"severity", "severity", []string{"event.severity"}},
}

// NewKafka builds the sink from cfg (validated here; zero values take the
// defaults). dl receives permanently rejected
// messages (when nil, cfg.DeadLetter is opened, else they are counted as
// dropped); the sink closes it in Close. It does no network I/O: call
// CheckStartup at start-up.
func NewKafka(cfg KafkaConfig, dl *DeadLetter, log *zap.Logger) (*Kafka, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kafka sink config: %w: %w", ErrPermanent, err)
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = zap.NewNop()
	}
	log = log.With(zap.String("sink", "kafka"), zap.String("topic", cfg.Topic), zap.Strings("brokers", cfg.Brokers))

	acks, _ := kafkaParseAcks(cfg.Acks)
	codec, _ := kafkaParseCompression(cfg.Compression)
	transport := &kafka.Transport{
		ClientID:    "netsentinel",
		DialTimeout: min(cfg.WriteTimeout, 10*time.Second),
	}
	if cfg.TLS.Enabled {
		tc, err := cfg.TLS.TLSConfig.Build(log)
		if err != nil {
			return nil, fmt.Errorf("kafka sink tls: %w: %w", ErrPermanent, err)
		}
		transport.TLS = tc
	}
	if cfg.SASL.Mechanism != "" {
		mech, err := kafkaSASLMechanism(cfg.SASL)
		if err != nil {
			return nil, fmt.Errorf("kafka sink sasl: %w: %w", ErrPermanent, err)
		}
		transport.SASL = mech
	}
	k := &Kafka{
		cfg:       cfg,
		transport: transport,
		dl:        dl,
		log:       log,
		headers:   cfg.HeadersEnabled(),
	}
	if dl == nil && cfg.DeadLetter != "" {
		d, err := OpenDeadLetter(cfg.DeadLetter)
		if err != nil {
			return nil, fmt.Errorf("kafka sink dead_letter: %w", err)
		}
		k.dl = d
	}
	k.w = &kafka.Writer{
		Addr:     kafka.TCP(cfg.Brokers...),
		Topic:    cfg.Topic,
		Balancer: &kafka.Murmur2Balancer{},
		// Retries are ours (bounded, jittered, context-aware, counted);
		// kafka-go's own sleep between attempts ignores the context.
		MaxAttempts:            1,
		BatchSize:              cfg.BatchSize,
		BatchBytes:             cfg.BatchBytes,
		BatchTimeout:           cfg.BatchTimeout,
		ReadTimeout:            cfg.WriteTimeout,
		WriteTimeout:           cfg.WriteTimeout,
		RequiredAcks:           acks,
		Compression:            codec,
		Transport:              transport,
		AllowAutoTopicCreation: cfg.AllowAutoTopicCreation,
		ErrorLogger: kafka.LoggerFunc(func(format string, args ...any) {
			log.Debug("kafka-go: " + fmt.Sprintf(format, args...))
		}),
	}
	return k, nil
}

func kafkaSASLMechanism(s KafkaSASL) (sasl.Mechanism, error) {
	pw, err := s.password()
	if err != nil {
		return nil, err
	}
	switch strings.ToLower(s.Mechanism) {
	case "plain":
		return plain.Mechanism{Username: s.Username, Password: pw}, nil
	case "scram-sha-256":
		return scram.Mechanism(scram.SHA256, s.Username, pw)
	case "scram-sha-512":
		return scram.Mechanism(scram.SHA512, s.Username, pw)
	}
	return nil, fmt.Errorf("sasl.mechanism: %q unknown", s.Mechanism)
}

func kafkaParseAcks(s string) (kafka.RequiredAcks, error) {
	switch strings.ToLower(s) {
	case "all", "-1":
		return kafka.RequireAll, nil
	case "one", "1":
		return kafka.RequireOne, nil
	case "none", "0":
		return kafka.RequireNone, nil
	}
	return 0, fmt.Errorf("acks: %q unknown (want all, one or none)", s)
}

func kafkaParseCompression(s string) (kafka.Compression, error) {
	switch strings.ToLower(s) {
	case "none":
		return 0, nil
	case "gzip":
		return kafka.Gzip, nil
	case "snappy":
		return kafka.Snappy, nil
	case "lz4":
		return kafka.Lz4, nil
	case "zstd":
		return kafka.Zstd, nil
	}
	return 0, fmt.Errorf("compression: %q unknown (want none, gzip, snappy, lz4 or zstd)", s)
}

// Name identifies the sink in logs and reports.
func (k *Kafka) Name() string { return "kafka" }

// Check dials the brokers and fetches the topic's metadata. A missing topic
// is an error naming it (wrapping ErrPermanent) unless auto-creation is on;
// so are rejected credentials. Unreachable brokers are a plain error.
func (k *Kafka) Check(ctx context.Context) error {
	client := &kafka.Client{Addr: k.w.Addr, Transport: k.transport, Timeout: k.cfg.WriteTimeout}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{k.cfg.Topic}})
	if err != nil {
		if kafkaClassify(err, false) == kafkaPermanent {
			return fmt.Errorf("kafka brokers %s: %w: %w", strings.Join(k.cfg.Brokers, ","), ErrPermanent, err)
		}
		return fmt.Errorf("kafka brokers %s unreachable: %w", strings.Join(k.cfg.Brokers, ","), err)
	}
	for _, t := range md.Topics {
		if t.Name != k.cfg.Topic {
			continue
		}
		if t.Error == nil {
			k.log.Info("kafka topic ready", zap.Int("partitions", len(t.Partitions)))
			return nil
		}
		if errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
			break
		}
		return fmt.Errorf("kafka topic %q: %w", k.cfg.Topic, t.Error)
	}
	if k.cfg.AllowAutoTopicCreation {
		k.log.Info("kafka topic does not exist yet; the first write creates it (allow_auto_topic_creation)")
		return nil
	}
	return k.missingTopic(kafka.UnknownTopicOrPartition)
}

// CheckStartup runs Check and applies fail_fast: unreachable brokers stop
// start-up only with fail_fast; without it they are logged and the sink
// starts degraded (its runner retries; the buffer keeps the events). A
// permanent error (credentials, a missing topic) is returned either way.
func (k *Kafka) CheckStartup(ctx context.Context) error {
	err := k.Check(ctx)
	if err == nil || k.cfg.FailFast || errors.Is(err, ErrPermanent) {
		if err != nil && k.cfg.FailFast {
			return fmt.Errorf("kafka sink (fail_fast): %w", err)
		}
		return err
	}
	k.log.Error("kafka sink not ready; the pipeline keeps running and events are buffered until a broker answers (set fail_fast: true to stop instead)",
		zap.Error(err))
	return nil
}

func (k *Kafka) missingTopic(cause error) error {
	return fmt.Errorf("kafka topic %q does not exist on %s and allow_auto_topic_creation is off: create the topic or enable auto-creation: %w: %w",
		k.cfg.Topic, strings.Join(k.cfg.Brokers, ","), ErrPermanent, cause)
}

// kafkaErrClass sorts a delivery error.
type kafkaErrClass int

const (
	kafkaTransient    kafkaErrClass = iota // retry: leader change, restart, timeout, network
	kafkaTooLarge                          // this message can never be accepted: dead letter
	kafkaMissingTopic                      // topic does not exist and will not be created
	kafkaPermanent                         // configuration/credentials: retrying cannot help
)

// kafkaClassify sorts err. autoCreate tells whether a missing topic may appear.
func kafkaClassify(err error, autoCreate bool) kafkaErrClass {
	var mtl kafka.MessageTooLargeError
	switch {
	case errors.As(err, &mtl),
		errors.Is(err, kafka.MessageSizeTooLarge),
		errors.Is(err, kafka.RecordListTooLarge),
		errors.Is(err, kafka.InvalidRecord):
		return kafkaTooLarge
	case errors.Is(err, kafka.UnknownTopicOrPartition):
		if autoCreate {
			return kafkaTransient
		}
		return kafkaMissingTopic
	case errors.Is(err, kafka.TopicAuthorizationFailed),
		errors.Is(err, kafka.ClusterAuthorizationFailed),
		errors.Is(err, kafka.SASLAuthenticationFailed),
		errors.Is(err, kafka.UnsupportedSASLMechanism),
		errors.Is(err, kafka.IllegalSASLState),
		errors.Is(err, kafka.InvalidRequiredAcks),
		errors.Is(err, kafka.UnsupportedCompressionType),
		errors.Is(err, kafka.InvalidTopic),
		errors.Is(err, io.ErrClosedPipe): // the writer was closed
		return kafkaPermanent
	}
	var ke kafka.Error
	if errors.As(err, &ke) {
		if ke.Temporary() || ke.Timeout() {
			return kafkaTransient
		}
		return kafkaPermanent
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, context.DeadlineExceeded) {
		return kafkaTransient
	}
	// Unknown errors are retried: the budget is bounded and the caller
	// gets the events back, which beats dropping them.
	return kafkaTransient
}

// kafkaItem is one event ready to send.
type kafkaItem struct {
	ev  Event
	msg kafka.Message
}

// Write sends batch and waits for the acknowledgements. See Sink. Events
// the broker can never take are DeadLettered (Dropped with no dead-letter
// file); what the retry budget could not deliver is Retry, with an error
// wrapping ErrPermanent for a missing topic or rejected credentials.
func (k *Kafka) Write(ctx context.Context, batch []Event) ([]Outcome, error) {
	if len(batch) == 0 {
		return nil, nil
	}
	o := &outcomeSet{}
	pending := make([]kafkaItem, 0, len(batch))
	for _, ev := range batch {
		msg := k.message(ev)
		if n := kafkaMessageSize(msg); n > k.cfg.MaxMessageBytes {
			k.deadLetter(o, ev, fmt.Sprintf("message of %d bytes exceeds max_message_bytes %d", n, k.cfg.MaxMessageBytes))
			continue
		}
		pending = append(pending, kafkaItem{ev: ev, msg: msg})
	}
	handBack := func(retry []kafkaItem, err error) ([]Outcome, error) {
		rem := kafkaEvents(retry)
		return o.result(batch, rem, err), &RetryableError{Remaining: rem, Err: err}
	}
	var lastErr error
	for attempt := 1; len(pending) > 0; attempt++ {
		if attempt > 1 {
			if attempt > k.cfg.Retry.MaxAttempts {
				return handBack(pending, fmt.Errorf("kafka: gave up after %d attempts: %w", k.cfg.Retry.MaxAttempts, lastErr))
			}
			d := kafkaBackoff(k.cfg.Retry.Initial, k.cfg.Retry.Max, attempt-1)
			k.log.Warn("kafka write failed, retrying", zap.Int("events", len(pending)), zap.Int("attempt", attempt), zap.Duration("backoff", d), zap.Error(lastErr))
			if err := Sleep(ctx, d); err != nil {
				return handBack(pending, fmt.Errorf("kafka: %w (last error: %v)", err, lastErr))
			}
			o.resend(kafkaEvents(pending))
		}
		retry, fatal, err := k.send(ctx, o, pending, true)
		if fatal != nil {
			// The fatal ones carry their (permanent) cause; the others
			// stay retryable.
			for _, it := range fatal.items {
				o.record(it.ev, Outcome{Status: Retry, Err: fatal.err})
			}
			rem := append(kafkaEvents(retry), kafkaEvents(fatal.items)...)
			if err == nil {
				err = fatal.err
			}
			return o.result(batch, kafkaEvents(retry), err), &RetryableError{Remaining: rem, Err: fatal.err}
		}
		if ctx.Err() != nil && len(retry) > 0 {
			return handBack(retry, fmt.Errorf("kafka: %w (last error: %v)", ctx.Err(), err))
		}
		pending, lastErr = retry, err
	}
	return o.result(batch, nil, nil), nil
}

// kafkaFatal carries events that hit a non-retryable, non-message error
// (missing topic, rejected credentials, closed writer).
type kafkaFatal struct {
	items []kafkaItem
	err   error
}

// send writes items once. It returns the items to retry with the error
// that made them fail, or the fatal ones. Delivered and dead-lettered
// items are counted. isolate allows re-sending too-large items one by one
// to tell a too-large message from a too-large batch.
func (k *Kafka) send(ctx context.Context, o *outcomeSet, items []kafkaItem, isolate bool) (retry []kafkaItem, fatal *kafkaFatal, lastErr error) {
	msgs := make([]kafka.Message, len(items))
	for i := range items {
		msgs[i] = items[i].msg
	}
	err := k.w.WriteMessages(ctx, msgs...)
	if err == nil {
		return nil, nil, nil
	}

	var werrs kafka.WriteErrors
	var mtl kafka.MessageTooLargeError
	switch {
	case errors.As(err, &werrs) && len(werrs) == len(items):
		var tooLarge []kafkaItem
		for i, e := range werrs {
			if e == nil {
				continue
			}
			switch kafkaClassify(e, k.cfg.AllowAutoTopicCreation) {
			case kafkaTransient:
				retry = append(retry, items[i])
				lastErr = e
			case kafkaTooLarge:
				tooLarge = append(tooLarge, items[i])
				lastErr = e
			case kafkaMissingTopic:
				fatal = k.addFatal(fatal, items[i], k.missingTopic(e))
			case kafkaPermanent:
				fatal = k.addFatal(fatal, items[i], fmt.Errorf("kafka %s: %w: %w", k.cfg.Topic, ErrPermanent, e))
			}
		}
		k.handleTooLarge(ctx, o, tooLarge, isolate && len(items) > 1, &retry, &fatal)
		return retry, fatal, lastErr
	case errors.As(err, &mtl):
		// kafka-go refused one message locally (larger than batch_bytes)
		// and sent nothing: dead-letter it, resend the others.
		for i := range items {
			if kafkaSameMessage(items[i].msg, mtl.Message) {
				k.deadLetter(o, items[i].ev, "message larger than batch_bytes: "+err.Error())
				rest := append(append([]kafkaItem(nil), items[:i]...), items[i+1:]...)
				if len(rest) == 0 {
					return nil, nil, nil
				}
				return k.send(ctx, o, rest, isolate)
			}
		}
		return items, nil, err
	}
	if ctx.Err() != nil {
		return items, nil, err
	}
	switch kafkaClassify(err, k.cfg.AllowAutoTopicCreation) {
	case kafkaMissingTopic:
		return nil, &kafkaFatal{items: items, err: k.missingTopic(err)}, err
	case kafkaPermanent:
		return nil, &kafkaFatal{items: items, err: fmt.Errorf("kafka %s: %w: %w", k.cfg.Topic, ErrPermanent, err)}, err
	case kafkaTooLarge:
		if len(items) == 1 {
			k.deadLetter(o, items[0].ev, "broker rejected the message: "+err.Error())
			return nil, nil, err
		}
		var f *kafkaFatal
		k.handleTooLarge(ctx, o, items, isolate, &retry, &f)
		return retry, f, err
	}
	return items, nil, err
}

func (k *Kafka) addFatal(f *kafkaFatal, it kafkaItem, err error) *kafkaFatal {
	if f == nil {
		f = &kafkaFatal{err: err}
	}
	f.items = append(f.items, it)
	return f
}

// handleTooLarge dead-letters items the broker rejected as too large. When
// they were sent together with others (isolate), the broker may have
// rejected their batch rather than each message, so each is re-sent alone
// first and dead-lettered only if it is refused on its own.
func (k *Kafka) handleTooLarge(ctx context.Context, o *outcomeSet, items []kafkaItem, isolate bool, retry *[]kafkaItem, fatal **kafkaFatal) {
	for _, it := range items {
		if !isolate || ctx.Err() != nil {
			if ctx.Err() != nil {
				*retry = append(*retry, it)
				continue
			}
			k.deadLetter(o, it.ev, "broker rejected the message as too large or invalid")
			continue
		}
		r, f, _ := k.send(ctx, o, []kafkaItem{it}, false)
		*retry = append(*retry, r...)
		if f != nil {
			if *fatal == nil {
				*fatal = &kafkaFatal{err: f.err}
			}
			(*fatal).items = append((*fatal).items, f.items...)
		}
	}
}

func kafkaSameMessage(a, b kafka.Message) bool {
	return bytes.Equal(a.Key, b.Key) && bytes.Equal(a.Value, b.Value) && len(a.Headers) == len(b.Headers)
}

func kafkaEvents(items []kafkaItem) []Event {
	out := make([]Event, len(items))
	for i := range items {
		out[i] = items[i].ev
	}
	return out
}

// deadLetter records ev as permanently rejected.
func (k *Kafka) deadLetter(o *outcomeSet, ev Event, reason string) {
	if k.dl == nil {
		o.record(ev, Outcome{Status: Dropped, Reason: "kafka_message_rejected", Err: errors.New(reason)})
		k.log.Error("kafka rejected an event and no dead_letter file is configured: event dropped",
			zap.String("event_id", ev.ID), zap.String("reason", reason))
		return
	}
	if err := k.dl.Write(k.Name(), ev, reason); err != nil {
		o.record(ev, Outcome{Status: Dropped, Reason: "dead_letter_write_failed", Err: err})
		k.log.Error("kafka event rejected and the dead-letter write failed: event dropped",
			zap.String("event_id", ev.ID), zap.String("reason", reason), zap.Error(err))
		return
	}
	o.record(ev, Outcome{Status: DeadLettered, Err: errors.New(reason)})
	k.log.Warn("kafka rejected an event permanently; dead-lettered",
		zap.String("event_id", ev.ID), zap.String("reason", reason), zap.String("dead_letter", k.dl.Path()))
}

// message builds the Kafka message for ev: value = body, key = the
// configured field, headers rule/technique/severity/event.id.
func (k *Kafka) message(ev Event) kafka.Message {
	m := kafka.Message{Value: ev.Body}
	var doc map[string]any // parsed on demand, at most once
	lookup := func(field string, bodyPaths ...string) string {
		if v := ev.Fields[field]; v != "" {
			return v
		}
		if doc == nil {
			doc = kafkaParseBody(ev.Body)
		}
		for _, p := range bodyPaths {
			if v, ok := kafkaLookupPath(doc, p); ok && v != "" {
				return v
			}
		}
		return ""
	}
	if k.cfg.KeyField != "" {
		if key := lookup(k.cfg.KeyField, k.cfg.KeyField); key != "" {
			m.Key = []byte(key)
		}
	}
	if k.headers {
		for _, h := range kafkaHeaders {
			if v := lookup(h.field, h.bodyPaths...); v != "" {
				m.Headers = append(m.Headers, kafka.Header{Key: h.name, Value: []byte(v)})
			}
		}
		if ev.ID != "" {
			m.Headers = append(m.Headers, kafka.Header{Key: "event.id", Value: []byte(ev.ID)})
		}
	}
	return m
}

// kafkaMessageSize approximates the record's size on the wire, uncompressed
// (like librdkafka's message.max.bytes check): key, value, headers and the
// record overhead.
func kafkaMessageSize(m kafka.Message) int {
	n := len(m.Key) + len(m.Value) + 24
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value) + 10
	}
	return n
}

// kafkaParseBody decodes a JSON object; anything else yields an empty map.
func kafkaParseBody(body []byte) map[string]any {
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil || doc == nil {
		return map[string]any{}
	}
	return doc
}

// kafkaExtractField returns the value at a dotted path in a JSON object, for
// nested ({"host":{"id":..}}) and flattened ({"host.id":..}) documents
// alike. Numbers and booleans are returned as their JSON text; for an array
// the first element is used; objects are returned as compact JSON.
func kafkaExtractField(body []byte, path string) (string, bool) {
	return kafkaLookupPath(kafkaParseBody(body), path)
}

func kafkaLookupPath(doc map[string]any, path string) (string, bool) {
	v, ok := kafkaLookupValue(doc, path, 0)
	if !ok {
		return "", false
	}
	return kafkaScalar(v)
}

// kafkaLookupValue tries the whole path as a key, then each split at a dot.
// depth bounds the recursion (a path has at most len(path) dots).
func kafkaLookupValue(doc map[string]any, path string, depth int) (any, bool) {
	if doc == nil || path == "" || depth > 64 {
		return nil, false
	}
	if v, ok := doc[path]; ok && v != nil {
		return v, true
	}
	for i := 0; i < len(path); i++ {
		if path[i] != '.' {
			continue
		}
		sub, ok := doc[path[:i]].(map[string]any)
		if !ok {
			continue
		}
		if v, ok := kafkaLookupValue(sub, path[i+1:], depth+1); ok {
			return v, true
		}
	}
	return nil, false
}

func kafkaScalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		if x {
			return "true", true
		}
		return "false", true
	case []any:
		if len(x) == 0 {
			return "", false
		}
		return kafkaScalar(x[0])
	case map[string]any:
		b, err := json.Marshal(x)
		if err != nil {
			return "", false
		}
		return string(b), true
	}
	return "", false
}

// kafkaBackoff returns the delay before retry n (1-based): initial doubling up
// to max, with "equal jitter" (half fixed, half random).
func kafkaBackoff(initial, maxDelay time.Duration, n int) time.Duration {
	return Backoff{Initial: initial, Max: maxDelay}.EqualJitter(n - 1)
}

// Close flushes pending batches and closes connections, giving up when
// ctx is done or close_timeout passes; it never hangs shutdown. Batches
// still in flight then are abandoned (the caller's copies stand).
func (k *Kafka) Close(ctx context.Context) error {
	k.closeOnce.Do(func() {
		done := make(chan error, 1)
		go func() { done <- k.w.Close() }()
		t := time.NewTimer(k.cfg.CloseTimeout)
		defer t.Stop()
		select {
		case err := <-done:
			if err != nil {
				k.closeErr = fmt.Errorf("kafka close: %w", err)
			}
		case <-ctx.Done():
			k.closeErr = fmt.Errorf("kafka close: gave up, in-flight batches abandoned: %w", ctx.Err())
		case <-t.C:
			k.closeErr = fmt.Errorf("kafka close: gave up after close_timeout %s, in-flight batches abandoned", k.cfg.CloseTimeout)
		}
		k.transport.CloseIdleConnections()
		if k.dl != nil { // the sink owns its dead-letter file, given or its own
			if err := k.dl.Close(); err != nil {
				k.closeErr = errors.Join(k.closeErr, err)
			}
		}
		if k.closeErr != nil {
			k.log.Warn("kafka sink closed with an error", zap.Error(k.closeErr))
		}
	})
	return k.closeErr
}
