package sinks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// A kind registered in its own file is parsed, gets its default buffer and
// the common options, with no other change; a second registration of a
// name panics.
func TestRegistryNewKindNeedsNoOtherEdit(t *testing.T) {
	RegisterKind(KindInfo{Name: "testpipe", Buffer: BufferDisk, Parse: func(target string, _ bool) error {
		if !strings.HasPrefix(target, "//") {
			return errors.New("want testpipe://NAME")
		}
		return nil
	}, Open: func(context.Context, Spec, Env) (Sink, error) { return nil, nil }})
	t.Cleanup(func() { kindsMu.Lock(); delete(kinds, "testpipe"); kindsMu.Unlock() })

	sp, err := ParseSpec("testpipe://x?buffer=memory&min_severity=high")
	if err != nil {
		t.Fatal(err)
	}
	if sp.Kind != "testpipe" || sp.Target != "//x" || sp.Options.Buffer != BufferMemory || sp.Options.Route.MinSeverity != 3 {
		t.Fatalf("ParseSpec = %+v", sp)
	}
	if sp.Options.Buffer = ""; BufferType(sp, BufferConfig{}) != BufferDisk {
		t.Fatalf("default buffer of the new kind = %q, want disk", BufferType(sp, BufferConfig{}))
	}
	if _, err := ParseSpec("testpipe:x"); err == nil || !strings.Contains(err.Error(), "want testpipe://NAME") {
		t.Fatalf("bad target: %v", err)
	}
	if _, err := ParseSpec("nosuch:x"); err == nil || !strings.Contains(err.Error(), "testpipe") {
		t.Fatalf("unknown kind error %v should list the registered kinds", err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("registering a kind twice did not panic")
		}
	}()
	RegisterKind(KindInfo{Name: "testpipe", Parse: func(string, bool) error { return nil }, Open: func(context.Context, Spec, Env) (Sink, error) { return nil, nil }})
}

// pipeSink is the test kind's sink: it appends bodies to its env's writer.
type pipeSink struct {
	name string
	w    io.Writer
}

func (p *pipeSink) Name() string { return p.name }
func (p *pipeSink) Write(_ context.Context, batch []Event) ([]Outcome, error) {
	for i, ev := range batch {
		if _, err := fmt.Fprintf(p.w, "%s %s\n", p.name, ev.Body); err != nil {
			return retryRest(batch, i, err)
		}
	}
	return nil, nil
}
func (p *pipeSink) Close(context.Context) error { return nil }

// A kind registered in a test file is opened through Open with its parsed
// spec and the environment, and the sink it returns delivers: the command
// needs no edit for a new kind. Registering without an opener panics.
func TestRegistryOpensNewKind(t *testing.T) {
	var got Spec
	RegisterKind(KindInfo{Name: "testopen", Parse: func(target string, _ bool) error {
		if target == "" {
			return errors.New("want testopen:NAME")
		}
		return nil
	}, Open: func(_ context.Context, spec Spec, env Env) (Sink, error) {
		got = spec
		if spec.Target == "refuse" {
			return nil, errors.New("refused at open")
		}
		return &pipeSink{name: spec.Target, w: env.Stdout}, nil
	}})
	t.Cleanup(func() { kindsMu.Lock(); delete(kinds, "testopen"); kindsMu.Unlock() })

	sp, err := ParseSpec("testopen:alpha?min_severity=high")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	s, err := Open(context.Background(), sp, Env{Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	if got.Target != "alpha" || got.Options.Route.MinSeverity != 3 {
		t.Fatalf("opener got spec %+v", got)
	}
	if err := countedWrite(t, s, context.Background(), []Event{{ID: "1", Body: []byte(`{}`)}}); err != nil || out.String() != "alpha {}\n" {
		t.Fatalf("opened sink wrote %q, %v", out.String(), err)
	}
	if _, err := Open(context.Background(), Spec{Kind: "testopen", Target: "refuse"}, Env{}); err == nil || err.Error() != "refused at open" {
		t.Fatalf("opener error = %v, want it returned as is", err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("registering a kind without an opener did not panic")
		}
	}()
	RegisterKind(KindInfo{Name: "testnoopen", Parse: func(string, bool) error { return nil }})
}
