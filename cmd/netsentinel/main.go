// Command netsentinel is a passive, unprivileged network threat sensor: it
// watches this host's sockets, processes, neighbour table, routes, DNS
// configuration and kernel counters, detects threats, tags each finding with
// MITRE ATT&CK and ships it as an event (ECS or native) to stdout, a rotating
// file, Elasticsearch or Kafka. See README.md.
//
// main.go holds flags, config, logger, signals and wiring only.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time: -ldflags "-X main.version=1.2.3".
var version = "0.1.0-dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usageText = `usage: netsentinel [flags]               run the sensor (default 60 s, alerts on stdout)
       netsentinel rules [--format json]  list every detector's rules, ATT&CK mapping and thresholds
       netsentinel version                print the version
       netsentinel setup elasticsearch    install the Elasticsearch index template (idempotent)
       netsentinel record -o FILE [flags] run the sensor and record every snapshot to FILE
       netsentinel replay FILE [flags]    run detection over a recorded file, deterministically
Run 'netsentinel -h' for the flags.`

// run is main without os.Exit, for tests. Exit status: 0 ok, 1 runtime
// failure, 2 bad usage or config.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// `netsentinel | head` closes stdout: the stdout sink must see EPIPE
	// (counted, the run goes on and writes its report) instead of Go's
	// default SIGPIPE death.
	signal.Ignore(syscall.SIGPIPE)
	var err error
	cmd := ""
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "", "run":
		err = cmdRun(ctx, args, stdout, stderr, runMode{})
	case "record":
		err = cmdRecord(ctx, args, stdout, stderr)
	case "replay":
		err = cmdReplay(ctx, args, stdout, stderr)
	case "rules":
		err = cmdRules(args, stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "netsentinel %s\n", version)
	case "setup":
		err = cmdSetup(ctx, args, stdout, stderr)
	case "help":
		fmt.Fprintln(stdout, usageText)
	default:
		err = usagef("unknown command %q (commands: run, rules, version, setup, record, replay, help)", cmd)
	}
	return exitCode(err, stderr)
}

func exitCode(err error, stderr io.Writer) int {
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "netsentinel: %s\n", ue.msg)
		return 2
	default:
		fmt.Fprintf(stderr, "netsentinel: %v\n", err)
		return 1
	}
}
