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
			if again, err := ParseSpec(got.String()); err != nil || again != got {
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

func TestOpenLocal(t *testing.T) {
	var out bytes.Buffer
	s, err := OpenLocal(Spec{Kind: KindStdout}, &out, FileConfig{}, zap.NewNop())
	if err != nil || s.Name() != "stdout" {
		t.Fatalf("stdout: %v %v", s, err)
	}
	path := filepath.Join(t.TempDir(), "a.ndjson")
	s, err = OpenLocal(Spec{Kind: KindFile, Target: path}, nil, FileConfig{MaxFiles: 3}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	f := s.(*File)
	if f.Path() != path || f.maxFiles != 3 || f.maxBytes != 10<<20 {
		t.Fatalf("file sink %+v", f)
	}
	if _, err := OpenLocal(Spec{Kind: KindKafka, Target: "b:1/t"}, nil, FileConfig{}, nil); err == nil {
		t.Fatal("kafka opened as local")
	}
}
