//go:build linux

// Command holder holds established loopback TCP connections open for the
// benchmark (issue 11): it listens on 127.0.0.1, connects to itself -conns
// times, accepts every connection, prints "ready <conns>" and then holds both
// ends of every connection until its stdin closes (the benchmark holds the
// other end of that pipe, so the holder also ends when the benchmark dies).
// It raises its own RLIMIT_NOFILE (two fds per connection).
//
//	holder -conns 5000
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	conns := flag.Int("conns", 5000, "connections to hold (two sockets each)")
	flag.Parse()
	if *conns < 1 {
		fail(fmt.Errorf("-conns must be at least 1"))
	}
	need := uint64(2**conns + 256)
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		fail(err)
	}
	if lim.Cur < need {
		lim.Cur = need
		if lim.Max < need {
			lim.Max = need // root may raise the hard limit up to fs.nr_open
		}
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			fail(fmt.Errorf("raise RLIMIT_NOFILE to %d for %d connections: %w", need, *conns, err))
		}
	}
	// No TCP keepalive (Go enables it by default): every connection opens
	// within a second, so their probes fire together, overflow loopback's
	// backlog, and after nine lost probes the kernel aborts the connection
	// (a third of them went after about three minutes).
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	accepted := make(chan error, 1)
	var server []net.Conn
	go func() {
		for len(server) < *conns {
			c, err := ln.Accept()
			if err != nil {
				accepted <- err
				return
			}
			server = append(server, c)
		}
		accepted <- nil
	}()
	client := make([]net.Conn, 0, *conns)
	d := net.Dialer{Timeout: 10 * time.Second, KeepAlive: -1}
	for len(client) < *conns {
		c, err := d.Dial("tcp4", ln.Addr().String())
		if err != nil {
			fail(fmt.Errorf("connection %d: %w", len(client)+1, err))
		}
		client = append(client, c)
	}
	select {
	case err := <-accepted:
		if err != nil {
			fail(err)
		}
	case <-time.After(time.Minute):
		fail(fmt.Errorf("not all %d connections accepted within a minute", *conns))
	}
	fmt.Printf("ready %d\n", len(client))
	_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
	// Unreachable connections would be closed by their finalizers at the
	// next garbage collection (at the latest the periodic one, every two
	// minutes): keep every one alive until here.
	runtime.KeepAlive(client)
	runtime.KeepAlive(server)
	ln.Close()
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "holder: %v\n", err)
	os.Exit(1)
}
