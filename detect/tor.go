package detect

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/netsentinel/netsentinel/collector"
	"github.com/netsentinel/netsentinel/internal/fsutil"
)

// RuleTor is the registry name (and rule id) of the Tor detector.
const RuleTor = "tor"

// DefaultTorPorts are Tor's well-known ports: 9001 ORPort, 9030 DirPort,
// 9050/9051 SOCKS/control, 9150/9151 Tor Browser SOCKS/control.
var DefaultTorPorts = NewPortSet(9001, 9030, 9050, 9051, 9150, 9151)

// Tor relay list refresh defaults and bounds.
const (
	DefaultRelayTimeout = 30 * time.Second
	DefaultRelayRefresh = 6 * time.Hour
	MinRelayRefresh     = time.Minute
	// relayRetry is the wait after a failed download (capped by the refresh
	// interval).
	relayRetry = 10 * time.Minute
	// maxTorDestinations caps the destinations listed in a process alert.
	maxTorDestinations = 20
)

// TorConfig is the detect.detectors.tor section.
type TorConfig struct {
	// Ports are remote ports that mean Tor (single ports or ranges).
	Ports []string `yaml:"ports"`
	// SocksPorts are local listener ports that mean a Tor SOCKS proxy.
	SocksPorts []string `yaml:"socks_ports"`
	// ProcessNames are process names (comm or executable base name) of Tor.
	ProcessNames []string `yaml:"process_names"`
	// RelayList is a file of relay addresses: one IP (or ip:port) per line,
	// or an Onionoo details JSON document. Empty: no file.
	RelayList string `yaml:"relay_list"`
	// RelayURL, when set, is downloaded in the background (plain or Onionoo
	// details) and refreshed every RelayRefresh. Never required to start.
	RelayURL string `yaml:"relay_url"`
	// RelayCache is where the last good download is kept (mode 0600) and
	// loaded from at start. Empty: no cache.
	RelayCache   string        `yaml:"relay_cache"`
	RelayTimeout time.Duration `yaml:"relay_timeout"`
	RelayRefresh time.Duration `yaml:"relay_refresh"`
}

func init() { registerConfig(RuleTor, defaultTorConfig, newTor) }

func defaultTorConfig() *TorConfig {
	return &TorConfig{
		Ports:        []string{"9001", "9030", "9050", "9051", "9150", "9151"},
		SocksPorts:   []string{"9050", "9150"},
		ProcessNames: []string{"tor"},
		RelayTimeout: DefaultRelayTimeout,
		RelayRefresh: DefaultRelayRefresh,
	}
}

type torDetector struct {
	cfg   TorConfig
	ports PortSet
	socks PortSet
	names map[string]bool

	fileAddrs []netip.Addr
	relays    atomic.Pointer[relaySet]
	notes     []string // load warnings, logged by Start

	mu       sync.Mutex // guards urlAddrs, cancel, done
	urlAddrs []netip.Addr
	cancel   context.CancelFunc
	done     chan struct{}
	client   *http.Client
	log      *zap.Logger
}

func newTor(cfg TorConfig) (*torDetector, error) {
	d := &torDetector{cfg: cfg, names: map[string]bool{}, log: zap.NewNop()}
	var err error
	if d.ports, err = ParsePorts(cfg.Ports); err != nil {
		return nil, fmt.Errorf("ports: %w", err)
	}
	if d.socks, err = ParsePorts(cfg.SocksPorts); err != nil {
		return nil, fmt.Errorf("socks_ports: %w", err)
	}
	for _, n := range cfg.ProcessNames {
		if n = strings.TrimSpace(n); n != "" {
			d.names[n] = true
		}
	}
	if cfg.RelayURL != "" {
		u, err := url.Parse(cfg.RelayURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("relay_url %q: want an http or https URL", cfg.RelayURL)
		}
		if cfg.RelayTimeout <= 0 {
			return nil, fmt.Errorf("relay_timeout %v: must be positive", cfg.RelayTimeout)
		}
		if cfg.RelayRefresh < MinRelayRefresh {
			return nil, fmt.Errorf("relay_refresh %v: must be at least %v", cfg.RelayRefresh, MinRelayRefresh)
		}
	}
	if cfg.RelayList != "" {
		rl, err := LoadRelayFile(cfg.RelayList)
		if err != nil {
			return nil, fmt.Errorf("relay_list: %w", err)
		}
		d.fileAddrs = rl.Addrs
		d.noteBad(cfg.RelayList, rl)
	}
	if cfg.RelayURL != "" && cfg.RelayCache != "" {
		// A missing or bad cache is not fatal: the download replaces it.
		rl, err := LoadRelayFile(cfg.RelayCache)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			d.notes = append(d.notes, fmt.Sprintf("ignoring relay cache: %v", err))
		default:
			d.urlAddrs = rl.Addrs
			d.noteBad(cfg.RelayCache, rl)
		}
	}
	d.client = &http.Client{Timeout: cfg.RelayTimeout}
	d.rebuild()
	return d, nil
}

func (d *torDetector) noteBad(src string, rl RelayList) {
	if rl.BadCount == 0 {
		return
	}
	parts := make([]string, len(rl.Bad))
	for i, b := range rl.Bad {
		parts[i] = b.String()
	}
	d.notes = append(d.notes, fmt.Sprintf("relay list %s: %d bad entries skipped (%d used): %s",
		src, rl.BadCount, len(rl.Addrs), strings.Join(parts, "; ")))
}

// rebuild publishes the union of the file and downloaded lists.
func (d *torDetector) rebuild() {
	d.mu.Lock()
	lists := map[string][]netip.Addr{}
	if d.cfg.RelayList != "" {
		lists["file:"+d.cfg.RelayList] = d.fileAddrs
	}
	if d.cfg.RelayURL != "" {
		lists["url:"+d.cfg.RelayURL] = d.urlAddrs
	}
	d.mu.Unlock()
	d.relays.Store(newRelaySet(lists))
}

// Start logs load warnings and starts the background relay list refresh when
// relay_url is set. It never blocks.
func (d *torDetector) Start(log *zap.Logger) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.log = log
	for _, n := range d.notes {
		log.Warn(n)
	}
	log.Info("tor relay list", zap.Int("addresses", d.relays.Load().len()))
	if d.cfg.RelayURL == "" || d.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel, d.done = cancel, make(chan struct{})
	go d.refreshLoop(ctx, d.done)
}

// Close stops the background refresh and waits for it to end.
func (d *torDetector) Close() error {
	d.mu.Lock()
	cancel, done := d.cancel, d.done
	d.cancel, d.done = nil, nil
	d.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	return nil
}

// firstRefreshDelay is 0 unless a cache younger than the refresh interval
// exists. Scheduling downloads uses the wall clock (it is I/O, not detection).
func (d *torDetector) firstRefreshDelay() time.Duration {
	if d.cfg.RelayCache == "" {
		return 0
	}
	st, err := os.Stat(d.cfg.RelayCache)
	if err != nil {
		return 0
	}
	age := time.Since(st.ModTime())
	if age < 0 || age >= d.cfg.RelayRefresh {
		return 0
	}
	return d.cfg.RelayRefresh - age
}

func (d *torDetector) refreshLoop(ctx context.Context, done chan struct{}) {
	defer close(done)
	timer := time.NewTimer(d.firstRefreshDelay())
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		next := d.cfg.RelayRefresh
		if err := d.refresh(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			next = min(relayRetry, d.cfg.RelayRefresh)
			d.logger().Warn("tor relay list download failed; keeping the current list",
				zap.String("url", d.cfg.RelayURL), zap.Error(err), zap.Duration("retry_in", next))
		}
		timer.Reset(next)
	}
}

func (d *torDetector) logger() *zap.Logger {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log
}

// refresh downloads the list once, publishes it and writes the cache.
func (d *torDetector) refresh(ctx context.Context) error {
	rl, raw, err := FetchRelayList(ctx, d.client, d.cfg.RelayURL, d.cfg.RelayTimeout)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.urlAddrs = rl.Addrs
	d.mu.Unlock()
	d.rebuild()
	log := d.logger()
	log.Info("tor relay list downloaded", zap.Int("addresses", len(rl.Addrs)), zap.Int("bad_entries", rl.BadCount))
	if d.cfg.RelayCache != "" {
		if err := os.MkdirAll(filepath.Dir(d.cfg.RelayCache), 0o700); err != nil {
			log.Warn("tor relay cache not written", zap.Error(err))
		} else if err := fsutil.WriteFileAtomic(d.cfg.RelayCache, raw); err != nil {
			log.Warn("tor relay cache not written", zap.String("path", d.cfg.RelayCache), zap.Error(err))
		}
	}
	return nil
}

func (d *torDetector) Name() string { return RuleTor }

func (d *torDetector) Rules() []RuleInfo {
	return []RuleInfo{{
		ID:         RuleTor,
		Name:       "Tor usage",
		ThreatType: ThreatTor,
		Technique:  "T1090.003",
		Severity:   SeverityHigh,
		Description: "A running Tor process (with its SOCKS listeners and relay connections), a connection to a " +
			"Tor port, a connection to an address on the relay list (any port), or a SOCKS listener on a Tor " +
			"port. One alert per connection, listing every reason that applied.",
		Recommendation: Recommendation(ThreatTor),
		Thresholds: map[string]any{
			"ports":          portsAsInts(d.ports),
			"socks_ports":    portsAsInts(d.socks),
			"process_names":  sortedKeys(d.names),
			"relay_list":     d.cfg.RelayList,
			"relay_url":      d.cfg.RelayURL,
			"relay_refresh":  d.cfg.RelayRefresh.String(),
			"relay_entries":  d.relays.Load().len(),
			"relay_timeout":  d.cfg.RelayTimeout.String(),
			"relay_cache":    d.cfg.RelayCache,
			"relay_max_size": MaxRelayListBytes,
		},
	}}
}

func (d *torDetector) isTor(p *collector.Process) bool {
	if p == nil {
		return false
	}
	return d.names[p.Name] || (p.Exe != "" && d.names[filepath.Base(p.Exe)])
}

// torProc gathers what one Tor process is doing in this snapshot.
type torProc struct {
	pid       int32
	listeners []string
	socks     bool
	dests     map[string]bool
	conns     int
	relayHits int
}

func (d *torDetector) Detect(snap *collector.Snapshot, env *Env) []Alert {
	relays := d.relays.Load()
	procs := map[int32]*torProc{}
	group := func(pid int32) *torProc {
		g := procs[pid]
		if g == nil {
			g = &torProc{pid: pid, dests: map[string]bool{}}
			procs[pid] = g
		}
		return g
	}
	for pid, p := range snap.Processes {
		if d.isTor(p) {
			group(pid)
		}
	}

	var out []Alert
	seen := map[string]bool{}
	visit := func(s *collector.Socket, closed bool) {
		key := ConnKey(s)
		if seen[key] {
			return
		}
		seen[key] = true
		owner := env.Process(snap, s.PID)
		torOwned := d.isTor(owner)
		if IsListener(s) {
			if !s.Local.IsValid() {
				return
			}
			socks := s.Proto == "tcp" && d.socks.Has(s.Local.Port())
			switch {
			case torOwned:
				g := group(s.PID)
				g.listeners = append(g.listeners, s.Proto+"/"+s.Local.String())
				g.socks = g.socks || socks
			case socks:
				out = append(out, d.listenAlert(snap, env, s))
			}
			return
		}
		if !s.Remote.IsValid() || s.Remote.Addr().IsUnspecified() {
			return
		}
		if env.listenersFor(snap).accepts(s) {
			return // the accepted side of a connection to a local listener
		}
		var reasons []string
		if d.ports.Has(s.Remote.Port()) {
			reasons = append(reasons, "tor_port")
		}
		relayHit := relays.contains(s.Remote.Addr())
		if relayHit {
			reasons = append(reasons, "relay_address")
		}
		if torOwned {
			reasons = append(reasons, "tor_process")
		}
		if len(reasons) == 0 {
			return
		}
		env.Claim(s, RuleSuspiciousPort)
		if torOwned {
			g := group(s.PID)
			g.conns++
			g.dests[s.Remote.String()] = true
			if relayHit {
				g.relayHits++
			}
			return
		}
		out = append(out, d.connAlert(snap, env, s, reasons, closed, relays))
	}
	for i := range snap.Sockets {
		visit(&snap.Sockets[i], false)
	}
	for i := range snap.Closed {
		visit(&snap.Closed[i], true)
	}

	pids := make([]int32, 0, len(procs))
	for pid := range procs {
		pids = append(pids, pid)
	}
	sort.Slice(pids, func(i, j int) bool { return pids[i] < pids[j] })
	for _, pid := range pids {
		out = append(out, d.procAlert(snap, env, procs[pid], relays))
	}
	return out
}

func (d *torDetector) base(snap *collector.Snapshot, env *Env, pid int32) Alert {
	return Alert{
		RuleID:     RuleTor,
		ThreatType: ThreatTor,
		Technique:  "T1090.003",
		Severity:   SeverityHigh,
		Process:    ProcessContext(snap, env, pid),
	}
}

func relayEvidence(ev map[string]any, relays *relaySet) {
	ev["relay_list_entries"] = relays.len()
	if relays != nil && len(relays.sources) > 0 {
		ev["relay_list_sources"] = relays.sources
	}
}

func (d *torDetector) connAlert(snap *collector.Snapshot, env *Env, s *collector.Socket, reasons []string, closed bool, relays *relaySet) Alert {
	a := d.base(snap, env, s.PID)
	a.Transport, a.Source, a.Dest = s.Proto, s.Local, s.Remote
	a.Direction = Direction(snap, env, s)
	sort.Strings(reasons)
	a.Entity = "conn:" + ProcessKey(snap, env, s.PID) + ":" + s.Remote.Addr().Unmap().String() + ":" + strconv.Itoa(int(s.Remote.Port()))
	a.Message = fmt.Sprintf("%s connection to %s looks like Tor (%s) by %s", s.Proto, s.Remote, strings.Join(reasons, ", "), describeProc(a.Process, s.PID))
	a.Evidence = map[string]any{
		"reasons":   reasons,
		"port":      int(s.Remote.Port()),
		"state":     s.State,
		"closed":    closed,
		"tor_ports": portsAsInts(d.ports),
	}
	relayEvidence(a.Evidence, relays)
	if s.PID == 0 {
		a.Evidence["process_unknown"] = "socket owner not readable (another user's process or no owner)"
	}
	return a
}

func (d *torDetector) listenAlert(snap *collector.Snapshot, env *Env, s *collector.Socket) Alert {
	a := d.base(snap, env, s.PID)
	a.Transport, a.Source = s.Proto, s.Local
	a.Direction = DirIngress
	port := s.Local.Port()
	a.Entity = "listen:" + s.Proto + ":" + strconv.Itoa(int(port))
	a.Message = fmt.Sprintf("SOCKS listener on Tor port %d (%s) by %s", port, s.Local, describeProc(a.Process, s.PID))
	a.Evidence = map[string]any{
		"reasons":     []string{"socks_listener"},
		"port":        int(port),
		"local":       s.Local.String(),
		"socks_ports": portsAsInts(d.socks),
	}
	if s.PID == 0 {
		a.Evidence["process_unknown"] = "socket owner not readable (another user's process or no owner)"
	}
	return a
}

func (d *torDetector) procAlert(snap *collector.Snapshot, env *Env, g *torProc, relays *relaySet) Alert {
	a := d.base(snap, env, g.pid)
	name := ProcessKey(snap, env, g.pid)
	a.Entity = "process:" + name + ":" + strconv.Itoa(int(g.pid))
	reasons := []string{"tor_process"}
	if g.socks {
		reasons = append(reasons, "socks_listener")
	}
	if g.relayHits > 0 {
		reasons = append(reasons, "relay_address")
	}
	sort.Strings(reasons)
	sort.Strings(g.listeners)
	dests := make([]string, 0, len(g.dests))
	for k := range g.dests {
		dests = append(dests, k)
	}
	sort.Strings(dests)
	if len(dests) > maxTorDestinations {
		dests = dests[:maxTorDestinations]
	}
	a.Message = fmt.Sprintf("Tor process %s (pid %d) running: %d listeners, %d connections", name, g.pid, len(g.listeners), g.conns)
	a.Evidence = map[string]any{
		"reasons":          reasons,
		"process_names":    sortedKeys(d.names),
		"listeners":        g.listeners,
		"connections":      g.conns,
		"destinations":     dests,
		"relay_connection": g.relayHits,
	}
	relayEvidence(a.Evidence, relays)
	if len(g.listeners) > 0 || g.conns > 0 {
		a.Transport = "tcp"
	}
	return a
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
