package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
)

// readLines reads path and checks every line is a whole JSON object.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) == 0 {
		return nil
	}
	if data[len(data)-1] != '\n' {
		t.Fatalf("%s does not end with a newline: a line was split", path)
	}
	var ids []string
	for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		var doc struct {
			Event struct{ ID string } `json:"event"`
		}
		if err := json.Unmarshal([]byte(l), &doc); err != nil {
			t.Fatalf("%s: broken line %q: %v", path, l, err)
		}
		ids = append(ids, doc.Event.ID)
	}
	return ids
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func newTestFile(t *testing.T, cfg FileConfig, maxBytes int64) *File {
	t.Helper()
	f, err := NewFile(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if maxBytes > 0 {
		f.maxBytes = maxBytes // tests rotate at bytes, not MiB
	}
	t.Cleanup(func() { f.Close(context.Background()) })
	return f
}

func TestFileRotationKeepsCountModesAndWholeLines(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "dir")
	path := filepath.Join(dir, "alerts.ndjson")
	const maxBytes, maxFiles, n = 200, 3, 100
	f := newTestFile(t, FileConfig{Path: path, MaxFiles: maxFiles}, maxBytes)
	for i := 0; i < n; i += 7 { // batches of various sizes
		var batch []Event
		for j := i; j < i+7 && j < n; j++ {
			batch = append(batch, ev(j))
		}
		if err := countedWrite(t, f, context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	if m := mode(t, dir); m != 0o700 {
		t.Fatalf("created directory mode %o, want 0700", m)
	}
	files := []string{path + ".2", path + ".1", path} // oldest first
	var all []string
	for _, p := range files {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatalf("expected %s: %v", p, err)
		}
		if st.Size() > maxBytes {
			t.Fatalf("%s is %d bytes > limit %d", p, st.Size(), maxBytes)
		}
		if m := st.Mode().Perm(); m != 0o600 {
			t.Fatalf("%s mode %o, want 0600", p, m)
		}
		all = append(all, readLines(t, p)...)
	}
	if _, err := os.Stat(path + ".3"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s.3 exists: more than MaxFiles=%d files kept", path, maxFiles)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != maxFiles {
		t.Fatalf("%d files in %s, want %d", len(entries), dir, maxFiles)
	}
	// The kept files hold the newest events, contiguous, in order.
	if len(all) == 0 || all[len(all)-1] != fmt.Sprintf("e%d", n-1) {
		t.Fatalf("newest event missing: %v", all)
	}
	first := n - len(all)
	for i, id := range all {
		if id != fmt.Sprintf("e%d", first+i) {
			t.Fatalf("kept events not contiguous at %d: %v", i, all)
		}
	}
}

func TestFileLineLargerThanLimitGetsItsOwnFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.ndjson")
	f := newTestFile(t, FileConfig{Path: path, MaxFiles: 4}, 100)
	big := Event{ID: "big", Body: []byte(`{"event":{"id":"big"},"pad":"` + strings.Repeat("x", 300) + `"}`)}
	if err := countedWrite(t, f, context.Background(), []Event{ev(1), big, ev(2)}); err != nil {
		t.Fatal(err)
	}
	got := [][]string{readLines(t, path+".2"), readLines(t, path+".1"), readLines(t, path)}
	if fmt.Sprint(got) != "[[e1] [big] [e2]]" {
		t.Fatalf("files hold %v", got)
	}
}

func TestFileAppendsAndTightensMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.ndjson")
	if err := os.WriteFile(path, append(ev(0).Body, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	f := newTestFile(t, FileConfig{Path: path}, 0)
	if f.maxBytes != 10<<20 || f.maxFiles != 7 {
		t.Fatalf("defaults: %d bytes, %d files", f.maxBytes, f.maxFiles)
	}
	if err := countedWrite(t, f, context.Background(), []Event{ev(1)}); err != nil {
		t.Fatal(err)
	}
	if got := readLines(t, path); fmt.Sprint(got) != "[e0 e1]" {
		t.Fatalf("file holds %v, want the old line then the new", got)
	}
	if m := mode(t, path); m != 0o600 {
		t.Fatalf("mode %o, want 0600", m)
	}
}

func TestFileReopenAfterExternalRename(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.ndjson")
	f := newTestFile(t, FileConfig{Path: path}, 0)
	ctx := context.Background()
	if err := countedWrite(t, f, ctx, []Event{ev(1)}); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, path+".logrotated"); err != nil { // logrotate
		t.Fatal(err)
	}
	if err := countedWrite(t, f, ctx, []Event{ev(2)}); err != nil { // still the old inode
		t.Fatal(err)
	}
	if err := f.Reopen(); err != nil { // SIGHUP
		t.Fatal(err)
	}
	if err := countedWrite(t, f, ctx, []Event{ev(3)}); err != nil {
		t.Fatal(err)
	}
	if got := readLines(t, path+".logrotated"); fmt.Sprint(got) != "[e1 e2]" {
		t.Fatalf("moved file holds %v", got)
	}
	if got := readLines(t, path); fmt.Sprint(got) != "[e3]" {
		t.Fatalf("new file holds %v", got)
	}
	if m := mode(t, path); m != 0o600 {
		t.Fatalf("reopened file mode %o", m)
	}
}

func TestFileReopenFailureKeepsWriting(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "a.ndjson")
	f := newTestFile(t, FileConfig{Path: path}, 0)
	if err := os.Rename(path, filepath.Join(dir, "moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "sub")); err != nil {
		t.Fatal(err)
	}
	if err := f.Reopen(); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Reopen into a missing directory: %v", err)
	}
	if err := countedWrite(t, f, context.Background(), []Event{ev(1)}); err != nil {
		t.Fatalf("write after failed reopen: %v", err)
	}
	if got := readLines(t, filepath.Join(dir, "moved")); fmt.Sprint(got) != "[e1]" {
		t.Fatalf("old file holds %v", got)
	}
}

func TestFileWriteAfterCloseIsPermanent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.ndjson")
	f := newTestFile(t, FileConfig{Path: path}, 0)
	if err := f.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	err := countedWrite(t, f, context.Background(), []Event{ev(1)})
	if !errors.Is(err, ErrPermanent) {
		t.Fatalf("write after close: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}

func TestFileConfigValidate(t *testing.T) {
	if _, err := NewFile(FileConfig{}, nil); err == nil || !strings.Contains(err.Error(), "file.path") {
		t.Fatalf("empty path: %v", err)
	}
	if err := (FileConfig{Path: "x", MaxFiles: -1}).Validate(); err == nil || !strings.Contains(err.Error(), "max_files") {
		t.Fatalf("negative max_files: %v", err)
	}
}

// TestFileDiskFull fills a 64 KiB tmpfs: the write fails with an error naming
// the file, the file keeps whole lines only, the runner counts the failure,
// and writing resumes once space is freed.
func TestFileDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=64k,mode=0700"); err != nil {
		t.Skipf("cannot mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	// A filler file we can delete to free space later.
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, bytes.Repeat([]byte("x"), 16<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(mnt, "alerts.ndjson")
	f := newTestFile(t, FileConfig{Path: path, MaxFiles: 1}, 0)
	pad := strings.Repeat("y", 1000)
	body := func(i int) Event {
		return Event{ID: fmt.Sprint(i), Body: []byte(fmt.Sprintf(`{"event":{"id":"e%d"},"pad":"%s"}`, i, pad))}
	}
	var werr error
	written := 0
	for i := 0; i < 1000 && werr == nil; i++ {
		if werr = countedWrite(t, f, context.Background(), []Event{body(i)}); werr == nil {
			written++
		}
	}
	if werr == nil {
		t.Fatal("64 KiB tmpfs never filled up")
	}
	if !errors.Is(werr, syscall.ENOSPC) || !strings.Contains(werr.Error(), path) || !strings.Contains(werr.Error(), "disk full") {
		t.Fatalf("error %q: want ENOSPC naming %s", werr, path)
	}
	var re *RetryableError
	if !errors.As(werr, &re) || len(re.Remaining) != 1 {
		t.Fatalf("want a retryable error with the unwritten event, got %v", werr)
	}
	if got := readLines(t, path); len(got) != written {
		t.Fatalf("file holds %d whole lines, want %d", len(got), written)
	}

	// Through the runner: counted as failed and dropped after retries, no crash.
	cfg := fastCfg()
	cfg.MaxRetries = 1
	r := NewRunner(f, cfg, nil, zap.NewNop())
	r.Publish(body(9999))
	waitFor(t, "drop counted", 5*time.Second, func() bool { return r.Stats().DroppedBy[DropRetriesExhausted] == 1 })
	if st := r.Stats(); st.Failed != 2 {
		t.Fatalf("stats = %+v", st)
	}

	// Space comes back: writing resumes.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	r.Publish(body(10000))
	waitFor(t, "write after space freed", 5*time.Second, func() bool { return r.Stats().Sent == 1 })
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := readLines(t, path)
	if got[len(got)-1] != "e10000" || len(got) != written+1 {
		t.Fatalf("after freeing space the file holds %d lines ending %s", len(got), got[len(got)-1])
	}
}
