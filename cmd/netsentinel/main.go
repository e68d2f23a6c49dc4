// Command netsentinel is a passive, unprivileged network threat sensor: it
// watches this host's sockets, processes, neighbour table, routes, DNS
// configuration and kernel counters, detects threats, tags each finding with
// MITRE ATT&CK and ships it as an event (ECS or native) to stdout, a rotating
// file, Elasticsearch, Kafka or syslog (JSON or CEF). See README.md.
//
// main.go holds the exit-status rules and signals; cli.go the command tree.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time: -ldflags "-X main.version=1.2.3".
var version = "0.1.0-dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without os.Exit, for tests. Exit status: 0 ok, 1 runtime
// failure, 2 bad usage or config.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// `netsentinel | head` closes stdout: the stdout sink must see EPIPE
	// (counted, the run goes on and writes its report) instead of Go's
	// default SIGPIPE death.
	signal.Ignore(syscall.SIGPIPE)
	root := newRootCmd(stdout, stderr)
	root.SetArgs(goStyleLongFlags(args, longFlagNames(root)))
	cmd, err := root.ExecuteContextC(ctx)
	return exitCode(cmd, err, stderr)
}

// ranError marks an error returned by a command's own code (not by parsing
// the command line).
type ranError struct{ err error }

func (e ranError) Error() string { return e.err.Error() }
func (e ranError) Unwrap() error { return e.err }

// exitCode prints err as one line and maps it to the exit status: errors
// from parsing the command line and usageErrors are 2 (a parse error adds
// where to find help), other failures 1.
func exitCode(cmd *cobra.Command, err error, stderr io.Writer) int {
	var re ranError
	var ue usageError
	switch {
	case err == nil:
		return 0
	case !errors.As(err, &re):
		path := "netsentinel"
		if cmd != nil {
			path = cmd.CommandPath()
		}
		fmt.Fprintf(stderr, "netsentinel: %s; see '%s --help'\n", oneLine(err.Error()), path)
		return 2
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "netsentinel: %s\n", oneLine(ue.msg))
		return 2
	default:
		fmt.Fprintf(stderr, "netsentinel: %s\n", oneLine(err.Error()))
		return 1
	}
}

// oneLine folds a multi-line message (YAML decoders list errors one per
// line) into one line.
func oneLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, " ")
}
