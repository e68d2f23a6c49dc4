package state

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/detect"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func TestSaveLoadRoundTripAndModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	in := []detect.CooldownEntry{
		{Rule: "suspicious_port", Entity: "out:bash:198.51.100.20:4444", LastAlert: t0, LastSeen: t0.Add(time.Minute), Count: 7},
		{Rule: "port_scan", Entity: "counters:closed_ports", LastAlert: t0.Add(-time.Minute), LastSeen: t0},
	}
	if err := SaveCooldowns(dir, in, t0); err != nil {
		t.Fatal(err)
	}
	out, err := LoadCooldowns(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0] != in[0] || out[1].Entity != in[1].Entity || !out[1].LastAlert.Equal(in[1].LastAlert) {
		t.Fatalf("loaded %+v, want %+v", out, in)
	}
	st, err := os.Stat(filepath.Join(dir, CooldownsFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v, %v; want 0600", st.Mode(), err)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v, %v; want 0700", st.Mode(), err)
	}
	// No temporary files are left behind.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("state dir holds %d files", len(ents))
	}
	// Saving again replaces the file.
	if err := SaveCooldowns(dir, in[:1], t0); err != nil {
		t.Fatal(err)
	}
	if out, _ := LoadCooldowns(dir); len(out) != 1 {
		t.Fatalf("after a second save: %d entries", len(out))
	}
}

func TestSaveIsBounded(t *testing.T) {
	dir := t.TempDir()
	var in []detect.CooldownEntry
	for i := 0; i < MaxCooldowns+50; i++ {
		in = append(in, detect.CooldownEntry{Rule: "r", Entity: fmt.Sprint(i), LastAlert: t0, LastSeen: t0})
	}
	if err := SaveCooldowns(dir, in, t0); err != nil {
		t.Fatal(err)
	}
	out, err := LoadCooldowns(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The first entries (the most recently seen) are the ones kept.
	if len(out) != MaxCooldowns || out[0].Entity != "0" || out[len(out)-1].Entity != fmt.Sprint(MaxCooldowns-1) {
		t.Fatalf("kept %d entries, first %q last %q", len(out), out[0].Entity, out[len(out)-1].Entity)
	}
}

func TestLoadMissingIsNoState(t *testing.T) {
	out, err := LoadCooldowns(filepath.Join(t.TempDir(), "never-created"))
	if err != nil || out != nil {
		t.Fatalf("missing state: %v, %v", out, err)
	}
}

func TestLoadDamagedIsAnErrorNamingTheFile(t *testing.T) {
	good, err := os.ReadFile(func() string {
		dir := t.TempDir()
		if err := SaveCooldowns(dir, []detect.CooldownEntry{{Rule: "r", Entity: "e", LastAlert: t0}}, t0); err != nil {
			t.Fatal(err)
		}
		return filepath.Join(dir, CooldownsFile)
	}())
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"truncated":     good[:len(good)/2],
		"garbage":       []byte("\x00\x01not json"),
		"empty":         {},
		"other version": []byte(`{"version":2,"saved_at":"2026-11-30T12:00:00Z","cooldowns":[]}`),
		"unknown key":   []byte(`{"version":1,"cooldowns":[{"rule":"r","entity":"e","pid":3}]}`),
		"wrong type":    []byte(`{"version":1,"cooldowns":{"rule":"r"}}`),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, CooldownsFile)
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := LoadCooldowns(dir)
			if err == nil || out != nil || !strings.Contains(err.Error(), path) {
				t.Fatalf("LoadCooldowns = %v, %v; want an error naming %s", out, err, path)
			}
		})
	}
}

func TestSaveWhereNoDirCanBeFails(t *testing.T) {
	// A state_dir under a regular file cannot be created, even by root.
	file := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := SaveCooldowns(filepath.Join(file, "state"), nil, t0)
	if err == nil || !strings.Contains(err.Error(), file) {
		t.Fatalf("save under a file: %v", err)
	}
}

func TestDir(t *testing.T) {
	if got := Dir("/var/lib/ns/state", "/x/report.json"); got != "/var/lib/ns/state" {
		t.Errorf("explicit: %s", got)
	}
	if got := Dir("", "/var/lib/ns/report.json"); got != "/var/lib/ns/netsentinel-state" {
		t.Errorf("default: %s", got)
	}
	if got := Dir("", "report.json"); got != "netsentinel-state" {
		t.Errorf("relative default: %s", got)
	}
}
