package detect

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// referencePath finds shared/reference/attack-enterprise.json by walking up
// from the package directory to a directory holding shared/ (the repository
// sits beside shared/).
func referencePath(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 8; i++ {
		p := filepath.Join(dir, "shared", "reference", "attack-enterprise.json")
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	t.Fatal("shared/reference/attack-enterprise.json not found beside the repository (it must be at ../shared)")
	return ""
}

type refDoc struct {
	AttackVersion string `json:"attack_version"`
	Tactics       []struct {
		ID, Name, Shortname string
		Deprecated, Revoked bool
	} `json:"tactics"`
	Techniques []struct {
		ID         string   `json:"id"`
		Name       string   `json:"name"`
		ParentName *string  `json:"parent_name"`
		Tactics    []string `json:"tactics"`
		Deprecated bool     `json:"deprecated"`
		Revoked    bool     `json:"revoked"`
	} `json:"techniques"`
}

func loadReference(t *testing.T) refDoc {
	t.Helper()
	data, err := os.ReadFile(referencePath(t))
	if err != nil {
		t.Fatal(err)
	}
	var doc refDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("reference: %v", err)
	}
	return doc
}

// TestEmittedTechniquesAreLive checks every technique any registered detector
// can emit against the reference extract read now: the id exists, is neither
// deprecated nor revoked, our catalogue has the same name and parent name,
// and every tactic is live with the same id and name.
func TestEmittedTechniquesAreLive(t *testing.T) {
	doc := loadReference(t)
	if doc.AttackVersion != AttackVersion {
		t.Fatalf("catalogue generated from ATT&CK %s, reference is %s: run go generate ./detect", AttackVersion, doc.AttackVersion)
	}
	tacticByShort := map[string]struct {
		ID, Name string
		Live     bool
	}{}
	for _, ta := range doc.Tactics {
		tacticByShort[ta.Shortname] = struct {
			ID, Name string
			Live     bool
		}{ta.ID, ta.Name, !ta.Deprecated && !ta.Revoked}
	}
	refTech := map[string]int{}
	for i, te := range doc.Techniques {
		refTech[te.ID] = i
	}

	rules := 0
	for _, f := range Factories() {
		d, err := f.New(f.DefaultConfig(), Common{HomeNet: DefaultHomeNet()})
		if err != nil {
			t.Fatalf("detector %s with defaults: %v", f.Name, err)
		}
		if len(d.Rules()) == 0 {
			t.Errorf("detector %s declares no rules", f.Name)
		}
		for _, r := range d.Rules() {
			rules++
			i, ok := refTech[r.Technique]
			if !ok {
				t.Errorf("%s/%s: technique %q not in ATT&CK %s", f.Name, r.ID, r.Technique, doc.AttackVersion)
				continue
			}
			ref := doc.Techniques[i]
			if ref.Deprecated || ref.Revoked {
				t.Errorf("%s/%s: technique %s %q is deprecated or revoked", f.Name, r.ID, ref.ID, ref.Name)
			}
			info, ok := Technique(r.Technique)
			if !ok || !info.Live() || info.Name != ref.Name {
				t.Errorf("%s/%s: catalogue entry %+v disagrees with reference name %q", f.Name, r.ID, info, ref.Name)
			}
			if ref.ParentName != nil && info.ParentName != *ref.ParentName {
				t.Errorf("%s: parent name %q, reference %q", r.Technique, info.ParentName, *ref.ParentName)
			}
			tactics := TacticsOf(r.Technique)
			if len(tactics) != len(ref.Tactics) || len(tactics) == 0 {
				t.Errorf("%s: %d tactics, reference %d", r.Technique, len(tactics), len(ref.Tactics))
			}
			want := map[string]string{}
			for _, sn := range ref.Tactics {
				ta := tacticByShort[sn]
				if !ta.Live {
					t.Errorf("%s: tactic %s is not live", r.Technique, ta.ID)
				}
				want[ta.ID] = ta.Name
			}
			for _, ta := range tactics {
				if want[ta.ID] != ta.Name {
					t.Errorf("%s: tactic %s %q, reference %q", r.Technique, ta.ID, ta.Name, want[ta.ID])
				}
			}
		}
	}
	if rules == 0 {
		t.Fatal("no rules registered")
	}
}

func TestCatalogueLookups(t *testing.T) {
	doc := loadReference(t)
	if len(attackTechniques) != len(doc.Techniques) || len(attackTactics) != len(doc.Tactics) {
		t.Fatalf("catalogue has %d techniques / %d tactics, reference %d / %d",
			len(attackTechniques), len(attackTactics), len(doc.Techniques), len(doc.Tactics))
	}
	tor, ok := Technique("T1090.003")
	if !ok || tor.Name != "Multi-hop Proxy" || tor.Parent != "T1090" || tor.FullName() != "Proxy: Multi-hop Proxy" ||
		tor.URL != "https://attack.mitre.org/techniques/T1090/003" || !tor.Live() {
		t.Errorf("T1090.003 = %+v", tor)
	}
	if tt := TacticsOf("T1571"); len(tt) != 1 || tt[0].ID != "TA0011" || tt[0].Name != "Command and Control" {
		t.Errorf("TacticsOf(T1571) = %+v", tt)
	}
	// Two tactics, in matrix order (Credential Access before Collection).
	if tt := TacticsOf("T1557.002"); len(tt) != 2 || tt[0].ID != "TA0006" || tt[1].ID != "TA0009" {
		t.Errorf("TacticsOf(T1557.002) = %+v", tt)
	}
	if d, ok := Technique("T1043"); !ok || !d.Deprecated || d.Live() {
		t.Errorf("T1043 must be present and deprecated: %+v", d)
	}
	if r, ok := Technique("T1002"); !ok || !r.Revoked || r.RevokedBy != "T1560" {
		t.Errorf("T1002 must be revoked by T1560: %+v", r)
	}
	if _, ok := Technique("T9999"); ok {
		t.Error("T9999 found")
	}
	if TacticsOf("T9999") != nil {
		t.Error("TacticsOf unknown id must be nil")
	}
	all := Tactics()
	if len(all) != 14 || all[0].ID != "TA0043" || all[13].ID != "TA0040" {
		t.Errorf("Tactics() order: first %s last %s (%d)", all[0].ID, all[len(all)-1].ID, len(all))
	}
}

// Every rule says what it sees as root and as an unprivileged user (issue
// 10: `netsentinel rules` prints both; an empty line would read as "sees
// nothing").
func TestEveryRuleStatesWhatItSeesPerMode(t *testing.T) {
	for _, f := range Factories() {
		d, err := f.New(f.DefaultConfig(), Common{HomeNet: DefaultHomeNet()})
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		for _, r := range d.Rules() {
			if strings.TrimSpace(r.Sees.Privileged) == "" || strings.TrimSpace(r.Sees.Unprivileged) == "" {
				t.Errorf("rule %s: Sees %+v, want both modes described", r.ID, r.Sees)
			}
		}
		closeDetector(d)
	}
}
