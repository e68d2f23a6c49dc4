package sinks

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
)

// The stdout sink, driven by a runner with default settings, delivers each
// alert to a pipe reader before the next one is even published.
func TestStdoutFlushesPerEventThroughPipe(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	r := NewRunner(NewStdout(pw), RunnerConfig{}, nil, zap.NewNop())
	defer r.Close(context.Background())
	br := bufio.NewReader(pr)
	for i := 1; i <= 3; i++ {
		e := ev(i)
		r.Publish(e)
		if err := pr.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		line, err := br.ReadBytes('\n')
		if err != nil {
			t.Fatalf("line %d not readable before line %d is published: %v", i, i+1, err)
		}
		if want := string(e.Body) + "\n"; string(line) != want {
			t.Fatalf("line %d = %q, want %q", i, line, want)
		}
	}
	waitFor(t, "3 counted as sent", 5*time.Second, func() bool { return r.Stats().Sent == 3 })
}

func TestStdoutBrokenPipeIsPermanent(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	pr.Close() // `netsentinel | head` after head exits
	err = countedWrite(t, NewStdout(pw), context.Background(), []Event{ev(1), ev(2)})
	if !errors.Is(err, ErrPermanent) || !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("err = %v, want permanent EPIPE", err)
	}
	// Through a runner: counted, not retried, and the runner goes on.
	r := NewRunner(NewStdout(pw), fastCfg(), nil, zap.NewNop())
	r.Publish(ev(1))
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.DroppedBy[DropPermanent] != 1 || st.Retried != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

// failAfter accepts n writes then fails.
type failAfter struct {
	n   int
	buf bytes.Buffer
}

func (w *failAfter) Write(p []byte) (int, error) {
	if w.n == 0 {
		return 0, syscall.EAGAIN
	}
	w.n--
	return w.buf.Write(p)
}

func TestStdoutErrorReturnsUnwrittenEvents(t *testing.T) {
	w := &failAfter{n: 2}
	batch := []Event{ev(1), ev(2), ev(3), ev(4)}
	err := countedWrite(t, NewStdout(w), context.Background(), batch)
	var re *RetryableError
	if !errors.As(err, &re) || len(re.Remaining) != 2 || re.Remaining[0].ID != "e3" {
		t.Fatalf("err = %v, want the last 2 events remaining", err)
	}
	if got := bytes.Count(w.buf.Bytes(), []byte("\n")); got != 2 {
		t.Fatalf("%d lines written, want 2", got)
	}
}

func TestStdoutFlushesBufferedWriterPerEvent(t *testing.T) {
	var out bytes.Buffer
	bw := bufio.NewWriterSize(&out, 64<<10)
	s := NewStdout(bw)
	if err := countedWrite(t, s, context.Background(), []Event{ev(1)}); err != nil {
		t.Fatal(err)
	}
	if out.String() != string(ev(1).Body)+"\n" {
		t.Fatalf("underlying writer has %q after one event: not flushed", out.String())
	}
}

func TestAppendLineKeepsOneRecordPerLine(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"a":1}`, "{\"a\":1}\n"},
		{"{\n  \"a\": 1,\n  \"b\": \"x\"\n}", "{\"a\":1,\"b\":\"x\"}\n"},
		{"not json\nsecond\r\nthird", "not json second  third\n"},
		{"", "\n"},
	}
	for _, c := range cases {
		got := string(appendLine(nil, []byte(c.in)))
		if got != c.want {
			t.Errorf("appendLine(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	// Pretty fixture from testdata stays one valid JSON line.
	pretty, err := os.ReadFile("testdata/pretty_alert.json")
	if err != nil {
		t.Fatal(err)
	}
	line := appendLine([]byte("prefix"), pretty)[len("prefix"):]
	if bytes.Count(line, []byte("\n")) != 1 || !json.Valid(line) {
		t.Fatalf("pretty fixture not one JSON line: %q", line)
	}
}
