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
	"time"
)

// KindSyslog is the sink kind of syslog:tcp://, syslog:udp:// and
// syslog:tls:// specs.
const KindSyslog = "syslog"

// Syslog sink defaults.
const (
	DefaultSyslogFormat   = SyslogFormatJSON
	DefaultSyslogFacility = "local0"
	// DefaultSyslogUDPMaxBytes caps one UDP message (the whole RFC 5424
	// line): rsyslog's default maxMessageSize. Larger events are
	// dead-lettered, never truncated or split.
	DefaultSyslogUDPMaxBytes = 8192
	// MaxSyslogUDPBytes is the largest UDP payload over IPv4.
	MaxSyslogUDPBytes          = 65507
	DefaultSyslogDialTimeout   = 5 * time.Second
	DefaultSyslogWriteTimeout  = 10 * time.Second
	DefaultSyslogCloseTimeout  = 5 * time.Second
	DefaultSyslogResendWindow  = 10 * time.Second
	DefaultSyslogResendBytes   = 4 << 20
	DefaultSyslogReconnectInit = 100 * time.Millisecond
	DefaultSyslogReconnectMax  = 5 * time.Second
	// SyslogAppName is the RFC 5424 APP-NAME.
	SyslogAppName = "netsentinel"
	// Default ports: RFC 5424 over TCP/UDP (514), over TLS (RFC 5425: 6514).
	syslogPort    = "514"
	syslogTLSPort = "6514"
)

// Syslog payload formats.
const (
	SyslogFormatJSON = "json" // the event document as formatted (ECS by default)
	SyslogFormatCEF  = "cef"  // ArcSight CEF:0 (cef.go)
)

// Syslog transports (the URL scheme of the target).
const (
	SyslogTCP = "tcp"
	SyslogUDP = "udp"
	SyslogTLS = "tls"
)

// syslogFacilities are the RFC 5424 facility codes by name.
var syslogFacilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
	"uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "security": 13, "console": 14,
	"solaris-cron": 15, "local0": 16, "local1": 17, "local2": 18, "local3": 19,
	"local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

// syslogSeverities maps our severity names to RFC 5424 severities: the
// inverse of ECS event.severity (schemas/severity.go): LOW notice (5),
// MEDIUM warning (4), HIGH error (3), CRITICAL critical (2).
var syslogSeverities = map[string]int{"LOW": 5, "MEDIUM": 4, "HIGH": 3, "CRITICAL": 2}

// syslogSeverityByLevel maps detect.Severity (1 low .. 4 critical, the
// "severity" event field) to the RFC 5424 severity.
var syslogSeverityByLevel = map[string]int{"1": 5, "2": 4, "3": 3, "4": 2}

// syslogUnknownSeverity is warning: an alert of unknown severity is still an alert.
const syslogUnknownSeverity = 4

// SyslogConfig configures the syslog sink (YAML under "syslog:"). The
// transport and address come from the --sink target; options given in the
// target's query override these.
type SyslogConfig struct {
	// Network is tcp, udp or tls; Address is host:port (from the target).
	Network string `yaml:"-"`
	Address string `yaml:"-"`
	// Format of the message payload: json (the formatted event, ECS by
	// default) or cef.
	Format string `yaml:"format"`
	// Facility is the RFC 5424 facility name (default local0).
	Facility string `yaml:"facility"`
	// Hostname is the HOSTNAME field (default: this host's name).
	Hostname string `yaml:"hostname"`
	// UDPMaxBytes caps one UDP datagram (default 8192, at most 65507).
	UDPMaxBytes int `yaml:"udp_max_bytes"`
	// ResendWindow: events written less than this long before a TCP/TLS
	// connection broke are sent again on the next connection (at least
	// once). ResendBytes caps the memory kept for that.
	ResendWindow time.Duration `yaml:"resend_window"`
	ResendBytes  int           `yaml:"resend_bytes"`
	DialTimeout  time.Duration `yaml:"dial_timeout"`
	WriteTimeout time.Duration `yaml:"write_timeout"`
	CloseTimeout time.Duration `yaml:"close_timeout"`
	// ReconnectInitial and ReconnectMax bound the jittered backoff of the
	// background reconnection after a connection loss.
	ReconnectInitial time.Duration `yaml:"reconnect_initial"`
	ReconnectMax     time.Duration `yaml:"reconnect_max"`
	// TLS applies to syslog:tls:// (verification on; server name defaults
	// to the target's host).
	TLS TLSConfig `yaml:"tls"`
	// DeadLetter is the file for events that can never be sent (larger
	// than UDPMaxBytes, or not convertible to CEF).
	DeadLetter string `yaml:"dead_letter"`
}

// withDefaults fills zero values.
func (c SyslogConfig) withDefaults() SyslogConfig {
	if c.Format == "" {
		c.Format = DefaultSyslogFormat
	}
	c.Format = strings.ToLower(c.Format)
	if c.Facility == "" {
		c.Facility = DefaultSyslogFacility
	}
	c.Facility = strings.ToLower(c.Facility)
	if c.UDPMaxBytes == 0 {
		c.UDPMaxBytes = DefaultSyslogUDPMaxBytes
	}
	if c.ResendWindow == 0 {
		c.ResendWindow = DefaultSyslogResendWindow
	}
	if c.ResendBytes == 0 {
		c.ResendBytes = DefaultSyslogResendBytes
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultSyslogDialTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultSyslogWriteTimeout
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = DefaultSyslogCloseTimeout
	}
	if c.ReconnectInitial == 0 {
		c.ReconnectInitial = DefaultSyslogReconnectInit
	}
	if c.ReconnectMax == 0 {
		c.ReconnectMax = DefaultSyslogReconnectMax
	}
	return c
}

// Validate checks the configuration without I/O; errors name the key.
func (c SyslogConfig) Validate() error {
	c = c.withDefaults()
	var errs []error
	switch c.Network {
	case SyslogTCP, SyslogUDP, SyslogTLS:
	default:
		errs = append(errs, fmt.Errorf("transport %q: want tcp, udp or tls", c.Network))
	}
	if host, port, err := net.SplitHostPort(c.Address); err != nil || host == "" {
		errs = append(errs, fmt.Errorf("address %q: want host:port", c.Address))
	} else if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		errs = append(errs, fmt.Errorf("address %q: bad port", c.Address))
	}
	if c.Format != SyslogFormatJSON && c.Format != SyslogFormatCEF {
		errs = append(errs, fmt.Errorf("format: %q unknown (want json or cef)", c.Format))
	}
	if _, ok := syslogFacilities[c.Facility]; !ok {
		errs = append(errs, fmt.Errorf("facility: %q unknown (want e.g. local0..local7, auth, authpriv, daemon, security)", c.Facility))
	}
	if err := validHostname(c.Hostname); err != nil {
		errs = append(errs, err)
	}
	if c.UDPMaxBytes < 480 || c.UDPMaxBytes > MaxSyslogUDPBytes {
		errs = append(errs, fmt.Errorf("udp_max_bytes: %d must be between 480 (RFC 5426 minimum) and %d", c.UDPMaxBytes, MaxSyslogUDPBytes))
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"resend_window", c.ResendWindow}, {"dial_timeout", c.DialTimeout}, {"write_timeout", c.WriteTimeout},
		{"close_timeout", c.CloseTimeout}, {"reconnect_initial", c.ReconnectInitial}, {"reconnect_max", c.ReconnectMax}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s: %s must be positive", d.key, d.v))
		}
	}
	if c.ReconnectMax < c.ReconnectInitial {
		errs = append(errs, fmt.Errorf("reconnect_max %s is below reconnect_initial %s", c.ReconnectMax, c.ReconnectInitial))
	}
	if c.ResendBytes < 0 {
		errs = append(errs, fmt.Errorf("resend_bytes: %d must be positive", c.ResendBytes))
	}
	if err := c.TLS.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Network != SyslogTLS && !c.TLS.IsZero() {
		errs = append(errs, fmt.Errorf("tls: options are set but the transport is %s (use syslog:tls://)", c.Network))
	}
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs)) // one line, for the usage error
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "; "))
}

// validHostname applies RFC 5424's HOSTNAME rule: 1-255 printable ASCII
// characters without spaces ("" means this host's name).
func validHostname(h string) error {
	if len(h) > 255 {
		return fmt.Errorf("hostname: longer than 255 characters")
	}
	for i := 0; i < len(h); i++ {
		if h[i] <= ' ' || h[i] > '~' {
			return fmt.Errorf("hostname %q: only printable ASCII without spaces", h)
		}
	}
	return nil
}

// syslogQueryKeys are the options a target may carry after '?'.
var syslogQueryKeys = []string{"format", "facility", "hostname", "udp_max_bytes", "ca_file", "server_name"}

// ParseSyslogTarget reads "tcp://HOST:PORT", "udp://HOST:PORT" or
// "tls://HOST:PORT" (port defaults: 514, tls 6514), with optional query
// options format, facility, hostname, udp_max_bytes, ca_file and
// server_name, into a copy of base. It does no I/O and validates the result.
func ParseSyslogTarget(target string, base SyslogConfig) (SyslogConfig, error) {
	if strings.TrimSpace(target) == "" {
		return base, errors.New("empty target (want syslog:tcp://host:514, syslog:udp://host:514 or syslog:tls://host:6514)")
	}
	u, err := url.Parse(strings.TrimSpace(target))
	if err != nil {
		return base, fmt.Errorf("target %q: not a URL", target)
	}
	c := base
	c.Network = strings.ToLower(u.Scheme)
	switch c.Network {
	case SyslogTCP, SyslogUDP, SyslogTLS:
	default:
		return base, fmt.Errorf("target %q: scheme must be tcp, udp or tls", target)
	}
	if u.User != nil {
		return base, errors.New("target: user info is not supported by syslog")
	}
	if u.Path != "" && u.Path != "/" {
		return base, fmt.Errorf("target %q: unexpected path %q", target, u.Path)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return base, fmt.Errorf("target %q: no host", target)
	}
	if port == "" {
		port = syslogPort
		if c.Network == SyslogTLS {
			port = syslogTLSPort
		}
	}
	c.Address = net.JoinHostPort(host, port)
	q := u.Query()
	for k, vs := range q {
		known := false
		for _, kk := range syslogQueryKeys {
			known = known || k == kk
		}
		if !known {
			return base, fmt.Errorf("target option %q unknown (want %s)", k, strings.Join(syslogQueryKeys, ", "))
		}
		if len(vs) != 1 {
			return base, fmt.Errorf("target option %q given %d times", k, len(vs))
		}
	}
	if v := q.Get("format"); v != "" {
		c.Format = v
	}
	if v := q.Get("facility"); v != "" {
		c.Facility = v
	}
	if v := q.Get("hostname"); v != "" {
		c.Hostname = v
	}
	if v := q.Get("ca_file"); v != "" {
		c.TLS.CAFile = v
	}
	if v := q.Get("server_name"); v != "" {
		c.TLS.ServerName = v
	}
	if v := q.Get("udp_max_bytes"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return base, fmt.Errorf("target option udp_max_bytes %q: not a number", v)
		}
		c.UDPMaxBytes = n
	}
	if err := c.Validate(); err != nil {
		return base, err
	}
	return c, nil
}

// syslogHeader is the fixed part of every message of one sink.
type syslogHeader struct {
	facility int
	hostname string
	procID   string
}

func newSyslogHeader(c SyslogConfig) syslogHeader {
	h := syslogHeader{facility: syslogFacilities[c.Facility], hostname: c.Hostname, procID: strconv.Itoa(os.Getpid())}
	if h.hostname == "" {
		if n, err := os.Hostname(); err == nil && validHostname(n) == nil && n != "" {
			h.hostname = n
		} else {
			h.hostname = "-"
		}
	}
	return h
}

// syslogSeverity is the RFC 5424 severity of ev: from its "severity" field
// (detect level 1-4), else the severity name in the body.
func syslogSeverity(ev Event, name string) int {
	if v, ok := syslogSeverityByLevel[ev.Fields["severity"]]; ok {
		return v
	}
	if v, ok := syslogSeverities[strings.ToUpper(name)]; ok {
		return v
	}
	return syslogUnknownSeverity
}

// appendMsgID writes the RFC 5424 MSGID: the rule id, 1-32 printable ASCII
// characters; others become '_'; "-" when there is no rule.
func appendMsgID(b []byte, rule string) []byte {
	if rule == "" {
		return append(b, '-')
	}
	for i := 0; i < len(rule) && i < 32; i++ {
		c := rule[i]
		if c <= ' ' || c > '~' {
			c = '_'
		}
		b = append(b, c)
	}
	return b
}

// appendSyslog appends one RFC 5424 message:
//
//	<PRI>1 TIMESTAMP HOSTNAME netsentinel PROCID MSGID - PAYLOAD
//
// PRI = facility*8 + severity; TIMESTAMP is the alert's time (UTC,
// microseconds), else ts; there is no structured data and no BOM.
func (h syslogHeader) appendSyslog(b []byte, sev int, ts time.Time, rule string, payload []byte) []byte {
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(h.facility*8+sev), 10)
	b = append(b, ">1 "...)
	b = ts.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z")
	b = append(b, ' ')
	b = append(b, h.hostname...)
	b = append(b, ' ')
	b = append(b, SyslogAppName...)
	b = append(b, ' ')
	b = append(b, h.procID...)
	b = append(b, ' ')
	b = appendMsgID(b, rule)
	b = append(b, " - "...)
	return append(b, payload...)
}

// syslogDocMeta is what the message header needs from the body.
type syslogDocMeta struct {
	Timestamp string `json:"@timestamp"`
	Time      string `json:"timestamp"` // native
	Event     struct {
		Action string `json:"action"`
	} `json:"event"`
	NetSentinel struct {
		Severity string `json:"severity"`
	} `json:"netsentinel"`
	Severity string `json:"severity"` // native
}

func init() {
	RegisterKind(KindInfo{Name: KindSyslog, Buffer: BufferDisk, OwnOptions: true, Parse: func(target string, _ bool) error {
		_, err := ParseSyslogTarget(target, SyslogConfig{})
		return err
	}, Open: openSyslog})
}

// openSyslog builds a syslog sink: the target's transport, address and
// options over the config's syslog section. It connects on the first write,
// so a server that is down at start only delays delivery.
func openSyslog(_ context.Context, spec Spec, env Env) (Sink, error) {
	sc, err := ParseSyslogTarget(spec.Target, env.Syslog)
	if err != nil {
		return nil, badTarget(spec, err)
	}
	sc.DeadLetter = env.deadLetterPath(sc.DeadLetter, KindSyslog)
	return NewSyslog(sc, nil, env.Log)
}
