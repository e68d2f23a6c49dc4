package dashboard

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/charmbracelet/x/ansi"
)

// maxSafeInput bounds the bytes of one string looked at: a megabyte process
// argument costs no more than a short one.
const maxSafeInput = 4096

// Safe returns s as it may be printed on the terminal: nothing in it can move
// the cursor, change colours, reorder text or disagree with the layout about
// its width. Invalid UTF-8 bytes become \xNN; control characters (C0, DEL,
// C1), format characters (bidi overrides, zero-width joiners), combining
// marks and symbols whose width terminals disagree on (emoji) become \xNN,
// \uNNNN or \UNNNNNNNN; a backslash becomes \\ so an escape is never
// ambiguous. Input beyond maxSafeInput bytes is cut and marked with "…".
func Safe(s string) string {
	if isPlainASCII(s) && len(s) <= maxSafeInput {
		return s
	}
	cut := false
	if len(s) > maxSafeInput {
		s, cut = s[:maxSafeInput], true
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			if cut && len(s)-i < utf8.UTFMax && !utf8.FullRuneInString(s[i:]) {
				i = len(s) // a rune split by the cut, not an invalid byte
				continue
			}
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r < 0x7f:
			b.WriteByte(byte(r))
		case unsafeRune(r):
			if r > 0xffff {
				fmt.Fprintf(&b, `\U%08x`, r)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		default:
			b.WriteRune(r)
		}
		i += n
	}
	if cut {
		b.WriteString("…")
	}
	return b.String()
}

func isPlainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '\\' {
			return false
		}
	}
	return true
}

// unsafeRune reports a non-ASCII rune that is not shown as itself.
func unsafeRune(r rune) bool {
	if !unicode.IsPrint(r) || unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.So, unicode.Co) {
		return true
	}
	w := ansi.StringWidth(string(r))
	return w < 1 || w > 2
}

// fit pads or cuts s, which must be Safe, to exactly w cells; a cut string
// ends with "…".
func fit(s string, w int) string {
	if w <= 0 {
		return ""
	}
	sw := width(s)
	switch {
	case sw == w:
		return s
	case sw < w:
		return s + strings.Repeat(" ", w-sw)
	}
	t := ansi.Truncate(s, w, "…")
	if tw := width(t); tw < w { // a wide rune did not fit
		t += strings.Repeat(" ", w-tw)
	}
	return t
}

// clip cuts s (Safe, or already styled) to at most w cells without padding.
func clip(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if width(s) <= w {
		return s
	}
	return ansi.Truncate(s, w, "")
}

// width is the display width of s in cells (escape sequences count zero).
func width(s string) int {
	if isPlainASCII(s) {
		return len(s)
	}
	return ansi.StringWidth(s)
}

// wrap breaks s (Safe) into lines of at most w cells, at most max lines; the
// last kept line ends with "…" when text was left out.
func wrap(s string, w, max int) []string {
	if w <= 0 || max <= 0 {
		return nil
	}
	var out []string
	for s != "" {
		if len(out) == max {
			out[max-1] = fit(strings.TrimRight(out[max-1], " ")+"…", w)
			break
		}
		if width(s) <= w {
			out = append(out, s)
			break
		}
		line := ansi.Truncate(s, w, "")
		if line == "" { // a wide rune wider than w
			break
		}
		out = append(out, line)
		s = s[len(line):]
	}
	return out
}
