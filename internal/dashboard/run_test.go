package dashboard

import (
	"io"
	"os"
	"testing"
)

// The end of the terminal's input (a hangup reads as end of file) calls
// gone once, however often Bubble Tea reads again; data before it passes.
func TestTTYInputEndCallsGoneOnce(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	calls := 0
	in := &ttyInput{File: r, gone: func() { calls++ }}
	if _, err := w.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	b := make([]byte, 8)
	if n, err := in.Read(b); n != 1 || err != nil || calls != 0 {
		t.Fatalf("read = %d, %v, gone called %d times; want the key and no call", n, err, calls)
	}
	for i := 0; i < 3; i++ {
		if n, err := in.Read(b); n != 0 || err != io.EOF {
			t.Fatalf("read at the end = %d, %v; want EOF", n, err)
		}
	}
	if calls != 1 {
		t.Errorf("gone called %d times, want 1", calls)
	}
}
