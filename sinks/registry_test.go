package sinks

import (
	"errors"
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
	}})
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
	RegisterKind(KindInfo{Name: "testpipe", Parse: func(string, bool) error { return nil }})
}
