package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func findUp(t *testing.T, rel string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		p := filepath.Join(dir, rel)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	t.Fatalf("%s not found in any parent directory", rel)
	return ""
}

// TestGeneratedFileIsUpToDate regenerates detect/attack_gen.go in memory from
// the reference extract and compares it with the committed file.
func TestGeneratedFileIsUpToDate(t *testing.T) {
	in, err := os.ReadFile(findUp(t, filepath.Join("shared", "reference", "attack-enterprise.json")))
	if err != nil {
		t.Fatal(err)
	}
	want, err := generate(in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(findUp(t, filepath.Join("detect", "attack_gen.go")))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("detect/attack_gen.go is stale: run `go generate ./detect` from the repository root")
	}
	for _, s := range []string{`"T1090.003": {ID: "T1090.003", Name: "Multi-hop Proxy", Parent: "T1090", ParentName: "Proxy", Tactics: []string{"TA0011"}`,
		`"T1043":`, `Deprecated: true`, `RevokedBy: "T1560"`} {
		if !bytes.Contains(want, []byte(s)) {
			t.Errorf("generated code lacks %s", s)
		}
	}
}

func TestGenerateRejectsBadInput(t *testing.T) {
	cases := map[string]string{
		"not json":        `{`,
		"empty":           `{}`,
		"unknown tactic":  `{"attack_version":"1","tactics":[{"id":"TA0001","name":"A","shortname":"a"}],"techniques":[{"id":"T1000","name":"X","tactics":["zzz"]}]}`,
		"bad id":          `{"attack_version":"1","tactics":[{"id":"TA0001","name":"A","shortname":"a"}],"techniques":[{"id":"X1","name":"X","tactics":["a"]}]}`,
		"duplicate":       `{"attack_version":"1","tactics":[{"id":"TA0001","name":"A","shortname":"a"}],"techniques":[{"id":"T1000","name":"X","tactics":["a"]},{"id":"T1000","name":"Y","tactics":["a"]}]}`,
		"bad tactic id":   `{"attack_version":"1","tactics":[{"id":"T1","name":"A","shortname":"a"}],"techniques":[{"id":"T1000","name":"X","tactics":["a"]}]}`,
		"dup short names": `{"attack_version":"1","tactics":[{"id":"TA0001","name":"A","shortname":"a"},{"id":"TA0002","name":"B","shortname":"a"}],"techniques":[{"id":"T1000","name":"X","tactics":["a"]}]}`,
	}
	for name, in := range cases {
		if _, err := generate([]byte(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A minimal valid document generates code with names escaped.
	out, err := generate([]byte(`{"attack_version":"1","tactics":[{"id":"TA0001","name":"A","shortname":"a"}],"techniques":[{"id":"T1000.001","name":"Quote \"q\"","parent":"T1000","parent_name":"P","tactics":["a"]},{"id":"T1000","name":"P","tactics":["a"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	if !strings.Contains(s, `Name: "Quote \"q\""`) || strings.Index(s, `"T1000":`) > strings.Index(s, `"T1000.001":`) {
		t.Errorf("unexpected output:\n%s", s)
	}
}
