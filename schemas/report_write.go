package schemas

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/netsentinel/netsentinel/internal/fsutil"
)

// MarshalReport encodes r as indented JSON followed by a newline.
func MarshalReport(r *Report) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return nil, fmt.Errorf("encoding report: %w", err)
	}
	return b.Bytes(), nil
}

// WriteReportAtomic writes r to path so that readers see either the old file
// or the complete new one: it writes a temporary file (mode 0600) in the same
// directory, fsyncs it, renames it over path and fsyncs the directory. The
// directory must exist. Errors name the path.
func WriteReportAtomic(path string, r *Report) error {
	b, err := MarshalReport(r)
	if err != nil {
		return fmt.Errorf("writing report %s: %w", path, err)
	}
	if err := fsutil.WriteFileAtomic(path, b); err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	return nil
}

// windowStampLayout is the UTC stamp in per-window report names.
const windowStampLayout = "20060102T150405Z"

// WindowReportPath names the report of the window ending at windowEnd in
// continuous mode: the UTC end time is inserted before the extension,
// "netsentinel_report.json" → "netsentinel_report-20261125T214500Z.json"
// (no extension: "report" → "report-20261125T214500Z"). The directory is
// kept. Names sort in time order.
func WindowReportPath(base string, windowEnd time.Time) string {
	stamp := windowEnd.UTC().Format(windowStampLayout)
	dir, file := filepath.Split(base)
	ext := filepath.Ext(file)
	stem := strings.TrimSuffix(file, ext)
	if stem == "" { // ".json" or ""
		stem = "netsentinel_report"
		if ext == "" {
			ext = ".json"
		}
	}
	return dir + stem + "-" + stamp + ext
}
