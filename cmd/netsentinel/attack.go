package main

import (
	"github.com/netsentinel/netsentinel/detect"
	"github.com/netsentinel/netsentinel/schemas"
)

// techniqueLookup adapts detect's generated ATT&CK catalogue to the
// formatters, which fill technique/tactic names and references from it.
func techniqueLookup(id string) (schemas.TechniqueRef, bool) {
	t, ok := detect.Technique(id)
	if !ok {
		return schemas.TechniqueRef{}, false
	}
	ref := schemas.TechniqueRef{ID: t.ID, Name: t.Name, URL: t.URL}
	if t.Parent != "" {
		ref.ParentID, ref.ParentName = t.Parent, t.ParentName
		if p, ok := detect.Technique(t.Parent); ok {
			ref.ParentURL = p.URL
		}
	}
	for _, ta := range detect.TacticsOf(id) {
		ref.Tactics = append(ref.Tactics, schemas.TacticRef{ID: ta.ID, Name: ta.Name, URL: ta.URL})
	}
	return ref, true
}
