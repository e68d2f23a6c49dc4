package sinks

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
)

// Defaults of the Elasticsearch sink, in the spirit of Filebeat's
// elasticsearch output (bulk_max_size 1600, backoff 1 s -> 60 s, timeout 90 s).
const (
	DefaultESBatchSize      = 1600
	DefaultESBatchBytes     = 5 << 20 // 5 MiB of NDJSON before compression
	DefaultESFlushInterval  = time.Second
	DefaultESRequestTimeout = 90 * time.Second
	DefaultESWorkers        = 1
	DefaultESRetryInitial   = time.Second
	DefaultESRetryMax       = 60 * time.Second
	DefaultESRetryAttempts  = 5
	DefaultESTemplateName   = "logs-netsentinel.alert"

	DefaultESDataStreamType    = "logs"
	DefaultESDataStreamDataset = "netsentinel.alert"
	DefaultESDataStreamNS      = "default"

	// EnvESAPIKey and EnvESPassword override api_key and password, so
	// secrets can stay out of configuration files.
	EnvESAPIKey   = "NETSENTINEL_ES_API_KEY"
	EnvESPassword = "NETSENTINEL_ES_PASSWORD"

	maxESWorkers     = 64
	maxESAttempts    = 100
	maxESBatchSize   = 100_000
	maxESBatchBytes  = 100 << 20 // Elasticsearch's default http.max_content_length
	minESBatchBytes  = 1 << 10
	maxDataStreamLen = 100
)

// DataStreamConfig names an Elasticsearch data stream
// <type>-<dataset>-<namespace>.
type DataStreamConfig struct {
	Type      string `yaml:"type"`
	Dataset   string `yaml:"dataset"`
	Namespace string `yaml:"namespace"`
}

// Name is the data stream's name, e.g. logs-netsentinel.alert-default.
func (d DataStreamConfig) Name() string { return d.Type + "-" + d.Dataset + "-" + d.Namespace }

// RetryConfig bounds the sink's own item-level retries inside one Write.
type RetryConfig struct {
	Initial     time.Duration `yaml:"initial"`      // first backoff (default 1 s)
	Max         time.Duration `yaml:"max"`          // backoff ceiling (default 60 s)
	MaxAttempts int           `yaml:"max_attempts"` // bulk attempts per batch, the first included (default 5)
}

// ElasticsearchConfig configures the Elasticsearch sink. Zero values take
// the defaults above; Validate checks it without any I/O.
type ElasticsearchConfig struct {
	URL  string   `yaml:"url"`  // e.g. https://host:9200 (from --sink elasticsearch:URL)
	URLs []string `yaml:"urls"` // more nodes, tried in turn

	// DataStream (the default, logs-netsentinel.alert-default) or Index,
	// not both. Documents are always sent with the bulk "create" action and
	// _id = event.id, so a re-sent document answers 409 and is not doubled.
	DataStream *DataStreamConfig `yaml:"data_stream"`
	Index      string            `yaml:"index"`

	BatchSize     int           `yaml:"batch_size"`     // events per bulk request
	BatchBytes    int           `yaml:"batch_bytes"`    // NDJSON bytes per bulk request
	FlushInterval time.Duration `yaml:"flush_interval"` // for the runner: longest wait before a partial batch is sent
	// Compression is "gzip" (the default, level 1 like Filebeat) or "none".
	Compression    string        `yaml:"compression"`
	RequestTimeout time.Duration `yaml:"request_timeout"`
	Workers        int           `yaml:"workers"` // concurrent bulk requests

	APIKey       string    `yaml:"api_key"` // "id:key" or the base64 "encoded" form ES returns
	APIKeyFile   string    `yaml:"api_key_file"`
	Username     string    `yaml:"username"`
	Password     string    `yaml:"password"`
	PasswordFile string    `yaml:"password_file"`
	TLS          TLSConfig `yaml:"tls"`

	// FailFast makes start-up fail when Check fails; otherwise the rest of
	// the pipeline runs while this sink keeps retrying (and spooling).
	FailFast   bool   `yaml:"fail_fast"`
	DeadLetter string `yaml:"dead_letter"` // NDJSON file of permanently rejected events

	Retry RetryConfig `yaml:"retry"`
	// Headers are sent with every request (e.g. VictoriaLogs' VL-Msg-Field).
	Headers map[string]string `yaml:"headers"`
	// TemplateName is the index template `netsentinel setup elasticsearch`
	// installs.
	TemplateName string `yaml:"template_name"`
}

// WithDefaults returns c with every unset value replaced by its default.
func (c ElasticsearchConfig) WithDefaults() ElasticsearchConfig {
	if c.DataStream == nil && c.Index == "" {
		c.DataStream = &DataStreamConfig{}
	}
	if c.DataStream != nil {
		ds := *c.DataStream
		if ds.Type == "" {
			ds.Type = DefaultESDataStreamType
		}
		if ds.Dataset == "" {
			ds.Dataset = DefaultESDataStreamDataset
		}
		if ds.Namespace == "" {
			ds.Namespace = DefaultESDataStreamNS
		}
		c.DataStream = &ds
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.BatchSize, DefaultESBatchSize)
	def(&c.BatchBytes, DefaultESBatchBytes)
	def(&c.Workers, DefaultESWorkers)
	def(&c.Retry.MaxAttempts, DefaultESRetryAttempts)
	defDur(&c.FlushInterval, DefaultESFlushInterval)
	defDur(&c.RequestTimeout, DefaultESRequestTimeout)
	defDur(&c.Retry.Initial, DefaultESRetryInitial)
	defDur(&c.Retry.Max, DefaultESRetryMax)
	if c.Retry.Max < c.Retry.Initial {
		c.Retry.Max = c.Retry.Initial
	}
	if c.Compression == "" {
		c.Compression = "gzip"
	}
	if c.TemplateName == "" {
		c.TemplateName = DefaultESTemplateName
	}
	return c
}

// Addresses lists every configured node URL (URL first, then URLs).
func (c ElasticsearchConfig) Addresses() []string {
	var out []string
	if c.URL != "" {
		out = append(out, c.URL)
	}
	return append(out, c.URLs...)
}

// Target is the data stream or index documents are written to.
func (c ElasticsearchConfig) Target() string {
	c = c.WithDefaults()
	if c.Index != "" {
		return c.Index
	}
	return c.DataStream.Name()
}

// ApplyEnv lets NETSENTINEL_ES_API_KEY and NETSENTINEL_ES_PASSWORD override
// the configured secrets. getenv is os.Getenv outside tests.
func (c *ElasticsearchConfig) ApplyEnv(getenv func(string) string) {
	if v := getenv(EnvESAPIKey); v != "" {
		c.APIKey, c.APIKeyFile = v, ""
	}
	if v := getenv(EnvESPassword); v != "" {
		c.Password, c.PasswordFile = v, ""
	}
}

// Validate checks the configuration (with defaults applied) without any I/O;
// the error names the offending key.
func (c ElasticsearchConfig) Validate() error {
	c = c.WithDefaults()
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	addrs := c.Addresses()
	if len(addrs) == 0 {
		bad("elasticsearch.url: required (e.g. --sink elasticsearch:https://host:9200)")
	}
	anyHTTPS := false
	for i, a := range addrs {
		key := "elasticsearch.url"
		if j := i - len(addrs) + len(c.URLs); j >= 0 {
			key = fmt.Sprintf("elasticsearch.urls[%d]", j)
		}
		u, err := url.Parse(a)
		if err != nil {
			bad("%s: not a URL: %s", key, redactURLString(a))
			continue
		}
		switch {
		case u.Scheme != "http" && u.Scheme != "https":
			bad("%s: scheme must be http or https, got %q", key, u.Scheme)
		case u.Host == "":
			bad("%s: no host in %s", key, redactURL(u))
		case u.RawQuery != "" || u.Fragment != "":
			bad("%s: must not carry a query or fragment", key)
		}
		if u.Scheme == "https" {
			anyHTTPS = true
		}
		if u.User != nil && (c.APIKey != "" || c.APIKeyFile != "" || c.Username != "") {
			bad("%s: credentials in the URL conflict with api_key/username", key)
		}
	}

	if c.DataStream != nil && c.Index != "" {
		bad("elasticsearch: set data_stream or index, not both")
	}
	if c.Index != "" {
		if err := validateIndexName(c.Index); err != nil {
			bad("elasticsearch.index: %v", err)
		}
	} else if c.DataStream != nil {
		ds := c.DataStream
		switch ds.Type {
		case "logs", "metrics", "traces", "synthetics", "profiling":
		default:
			bad("elasticsearch.data_stream.type: %q is not a data stream type (logs, metrics, traces, synthetics, profiling)", ds.Type)
		}
		if err := validateDataStreamPart(ds.Dataset); err != nil {
			bad("elasticsearch.data_stream.dataset: %v", err)
		}
		if err := validateDataStreamPart(ds.Namespace); err != nil {
			bad("elasticsearch.data_stream.namespace: %v", err)
		}
	}

	if c.BatchSize < 1 || c.BatchSize > maxESBatchSize {
		bad("elasticsearch.batch_size: %d not in 1..%d", c.BatchSize, maxESBatchSize)
	}
	if c.BatchBytes < minESBatchBytes || c.BatchBytes > maxESBatchBytes {
		bad("elasticsearch.batch_bytes: %d not in %d..%d", c.BatchBytes, minESBatchBytes, maxESBatchBytes)
	}
	if c.FlushInterval < 0 {
		bad("elasticsearch.flush_interval: negative")
	}
	if c.RequestTimeout < 0 {
		bad("elasticsearch.request_timeout: negative")
	}
	if c.Workers < 1 || c.Workers > maxESWorkers {
		bad("elasticsearch.workers: %d not in 1..%d", c.Workers, maxESWorkers)
	}
	switch c.Compression {
	case "gzip", "none":
	default:
		bad("elasticsearch.compression: %q, want gzip or none", c.Compression)
	}
	if c.Retry.Initial < 0 || c.Retry.Max < 0 {
		bad("elasticsearch.retry: negative backoff")
	}
	if c.Retry.MaxAttempts < 1 || c.Retry.MaxAttempts > maxESAttempts {
		bad("elasticsearch.retry.max_attempts: %d not in 1..%d", c.Retry.MaxAttempts, maxESAttempts)
	}

	if c.APIKey != "" && c.APIKeyFile != "" {
		bad("elasticsearch: set api_key or api_key_file, not both")
	}
	if c.Password != "" && c.PasswordFile != "" {
		bad("elasticsearch: set password or password_file, not both")
	}
	if (c.APIKey != "" || c.APIKeyFile != "") && c.Username != "" {
		bad("elasticsearch: set api_key or username/password, not both")
	}
	if (c.Password != "" || c.PasswordFile != "") && c.Username == "" {
		bad("elasticsearch.username: required with a password")
	}
	if err := c.TLS.Validate(); err != nil {
		bad("elasticsearch.%v", err)
	}
	if !c.TLS.IsZero() && !anyHTTPS && len(addrs) > 0 {
		bad("elasticsearch.tls: set, but no url uses https")
	}
	for name, v := range c.Headers {
		if name == "" || strings.ContainsAny(name, " \t\r\n:") || strings.ContainsAny(v, "\r\n") {
			bad("elasticsearch.headers: invalid header %q", name)
		}
		if strings.EqualFold(name, "Authorization") {
			bad("elasticsearch.headers: Authorization is set from api_key or username/password")
		}
	}
	if err := validateIndexName(c.TemplateName); err != nil {
		bad("elasticsearch.template_name: %v", err)
	}
	return errors.Join(errs...)
}

// validateDataStreamPart applies ECS's rules for data_stream.dataset and
// data_stream.namespace: lowercase, at most 100 characters, no '-' and none
// of \ / * ? " < > | , # : or space.
func validateDataStreamPart(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > maxDataStreamLen:
		return fmt.Errorf("%d characters, at most %d", len(s), maxDataStreamLen)
	case strings.ToLower(s) != s:
		return fmt.Errorf("%q must be lowercase", s)
	case strings.ContainsAny(s, "-\\/*?\"<>|,#: "):
		return fmt.Errorf("%q must not contain - \\ / * ? \" < > | , # : or space", s)
	case strings.HasPrefix(s, "_") || strings.HasPrefix(s, "+") || strings.HasPrefix(s, "."):
		return fmt.Errorf("%q must not start with _ + or .", s)
	}
	return nil
}

// validateIndexName applies Elasticsearch's index naming rules.
func validateIndexName(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case s == "." || s == "..":
		return fmt.Errorf("%q is not allowed", s)
	case len(s) > 255:
		return fmt.Errorf("%d bytes, at most 255", len(s))
	case strings.ToLower(s) != s:
		return fmt.Errorf("%q must be lowercase", s)
	case strings.ContainsAny(s, "\\/*?\"<>|,#: "):
		return fmt.Errorf("%q must not contain \\ / * ? \" < > | , # : or space", s)
	case strings.HasPrefix(s, "-") || strings.HasPrefix(s, "_") || strings.HasPrefix(s, "+"):
		return fmt.Errorf("%q must not start with - _ or +", s)
	}
	return nil
}

// MarshalLogObject logs the configuration without any secret, so
// zap.Object("elasticsearch", cfg) is safe.
func (c ElasticsearchConfig) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	urls := make([]string, 0, len(c.Addresses()))
	for _, a := range c.Addresses() {
		urls = append(urls, redactURLString(a))
	}
	enc.AddString("urls", strings.Join(urls, ","))
	enc.AddString("target", c.Target())
	enc.AddInt("batch_size", c.BatchSize)
	enc.AddInt("batch_bytes", c.BatchBytes)
	enc.AddDuration("flush_interval", c.FlushInterval)
	enc.AddString("compression", c.Compression)
	enc.AddInt("workers", c.Workers)
	auth := "none"
	switch {
	case c.APIKey != "" || c.APIKeyFile != "":
		auth = "api_key"
	case c.Username != "":
		auth = "basic (user " + c.Username + ")"
	}
	enc.AddString("auth", auth)
	enc.AddBool("tls_insecure_skip_verify", c.TLS.InsecureSkipVerify)
	enc.AddBool("fail_fast", c.FailFast)
	return nil
}

// redactURL returns u as text with any password replaced.
func redactURL(u *url.URL) string { return u.Redacted() }

// redactURLString is redactURL for text that may not even parse; then only
// the part before any '@' is dropped.
func redactURLString(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		if j := strings.Index(s, "://"); j >= 0 && j < i {
			return s[:j+3] + "xxxxx@" + s[i+1:]
		}
		return "xxxxx@" + s[i+1:]
	}
	return s
}

func init() {
	RegisterKind(KindInfo{Name: KindElasticsearch, Buffer: BufferDisk, Parse: func(target string, _ bool) error {
		_, err := ParseElasticsearchTarget(target)
		return err
	}, Open: openElasticsearch})
}

// openElasticsearch builds the sink from the spec's URLs over the config's
// elasticsearch section and checks the cluster (version, credentials,
// index/template) before the first event; it fails fast on what retrying
// cannot fix unless the section allows starting degraded.
func openElasticsearch(ctx context.Context, spec Spec, env Env) (Sink, error) {
	urls, err := ParseElasticsearchTarget(spec.Target)
	if err != nil {
		return nil, badTarget(spec, err)
	}
	ec := env.Elasticsearch
	ec.URL, ec.URLs = urls[0], append(urls[1:], ec.URLs...)
	return openChecked(ctx, env.deadLetterPath(ec.DeadLetter, KindElasticsearch), func(dl *DeadLetter) (*Elasticsearch, error) {
		return NewElasticsearch(ec, dl, env.Log)
	})
}

// startupChecked is a sink that checks its server before the first event.
type startupChecked interface {
	Sink
	CheckStartup(ctx context.Context) error
}

// openChecked opens the dead-letter file at dlPath, builds the sink on it and
// runs the sink's startup check (bounded by startupCheckTimeout); whatever
// fails closes what was opened before it.
func openChecked[S startupChecked](ctx context.Context, dlPath string, build func(*DeadLetter) (S, error)) (Sink, error) {
	dl, err := OpenDeadLetter(dlPath)
	if err != nil {
		return nil, err
	}
	s, err := build(dl)
	if err != nil {
		dl.Close()
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, startupCheckTimeout)
	defer cancel()
	if err := s.CheckStartup(cctx); err != nil {
		s.Close(context.Background())
		return nil, err
	}
	return s, nil
}

// startupCheckTimeout bounds a network sink's check at open.
const startupCheckTimeout = 30 * time.Second
