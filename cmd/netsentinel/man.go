package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// newManCmd writes the man pages (section 1) the packages ship:
// netsentinel.1 and one page per command.
func newManCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "man DIR",
		Short: "Write the man pages (netsentinel.1, netsentinel-COMMAND.1) into DIR",
		Args:  cobra.ExactArgs(1),
		RunE: ran(func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true // reproducible pages: no generation date
			hdr := &doc.GenManHeader{Title: "NETSENTINEL", Section: "1", Source: "netsentinel " + version, Manual: "NetSentinel"}
			if err := doc.GenManTree(root, hdr, dir); err != nil {
				return fmt.Errorf("man pages: %w", err)
			}
			fmt.Fprintf(stdout, "man pages written to %s\n", dir)
			return nil
		}),
	}
}
