package sinks

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/netsentinel/netsentinel/internal/fsutil"
)

// esCredentials are the resolved secrets; never logged, never in errors.
type esCredentials struct {
	APIKey   string // base64 "encoded" form, ready for "Authorization: ApiKey"
	Username string
	Password string
}

// maxSecretFile bounds how much of a credentials file is read.
const maxSecretFile = 64 << 10

// readSecretFile reads a one-line secret, trimming surrounding whitespace.
// Errors name the key and file, never the content.
func readSecretFile(key, path string) (string, error) {
	b, err := fsutil.ReadFileCapped(path, maxSecretFile)
	if errors.Is(err, fsutil.ErrTooLarge) {
		return "", fmt.Errorf("elasticsearch.%s: %s is larger than %d bytes, not a secret file", key, path, maxSecretFile)
	}
	if err != nil {
		return "", fmt.Errorf("elasticsearch.%s: %w", key, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("elasticsearch.%s: %s is empty", key, path)
	}
	if strings.ContainsAny(s, "\r\n") {
		return "", fmt.Errorf("elasticsearch.%s: %s holds more than one line", key, path)
	}
	return s, nil
}

// resolveCredentials reads api_key_file / password_file and the URL's user
// info. cfg has had ApplyEnv and Validate.
func resolveCredentials(cfg ElasticsearchConfig) (esCredentials, error) {
	var cr esCredentials
	key := cfg.APIKey
	if cfg.APIKeyFile != "" {
		s, err := readSecretFile("api_key_file", cfg.APIKeyFile)
		if err != nil {
			return cr, err
		}
		key = s
	}
	if key != "" {
		cr.APIKey = encodeAPIKey(key)
	}
	cr.Username, cr.Password = cfg.Username, cfg.Password
	if cfg.PasswordFile != "" {
		s, err := readSecretFile("password_file", cfg.PasswordFile)
		if err != nil {
			return cr, err
		}
		cr.Password = s
	}
	if cr.APIKey == "" && cr.Username == "" {
		for _, a := range cfg.Addresses() {
			if u, err := url.Parse(a); err == nil && u.User != nil {
				cr.Username = u.User.Username()
				cr.Password, _ = u.User.Password()
				break
			}
		}
	}
	return cr, nil
}

// encodeAPIKey accepts an API key as "id:api_key" (what the create API key
// call returns as two fields) or already base64-encoded ("encoded").
func encodeAPIKey(k string) string {
	if strings.Contains(k, ":") {
		return base64.StdEncoding.EncodeToString([]byte(k))
	}
	return k
}

// stripUserinfo removes credentials from the node URLs handed to the client
// (they are passed separately), so no URL we keep carries a secret.
func stripUserinfo(addrs []string) []string {
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		u, err := url.Parse(a)
		if err != nil {
			out = append(out, a)
			continue
		}
		u.User = nil
		out = append(out, strings.TrimRight(u.String(), "/"))
	}
	return out
}

// newESHTTPTransport builds the HTTP transport: per-host TLS configs (so
// fingerprint pinning checks each node's own name), dial and idle limits
// sized to the worker count. Proxies from the environment are not used.
func newESHTTPTransport(cfg ElasticsearchConfig, log *zap.Logger) (*http.Transport, error) {
	tlsByHost := map[string]*tls.Config{}
	warned := false
	for _, a := range cfg.Addresses() {
		u, err := url.Parse(a)
		if err != nil || u.Scheme != "https" {
			continue
		}
		if _, ok := tlsByHost[u.Hostname()]; ok {
			continue
		}
		l := log
		if warned {
			l = zap.NewNop() // one insecure warning is enough
		}
		tc, err := cfg.TLS.ForHost(u.Hostname()).Build(l)
		if err != nil {
			return nil, fmt.Errorf("elasticsearch.%w", err)
		}
		warned = warned || cfg.TLS.InsecureSkipVerify
		tlsByHost[u.Hostname()] = tc
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		// No HTTP(S)_PROXY: a proxy would bypass the per-host TLS dialer
		// (and its pinning) and reroute alerts without anyone noticing.
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		MaxIdleConns:          cfg.Workers * 2,
		MaxIdleConnsPerHost:   cfg.Workers + 1,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	if len(tlsByHost) > 0 {
		tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				host = addr
			}
			tc := tlsByHost[host]
			if tc == nil {
				return nil, fmt.Errorf("elasticsearch: no TLS configuration for host %s", host)
			}
			d := &tls.Dialer{NetDialer: dialer, Config: tc}
			return d.DialContext(ctx, network, addr)
		}
	}
	return tr, nil
}
