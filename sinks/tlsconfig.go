package sinks

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"go.uber.org/zap"
)

// TLSConfig is the TLS part of a network sink's configuration (Elasticsearch,
// Kafka). Verification is on by default; InsecureSkipVerify must be set
// explicitly and is logged loudly.
type TLSConfig struct {
	// CAFile is a PEM bundle of CAs; when set, only these CAs are trusted
	// (instead of the system pool).
	CAFile string `yaml:"ca_file"`
	// CAFingerprint pins a certificate of the server's chain by the SHA-256
	// of its DER encoding (hex, colons optional, like Filebeat's
	// ca_trusted_fingerprint). The pinned certificate is trusted as a CA
	// (or as the server certificate itself when it is the leaf); the host
	// name is still checked unless InsecureSkipVerify.
	CAFingerprint string `yaml:"ca_fingerprint"`
	// CertFile and KeyFile are a PEM client certificate and key (mutual TLS).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// InsecureSkipVerify turns certificate verification off. Opt-in only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// ServerName overrides the name checked against the certificate (SNI).
	ServerName string `yaml:"server_name"`
}

// IsZero reports whether no TLS option is set (system CAs, verification on).
func (c TLSConfig) IsZero() bool { return c == TLSConfig{} }

// ForHost returns c with ServerName set to host when it is empty. Call it
// with the server's host name (or IP) before Build: the fingerprint check
// runs in a callback that cannot see the dialled address, and TLS sends no
// server name for IP addresses, so without it only the pin would be checked.
func (c TLSConfig) ForHost(host string) TLSConfig {
	if c.ServerName == "" {
		c.ServerName = host
	}
	return c
}

// Validate checks the options without reading any file.
func (c TLSConfig) Validate() error {
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("tls: cert_file and key_file must be set together")
	}
	if c.CAFingerprint != "" {
		if _, err := parseFingerprint(c.CAFingerprint); err != nil {
			return fmt.Errorf("tls.ca_fingerprint: %w", err)
		}
	}
	return nil
}

// parseFingerprint decodes a SHA-256 fingerprint written as 64 hex digits,
// optionally separated by colons, in either case.
func parseFingerprint(s string) ([]byte, error) {
	clean := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), ":", ""))
	b, err := hex.DecodeString(clean)
	if err != nil {
		return nil, fmt.Errorf("not hex: %q", s)
	}
	if len(b) != sha256.Size {
		return nil, fmt.Errorf("want a SHA-256 fingerprint (%d bytes), got %d bytes", sha256.Size, len(b))
	}
	return b, nil
}

// Build returns the *tls.Config the options describe: minimum TLS 1.2,
// system roots unless CAFile, client certificate if given, fingerprint
// pinning if given. log receives the warning for InsecureSkipVerify.
func (c TLSConfig) Build(log *zap.Logger) (*tls.Config, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}

	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file %s: no PEM certificate found", c.CAFile)
		}
		cfg.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.cert_file/key_file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if c.InsecureSkipVerify {
		log.Warn("TLS CERTIFICATE VERIFICATION IS DISABLED (tls.insecure_skip_verify: true): " +
			"the connection is encrypted but anyone on the path can impersonate the server and read every event and credential")
		cfg.InsecureSkipVerify = true
		return cfg, nil
	}
	if c.CAFingerprint != "" {
		want, _ := parseFingerprint(c.CAFingerprint)
		roots := cfg.RootCAs
		// Go's own verification would reject a chain whose root is not in
		// the pool; we do the verification ourselves, with the pinned
		// certificate added as a root.
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			return verifyPinned(cs, want, roots, c.ServerName)
		}
	}
	return cfg, nil
}

// verifyPinned accepts the connection when a certificate of the presented
// chain has the pinned fingerprint and the leaf verifies up to it (or up to
// roots), for the expected host name.
func verifyPinned(cs tls.ConnectionState, want []byte, roots *x509.CertPool, serverName string) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("tls: server presented no certificate")
	}
	var pinned *x509.Certificate
	for _, cert := range cs.PeerCertificates {
		sum := sha256.Sum256(cert.Raw)
		if bytes.Equal(sum[:], want) {
			pinned = cert
			break
		}
	}
	name := serverName
	if name == "" {
		name = cs.ServerName
	}
	leaf := cs.PeerCertificates[0]
	if pinned == nil {
		// Not in the chain: fall back to ordinary verification (a pinned CA
		// that the server did not send may still be in the trust store).
		opts := x509.VerifyOptions{Roots: roots, DNSName: name, Intermediates: x509.NewCertPool()}
		for _, ic := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(ic)
		}
		if _, err := leaf.Verify(opts); err != nil {
			return fmt.Errorf("tls: no certificate of the server's chain matches tls.ca_fingerprint, and the chain does not verify: %w", err)
		}
		return nil
	}
	if pinned == leaf {
		// The server certificate itself is pinned: only the name remains.
		if err := leaf.VerifyHostname(name); err != nil {
			return fmt.Errorf("tls: pinned certificate: %w", err)
		}
		return nil
	}
	pool := x509.NewCertPool()
	pool.AddCert(pinned)
	opts := x509.VerifyOptions{Roots: pool, DNSName: name, Intermediates: x509.NewCertPool()}
	for _, ic := range cs.PeerCertificates[1:] {
		if ic != pinned {
			opts.Intermediates.AddCert(ic)
		}
	}
	if _, err := leaf.Verify(opts); err != nil {
		return fmt.Errorf("tls: server certificate does not verify up to the pinned CA: %w", err)
	}
	return nil
}
