package collector

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestProcRootFromEnv(t *testing.T) {
	t.Setenv("HOST_PROC", "")
	if got := ProcRootFromEnv(""); got != "/proc" {
		t.Errorf("default = %q", got)
	}
	t.Setenv("HOST_PROC", "/host/proc")
	if got := ProcRootFromEnv(""); got != "/host/proc" {
		t.Errorf("from env = %q", got)
	}
	if got := ProcRootFromEnv("/flag/proc"); got != "/flag/proc" {
		t.Errorf("flag = %q", got)
	}
	// The flag is handed to gopsutil through HOST_PROC.
	if got := os.Getenv("HOST_PROC"); got != "/flag/proc" {
		t.Errorf("HOST_PROC = %q after a flag", got)
	}
}

func TestReadCappedFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(strings.Repeat("a", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	data, err := readCappedFile(p, 100)
	if err != nil || len(data) != 100 {
		t.Errorf("exact size: %d, %v", len(data), err)
	}
	data, err = readCappedFile(p, 40)
	if !errors.Is(err, ErrFileTooLarge) || len(data) != 40 {
		t.Errorf("over cap: %d, %v", len(data), err)
	}
	// procfs files report size 0; the cap, not stat, bounds the read.
	requireProcFS(t)
	data, err = readCappedFile("/proc/self/status", maxSmallFileBytes)
	if err != nil || !strings.Contains(string(data), "Pid:") {
		t.Errorf("procfs read: %d bytes, %v", len(data), err)
	}
}

// requireProcFS skips tests of the real procfs where there is none.
func requireProcFS(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(ProcRootFromEnv(""), "net", "snmp")); err != nil {
		t.Skipf("no procfs: %v", err)
	}
}

func TestReadCappedBuf(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	content := strings.Repeat("abcdefgh", 2000) // 16000 bytes: grows a small buffer
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	data, err := readCappedBuf(p, make([]byte, 0, 16), 1<<20)
	if err != nil || string(data) != content {
		t.Errorf("full read: %d bytes, %v", len(data), err)
	}
	data, err = readCappedBuf(p, nil, 100)
	if !errors.Is(err, ErrFileTooLarge) || string(data) != content[:100] {
		t.Errorf("over cap: %d bytes, %v", len(data), err)
	}
	data, err = readCappedBuf(p, nil, len(content))
	if err != nil || len(data) != len(content) {
		t.Errorf("exactly the cap: %d bytes, %v", len(data), err)
	}
	if _, err := readCappedBuf(filepath.Join(t.TempDir(), "none"), nil, 10); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
}
