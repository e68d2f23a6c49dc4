package schemas

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// ecsRef is ../shared/reference/ecs-fields.json.
type ecsRef struct {
	Version       string                 `json:"ecs_version"`
	CategoryTypes map[string][]string    `json:"event_category_expected_types"`
	Fields        map[string]ecsRefField `json:"fields"`
}

type ecsRefField struct {
	Type           string   `json:"type"`
	Normalize      []string `json:"normalize"`
	AllowedValues  []string `json:"allowed_values"`
	ExpectedValues []string `json:"expected_values"`
}

func (f ecsRefField) isArray() bool { return slices.Contains(f.Normalize, "array") }

func loadECSRef(t testing.TB) *ecsRef {
	t.Helper()
	b, err := os.ReadFile(refPath(t, "ecs-fields.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r ecsRef
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("ecs-fields.json: %v", err)
	}
	return &r
}

// customNamespace is the only place for fields ECS lacks.
const customNamespace = "netsentinel"

// opaqueObjects are emitted as objects whose inner keys are data, not fields
// (mapped as flattened).
// labels is ECS's object of keyword values keyed by the user.
var opaqueObjects = map[string]bool{"netsentinel.evidence": true, "labels": true}

// leaf is one flattened field of a document.
type leaf struct {
	path  string
	array bool
	vals  []any
}

func flatten(prefix string, m map[string]any, out *[]leaf) {
	for k, v := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		switch x := v.(type) {
		case map[string]any:
			if opaqueObjects[p] {
				*out = append(*out, leaf{path: p, vals: []any{x}})
				continue
			}
			flatten(p, x, out)
		case []any:
			*out = append(*out, leaf{path: p, array: true, vals: x})
		default:
			*out = append(*out, leaf{path: p, vals: []any{x}})
		}
	}
}

// compatible reports whether JSON value v can be indexed as ECS type typ.
func compatible(typ string, v any) error {
	switch typ {
	case "keyword", "constant_keyword", "wildcard", "match_only_text", "text":
		if _, ok := v.(string); !ok {
			return fmt.Errorf("want a string for %s, got %T", typ, v)
		}
	case "long", "integer", "short", "byte":
		n, ok := v.(json.Number)
		if !ok {
			return fmt.Errorf("want an integer for %s, got %T", typ, v)
		}
		if _, err := n.Int64(); err != nil {
			return fmt.Errorf("want an integer for %s, got %s", typ, n)
		}
	case "float", "half_float", "scaled_float", "double":
		n, ok := v.(json.Number)
		if !ok {
			return fmt.Errorf("want a number for %s, got %T", typ, v)
		}
		if _, err := n.Float64(); err != nil {
			return fmt.Errorf("bad number %s", n)
		}
	case "date":
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("want an RFC 3339 string for date, got %T", v)
		}
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			return fmt.Errorf("date %q is not RFC 3339: %v", s, err)
		}
	case "ip":
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("want an IP string, got %T", v)
		}
		if _, err := netip.ParseAddr(s); err != nil {
			return fmt.Errorf("ip %q: %v", s, err)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("want a boolean, got %T", v)
		}
	case "object", "flattened":
		if _, ok := v.(map[string]any); !ok {
			return fmt.Errorf("want an object for %s, got %T", typ, v)
		}
	default:
		return fmt.Errorf("ECS type %s is not expected in our documents", typ)
	}
	return nil
}

// checkECSDoc returns every way doc breaks the ECS reference.
func checkECSDoc(ref *ecsRef, doc map[string]any) []string {
	var errs []string
	var leaves []leaf
	flatten("", doc, &leaves)
	for _, l := range leaves {
		if strings.HasPrefix(l.path, customNamespace+".") {
			if _, clash := ref.Fields[l.path]; clash {
				errs = append(errs, l.path+": custom field collides with ECS")
			}
			continue
		}
		f, ok := ref.Fields[l.path]
		if !ok {
			errs = append(errs, l.path+": not an ECS field (custom fields belong under netsentinel.*)")
			continue
		}
		if f.isArray() && !l.array {
			errs = append(errs, l.path+": ECS normalizes it to an array, emitted as a scalar")
		}
		if !f.isArray() && l.array {
			errs = append(errs, l.path+": emitted as an array, ECS expects a single value")
		}
		for _, v := range l.vals {
			if err := compatible(f.Type, v); err != nil {
				errs = append(errs, l.path+": "+err.Error())
				continue
			}
			if s, ok := v.(string); ok {
				if len(f.AllowedValues) > 0 && !slices.Contains(f.AllowedValues, s) {
					errs = append(errs, fmt.Sprintf("%s: %q not in allowed values %v", l.path, s, f.AllowedValues))
				}
				if len(f.ExpectedValues) > 0 && !slices.Contains(f.ExpectedValues, s) {
					errs = append(errs, fmt.Sprintf("%s: %q not in expected values %v", l.path, s, f.ExpectedValues))
				}
			}
		}
	}
	if labels, ok := doc["labels"].(map[string]any); ok {
		for k, v := range labels {
			if _, ok := v.(string); !ok || k == "" || strings.Contains(k, ".") {
				errs = append(errs, fmt.Sprintf("labels.%s: ECS labels are keyword values under dot-free keys, got %T", k, v))
			}
		}
	}
	if get(doc, "event.kind") == "signal" {
		errs = append(errs, "event.kind: signal is reserved for Kibana")
	}
	// event.type must fit event.category: each type is expected by some
	// category, and each category gets at least one of its types.
	cats, types := strs(get(doc, "event.category")), strs(get(doc, "event.type"))
	allowed := map[string]bool{}
	for _, c := range cats {
		exp := ref.CategoryTypes[c]
		hit := false
		for _, ty := range types {
			allowed[ty] = allowed[ty] || slices.Contains(exp, ty)
			hit = hit || slices.Contains(exp, ty)
		}
		if !hit {
			errs = append(errs, fmt.Sprintf("event.category %s: none of event.type %v is among its expected types %v", c, types, exp))
		}
	}
	for _, ty := range types {
		if !allowed[ty] {
			errs = append(errs, fmt.Sprintf("event.type %s: not expected by any of event.category %v", ty, cats))
		}
	}
	if get(doc, "ecs.version") != ref.Version {
		errs = append(errs, fmt.Sprintf("ecs.version %v, reference is %s", get(doc, "ecs.version"), ref.Version))
	}
	if get(doc, "event.dataset") != get(doc, "data_stream.dataset") {
		errs = append(errs, "event.dataset differs from data_stream.dataset")
	}
	return errs
}

// TestECSFieldConformance checks every field of every document the ECS
// formatter emits for the fixture alerts (all threat types) against the ECS
// 9.4 reference.
func TestECSFieldConformance(t *testing.T) {
	ref := loadECSRef(t)
	f := testECS(t)
	seen := map[string]bool{}
	for _, na := range fixtureAlerts() {
		b, err := f.Format(&na.alert)
		if err != nil {
			t.Fatal(err)
		}
		doc := decode(t, b)
		for _, e := range checkECSDoc(ref, doc) {
			t.Errorf("%s: %s", na.name, e)
		}
		var leaves []leaf
		flatten("", doc, &leaves)
		for _, l := range leaves {
			seen[l.path] = true
		}
	}
	// The fixtures exercise every field the formatter can write.
	for _, p := range modelPaths(t) {
		if !seen[p.path] {
			t.Errorf("no fixture emits %s: add one so the conformance test covers it", p.path)
		}
	}
}

// TestECSCheckerCatchesMistakes guards the checker itself.
func TestECSCheckerCatchesMistakes(t *testing.T) {
	ref := loadECSRef(t)
	a := alertNamed(t, "suspicious_port")
	good := ecsDocOf(t, a)
	if errs := checkECSDoc(ref, good); len(errs) > 0 {
		t.Fatalf("fixture not clean: %v", errs)
	}
	mutations := map[string]func(d map[string]any){
		"invented top-level field": func(d map[string]any) { d["threat_type"] = "X" },
		"scalar where array":       func(d map[string]any) { d["event"].(map[string]any)["category"] = "network" },
		"array where scalar":       func(d map[string]any) { d["event"].(map[string]any)["kind"] = []any{"alert"} },
		"bad allowed value":        func(d map[string]any) { d["event"].(map[string]any)["kind"] = "signal" },
		"bad ip":                   func(d map[string]any) { d["source"].(map[string]any)["ip"] = "10.0.0.300" },
		"string for long":          func(d map[string]any) { d["source"].(map[string]any)["port"] = "80" },
		"float for long":           func(d map[string]any) { d["event"].(map[string]any)["severity"] = json.Number("4.5") },
		"bad date":                 func(d map[string]any) { d["@timestamp"] = "25/11/2026" },
		"type not fitting category": func(d map[string]any) {
			d["event"].(map[string]any)["type"] = []any{"installation"}
		},
		"bad direction": func(d map[string]any) { d["network"].(map[string]any)["direction"] = "sideways" },
		"number label":  func(d map[string]any) { d["labels"] = map[string]any{"rack": json.Number("4")} },
		"scalar tags":   func(d map[string]any) { d["tags"] = "dc1" },
	}
	for name, mut := range mutations {
		d := ecsDocOf(t, a)
		mut(d)
		if errs := checkECSDoc(ref, d); len(errs) == 0 {
			t.Errorf("checker missed: %s", name)
		}
	}
}

// modelPath is one leaf of the ECS document model (ecsDoc), found by
// reflection: every field the formatter can ever write.
type modelPath struct {
	path  string
	kind  reflect.Kind
	array bool
}

func modelPaths(t testing.TB) []modelPath {
	var out []modelPath
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for i := 0; i < typ.NumField(); i++ {
			sf := typ.Field(i)
			name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				t.Fatalf("%s.%s has no json name", prefix, sf.Name)
			}
			p := name
			if prefix != "" {
				p = prefix + "." + name
			}
			ft := sf.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch {
			case ft.Kind() == reflect.Struct:
				walk(p, ft)
			case ft.Kind() == reflect.Slice:
				out = append(out, modelPath{path: p, kind: ft.Elem().Kind(), array: true})
			default:
				out = append(out, modelPath{path: p, kind: ft.Kind()})
			}
		}
	}
	walk("", reflect.TypeOf(ecsDoc{}))
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out
}

// TestECSModelConformance checks the document model statically: every field
// it declares exists in ECS with a matching Go kind, or is under netsentinel.*.
func TestECSModelConformance(t *testing.T) {
	ref := loadECSRef(t)
	for _, p := range modelPaths(t) {
		if strings.HasPrefix(p.path, customNamespace+".") {
			continue
		}
		f, ok := ref.Fields[p.path]
		if !ok {
			t.Errorf("%s: not an ECS field", p.path)
			continue
		}
		if f.isArray() != p.array {
			t.Errorf("%s: model array=%v, ECS normalize=%v", p.path, p.array, f.Normalize)
		}
		var ok2 bool
		switch f.Type {
		case "keyword", "constant_keyword", "wildcard", "match_only_text", "date", "ip":
			ok2 = p.kind == reflect.String
		case "long", "integer", "short", "byte":
			ok2 = p.kind >= reflect.Int && p.kind <= reflect.Uint64
		case "float", "double", "scaled_float", "half_float":
			ok2 = p.kind == reflect.Float64 || p.kind == reflect.Float32
		case "boolean":
			ok2 = p.kind == reflect.Bool
		case "object", "flattened":
			ok2 = p.kind == reflect.Map
		}
		if !ok2 {
			t.Errorf("%s: Go kind %s cannot carry ECS type %s", p.path, p.kind, f.Type)
		}
	}
}
