package collector

import (
	"os"
	"path/filepath"
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

// requireProcFS skips tests of the real procfs where there is none.
func requireProcFS(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(ProcRootFromEnv(""), "net", "snmp")); err != nil {
		t.Skipf("no procfs: %v", err)
	}
}
