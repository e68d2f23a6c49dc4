package detect

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func TestParseRelayListPlain(t *testing.T) {
	data, err := os.ReadFile("testdata/tor/relays.txt")
	if err != nil {
		t.Fatal(err)
	}
	rl, err := ParseRelayList(data)
	if err != nil {
		t.Fatal(err)
	}
	if rl.Format != "plain" {
		t.Errorf("format %q", rl.Format)
	}
	want := addrs("203.0.113.10", "203.0.113.11", "203.0.113.12", "2001:db8::10", "2001:db8::11")
	if !reflect.DeepEqual(rl.Addrs, want) {
		t.Errorf("addrs %v, want %v", rl.Addrs, want)
	}
	if rl.BadCount != 3 || len(rl.Bad) != 3 {
		t.Fatalf("bad %d %+v, want 3", rl.BadCount, rl.Bad)
	}
	for i, w := range []struct{ where, text string }{{"line 8", "not-an-ip"}, {"line 9", "203.0.113.300"}, {"line 10", "127.0.0.1"}} {
		if rl.Bad[i].Where != w.where || rl.Bad[i].Text != w.text || rl.Bad[i].Err == "" {
			t.Errorf("bad[%d] = %+v, want %s %q", i, rl.Bad[i], w.where, w.text)
		}
	}
}

func TestParseRelayListOnionoo(t *testing.T) {
	data, err := os.ReadFile("testdata/tor/onionoo_details.json")
	if err != nil {
		t.Fatal(err)
	}
	rl, err := ParseRelayList(data)
	if err != nil {
		t.Fatal(err)
	}
	if rl.Format != "onionoo" {
		t.Errorf("format %q", rl.Format)
	}
	// relay "gone" (running: false) and exit_addresses are not used.
	want := addrs("198.51.100.20", "2001:db8:1::20", "198.51.100.21", "198.51.100.23", "2001:db8:1::23")
	if !reflect.DeepEqual(rl.Addrs, want) {
		t.Errorf("addrs %v, want %v", rl.Addrs, want)
	}
	if rl.BadCount != 1 || rl.Bad[0].Where != "relays[3].or_addresses[1]" || rl.Bad[0].Text != "bogus:9001" {
		t.Errorf("bad %+v", rl.Bad)
	}
	for _, in := range []string{`{"relays": 5}`, `{"version": "8.0"}`, `{"relays": [`} {
		if _, err := ParseRelayList([]byte(in)); err == nil {
			t.Errorf("ParseRelayList(%q) accepted", in)
		}
	}
}

func TestLoadRelayFileErrors(t *testing.T) {
	if _, err := LoadRelayFile("testdata/tor/bad.txt"); err == nil || !strings.Contains(err.Error(), "no usable address") ||
		!strings.Contains(err.Error(), "line 1") {
		t.Errorf("bad.txt: err = %v", err)
	}
	if _, err := LoadRelayFile("testdata/tor/missing.txt"); err == nil || !strings.Contains(err.Error(), "missing.txt") {
		t.Errorf("missing file: err = %v", err)
	}
	empty := filepath.Join(t.TempDir(), "empty.txt")
	if err := os.WriteFile(empty, []byte("# nothing yet\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if rl, err := LoadRelayFile(empty); err != nil || len(rl.Addrs) != 0 {
		t.Errorf("empty list: %v %v", rl, err)
	}
}

func TestFetchRelayList(t *testing.T) {
	body, err := os.ReadFile("testdata/tor/onionoo_details.json")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { w.Write(body) })
	mux.HandleFunc("/500", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", 500) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	mux.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("# none\n")) })
	srv := httptest.NewServer(mux) // loopback only
	defer srv.Close()

	rl, raw, err := FetchRelayList(context.Background(), srv.Client(), srv.URL+"/ok", 5*time.Second)
	if err != nil || len(rl.Addrs) != 5 || string(raw) != string(body) {
		t.Fatalf("ok: %d addrs, err %v", len(rl.Addrs), err)
	}
	if _, _, err := FetchRelayList(context.Background(), srv.Client(), srv.URL+"/500", 5*time.Second); err == nil || !strings.Contains(err.Error(), "500") {
		t.Errorf("500: err = %v", err)
	}
	start := time.Now()
	if _, _, err := FetchRelayList(context.Background(), srv.Client(), srv.URL+"/slow", 200*time.Millisecond); err == nil {
		t.Error("slow: no timeout error")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("timeout took %v", d)
	}
	if _, _, err := FetchRelayList(context.Background(), srv.Client(), srv.URL+"/empty", 5*time.Second); err == nil {
		t.Error("empty download accepted")
	}
}

func TestParseRelayListConsensus(t *testing.T) {
	for _, c := range []struct {
		file    string
		want    []netip.Addr
		badLine []string
	}{
		{"testdata/tor/cached-consensus", addrs("198.51.100.31", "203.0.113.32", "2001:db8:2::32"), []string{"line 22", "line 24"}},
		{"testdata/tor/cached-microdesc-consensus", addrs("198.51.100.31", "2001:db8:2::31", "198.51.100.33"), nil},
	} {
		rl, err := LoadRelayFile(c.file)
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		if rl.Format != "consensus" || !reflect.DeepEqual(rl.Addrs, c.want) {
			t.Errorf("%s: format %q addrs %v, want consensus %v", c.file, rl.Format, rl.Addrs, c.want)
		}
		var bad []string
		for _, b := range rl.Bad {
			bad = append(bad, b.Where)
		}
		if !reflect.DeepEqual(bad, c.badLine) || rl.BadCount != len(c.badLine) {
			t.Errorf("%s: bad %+v, want %v", c.file, rl.Bad, c.badLine)
		}
	}
}

// A consensus served over HTTPS: fetched with a client that trusts the
// server, refused by the detector's own client (system roots only).
func TestFetchRelayListTLS(t *testing.T) {
	body, err := os.ReadFile("testdata/tor/cached-microdesc-consensus")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/consensus", func(w http.ResponseWriter, r *http.Request) { w.Write(body) })
	mux.HandleFunc("/huge", func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(strings.Repeat("# padding padding padding padding padding padding padding padding\n", 1<<14))
		for sent := 0; sent <= MaxRelayListBytes; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	srv := httptest.NewUnstartedServer(mux)          // loopback only
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	srv.StartTLS()
	defer srv.Close()

	rl, _, err := FetchRelayList(context.Background(), srv.Client(), srv.URL+"/consensus", 5*time.Second)
	if err != nil || rl.Format != "consensus" || len(rl.Addrs) != 3 {
		t.Fatalf("trusted TLS: %+v, %v", rl, err)
	}
	// 64 MiB through TLS under -race on a loaded 2-core machine can take
	// longer than 10 s: the bound is generous, the cap is what is tested.
	if _, _, err := FetchRelayList(context.Background(), srv.Client(), srv.URL+"/huge", 2*time.Minute); err == nil ||
		!strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized download: err = %v", err)
	}
	d, err := newTor(*torCfg(func(c *TorConfig) { c.RelayURL = srv.URL + "/consensus" }))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.refresh(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted certificate accepted: err = %v", err)
	}
	if d.relays.Load().len() != 0 {
		t.Error("relays published from an unverified server")
	}
}
