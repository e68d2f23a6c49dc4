package schemas

import (
	"fmt"

	"github.com/netsentinel/netsentinel/detect"
)

// Formatter turns an alert into one event document.
type Formatter interface {
	// Format returns one compact JSON object, valid UTF-8, without a trailing
	// newline. It fails only for a nil alert.
	Format(a *detect.Alert) ([]byte, error)
	// Name is the format's name: "ecs" or "native".
	Name() string
}

// Formats lists the accepted --format values.
var Formats = []string{"ecs", "native"}

// NewFormatter builds the formatter called name ("ecs" or "native"). Host
// and Meta are used by ECS only.
func NewFormatter(name string, h Host, m Meta, lookup TechniqueLookup) (Formatter, error) {
	switch name {
	case "ecs":
		f, err := NewECS(h, m, lookup)
		if err != nil {
			return nil, err
		}
		return f, nil
	case "native":
		return NewNative(lookup), nil
	default:
		return nil, fmt.Errorf("unknown event format %q (want ecs or native)", name)
	}
}
