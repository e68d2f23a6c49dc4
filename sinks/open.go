package sinks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// Sink kinds accepted by --sink.
const (
	KindStdout        = "stdout"
	KindFile          = "file"
	KindElasticsearch = "elasticsearch"
	KindKafka         = "kafka"
)

// ErrBadSpec is wrapped by every ParseSpec error.
var ErrBadSpec = errors.New("invalid sink spec")

// Spec is a parsed --sink value: KIND or KIND:TARGET.
//
//	stdout
//	file:/var/log/netsentinel/alerts.ndjson
//	elasticsearch:https://host:9200[,https://host2:9200]
//	kafka:b1:9092,b2:9092/topic
//	syslog:tcp://host:514 | syslog:udp://host:514 | syslog:tls://host:6514[?format=cef&...]
type Spec struct {
	Kind    string
	Target  string
	Options Options // the common options after '?' (options.go)
}

// String is the spec without its options: the sink's identity (its name
// in logs and reports, and its spool directory).
func (s Spec) String() string {
	if s.Target == "" {
		return s.Kind
	}
	return s.Kind + ":" + s.Target
}

// Redacted is the spec with URL passwords hidden: the form used for sink
// names in logs and reports.
func (s Spec) Redacted() string { return redactSpec(s.String()) }

// ParseSpec parses and validates a sink spec (no I/O). Errors name the spec.
func ParseSpec(s string) (Spec, error) {
	raw := s
	s, opts, err := SplitOptions(strings.TrimSpace(s))
	if err != nil {
		return Spec{}, err
	}
	kind, target, hasTarget := strings.Cut(s, ":")
	kind = strings.ToLower(strings.TrimSpace(kind))
	bad := func(format string, a ...any) (Spec, error) {
		return Spec{}, fmt.Errorf("%w %q: %s", ErrBadSpec, redactSpec(raw), fmt.Sprintf(format, a...))
	}
	sp, err := parseKind(kind, target, hasTarget, bad)
	sp.Options = opts
	return sp, err
}

func parseKind(kind, target string, hasTarget bool, bad func(string, ...any) (Spec, error)) (Spec, error) {
	if kind == "" {
		return bad("empty sink kind (want %s)", kindList())
	}
	k, ok := lookupKind(kind)
	if !ok {
		return bad("unknown sink kind %q (want %s)", kind, kindList())
	}
	if err := k.Parse(target, hasTarget); err != nil {
		return bad("%v", err)
	}
	return Spec{Kind: kind, Target: target}, nil
}

func init() {
	RegisterKind(KindInfo{Name: KindStdout, NoConfigBuffer: true, Parse: func(_ string, hasTarget bool) error {
		if hasTarget {
			return errors.New("stdout takes no target")
		}
		return nil
	}, Open: func(_ context.Context, _ Spec, env Env) (Sink, error) {
		w := env.Stdout
		if w == nil {
			w = os.Stdout
		}
		return NewStdout(w), nil
	}})
	RegisterKind(KindInfo{Name: KindFile, Parse: func(target string, _ bool) error {
		if strings.TrimSpace(target) == "" {
			return errors.New("empty path (want file:/path/to/alerts.ndjson)")
		}
		if strings.HasSuffix(target, "/") {
			return fmt.Errorf("path %q is a directory (want a file name)", target)
		}
		return nil
	}, Open: func(_ context.Context, spec Spec, env Env) (Sink, error) {
		fc := env.File // MaxSizeMB, MaxFiles; the path is the spec's
		fc.Path = spec.Target
		return NewFile(fc, env.Log)
	}})
}

// ParseElasticsearchTarget splits a comma-separated list of http(s) URLs.
func ParseElasticsearchTarget(target string) ([]string, error) {
	if strings.TrimSpace(target) == "" {
		return nil, errors.New("empty URL (want elasticsearch:https://host:9200)")
	}
	var urls []string
	for _, part := range strings.Split(target, ",") {
		part = strings.TrimSpace(part)
		u, err := url.Parse(part)
		if err != nil {
			return nil, fmt.Errorf("URL %q: not a URL", redactSpec("x:" + part)[2:])
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return nil, fmt.Errorf("URL %q: scheme must be http or https", u.Redacted())
		}
		if u.Host == "" || u.Hostname() == "" {
			return nil, fmt.Errorf("URL %q: no host", u.Redacted())
		}
		urls = append(urls, part)
	}
	return urls, nil
}

// redactSpec hides passwords of URLs in a spec so errors never print them.
func redactSpec(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	kind, target, ok := strings.Cut(s, ":")
	if !ok {
		return s
	}
	parts := strings.Split(target, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			parts[i] = u.Redacted()
		} else if strings.Contains(p, "@") {
			parts[i] = "REDACTED"
		}
	}
	return kind + ":" + strings.Join(parts, ",")
}

// ParseKafkaTarget splits "b1:9092,b2:9092/topic" into brokers and topic.
func ParseKafkaTarget(target string) (brokers []string, topic string, err error) {
	i := strings.LastIndex(target, "/")
	if i < 0 {
		return nil, "", errors.New("no topic (want kafka:host:9092[,host2:9092]/topic)")
	}
	list, topic := target[:i], target[i+1:]
	if topic == "" {
		return nil, "", errors.New("empty topic (want kafka:host:9092/topic)")
	}
	if err := validKafkaTopic(topic); err != nil {
		return nil, "", err
	}
	if strings.TrimSpace(list) == "" {
		return nil, "", errors.New("no brokers (want kafka:host:9092/topic)")
	}
	for _, b := range strings.Split(list, ",") {
		b = strings.TrimSpace(b)
		host, port, err := net.SplitHostPort(b)
		if err != nil {
			return nil, "", fmt.Errorf("broker %q: want host:port: %w", b, err)
		}
		if host == "" {
			return nil, "", fmt.Errorf("broker %q: empty host", b)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return nil, "", fmt.Errorf("broker %q: bad port %q", b, port)
		}
		brokers = append(brokers, b)
	}
	return brokers, topic, nil
}

// validKafkaTopic applies Kafka's topic name rules: 1-249 of [a-zA-Z0-9._-],
// not "." or "..".
func validKafkaTopic(t string) error {
	if len(t) > 249 {
		return fmt.Errorf("topic %q: longer than 249 characters", t)
	}
	if t == "." || t == ".." {
		return fmt.Errorf("topic %q: not allowed", t)
	}
	for _, c := range t {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("topic %q: invalid character %q (allowed: letters, digits, . _ -)", t, c)
		}
	}
	return nil
}
