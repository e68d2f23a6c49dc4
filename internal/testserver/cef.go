package testserver

import (
	"fmt"
	"strings"
)

// CEF is one parsed ArcSight CEF:0 line.
type CEF struct {
	// Header is Device Vendor, Device Product, Device Version, Signature
	// ID, Name and Severity, unescaped.
	Header [6]string
	// Ext are the extension key/value pairs, unescaped.
	Ext map[string]string
}

// ParseCEF is a strict reader of one CEF:0 line, as a SIEM parses it: in
// the header only \| and \\ are escapes; in extension values only \\, \=,
// \n and \r, and an unescaped '=' inside a value is an error (it would start
// a new key). Keys are letters, digits and '_'; a key repeated is an error.
func ParseCEF(line string) (CEF, error) {
	var c CEF
	rest, ok := strings.CutPrefix(line, "CEF:0|")
	if !ok {
		return c, fmt.Errorf("cef: no CEF:0| prefix in %q", line)
	}
	i := 0
	for f := 0; f < len(c.Header); f++ {
		var b strings.Builder
		for {
			if i >= len(rest) {
				return c, fmt.Errorf("cef: header field %d not terminated", f+1)
			}
			ch := rest[i]
			i++
			if ch == '|' {
				break
			}
			if ch == '\\' {
				if i >= len(rest) || (rest[i] != '|' && rest[i] != '\\') {
					return c, fmt.Errorf("cef: bad escape in header field %d", f+1)
				}
				ch = rest[i]
				i++
			} else if ch < 0x20 {
				return c, fmt.Errorf("cef: control character in header field %d", f+1)
			}
			b.WriteByte(ch)
		}
		c.Header[f] = b.String()
	}
	ext := rest[i:]
	c.Ext = map[string]string{}
	for len(ext) > 0 {
		k := keyLen(ext)
		if k == 0 || k >= len(ext) || ext[k] != '=' {
			return c, fmt.Errorf("cef: extension key expected at %q", ext)
		}
		key := ext[:k]
		ext = ext[k+1:]
		var b strings.Builder
		j := 0
		for j < len(ext) {
			ch := ext[j]
			if ch == ' ' {
				if n := keyLen(ext[j+1:]); n > 0 && j+1+n < len(ext) && ext[j+1+n] == '=' {
					break // the next key starts
				}
			}
			switch {
			case ch == '\\':
				if j+1 >= len(ext) {
					return c, fmt.Errorf("cef: %s: trailing backslash", key)
				}
				switch ext[j+1] {
				case '\\', '=':
					b.WriteByte(ext[j+1])
				case 'n':
					b.WriteByte('\n')
				case 'r':
					b.WriteByte('\r')
				default:
					return c, fmt.Errorf("cef: %s: bad escape \\%c", key, ext[j+1])
				}
				j += 2
				continue
			case ch == '=':
				return c, fmt.Errorf("cef: %s: unescaped '=' in value", key)
			case ch < 0x20:
				return c, fmt.Errorf("cef: %s: control character in value", key)
			}
			b.WriteByte(ch)
			j++
		}
		if _, dup := c.Ext[key]; dup {
			return c, fmt.Errorf("cef: key %s repeated", key)
		}
		c.Ext[key] = b.String()
		ext = strings.TrimPrefix(ext[j:], " ")
	}
	return c, nil
}

func keyLen(s string) int {
	n := 0
	for n < len(s) {
		ch := s[n]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '_') {
			break
		}
		n++
	}
	return n
}
