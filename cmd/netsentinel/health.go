package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/netsentinel/netsentinel/internal/config"
)

// defaultHealthURL is where `netsentinel health` asks without --url.
var defaultHealthURL = fmt.Sprintf("http://127.0.0.1:%d/healthz", config.DefaultHTTPPort)

// newHealthCmd asks a running sensor's /healthz: exit 0 when it answers 200,
// 1 otherwise (container HEALTHCHECK, Kubernetes exec probes; distroless
// images have no curl).
func newHealthCmd(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "health [flags]",
		Short: "Ask a running sensor's /healthz: exit 0 when healthy, 1 otherwise",
		Args:  cobra.NoArgs,
	}
	url := cmd.Flags().String("url", defaultHealthURL, "health endpoint `URL` (the sensor's --http-address)")
	timeout := cmd.Flags().Duration("timeout", 5*time.Second, "give up after this long")
	cmd.RunE = ran(func(cmd *cobra.Command, _ []string) error {
		if !strings.HasPrefix(*url, "http://") && !strings.HasPrefix(*url, "https://") {
			return usagef("health --url: %q is not an http:// or https:// URL", *url)
		}
		return cmdHealth(*url, *timeout, stdout)
	})
	return cmd
}

func cmdHealth(url string, timeout time.Duration, stdout io.Writer) error {
	client := &http.Client{Timeout: timeout}
	resp, err := client.Get(url)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	defer resp.Body.Close()
	line, _ := bufio.NewReader(io.LimitReader(resp.Body, 4096)).ReadString('\n')
	line = strings.TrimSpace(line)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health %s: %s: %s", url, resp.Status, line)
	}
	fmt.Fprintln(stdout, line)
	return nil
}
