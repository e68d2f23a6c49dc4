package collector

import (
	"bytes"
	"strconv"

	"github.com/netsentinel/netsentinel/internal/fsutil"
)

// maxSocketEstimate bounds what estimateSockets may ask to preallocate.
const maxSocketEstimate = 1 << 20

// estimateSockets is how many TCP and UDP sockets (TIME_WAIT included) the
// kernel counts in /proc/net/sockstat and sockstat6: the first poll sizes its
// socket list with it instead of growing it by doubling (at 100,000 sockets
// that growth alone allocated about twice the final list). 0 when unknown.
func estimateSockets(procRoot string) int {
	n := 0
	for _, f := range [...]string{"sockstat", "sockstat6"} {
		data, _ := fsutil.ReadFileCapped(procPath(procRoot, "net", f), maxSmallFileBytes)
		n += parseSockstat(data)
	}
	return min(n, maxSocketEstimate)
}

// parseSockstat sums the inuse and tw counts of the TCP, TCP6, UDP and UDP6
// lines of a sockstat file ("TCP: inuse 5 orphan 0 tw 2 alloc 9 mem 1").
func parseSockstat(data []byte) int {
	n := 0
	for _, line := range bytes.Split(data, []byte("\n")) {
		proto, rest, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		switch string(proto) {
		case "TCP", "TCP6", "UDP", "UDP6":
		default:
			continue
		}
		f := bytes.Fields(rest)
		for i := 0; i+1 < len(f); i += 2 {
			if k := string(f[i]); k == "inuse" || k == "tw" {
				if v, err := strconv.Atoi(string(f[i+1])); err == nil && v > 0 && v <= maxSocketEstimate {
					n += v
				}
			}
		}
	}
	return n
}
