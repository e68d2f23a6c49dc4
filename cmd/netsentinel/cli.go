package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// newRootCmd builds the command tree. The bare command runs the sensor.
func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "netsentinel [flags]",
		Short: "passive, unprivileged network threat sensor",
		Long: `NetSentinel watches this host's sockets, processes, neighbour table, routes, DNS configuration
and kernel counters, detects threats, tags each finding with MITRE ATT&CK and ships it as an event
(ECS or native) to stdout, a rotating file, Elasticsearch, Kafka or syslog (JSON or CEF).

Without a command it runs the sensor: 60 s by default, alerts as NDJSON on stdout, the report in
./netsentinel_report.json. Exit status: 0 ok, 1 runtime failure, 2 bad usage or config.`,
		Example: `  netsentinel -d 300 -o my_report.json
  netsentinel -d 0 --window 5m --sink file:/var/log/netsentinel/alerts.ndjson --http-address 127.0.0.1:9870
  netsentinel -c /etc/netsentinel/netsentinel.yaml`,
		Version:               version,
		SilenceErrors:         true,
		SilenceUsage:          true,
		DisableSuggestions:    true,
		DisableFlagsInUseLine: true,
		CompletionOptions:     cobra.CompletionOptions{HiddenDefaultCmd: false},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("netsentinel {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return err })
	rf := bindRunFlags(root.Flags())
	root.RunE = ran(func(cmd *cobra.Command, _ []string) error {
		return cmdRun(cmd.Context(), rf, stdout, stderr, runMode{})
	})
	root.AddCommand(
		newRunCmd(stdout, stderr),
		newRecordCmd(stdout, stderr),
		newReplayCmd(stdout, stderr),
		newRulesCmd(stdout, stderr),
		newVersionCmd(stdout),
		newSetupCmd(stdout, stderr),
		newConfigCmd(stdout, stderr),
		newManCmd(stdout),
		newHealthCmd(stdout),
		newTestCmd(stdout, stderr),
	)
	return root
}

// ran marks the errors of a command's own code, so exitCode tells them from
// command-line parse errors.
func ran(fn func(*cobra.Command, []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := fn(cmd, args); err != nil {
			return ranError{err}
		}
		return nil
	}
}

func newRunCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run [flags]",
		Short: "Run the sensor (the same as no command)",
		Args:  cobra.NoArgs,
	}
	rf := bindRunFlags(cmd.Flags())
	cmd.RunE = ran(func(cmd *cobra.Command, _ []string) error {
		return cmdRun(cmd.Context(), rf, stdout, stderr, runMode{})
	})
	return cmd
}

// fileArg wants exactly the FILE operand of record/replay.
func fileArg(name string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		switch {
		case len(args) == 0:
			return fmt.Errorf("%s: missing FILE (usage: netsentinel %s FILE [flags])", name, name)
		case len(args) > 1:
			return fmt.Errorf("%s: unexpected argument %q after FILE", name, args[1])
		}
		return nil
	}
}

func newRecordCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "record FILE [flags]",
		Short: "Run the sensor and record every snapshot to FILE (NDJSON; .gz compresses)",
		Args:  fileArg("record"),
	}
	rf := bindRunFlags(cmd.Flags())
	cmd.RunE = ran(func(cmd *cobra.Command, args []string) error {
		return cmdRun(cmd.Context(), rf, stdout, stderr, runMode{recordPath: args[0]})
	})
	return cmd
}

func newReplayCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "replay FILE [flags]",
		Short: "Run detection over a recorded FILE, deterministically",
		Long: `Replay runs detection over a recording, snapshot after snapshot, with the recorded times as the
clock: the same file gives the same alerts. Alerts go to the sinks as in a live run.`,
		Args: fileArg("replay"),
	}
	rf := bindRunFlags(cmd.Flags())
	cmd.RunE = ran(func(cmd *cobra.Command, args []string) error {
		return cmdRun(cmd.Context(), rf, stdout, stderr, runMode{replayPath: args[0]})
	})
	return cmd
}

func newVersionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run:   func(*cobra.Command, []string) { fmt.Fprintf(stdout, "netsentinel %s\n", version) },
	}
}

// longFlagNames reports whether name is a long flag anywhere in the tree.
func longFlagNames(root *cobra.Command) func(string) bool {
	names := map[string]bool{"help": true, "version": true}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.LocalFlags().VisitAll(func(f *pflag.Flag) { names[f.Name] = true })
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	return func(n string) bool { return names[n] }
}
