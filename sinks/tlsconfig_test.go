package sinks

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// testPKI is a throwaway CA with a server certificate for 127.0.0.1 and a
// client certificate, written as PEM files.
type testPKI struct {
	dir                   string
	caFile                string
	caCert                *x509.Certificate
	serverCert            tls.Certificate
	clientCert, clientKey string
	caPool                *x509.CertPool
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "netsentinel test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(cn string, usage x509.ExtKeyUsage, ips []net.IP) ([]byte, *ecdsa.PrivateKey) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := &testPKI{dir: dir, caCert: ca, caPool: x509.NewCertPool()}
	p.caPool.AddCert(ca)
	p.caFile = write("ca.pem", "CERTIFICATE", caDER)
	sDER, sKey := leaf("127.0.0.1", x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)})
	p.serverCert = tls.Certificate{Certificate: [][]byte{sDER, caDER}, PrivateKey: sKey}
	cDER, cKey := leaf("netsentinel-client", x509.ExtKeyUsageClientAuth, nil)
	p.clientCert = write("client.pem", "CERTIFICATE", cDER)
	kDER, _ := x509.MarshalECPrivateKey(cKey)
	p.clientKey = write("client-key.pem", "EC PRIVATE KEY", kDER)
	return p
}

func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

func TestESTLSVerificationOnByDefault(t *testing.T) {
	pki := newTestPKI(t)
	d := newESDoubleTLS(t, &tls.Config{Certificates: []tls.Certificate{pki.serverCert}})
	h := newTestES(t, testESConfig(d.URL()))
	err := h.es.Check(context.Background())
	if !errors.Is(err, ErrESUnreachable) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("an unknown CA must be refused: %v", err)
	}
}

func TestESTLSCAFileAndClientCert(t *testing.T) {
	pki := newTestPKI(t)
	d := newESDoubleTLS(t, &tls.Config{
		Certificates: []tls.Certificate{pki.serverCert},
		ClientAuth:   tls.RequireAndVerifyClientCert, ClientCAs: pki.caPool,
	})
	cfg := testESConfig(d.URL())
	cfg.TLS = TLSConfig{CAFile: pki.caFile, CertFile: pki.clientCert, KeyFile: pki.clientKey}
	h := newTestES(t, cfg)
	if err := h.es.Check(context.Background()); err != nil {
		t.Fatalf("CA file + client cert: %v", err)
	}
	if err := countedWrite(t, h.es, context.Background(), makeECSAlerts("t", 2)); err != nil {
		t.Fatal(err)
	}

	cfg.TLS = TLSConfig{CAFile: pki.caFile} // no client certificate
	h2 := newTestES(t, cfg)
	if err := h2.es.Check(context.Background()); err == nil {
		t.Fatal("server requiring a client certificate accepted none")
	}
}

func TestESTLSFingerprintPinning(t *testing.T) {
	pki := newTestPKI(t)
	d := newESDoubleTLS(t, &tls.Config{Certificates: []tls.Certificate{pki.serverCert}})

	for _, form := range []string{
		fingerprint(pki.caCert.Raw),
		strings.ToUpper(fingerprint(pki.caCert.Raw)),
		colonHex(fingerprint(pki.caCert.Raw)),
		fingerprint(pki.serverCert.Certificate[0]), // the leaf itself
	} {
		cfg := testESConfig(d.URL())
		cfg.TLS = TLSConfig{CAFingerprint: form}
		h := newTestES(t, cfg)
		if err := h.es.Check(context.Background()); err != nil {
			t.Fatalf("pinned %s: %v", form, err)
		}
	}

	cfg := testESConfig(d.URL())
	cfg.TLS = TLSConfig{CAFingerprint: strings.Repeat("ab", 32)}
	h := newTestES(t, cfg)
	if err := h.es.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "ca_fingerprint") {
		t.Fatalf("wrong pin accepted or unclear: %v", err)
	}

	// The pin does not switch the host name check off.
	cfg = testESConfig(d.URL())
	cfg.TLS = TLSConfig{CAFingerprint: fingerprint(pki.caCert.Raw), ServerName: "other.example"}
	h = newTestES(t, cfg)
	if err := h.es.Check(context.Background()); err == nil {
		t.Fatal("pinned CA accepted a certificate for another name")
	}
}

func colonHex(h string) string {
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

func TestESTLSInsecureOptInWarnsLoudly(t *testing.T) {
	pki := newTestPKI(t)
	d := newESDoubleTLS(t, &tls.Config{Certificates: []tls.Certificate{pki.serverCert}})
	cfg := testESConfig(d.URL())
	cfg.TLS = TLSConfig{InsecureSkipVerify: true}
	h := newTestES(t, cfg)
	if err := h.es.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	w := h.logs.FilterLevelExact(zapcore.WarnLevel).FilterMessageSnippet("VERIFICATION IS DISABLED")
	if w.Len() != 1 {
		t.Fatalf("insecure_skip_verify warned %d times, want once", w.Len())
	}
}

func TestESTLSConfigBuild(t *testing.T) {
	pki := newTestPKI(t)
	core, logs := observer.New(zapcore.WarnLevel)
	c, err := TLSConfig{}.Build(zap.New(core))
	if err != nil || c.InsecureSkipVerify || c.MinVersion != tls.VersionTLS12 || logs.Len() != 0 {
		t.Fatalf("zero config: %+v, %v", c, err)
	}
	if _, err := (TLSConfig{CAFile: filepath.Join(pki.dir, "missing.pem")}).Build(nil); err == nil || !strings.Contains(err.Error(), "tls.ca_file") {
		t.Fatalf("missing CA file: %v", err)
	}
	notPEM := filepath.Join(pki.dir, "junk.pem")
	os.WriteFile(notPEM, []byte("junk"), 0o600)
	if _, err := (TLSConfig{CAFile: notPEM}).Build(nil); err == nil || !strings.Contains(err.Error(), "no PEM") {
		t.Fatalf("junk CA file: %v", err)
	}
	if _, err := (TLSConfig{CertFile: pki.clientCert}).Build(nil); err == nil {
		t.Fatal("cert without key accepted")
	}
	if _, err := (TLSConfig{CAFingerprint: "zz"}).Build(nil); err == nil {
		t.Fatal("non-hex fingerprint accepted")
	}
	if got := (TLSConfig{}).ForHost("es1").ServerName; got != "es1" {
		t.Fatalf("ForHost: %q", got)
	}
	if got := (TLSConfig{ServerName: "x"}).ForHost("es1").ServerName; got != "x" {
		t.Fatalf("ForHost overrode ServerName: %q", got)
	}
}
