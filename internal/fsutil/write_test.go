package fsutil

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "report.json")
	if err := WriteFileAtomic(p, []byte("first")); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(p, []byte("second")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "second" {
		t.Fatalf("content %q, %v", b, err)
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v; want 0600", st.Mode().Perm(), err)
	}
	assertOnly(t, dir, "report.json")

	if err := WriteFileAtomic(filepath.Join(dir, "missing", "x.json"), nil); err == nil || !strings.Contains(err.Error(), "missing/x.json") {
		t.Errorf("missing directory: %v", err)
	}
	if err := WriteFileAtomic(dir+"/", nil); err == nil || !strings.Contains(err.Error(), "not a file name") {
		t.Errorf("directory as path: %v", err)
	}
}

// roDirEnv carries the read-only directory into the re-executed test binary.
const roDirEnv = "FSUTIL_TEST_RO_DIR"

// TestWriteFileAtomicReadOnlyDir: a write into a directory that cannot be
// written gives an error naming the path and the cause, leaves the old file as
// it was and no temporary file behind. Root bypasses permission bits, so as
// root the directory is made read-only by a read-only bind mount in a private
// mount namespace (unshare), where this test re-runs itself to write.
func TestWriteFileAtomicReadOnlyDir(t *testing.T) {
	if dir := os.Getenv(roDirEnv); dir != "" {
		err := WriteFileAtomic(filepath.Join(dir, "report.json"), []byte("new"))
		os.Stdout.WriteString("\nWRITE-ERROR: " + errString(err) + "\n")
		return
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "report.json")
	if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	var msg, cause string
	if os.Geteuid() == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "unshare", "--mount", "--propagation", "private", "sh", "-c",
			`mount --bind -o ro "$1" "$1" && exec "$2" -test.run '^TestWriteFileAtomicReadOnlyDir$'`,
			"sh", dir, os.Args[0])
		cmd.Env = append(os.Environ(), roDirEnv+"="+dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("read-only bind mount in a mount namespace: %v\n%s", err, out)
		}
		_, after, ok := bytes.Cut(out, []byte("\nWRITE-ERROR: "))
		if !ok {
			t.Fatalf("child printed no result:\n%s", out)
		}
		msg, _, _ = strings.Cut(string(after), "\n")
		cause = "read-only file system"
	} else {
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o700) })
		msg = errString(WriteFileAtomic(p, []byte("new")))
		cause = "permission denied"
	}
	t.Logf("error: %s", msg)
	if !strings.HasPrefix(msg, "write "+p+": ") || !strings.Contains(msg, cause) {
		t.Errorf("error %q, want it to name %s and say %q", msg, p, cause)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "old" {
		t.Errorf("old file now %q, %v", b, err)
	}
	assertOnly(t, dir, "report.json")
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// assertOnly fails unless dir holds exactly the named entries (no temporary
// files left behind).
func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Errorf("%s holds %v, want %v", dir, got, names)
	}
}
