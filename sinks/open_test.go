package sinks

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
)

func TestParseSpec(t *testing.T) {
	data, err := os.ReadFile("testdata/specs.txt")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	n := 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Split(line, "|")
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		// The spec column keeps its inner spaces trimmed only at the ends;
		// ParseSpec trims too, so that is the same input.
		n++
		switch f[0] {
		case "ok":
			got, err := ParseSpec(f[1])
			if err != nil {
				t.Errorf("ParseSpec(%q): %v", f[1], err)
				continue
			}
			if got.Kind != f[2] || got.Target != f[3] {
				t.Errorf("ParseSpec(%q) = %+v, want kind %q target %q", f[1], got, f[2], f[3])
			}
			if again, err := ParseSpec(got.String()); err != nil || again.Kind != got.Kind || again.Target != got.Target {
				t.Errorf("round trip of %q: %+v, %v", got.String(), again, err)
			}
		case "err":
			_, err := ParseSpec(f[1])
			if err == nil {
				t.Errorf("ParseSpec(%q) accepted", f[1])
				continue
			}
			if !errors.Is(err, ErrBadSpec) || !strings.Contains(err.Error(), f[2]) || !strings.Contains(err.Error(), `"`+f[1]+`"`) {
				t.Errorf("ParseSpec(%q) error %q: want ErrBadSpec naming the spec and %q", f[1], err, f[2])
			}
		default:
			t.Fatalf("bad fixture line %q", line)
		}
	}
	if n < 20 {
		t.Fatalf("only %d cases read", n)
	}
}

// Options common to every kind come off the spec before the kind parses
// its target; a '?' that is not an option list stays in the target.
func TestParseSpecOptionsAndBufferType(t *testing.T) {
	for _, c := range []struct {
		spec, target, buffer, bufferType string
	}{
		{"elasticsearch:https://es:9200", "https://es:9200", "", BufferDisk},
		{"elasticsearch:https://es:9200?buffer=memory", "https://es:9200", BufferMemory, BufferMemory},
		{"kafka:k1:9092/alerts", "k1:9092/alerts", "", BufferDisk},
		{"file:/var/log/a.ndjson", "/var/log/a.ndjson", "", BufferMemory},
		{"file:/var/log/a.ndjson?buffer=disk", "/var/log/a.ndjson", BufferDisk, BufferDisk},
		{"file:/tmp/what?.ndjson", "/tmp/what?.ndjson", "", BufferMemory},
		{"stdout?buffer=disk", "", BufferDisk, BufferDisk},
		{"stdout", "", "", BufferMemory},
		{"syslog:tls://siem:6514", "tls://siem:6514", "", BufferDisk},
		{"syslog:tcp://siem?format=cef&buffer=memory", "tcp://siem?format=cef", BufferMemory, BufferMemory},
	} {
		sp, err := ParseSpec(c.spec)
		if err != nil {
			t.Errorf("ParseSpec(%q): %v", c.spec, err)
			continue
		}
		if sp.Target != c.target || sp.Options.Buffer != c.buffer {
			t.Errorf("ParseSpec(%q) = %+v, want target %q buffer %q", c.spec, sp, c.target, c.buffer)
		}
		if got := BufferType(sp, BufferConfig{}); got != c.bufferType {
			t.Errorf("BufferType(%q) = %q, want %q", c.spec, got, c.bufferType)
		}
	}
	// The config's buffer.type applies to every sink but stdout.
	es, _ := ParseSpec("elasticsearch:https://es:9200")
	out, _ := ParseSpec("stdout")
	if BufferType(es, BufferConfig{Type: BufferMemory}) != BufferMemory || BufferType(out, BufferConfig{Type: BufferDisk}) != BufferMemory {
		t.Error("buffer.type not applied to elasticsearch, or applied to stdout")
	}
	for spec, want := range map[string]string{
		"file:/a.ndjson?buffer=tape":       "buffer=\"tape\": want memory or disk",
		"elasticsearch:https://es?bufer=x": "unknown sink option \"bufer\"",
	} {
		if _, err := ParseSpec(spec); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseSpec(%q) = %v, want an error saying %s", spec, err, want)
		}
	}
	if err := (BufferConfig{Type: "tape"}).Validate(); err == nil || !strings.Contains(err.Error(), "buffer.type") {
		t.Errorf("BufferConfig.Validate(tape) = %v", err)
	}
}

func TestParseSpecNeverEchoesPasswords(t *testing.T) {
	_, err := ParseSpec("elasticsearch:ftp://elastic:s3cret@host:9200")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("error %v leaks the password", err)
	}
	spec, err := ParseSpec("elasticsearch:https://elastic:s3cret@host:9200")
	if err != nil || spec.Kind != KindElasticsearch {
		t.Fatalf("credentials in URL: %+v %v", spec, err)
	}
}

func TestParseKafkaTarget(t *testing.T) {
	brokers, topic, err := ParseKafkaTarget("b1:9092, b2:9093/alerts")
	if err != nil || topic != "alerts" || len(brokers) != 2 || brokers[1] != "b2:9093" {
		t.Fatalf("got %v %q %v", brokers, topic, err)
	}
}

// Open builds stdout and file sinks from their registrations: the stdout
// sink writes to env.Stdout, the file sink takes its rotation from
// env.File and its path from the spec; an unregistered kind is a spec error.
func TestOpenLocalKinds(t *testing.T) {
	var out bytes.Buffer
	s, err := Open(context.Background(), Spec{Kind: KindStdout}, Env{Stdout: &out})
	if err != nil || s.Name() != "stdout" {
		t.Fatalf("stdout: %v %v", s, err)
	}
	if err := countedWrite(t, s, context.Background(), []Event{{ID: "1", Body: []byte(`{"a":1}`)}}); err != nil || out.String() != "{\"a\":1}\n" {
		t.Fatalf("stdout wrote %q, %v", out.String(), err)
	}
	path := filepath.Join(t.TempDir(), "a.ndjson")
	s, err = Open(context.Background(), Spec{Kind: KindFile, Target: path}, Env{File: FileConfig{MaxFiles: 3}, Log: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	f := s.(*File)
	if f.Path() != path || f.maxFiles != 3 || f.maxBytes != 10<<20 {
		t.Fatalf("file sink %+v", f)
	}
	if _, err := Open(context.Background(), Spec{Kind: "nosuch", Target: "x"}, Env{}); !errors.Is(err, ErrBadSpec) {
		t.Fatalf("unknown kind: %v, want ErrBadSpec", err)
	}
}
