// Command psconns is the benchmark's gopsutil comparator (issue 11): it lists
// every connection with gopsutil's net.Connections("all") N times and counts
// them, the portable way a Go sensor would list sockets with their PIDs.
//
//	psconns -n 12 -interval 1s
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	psnet "github.com/shirou/gopsutil/v4/net"
)

func main() {
	n := flag.Int("n", 12, "number of listings")
	interval := flag.Duration("interval", 0, "pause so that listings start this far apart (0: back to back)")
	flag.Parse()
	if *n < 1 {
		fmt.Fprintln(os.Stderr, "psconns: -n must be at least 1")
		os.Exit(2)
	}
	start := time.Now()
	total, last := 0, 0
	for i := 0; i < *n; i++ {
		if *interval > 0 {
			if d := time.Until(start.Add(time.Duration(i) * *interval)); d > 0 {
				time.Sleep(d)
			}
		}
		cs, err := psnet.Connections("all")
		if err != nil {
			fmt.Fprintf(os.Stderr, "psconns: %v\n", err)
			os.Exit(1)
		}
		last = len(cs)
		total += last
	}
	fmt.Printf("listings %d connections_last %d connections_total %d\n", *n, last, total)
}
