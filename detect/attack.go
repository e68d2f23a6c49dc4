package detect

//go:generate go run ../internal/gen/attackgen -in ../../shared/reference/attack-enterprise.json -out attack_gen.go

import "sort"

// TacticInfo is one ATT&CK Enterprise tactic.
type TacticInfo struct {
	ID         string `json:"id"`        // e.g. "TA0011"
	Name       string `json:"name"`      // e.g. "Command and Control"
	Shortname  string `json:"shortname"` // e.g. "command-and-control"
	URL        string `json:"url"`
	Order      int    `json:"-"` // position in the matrix (kill-chain order)
	Deprecated bool   `json:"deprecated,omitempty"`
	Revoked    bool   `json:"revoked,omitempty"`
}

// TechniqueInfo is one ATT&CK Enterprise technique or sub-technique.
type TechniqueInfo struct {
	ID         string   `json:"id"`   // e.g. "T1090.003"
	Name       string   `json:"name"` // e.g. "Multi-hop Proxy"
	Parent     string   `json:"parent,omitempty"`
	ParentName string   `json:"parent_name,omitempty"` // e.g. "Proxy"
	Tactics    []string `json:"tactics"`               // tactic ids, matrix order
	URL        string   `json:"url"`
	Deprecated bool     `json:"deprecated,omitempty"`
	Revoked    bool     `json:"revoked,omitempty"`
	RevokedBy  string   `json:"revoked_by,omitempty"`
}

// Live reports whether the technique is neither deprecated nor revoked.
func (t TechniqueInfo) Live() bool { return !t.Deprecated && !t.Revoked }

// FullName is "Parent: Name" for a sub-technique, Name otherwise (the form
// ATT&CK uses, e.g. "Proxy: Multi-hop Proxy").
func (t TechniqueInfo) FullName() string {
	if t.ParentName != "" {
		return t.ParentName + ": " + t.Name
	}
	return t.Name
}

// Technique returns the catalogue entry for a technique or sub-technique id,
// including deprecated and revoked ones (check Live).
func Technique(id string) (TechniqueInfo, bool) {
	t, ok := attackTechniques[id]
	return t, ok
}

// Tactic returns the catalogue entry for a tactic id ("TA0011").
func Tactic(id string) (TacticInfo, bool) {
	t, ok := attackTactics[id]
	return t, ok
}

// TacticsOf returns the tactics of a technique in matrix order; nil when the
// id is unknown.
func TacticsOf(id string) []TacticInfo {
	t, ok := attackTechniques[id]
	if !ok {
		return nil
	}
	out := make([]TacticInfo, 0, len(t.Tactics))
	for _, ta := range t.Tactics {
		if info, ok := attackTactics[ta]; ok {
			out = append(out, info)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Order < out[j].Order })
	return out
}

// Tactics returns every tactic in matrix order.
func Tactics() []TacticInfo {
	out := make([]TacticInfo, 0, len(attackTactics))
	for _, t := range attackTactics {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Order < out[j].Order })
	return out
}
