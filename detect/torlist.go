package detect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/netsentinel/netsentinel/internal/fsutil"
)

// Relay list limits.
const (
	// MaxRelayListBytes caps a relay list file or download (an Onionoo details
	// document for every relay is a few tens of MB).
	MaxRelayListBytes = 64 << 20
	// MaxRelays caps the addresses kept from one list.
	MaxRelays = 200000
	// maxBadLines caps the bad lines kept for reporting (all are counted).
	maxBadLines = 20
)

// BadLine is one entry of a relay list that could not be used.
type BadLine struct {
	Where string `json:"where"` // "line 7" or "relays[3].or_addresses[0]"
	Text  string `json:"text"`
	Err   string `json:"error"`
}

func (b BadLine) String() string { return fmt.Sprintf("%s: %q: %s", b.Where, b.Text, b.Err) }

// RelayList is the result of parsing a relay list: the unique relay addresses
// and what was skipped.
type RelayList struct {
	Addrs    []netip.Addr
	Bad      []BadLine // the first maxBadLines bad entries
	BadCount int       // every bad entry
	Format   string    // "plain", "onionoo" or "consensus"
}

// ParseRelayList parses a Tor relay list: plain text, one address per line
// ("192.0.2.1", "192.0.2.1:9001", "[2001:db8::1]:443"; blank lines and "#"
// comments ignored); an Onionoo details document ({"relays": [...]}) whose
// or_addresses ("ip:port", "[ipv6]:port") and dir_address are used, skipping
// relays marked "running": false; or a Tor network-status consensus as Tor
// caches it (cached-consensus, cached-microdesc-consensus; CollecTor's
// "@type network-status-..." header allowed), whose "r" lines (IPv4 address)
// and "a" lines (other OR addresses) are used. Bad entries are reported in
// the result, not as an error; a document that is not a list at all is an
// error.
func ParseRelayList(data []byte) (RelayList, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		return parseOnionoo(trimmed)
	}
	if bytes.HasPrefix(trimmed, []byte("network-status-version ")) || bytes.HasPrefix(trimmed, []byte("@type network-status-")) {
		return parseConsensus(data), nil
	}
	return parsePlainRelays(data), nil
}

// parseConsensus reads the router entries of a consensus: "r nickname
// identity [digest] date time IP ORPort DirPort" (the digest is absent in a
// microdescriptor consensus; the address is always third from the end) and
// "a ADDR:PORT" lines.
func parseConsensus(data []byte) RelayList {
	c := newRelayCollector("consensus")
	n := 0
	for line := range bytes.Lines(data) {
		n++
		if len(line) < 2 || line[1] != ' ' || (line[0] != 'r' && line[0] != 'a') {
			continue
		}
		s := strings.TrimSpace(string(line))
		f := strings.Fields(s)
		var addr string
		switch {
		case f[0] == "r" && len(f) >= 8:
			addr = f[len(f)-3]
			if _, err := strconv.ParseUint(f[len(f)-2], 10, 16); err != nil {
				c.bad("line "+strconv.Itoa(n), s, errors.New("bad ORPort"))
				continue
			}
		case f[0] == "a" && len(f) == 2:
			addr = f[1]
		default:
			c.bad("line "+strconv.Itoa(n), s, fmt.Errorf("malformed %q line", f[0]))
			continue
		}
		a, err := parseRelayAddr(addr)
		if err != nil {
			c.bad("line "+strconv.Itoa(n), s, err)
			continue
		}
		c.add(a)
	}
	return c.RelayList
}

type relayCollector struct {
	RelayList
	seen map[netip.Addr]struct{}
}

func newRelayCollector(format string) *relayCollector {
	return &relayCollector{RelayList: RelayList{Format: format}, seen: map[netip.Addr]struct{}{}}
}

func (c *relayCollector) bad(where, text string, err error) {
	c.BadCount++
	if len(c.Bad) < maxBadLines {
		if len(text) > 200 {
			text = text[:200] + "..."
		}
		c.Bad = append(c.Bad, BadLine{Where: where, Text: text, Err: err.Error()})
	}
}

func (c *relayCollector) add(a netip.Addr) {
	a = a.Unmap()
	if _, dup := c.seen[a]; dup || len(c.Addrs) >= MaxRelays {
		return
	}
	c.seen[a] = struct{}{}
	c.Addrs = append(c.Addrs, a)
}

// parseRelayAddr accepts an address with or without a port.
func parseRelayAddr(s string) (netip.Addr, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Port() == 0 {
			return netip.Addr{}, errors.New("port 0")
		}
		return checkRelayAddr(ap.Addr())
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, errors.New("not an IP address or ip:port")
	}
	return checkRelayAddr(a)
}

func checkRelayAddr(a netip.Addr) (netip.Addr, error) {
	if a.Zone() != "" {
		return netip.Addr{}, errors.New("zoned address")
	}
	if a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() {
		return netip.Addr{}, errors.New("not a unicast relay address")
	}
	return a.Unmap(), nil
}

func parsePlainRelays(data []byte) RelayList {
	c := newRelayCollector("plain")
	n := 0
	for line := range bytes.Lines(data) {
		n++
		s := strings.TrimSpace(string(line))
		if i := strings.IndexByte(s, '#'); i >= 0 {
			s = strings.TrimSpace(s[:i])
		}
		if s == "" {
			continue
		}
		a, err := parseRelayAddr(s)
		if err != nil {
			c.bad("line "+strconv.Itoa(n), s, err)
			continue
		}
		c.add(a)
	}
	return c.RelayList
}

type onionooDetails struct {
	Relays []struct {
		OrAddresses []string `json:"or_addresses"`
		DirAddress  string   `json:"dir_address"`
		Running     *bool    `json:"running"`
	} `json:"relays"`
}

func parseOnionoo(data []byte) (RelayList, error) {
	var doc onionooDetails
	if err := json.Unmarshal(data, &doc); err != nil {
		return RelayList{}, fmt.Errorf("onionoo details document: %w", err)
	}
	if doc.Relays == nil {
		return RelayList{}, errors.New(`onionoo details document: no "relays" array`)
	}
	c := newRelayCollector("onionoo")
	for i, r := range doc.Relays {
		if r.Running != nil && !*r.Running {
			continue
		}
		for j, s := range r.OrAddresses {
			a, err := parseRelayAddr(strings.TrimSpace(s))
			if err != nil {
				c.bad(fmt.Sprintf("relays[%d].or_addresses[%d]", i, j), s, err)
				continue
			}
			c.add(a)
		}
		if r.DirAddress != "" {
			a, err := parseRelayAddr(strings.TrimSpace(r.DirAddress))
			if err != nil {
				c.bad(fmt.Sprintf("relays[%d].dir_address", i), r.DirAddress, err)
				continue
			}
			c.add(a)
		}
	}
	return c.RelayList, nil
}

// LoadRelayFile reads and parses a relay list file. A list with bad entries
// but no usable address is an error.
func LoadRelayFile(path string) (RelayList, error) {
	data, err := fsutil.ReadFileCapped(path, MaxRelayListBytes)
	if err != nil {
		return RelayList{}, fmt.Errorf("relay list: %w", err)
	}
	return checkedRelayList(path, data)
}

func checkedRelayList(source string, data []byte) (RelayList, error) {
	rl, err := ParseRelayList(data)
	if err != nil {
		return RelayList{}, fmt.Errorf("relay list %s: %w", source, err)
	}
	if len(rl.Addrs) == 0 && rl.BadCount > 0 {
		return RelayList{}, fmt.Errorf("relay list %s: no usable address (%d bad entries, first %s)", source, rl.BadCount, rl.Bad[0])
	}
	return rl, nil
}

// FetchRelayList downloads a relay list (plain, Onionoo details or a
// consensus) from url within timeout, at most MaxRelayListBytes. Only HTTP
// 200 is accepted; https certificates are verified by client (the
// detector's client uses the system roots).
func FetchRelayList(ctx context.Context, client *http.Client, url string, timeout time.Duration) (RelayList, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return RelayList{}, nil, fmt.Errorf("relay list url: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return RelayList{}, nil, fmt.Errorf("relay list download: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return RelayList{}, nil, fmt.Errorf("relay list download: HTTP %s", resp.Status)
	}
	data, err := fsutil.ReadCapped(resp.Body, "response body", MaxRelayListBytes)
	if err != nil {
		return RelayList{}, nil, fmt.Errorf("relay list download: %w", err)
	}
	rl, err := checkedRelayList("download", data)
	if err != nil {
		return RelayList{}, nil, err
	}
	if len(rl.Addrs) == 0 {
		return RelayList{}, nil, errors.New("relay list download: empty list")
	}
	return rl, data, nil
}

// relaySet is an immutable set of relay addresses with where it came from.
type relaySet struct {
	addrs   map[netip.Addr]struct{}
	sources []string
	gen     uint64 // unique per set (quiet marks depend on the set)
}

// relaySets numbers relay sets.
var relaySets atomic.Uint64

func newRelaySet(lists map[string][]netip.Addr) *relaySet {
	s := &relaySet{addrs: map[netip.Addr]struct{}{}, gen: relaySets.Add(1)}
	for src, addrs := range lists {
		if len(addrs) == 0 {
			continue
		}
		s.sources = append(s.sources, src)
		for _, a := range addrs {
			if len(s.addrs) >= 2*MaxRelays {
				break
			}
			s.addrs[a] = struct{}{}
		}
	}
	sort.Strings(s.sources)
	return s
}

func (s *relaySet) contains(a netip.Addr) bool {
	if s == nil {
		return false
	}
	_, ok := s.addrs[a.Unmap()]
	return ok
}

func (s *relaySet) len() int {
	if s == nil {
		return 0
	}
	return len(s.addrs)
}
