package schemas

import (
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// Field length caps, in bytes. Hostile or broken input (process names and
// command lines with newlines, escapes, invalid UTF-8 or megabyte lengths)
// still yields one bounded, valid JSON object.
const (
	MaxCommandLine = 32 << 10 // process.command_line
	MaxMessage     = 8 << 10  // message, descriptions
	MaxKeyword     = 1024     // names, ids, paths (ES keyword ignore_above)
	MaxArg         = 4 << 10  // one process argument
	MaxArgs        = 256      // number of process arguments kept
	MaxArgsBytes   = 32 << 10 // all process arguments together

	maxEvidenceDepth  = 6
	maxEvidenceKeys   = 64  // per object
	maxEvidenceItems  = 100 // per array
	maxEvidenceString = 4 << 10
)

// truncMark ends a string that was cut.
const truncMark = "…[truncated]"

// clean makes s valid UTF-8 (invalid bytes become U+FFFD) and at most max
// bytes long, cutting on a rune boundary and marking the cut.
func clean(s string, max int) string {
	if !utf8.ValidString(s) {
		if len(s) > 4*max { // bound the work on huge input before repairing it
			s = s[:4*max]
		}
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= max {
		return s
	}
	cut := max - len(truncMark)
	if cut < 0 {
		cut = 0
	}
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + truncMark
}

// cleanArgs caps the number and size of arguments.
func cleanArgs(args []string) []string {
	if len(args) == 0 {
		return nil
	}
	n := len(args)
	if n > MaxArgs {
		n = MaxArgs
	}
	out := make([]string, 0, n)
	total := 0
	for _, a := range args[:n] {
		a = clean(a, MaxArg)
		if total+len(a) > MaxArgsBytes {
			break
		}
		total += len(a)
		out = append(out, a)
	}
	return out
}

// commandLine joins args into one command line, capped at MaxCommandLine.
func commandLine(args []string) string {
	if len(args) == 0 {
		return ""
	}
	var b strings.Builder
	limit := MaxCommandLine + 4 // a little over, so clean marks the cut
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		if room := limit - b.Len(); len(a) > room {
			b.WriteString(a[:max(room, 0)])
			break
		}
		b.WriteString(a)
	}
	return clean(b.String(), MaxCommandLine)
}

// sanitizeEvidence turns detector evidence into plain JSON values (maps,
// slices, strings, finite numbers, booleans) with bounded size. Values that
// JSON cannot represent (NaN, channels, functions) become strings.
func sanitizeEvidence(m map[string]any) map[string]any {
	if len(m) == 0 {
		return nil
	}
	v, _ := sanitizeValue(reflect.ValueOf(m), 0).(map[string]any)
	return v
}

var (
	timeType     = reflect.TypeOf(time.Time{})
	durationType = reflect.TypeOf(time.Duration(0))
	addrType     = reflect.TypeOf(netip.Addr{})
	addrPortType = reflect.TypeOf(netip.AddrPort{})
	prefixType   = reflect.TypeOf(netip.Prefix{})
)

func sanitizeValue(v reflect.Value, depth int) any {
	if !v.IsValid() {
		return nil
	}
	for v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		if v.Kind() == reflect.Pointer && depth > maxEvidenceDepth {
			return nil
		}
		v = v.Elem()
	}
	switch v.Type() {
	case timeType:
		return formatTime(v.Interface().(time.Time))
	case durationType:
		return v.Interface().(time.Duration).String()
	case addrType, addrPortType, prefixType:
		return fmt.Sprint(v.Interface())
	}
	switch v.Kind() {
	case reflect.Bool:
		return v.Bool()
	case reflect.String:
		return clean(v.String(), maxEvidenceString)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return v.Uint()
	case reflect.Float32, reflect.Float64:
		f := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Sprint(f)
		}
		return f
	}
	if depth >= maxEvidenceDepth {
		// Never print a deep value: it may be cyclic.
		return "[" + v.Type().String() + " below depth limit]"
	}
	switch v.Kind() {
	case reflect.Map:
		if v.IsNil() {
			return nil
		}
		keys := v.MapKeys()
		strKeys := make([]string, 0, len(keys))
		byKey := make(map[string]reflect.Value, len(keys))
		for _, k := range keys {
			ks := clean(fmt.Sprint(k.Interface()), MaxKeyword)
			if ks == "" {
				ks = "_"
			}
			strKeys = append(strKeys, ks)
			byKey[ks] = v.MapIndex(k)
		}
		sort.Strings(strKeys)
		out := make(map[string]any, min(len(strKeys), maxEvidenceKeys))
		for i, k := range strKeys {
			if i >= maxEvidenceKeys {
				out["_truncated_keys"] = len(strKeys) - maxEvidenceKeys
				break
			}
			out[k] = sanitizeValue(byKey[k], depth+1)
		}
		return out
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			return nil
		}
		if v.Type().Elem().Kind() == reflect.Uint8 { // []byte: as text
			b := make([]byte, v.Len())
			reflect.Copy(reflect.ValueOf(b), v)
			return clean(string(b), maxEvidenceString)
		}
		n := min(v.Len(), maxEvidenceItems)
		out := make([]any, 0, n)
		for i := 0; i < n; i++ {
			out = append(out, sanitizeValue(v.Index(i), depth+1))
		}
		return out
	case reflect.Struct:
		// Round-trip through encoding/json so json tags are honoured.
		b, err := json.Marshal(v.Interface())
		if err != nil { // e.g. a cycle or a NaN inside
			return "[" + v.Type().String() + ": " + clean(err.Error(), 256) + "]"
		}
		var m any
		if err := json.Unmarshal(b, &m); err != nil {
			return clean(string(b), maxEvidenceString)
		}
		return sanitizeValue(reflect.ValueOf(m), depth+1)
	default:
		return clean(fmt.Sprint(v.Interface()), maxEvidenceString)
	}
}

// timeLayout is RFC 3339 with milliseconds and the zone (Z for UTC).
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(timeLayout)
}

// marshalCompact encodes v as one compact JSON object without a trailing
// newline and without HTML escaping.
func marshalCompact(v any) ([]byte, error) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	s := strings.TrimSuffix(b.String(), "\n")
	return []byte(s), nil
}
