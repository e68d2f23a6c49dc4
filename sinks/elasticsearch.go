package sinks

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"
	"go.uber.org/zap"
)

// Errors the Elasticsearch sink returns, for errors.Is.
var (
	// ErrESUnreachable: no node answered (connection refused, DNS, TLS).
	ErrESUnreachable = errors.New("elasticsearch unreachable")
	// ErrNotElasticsearch: the server answered without
	// "X-Elastic-Product: Elasticsearch" (wrong URL or another product).
	ErrNotElasticsearch = errors.New("server is not Elasticsearch")
	// ErrESAuth: credentials missing or rejected (401), or not allowed (403).
	ErrESAuth = errors.New("elasticsearch rejected the credentials")
	// ErrESRejected: the whole request was refused for a reason retrying
	// will not fix soon (404 on the bulk endpoint, unexpected 4xx).
	ErrESRejected = errors.New("elasticsearch rejected the request")
)

// maxESResponse bounds how much of a response body is read.
const maxESResponse = 64 << 20

// Elasticsearch ships events to Elasticsearch (or anything speaking its bulk
// API) with the "create" action and _id = event.id. Each bulk item is judged
// on its own: 2xx delivered, 409 already delivered, 429/5xx re-sent (only
// those items) with exponential backoff and jitter, other 4xx dead-lettered.
//
// Write reports each event's outcome (Delivered, Duplicate for a 409,
// DeadLettered, Retry) with its item-level re-sends; the runner counts.
type Elasticsearch struct {
	cfg    ElasticsearchConfig
	client *elasticsearch.Client
	tr     *http.Transport
	dl     *DeadLetter
	log    *zap.Logger
	target string
	// actionPrefix is `{"create":{"_index":"<target>"` ; the _id follows.
	actionPrefix []byte

	// sleep waits d or until ctx is done; replaced in tests.
	sleep func(ctx context.Context, d time.Duration) error

	bufs sync.Pool // *bytes.Buffer for request bodies

	causesMu sync.Mutex
	causes   map[string]bool // dead-letter causes already logged
}

// maxLoggedCauses bounds the set of dead-letter causes remembered for
// logging once each.
const maxLoggedCauses = 256

// NewElasticsearch builds the sink: it applies defaults and env overrides,
// validates, reads credential files and prepares the client. It does no
// network I/O; call Check for that. The sink owns dl and closes it in Close.
func NewElasticsearch(cfg ElasticsearchConfig, dl *DeadLetter, log *zap.Logger) (*Elasticsearch, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if dl == nil {
		return nil, fmt.Errorf("%w: elasticsearch.dead_letter: a dead-letter file is required, so rejected events are never lost silently", ErrPermanent)
	}
	cfg.ApplyEnv(os.Getenv)
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPermanent, err)
	}
	log = log.With(zap.String("sink", "elasticsearch"))
	client, tr, err := newESClient(cfg, log)
	if err != nil {
		return nil, err
	}
	target := cfg.Target()
	prefix, _ := json.Marshal(target)
	e := &Elasticsearch{
		cfg: cfg, client: client, tr: tr, dl: dl, log: log, target: target,
		actionPrefix: append(append([]byte(`{"create":{"_index":`), prefix...), ','),
		sleep:        Sleep,
		causes:       map[string]bool{},
	}
	log.Info("elasticsearch sink configured", zap.Object("config", cfg))
	return e, nil
}

// newESClient builds the go-elasticsearch client with retries off (the
// sink retries item by item) and gzip per the config.
func newESClient(cfg ElasticsearchConfig, log *zap.Logger) (*elasticsearch.Client, *http.Transport, error) {
	cr, err := resolveCredentials(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrPermanent, err)
	}
	tr, err := newESHTTPTransport(cfg, log)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrPermanent, err)
	}
	hdr := http.Header{}
	for k, v := range cfg.Headers {
		hdr.Set(k, v)
	}
	client, err := elasticsearch.NewClient(elasticsearch.Config{
		Addresses:                stripUserinfo(cfg.Addresses()),
		APIKey:                   cr.APIKey,
		Username:                 cr.Username,
		Password:                 cr.Password,
		Header:                   hdr,
		DisableRetry:             true,
		CompressRequestBody:      cfg.Compression == "gzip",
		CompressRequestBodyLevel: gzip.BestSpeed,
		PoolCompressor:           cfg.Compression == "gzip",
		Transport:                tr,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("%w: elasticsearch client: %w", ErrPermanent, err)
	}
	return client, tr, nil
}

// Name implements Sink.
func (e *Elasticsearch) Name() string { return "elasticsearch" }

// Config is the effective configuration (defaults applied); the runner
// reads BatchSize, BatchBytes and FlushInterval from it.
func (e *Elasticsearch) Config() ElasticsearchConfig { return e.cfg }

// TuneRunner makes the runner's batches the bulk requests' size and wait.
func (e *Elasticsearch) TuneRunner(rc *RunnerConfig) {
	rc.BatchSize, rc.FlushInterval = e.cfg.BatchSize, e.cfg.FlushInterval
}

// Close implements Sink: nothing is buffered here (the runner holds the
// queue), so it only releases connections.
func (e *Elasticsearch) Close(ctx context.Context) error {
	err := e.client.Close(ctx)
	e.tr.CloseIdleConnections()
	if errors.Is(err, elasticsearch.ErrAlreadyClosed) {
		err = nil
	}
	if e.dl != nil { // the sink owns its dead-letter file
		err = errors.Join(err, e.dl.Close())
	}
	return err
}

// Write implements Sink. Events with invalid JSON are dead-lettered at once;
// the rest go out in bulk requests of at most BatchSize events and
// BatchBytes bytes, Workers at a time. It returns nil when every event was
// delivered or dead-lettered, and a *RetryableError with exactly the
// undelivered events otherwise.
func (e *Elasticsearch) Write(ctx context.Context, batch []Event) ([]Outcome, error) {
	o := &outcomeSet{}
	valid := make([]Event, 0, len(batch))
	var remaining []Event
	var errs []error
	for _, ev := range batch {
		if !json.Valid(ev.Body) {
			if err := e.deadLetter(o, ev, 0, "invalid_json", "event body is not valid JSON; not sent"); err != nil {
				remaining = append(remaining, ev)
				errs = append(errs, err)
			}
			continue
		}
		valid = append(valid, ev)
	}
	chunks := e.split(valid)
	if len(chunks) == 1 || e.cfg.Workers == 1 {
		for _, c := range chunks {
			rem, err := e.deliver(ctx, o, c)
			remaining = append(remaining, rem...)
			if err != nil {
				errs = append(errs, err)
			}
		}
	} else {
		rems := make([][]Event, len(chunks))
		errsBy := make([]error, len(chunks))
		next := make(chan int)
		var wg sync.WaitGroup
		for range min(e.cfg.Workers, len(chunks)) {
			wg.Go(func() {
				for i := range next {
					rems[i], errsBy[i] = e.deliver(ctx, o, chunks[i])
				}
			})
		}
		for i := range chunks {
			next <- i
		}
		close(next)
		wg.Wait()
		for i := range chunks {
			remaining = append(remaining, rems[i]...)
			if errsBy[i] != nil {
				errs = append(errs, errsBy[i])
			}
		}
	}
	if len(remaining) == 0 {
		return o.result(batch, nil, nil), nil
	}
	err := errors.Join(dedupeErrs(errs)...)
	if err == nil {
		err = errors.New("not delivered")
	}
	return o.result(batch, remaining, err), &RetryableError{Remaining: remaining, Err: err}
}

// dedupeErrs keeps one error per distinct message (chunks failing for the
// same reason would otherwise repeat it).
func dedupeErrs(errs []error) []error {
	seen := map[string]bool{}
	out := errs[:0:0]
	for _, err := range errs {
		if !seen[err.Error()] {
			seen[err.Error()] = true
			out = append(out, err)
		}
	}
	return out
}

// itemSize is an event's share of the NDJSON body: action line + source.
func (e *Elasticsearch) itemSize(ev Event) int {
	return len(e.actionPrefix) + len(ev.ID) + 16 + len(ev.Body) + 1
}

// split cuts events into bulk-sized chunks, keeping their order. An event
// larger than BatchBytes travels alone.
func (e *Elasticsearch) split(events []Event) [][]Event {
	var chunks [][]Event
	start, size := 0, 0
	for i, ev := range events {
		s := e.itemSize(ev)
		if i > start && (i-start >= e.cfg.BatchSize || size+s > e.cfg.BatchBytes) {
			chunks = append(chunks, events[start:i:i])
			start, size = i, 0
		}
		size += s
	}
	if start < len(events) {
		chunks = append(chunks, events[start:len(events):len(events)])
	}
	return chunks
}

// outcome classifies a bulk request's answer.
type outcome int

const (
	outItems     outcome = iota // per-item results parsed
	outTransient                // connection error, timeout, 429, 5xx: retry all
	outBisect                   // 400/413 for the whole request: find the culprit
	outFatal                    // auth, not Elasticsearch, 404: stop, hand back
)

// deliver sends one chunk, retrying only the items that failed transiently,
// up to MaxAttempts requests. It returns the events still undelivered.
func (e *Elasticsearch) deliver(ctx context.Context, o *outcomeSet, chunk []Event) ([]Event, error) {
	pending := chunk
	// kept: rejected events the dead-letter file could not take; handed
	// back with the rest rather than lost.
	var kept []Event
	var keptErr error
	giveBack := func(err error) ([]Event, error) {
		if len(kept) > 0 {
			err = errors.Join(err, keptErr)
		}
		return append(pending, kept...), err
	}
	var lastErr error
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			if attempt > e.cfg.Retry.MaxAttempts {
				e.log.Warn("giving up on events for now; handing them back to the queue/spool",
					zap.Int("events", len(pending)), zap.Int("attempts", e.cfg.Retry.MaxAttempts), zap.Error(lastErr))
				return giveBack(fmt.Errorf("after %d attempts: %w", e.cfg.Retry.MaxAttempts, lastErr))
			}
			if err := e.sleep(ctx, e.backoff(attempt-1)); err != nil {
				return giveBack(err)
			}
			o.resend(pending)
		}
		if err := ctx.Err(); err != nil {
			return giveBack(err)
		}
		out, retry, err := e.send(ctx, o, pending)
		switch out {
		case outItems:
			var ke *keptError
			if errors.As(err, &ke) {
				kept = append(kept, ke.events...)
				keptErr = ke.err
				err = ke.retryErr
			}
			pending, lastErr = retry, err
			if len(pending) == 0 {
				if len(kept) == 0 {
					return nil, nil
				}
				return giveBack(nil)
			}
		case outTransient:
			if ctx.Err() != nil {
				return giveBack(ctx.Err())
			}
			if attempt == 1 {
				e.log.Warn("bulk request failed; retrying with backoff", zap.Int("events", len(pending)), zap.Error(err))
			}
			lastErr = err
		case outBisect:
			rem, berr := e.bisect(ctx, o, pending, err)
			pending = rem
			return giveBack(berr)
		default:
			return giveBack(err)
		}
	}
}

// keptError carries, from judgeItems, rejected events that could not be
// dead-lettered (they go back to the caller) next to the retry cause.
type keptError struct {
	events   []Event
	err      error
	retryErr error
}

func (k *keptError) Error() string { return k.err.Error() }

// bisect handles a whole-request 400/413: a lone event is dead-lettered,
// a larger chunk is halved and each half delivered on its own, so one bad
// document costs O(log n) requests and never loops.
func (e *Elasticsearch) bisect(ctx context.Context, o *outcomeSet, events []Event, cause error) ([]Event, error) {
	if len(events) == 1 {
		status := 0
		var se *esStatusError
		if errors.As(cause, &se) {
			status = se.Status
		}
		if err := e.deadLetter(o, events[0], status, "request_rejected", cause.Error()); err != nil {
			return events, err
		}
		return nil, nil
	}
	mid := len(events) / 2
	var rem []Event
	var errs []error
	for _, half := range [][]Event{events[:mid:mid], events[mid:]} {
		r, err := e.deliver(ctx, o, half)
		rem = append(rem, r...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return rem, errors.Join(errs...)
}

// backoff is the wait before retry n (1-based): Initial*2^(n-1) capped at
// Max, with "equal jitter": uniformly in [d/2, d].
func (e *Elasticsearch) backoff(n int) time.Duration {
	return Backoff{Initial: e.cfg.Retry.Initial, Max: e.cfg.Retry.Max}.EqualJitter(n - 1)
}

// jitteredBackoff is backoff with the random source given (tests).
func jitteredBackoff(initial, maxD time.Duration, n int, randN func(int64) int64) time.Duration {
	return equalJitter(Backoff{Initial: initial, Max: maxD}.Ceiling(n-1), randN)
}

// esStatusError is a whole-request rejection.
type esStatusError struct {
	Status  int
	Summary string
}

func (e *esStatusError) Error() string {
	return fmt.Sprintf("bulk request: HTTP %d: %s", e.Status, e.Summary)
}

// bulkResponse is the part of a bulk answer the sink reads.
type bulkResponse struct {
	Errors bool                         `json:"errors"`
	Items  []map[string]bulkItemOutcome `json:"items"`
}

type bulkItemOutcome struct {
	Status int            `json:"status"`
	Error  *bulkItemError `json:"error"`
}

type bulkItemError struct {
	Type     string         `json:"type"`
	Reason   string         `json:"reason"`
	CausedBy *bulkItemError `json:"caused_by"`
}

func (b *bulkItemError) String() string {
	if b == nil {
		return ""
	}
	s := b.Type + ": " + b.Reason
	if b.CausedBy != nil && b.CausedBy.Reason != "" {
		s += " (caused by " + b.CausedBy.Type + ": " + b.CausedBy.Reason + ")"
	}
	return s
}

// body builds the NDJSON bulk body for events into buf.
func (e *Elasticsearch) body(buf *bytes.Buffer, events []Event) {
	for _, ev := range events {
		buf.Write(e.actionPrefix)
		if ev.ID != "" {
			buf.WriteString(`"_id":`)
			id, _ := json.Marshal(ev.ID)
			buf.Write(id)
		} else {
			// Keep the JSON valid: drop the trailing comma of the prefix.
			buf.Truncate(buf.Len() - 1)
		}
		buf.WriteString("}}\n")
		buf.Write(ev.Body)
		buf.WriteByte('\n')
	}
}

// send performs one bulk request and sorts the answer. For outItems it
// returns the events to retry (429/5xx items), having counted and
// dead-lettered the others.
func (e *Elasticsearch) send(ctx context.Context, o *outcomeSet, events []Event) (outcome, []Event, error) {
	buf, _ := e.bufs.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	buf.Reset()
	defer func() {
		if buf.Cap() <= 2*e.cfg.BatchBytes {
			e.bufs.Put(buf)
		}
	}()
	e.body(buf, events)

	rctx, cancel := context.WithTimeout(ctx, e.cfg.RequestTimeout)
	defer cancel()
	req := esapi.BulkRequest{
		Body:   bytes.NewReader(buf.Bytes()),
		Header: http.Header{"Content-Type": {"application/x-ndjson"}},
	}
	res, err := req.Do(rctx, e.client)
	if err != nil {
		return e.classifyTransportError(ctx, err)
	}
	defer res.Body.Close()
	raw, rerr := io.ReadAll(io.LimitReader(res.Body, maxESResponse))
	status := res.StatusCode

	switch {
	case status >= 200 && status < 300:
		if rerr != nil {
			return outTransient, nil, fmt.Errorf("%w: reading bulk response: %w", ErrESUnreachable, rerr)
		}
		var br bulkResponse
		if err := json.Unmarshal(raw, &br); err != nil {
			return outTransient, nil, fmt.Errorf("bulk response is not JSON (%d bytes): %w", len(raw), err)
		}
		if len(br.Items) != len(events) {
			return outTransient, nil, fmt.Errorf("bulk response has %d items for %d documents sent", len(br.Items), len(events))
		}
		retry, err := e.judgeItems(o, events, br)
		return outItems, retry, err
	case status == http.StatusTooManyRequests || status >= 500:
		return outTransient, nil, fmt.Errorf("bulk request: HTTP %d: %s", status, esErrorSummary(raw))
	case status == http.StatusUnauthorized:
		return outFatal, nil, fmt.Errorf("%w (HTTP 401: check api_key or username/password): %s", ErrESAuth, esErrorSummary(raw))
	case status == http.StatusForbidden:
		return outFatal, nil, fmt.Errorf("%w (HTTP 403: the credentials lack the create_doc privilege on %s): %s", ErrESAuth, e.target, esErrorSummary(raw))
	case status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge:
		return outBisect, nil, &esStatusError{Status: status, Summary: esErrorSummary(raw)}
	case status == http.StatusRequestTimeout:
		return outTransient, nil, fmt.Errorf("bulk request: HTTP %d", status)
	default:
		return outFatal, nil, fmt.Errorf("%w: bulk request: HTTP %d (is the URL the Elasticsearch root?): %s", ErrESRejected, status, esErrorSummary(raw))
	}
}

// classifyTransportError sorts errors from the client before any answer.
func (e *Elasticsearch) classifyTransportError(ctx context.Context, err error) (outcome, []Event, error) {
	switch {
	case ctx.Err() != nil:
		return outTransient, nil, ctx.Err()
	case isProductCheckError(err):
		return outFatal, nil, fmt.Errorf("%w: %w", ErrNotElasticsearch, err)
	case errors.Is(err, elasticsearch.ErrClosed):
		return outFatal, nil, err
	}
	return outTransient, nil, fmt.Errorf("%w: %w", ErrESUnreachable, err)
}

func isProductCheckError(err error) bool {
	return err != nil && strings.Contains(err.Error(), "server is not Elasticsearch")
}

// judgeItems applies the per-item rules and returns the events to retry.
func (e *Elasticsearch) judgeItems(o *outcomeSet, events []Event, br bulkResponse) ([]Event, error) {
	var retry, kept []Event
	var keptErr error
	var retryCause string
	for i, item := range br.Items {
		var r bulkItemOutcome
		for _, v := range item { // one key: the action
			r = v
		}
		switch {
		case r.Status >= 200 && r.Status < 300:
		case r.Status == http.StatusConflict:
			o.record(events[i], Outcome{Status: Duplicate})
		case r.Status == http.StatusTooManyRequests || r.Status >= 500:
			retry = append(retry, events[i])
			if retryCause == "" {
				retryCause = fmt.Sprintf("HTTP %d %s", r.Status, r.Error.String())
			}
		default:
			typ := "unknown"
			if r.Error != nil && r.Error.Type != "" {
				typ = r.Error.Type
			}
			if err := e.deadLetter(o, events[i], r.Status, typ, fmt.Sprintf("HTTP %d %s", r.Status, r.Error.String())); err != nil {
				kept, keptErr = append(kept, events[i]), err
			}
		}
	}
	var err error
	if len(retry) > 0 {
		err = fmt.Errorf("%d of %d documents not accepted yet: %s", len(retry), len(events), retryCause)
	}
	if len(kept) > 0 {
		return retry, &keptError{events: kept, err: keptErr, retryErr: err}
	}
	return retry, err
}

// deadLetter writes a permanently rejected event to the dead-letter file
// and counts it; each cause (status + error type) is logged once. When the
// file cannot be written the error is returned and the caller hands the
// event back (to be retried or spooled), so it is not lost.
func (e *Elasticsearch) deadLetter(o *outcomeSet, ev Event, status int, typ, reason string) error {
	cause := fmt.Sprintf("%d %s", status, typ)
	e.causesMu.Lock()
	first := !e.causes[cause] && len(e.causes) < maxLoggedCauses
	if first {
		e.causes[cause] = true
	}
	e.causesMu.Unlock()
	if err := e.dl.Write(e.Name(), ev, reason); err != nil {
		e.log.Error("dead-letter write failed; the rejected event is handed back instead",
			zap.String("event_id", ev.ID), zap.String("cause", cause), zap.Error(err))
		return fmt.Errorf("rejected (%s) and the dead-letter write failed: %w", cause, err)
	}
	o.record(ev, Outcome{Status: DeadLettered, Err: errors.New(reason)})
	if first {
		e.log.Error("event rejected permanently and dead-lettered; further events with this cause are only counted",
			zap.String("cause", cause), zap.String("event_id", ev.ID), zap.String("reason", reason),
			zap.String("dead_letter", e.dl.Path()))
	}
	return nil
}

// esErrorSummary extracts "type: reason" from an Elasticsearch error body,
// or a bounded excerpt of anything else.
func esErrorSummary(raw []byte) string {
	var env struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(raw, &env) == nil && len(env.Error) > 0 {
		var be bulkItemError
		if json.Unmarshal(env.Error, &be) == nil && be.Type != "" {
			return be.String()
		}
		var s string
		if json.Unmarshal(env.Error, &s) == nil {
			return s
		}
	}
	s := strings.TrimSpace(string(raw))
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	if s == "" {
		s = "(empty body)"
	}
	return s
}

// Check probes the cluster at start-up (GET /) and turns the usual
// mistakes into clear errors: unreachable (ErrESUnreachable), not
// Elasticsearch (ErrNotElasticsearch), bad credentials (ErrESAuth).
// A 403 from Elasticsearch means the credentials work but lack the monitor
// privilege; that is logged, not an error, since writing may still work.
func (e *Elasticsearch) Check(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, min(e.cfg.RequestTimeout, 30*time.Second))
	defer cancel()
	where := strings.Join(stripUserinfo(e.cfg.Addresses()), ", ")
	res, err := esapi.InfoRequest{}.Do(rctx, e.client)
	if err != nil {
		if isProductCheckError(err) {
			return fmt.Errorf("%w: %s answered without the X-Elastic-Product: Elasticsearch header; check the URL (and the port: 9200 is the usual one)", ErrNotElasticsearch, where)
		}
		return fmt.Errorf("%w: %s: %w", ErrESUnreachable, where, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	product := res.Header.Get("X-Elastic-Product") == "Elasticsearch"
	switch {
	case res.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("%w: %s answered 401: check api_key / username and password (%s)", ErrESAuth, where, esErrorSummary(raw))
	case res.StatusCode == http.StatusForbidden && product:
		e.log.Warn("credentials accepted but not allowed to read cluster info (403); continuing, writes may still be allowed",
			zap.String("reason", esErrorSummary(raw)))
		return nil
	case !product:
		return fmt.Errorf("%w: %s answered HTTP %d without the X-Elastic-Product: Elasticsearch header; check the URL", ErrNotElasticsearch, where, res.StatusCode)
	case res.StatusCode >= 300:
		return fmt.Errorf("%w: %s answered HTTP %d: %s", ErrESRejected, where, res.StatusCode, esErrorSummary(raw))
	}
	var info struct {
		ClusterName string `json:"cluster_name"`
		Version     struct {
			Number string `json:"number"`
		} `json:"version"`
	}
	_ = json.Unmarshal(raw, &info)
	e.log.Info("elasticsearch reachable", zap.String("cluster", info.ClusterName),
		zap.String("version", info.Version.Number), zap.String("target", e.target))
	return nil
}

// CheckStartup runs Check and applies fail_fast: with fail_fast the error
// is returned (stop the program); without, it is logged and nil returned,
// so the rest of the pipeline runs while this sink retries and spools.
func (e *Elasticsearch) CheckStartup(ctx context.Context) error {
	err := e.Check(ctx)
	if err == nil {
		return nil
	}
	if e.cfg.FailFast {
		return fmt.Errorf("elasticsearch sink (fail_fast): %w", err)
	}
	e.log.Error("elasticsearch sink not ready; the pipeline keeps running and events are retried and spooled (set fail_fast: true to stop instead)",
		zap.Error(err))
	return nil
}
