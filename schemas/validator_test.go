package schemas

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Validator checks documents against the embedded JSON Schemas, with format
// assertions (date-time, ipv4/ipv6, uri) on.
type Validator struct {
	ecs, native, report *jsonschema.Schema
}

var (
	validatorOnce sync.Once
	validator     *Validator
	validatorErr  error
)

// NewValidator compiles the embedded schemas (once; the result is shared and
// safe for concurrent use).
func NewValidator() (*Validator, error) {
	validatorOnce.Do(func() { validator, validatorErr = compileValidator() })
	return validator, validatorErr
}

func compileValidator() (*Validator, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	for _, r := range []struct {
		id  string
		doc []byte
	}{{ECSAlertSchemaID, ECSAlertSchema}, {NativeAlertSchemaID, NativeAlertSchema}, {ReportSchemaID, ReportSchema}} {
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(r.doc))
		if err != nil {
			return nil, fmt.Errorf("schema %s: %w", r.id, err)
		}
		if err := c.AddResource(r.id, v); err != nil {
			return nil, fmt.Errorf("schema %s: %w", r.id, err)
		}
	}
	var v Validator
	var err error
	if v.ecs, err = c.Compile(ECSAlertSchemaID); err != nil {
		return nil, fmt.Errorf("compiling %s: %w", ECSAlertSchemaID, err)
	}
	if v.native, err = c.Compile(NativeAlertSchemaID); err != nil {
		return nil, fmt.Errorf("compiling %s: %w", NativeAlertSchemaID, err)
	}
	if v.report, err = c.Compile(ReportSchemaID); err != nil {
		return nil, fmt.Errorf("compiling %s: %w", ReportSchemaID, err)
	}
	return &v, nil
}

// ValidateECS checks one ECS alert document.
func (v *Validator) ValidateECS(doc []byte) error { return validate(v.ecs, "ECS alert", doc) }

// ValidateNative checks one native alert document.
func (v *Validator) ValidateNative(doc []byte) error { return validate(v.native, "native alert", doc) }

// ValidateReport checks a window report.
func (v *Validator) ValidateReport(doc []byte) error { return validate(v.report, "report", doc) }

// Validate checks doc against the schema of the named format ("ecs",
// "native" or "report").
func (v *Validator) Validate(format string, doc []byte) error {
	switch format {
	case "ecs":
		return v.ValidateECS(doc)
	case "native":
		return v.ValidateNative(doc)
	case "report":
		return v.ValidateReport(doc)
	}
	return fmt.Errorf("unknown document format %q (want ecs, native or report)", format)
}

func validate(s *jsonschema.Schema, what string, doc []byte) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("%s: not JSON: %w", what, err)
	}
	if err := s.Validate(inst); err != nil {
		return fmt.Errorf("%s does not match its schema: %w", what, err)
	}
	return nil
}
