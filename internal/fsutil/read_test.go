package fsutil

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadCapped(t *testing.T) {
	data, err := ReadCapped(strings.NewReader("0123456789"), "ten", 10)
	if err != nil || string(data) != "0123456789" {
		t.Fatalf("exactly the cap: %q, %v", data, err)
	}
	// One byte past the cap: the first limit bytes and an error saying so.
	data, err = ReadCapped(strings.NewReader("0123456789X"), "relay list download", 10)
	if !errors.Is(err, ErrTooLarge) || string(data) != "0123456789" {
		t.Fatalf("past the cap: %q, %v", data, err)
	}
	if want := "read relay list download: larger than the read cap of 10 bytes"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	boom := errors.New("boom")
	if _, err := ReadCapped(iotest.ErrReader(boom), "src", 10); !errors.Is(err, boom) || !strings.Contains(err.Error(), "read src") {
		t.Errorf("reader error: %v", err)
	}
}

func TestReadFileCapped(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(strings.Repeat("a", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	data, err := ReadFileCapped(p, 100)
	if err != nil || len(data) != 100 {
		t.Errorf("exact size: %d, %v", len(data), err)
	}
	data, err = ReadFileCapped(p, 40)
	if !errors.Is(err, ErrTooLarge) || len(data) != 40 || !strings.Contains(err.Error(), p) {
		t.Errorf("past the cap: %d, %v", len(data), err)
	}
	if _, err := ReadFileCapped(filepath.Join(t.TempDir(), "none"), 10); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	// procfs files report size 0; the cap, not stat, bounds the read.
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skipf("no procfs: %v", err)
	}
	data, err = ReadFileCapped("/proc/self/status", 64<<10)
	if err != nil || !strings.Contains(string(data), "Pid:") {
		t.Errorf("procfs read: %d bytes, %v", len(data), err)
	}
}

func TestReadFileCappedBuf(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	content := strings.Repeat("abcdefgh", 2000) // 16000 bytes: grows a small buffer
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	data, err := ReadFileCappedBuf(p, make([]byte, 0, 16), 1<<20)
	if err != nil || string(data) != content {
		t.Errorf("full read: %d bytes, %v", len(data), err)
	}
	data, err = ReadFileCappedBuf(p, nil, 100)
	if !errors.Is(err, ErrTooLarge) || string(data) != content[:100] {
		t.Errorf("past the cap: %d bytes, %v", len(data), err)
	}
	data, err = ReadFileCappedBuf(p, nil, len(content))
	if err != nil || len(data) != len(content) {
		t.Errorf("exactly the cap: %d bytes, %v", len(data), err)
	}
	if _, err := ReadFileCappedBuf(filepath.Join(t.TempDir(), "none"), nil, 10); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
}
