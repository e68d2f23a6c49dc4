package schemas

import (
	"strings"

	"github.com/netsentinel/netsentinel/detect"
)

// TacticRef is one ATT&CK tactic.
type TacticRef struct {
	ID   string // "TA0011"
	Name string // "Command and Control"
	URL  string // "https://attack.mitre.org/tactics/TA0011"
}

// TechniqueRef describes an ATT&CK technique or sub-technique.
type TechniqueRef struct {
	ID   string // "T1071.004" or "T1571"
	Name string // "DNS"
	URL  string
	// ParentID/ParentName/ParentURL are set for a sub-technique
	// (T1071.004 → T1071 "Application Layer Protocol").
	ParentID   string
	ParentName string
	ParentURL  string
	Tactics    []TacticRef
}

// TechniqueLookup resolves an ATT&CK id. The caller supplies it (the lead wires
// detect's generated catalogue in); schemas does not embed ATT&CK itself.
type TechniqueLookup func(id string) (TechniqueRef, bool)

// resolveTechnique returns what is known about id. With no lookup, or an id the
// lookup does not know, it still returns the ids and their attack.mitre.org
// URLs, derived from the id's shape, so an alert never loses its technique.
func resolveTechnique(lookup TechniqueLookup, id string) TechniqueRef {
	id = strings.TrimSpace(id)
	if id == "" {
		return TechniqueRef{}
	}
	if lookup != nil {
		if ref, ok := lookup(id); ok {
			if ref.ID == "" {
				ref.ID = id
			}
			if ref.URL == "" {
				ref.URL = TechniqueURL(ref.ID)
			}
			if p, _, sub := strings.Cut(ref.ID, "."); sub && ref.ParentID == "" {
				ref.ParentID = p
			}
			if ref.ParentID != "" && ref.ParentURL == "" {
				ref.ParentURL = TechniqueURL(ref.ParentID)
			}
			return ref
		}
	}
	ref := TechniqueRef{ID: id, URL: TechniqueURL(id)}
	if p, _, sub := strings.Cut(id, "."); sub {
		ref.ParentID = p
		ref.ParentURL = TechniqueURL(p)
	}
	return ref
}

// TechniqueURL is the attack.mitre.org page of a technique or sub-technique id
// in ATT&CK's own form, without a trailing slash
// (T1071.004 → https://attack.mitre.org/techniques/T1071/004).
func TechniqueURL(id string) string {
	if id == "" {
		return ""
	}
	return "https://attack.mitre.org/techniques/" + strings.ReplaceAll(id, ".", "/")
}

// DetectLookup is a TechniqueLookup over detect's ATT&CK catalogue (generated
// from the ATT&CK reference extract). Deprecated and revoked ids resolve too,
// as they are in the catalogue.
func DetectLookup(id string) (TechniqueRef, bool) {
	t, ok := detect.Technique(id)
	if !ok {
		return TechniqueRef{}, false
	}
	ref := TechniqueRef{ID: t.ID, Name: t.Name, URL: t.URL, ParentID: t.Parent, ParentName: t.ParentName}
	if t.Parent != "" {
		if p, ok := detect.Technique(t.Parent); ok {
			ref.ParentURL = p.URL
			if ref.ParentName == "" {
				ref.ParentName = p.Name
			}
		}
	}
	for _, ta := range detect.TacticsOf(id) {
		ref.Tactics = append(ref.Tactics, TacticRef{ID: ta.ID, Name: ta.Name, URL: ta.URL})
	}
	return ref, true
}

// IsSubtechnique reports whether id names a sub-technique (has a dot).
func IsSubtechnique(id string) bool { return strings.Contains(id, ".") }
