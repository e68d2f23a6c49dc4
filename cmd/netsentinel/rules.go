package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/netsentinel/netsentinel/detect"
	"github.com/netsentinel/netsentinel/internal/config"
)

// ruleView is one rule as `netsentinel rules` prints it.
type ruleView struct {
	detect.RuleInfo
	TechniqueName string   `json:"technique_name"`
	Tactics       []string `json:"tactics"`
}

// newRulesCmd lists every detector's rules with ATT&CK technique and
// tactic, severity and the thresholds in force (after -c config).
func newRulesCmd(stdout, _ io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules [flags]",
		Short: "List every detector's rules, ATT&CK mapping, severity and thresholds",
		Args:  cobra.NoArgs,
	}
	format := cmd.Flags().String("format", "table", "output `format`: table or json")
	cfgPath := cmd.Flags().StringP("config", "c", "", "YAML config `file` (thresholds shown as configured)")
	cmd.RunE = ran(func(*cobra.Command, []string) error { return cmdRules(*format, *cfgPath, stdout) })
	return cmd
}

func cmdRules(format, cfgPath string, stdout io.Writer) error {
	if format != "table" && format != "json" {
		return usagef("rules --format: unknown value %q (want table or json)", format)
	}
	cfg := config.Default()
	if cfgPath != "" {
		var err error
		if cfg, err = config.Load(cfgPath); err != nil {
			return usageError{err.Error()}
		}
		if err := cfg.Validate(); err != nil {
			return usageError{err.Error()}
		}
	}
	eng, err := newEngine(&cfg, nopLogger())
	if err != nil {
		return usageError{err.Error()}
	}
	defer eng.Close()
	var views []ruleView
	for _, r := range eng.Rules() {
		v := ruleView{RuleInfo: r}
		if t, ok := detect.Technique(r.Technique); ok {
			v.TechniqueName = t.FullName()
		}
		for _, ta := range detect.TacticsOf(r.Technique) {
			v.Tactics = append(v.Tactics, ta.ID+" "+ta.Name)
		}
		views = append(views, v)
	}
	if format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(views)
	}
	return writeRulesTable(stdout, views)
}

// writeRulesTable prints one aligned row per rule, each followed by what the
// rule sees as root and as an unprivileged user (two indented lines, kept
// out of the alignment so the long sentences do not widen the columns).
func writeRulesTable(w io.Writer, views []ruleView) error {
	var rows bytes.Buffer
	tw := tabwriter.NewWriter(&rows, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tTECHNIQUE\tTACTIC\tSEVERITY\tTHRESHOLDS")
	for _, v := range views {
		fmt.Fprintf(tw, "%s\t%s %s\t%s\t%s\t%s\n", v.ID, v.Technique, v.TechniqueName,
			strings.Join(v.Tactics, ", "), severityName(v.Severity), thresholds(v.Thresholds))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	lines := strings.SplitAfter(rows.String(), "\n")
	var out strings.Builder
	out.WriteString(lines[0])
	for i, v := range views {
		out.WriteString(lines[i+1])
		fmt.Fprintf(&out, "    as root:         %s\n", orNotStated(v.Sees.Privileged))
		fmt.Fprintf(&out, "    as unprivileged: %s\n", orNotStated(v.Sees.Unprivileged))
	}
	_, err := io.WriteString(w, out.String())
	return err
}

func orNotStated(s string) string {
	if s == "" {
		return "(not stated)"
	}
	return s
}

func thresholds(m map[string]any) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%v", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func severityName(s detect.Severity) string {
	switch s {
	case detect.SeverityCritical:
		return "CRITICAL"
	case detect.SeverityHigh:
		return "HIGH"
	case detect.SeverityMedium:
		return "MEDIUM"
	case detect.SeverityLow:
		return "LOW"
	}
	return fmt.Sprint(int(s))
}

func nopLogger() *zap.Logger { return zap.NewNop() }
