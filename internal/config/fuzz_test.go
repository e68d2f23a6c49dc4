package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzConfigLoad feeds arbitrary bytes to the loader: strict YAML decoding on
// top of the defaults, validation and each detector's section. Whatever the
// input, it must return a value or an error naming the problem, never panic
// or hang. Seed corpus: testdata/full.yaml and testdata/fuzz/FuzzConfigLoad.
func FuzzConfigLoad(f *testing.F) {
	if b, err := os.ReadFile("testdata/full.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("sinks: [stdout, \"file:/tmp/x.ndjson\"]\nspool:\n  max_bytes: 1048576\n  sync_interval: 500ms\n"))
	f.Add([]byte("interval: -5\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Add([]byte("detect:\n  detectors:\n    suspicious_port:\n      ports: [1, 2]\n      bogus: 1\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		cfg := Default()
		if err := decodeStrict(data, &cfg); err != nil {
			if err.Error() == "" {
				t.Fatal("decode error with an empty message")
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			if err.Error() == "" {
				t.Fatal("validation error with an empty message")
			}
			return
		}
		if _, err := cfg.DetectorConfigs(); err != nil && err.Error() == "" {
			t.Fatal("detector config error with an empty message")
		}
		// The file path goes through Load too, byte for byte.
		path := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(path); err != nil {
			t.Fatalf("Load rejects what decodeStrict accepted: %v", err)
		}
	})
}
