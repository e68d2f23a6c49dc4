// Package dashboard runs the built netsentinel binary with --dashboard inside
// tmux (test/tmuxtest) and checks what an operator sees and does: an alert
// raised by a real listener on a RAT port appears, the keys work, resizes
// and hostile process names keep the layout, and q writes the report.
package dashboard

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/netsentinel/netsentinel/test/sensortest"
)

var binary string

// listenerEnv makes the test binary a listener on the first free port of
// its value (a comma-separated list) on loopback: it prints the port and
// holds the socket until stdin closes.
const listenerEnv = "NETSENTINEL_DASHBOARD_LISTENER"

func TestMain(m *testing.M) {
	if ports := os.Getenv(listenerEnv); ports != "" {
		os.Exit(listen(ports))
	}
	sensortest.Main(m, "netsentinel-dashboard", &binary, nil)
}

func listen(ports string) int {
	for _, p := range strings.Split(ports, ",") {
		l, err := net.Listen("tcp4", "127.0.0.1:"+p)
		if errors.Is(err, syscall.EADDRINUSE) {
			continue
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "listener:", err)
			return 2
		}
		fmt.Println(p)
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until the test closes stdin
		l.Close()
		return 0
	}
	fmt.Fprintln(os.Stderr, "listener: every port in use:", ports)
	return 2
}
