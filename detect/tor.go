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
	// Any other name counts too when its command line carries Tor options
	// or names a torrc (see torproc.go).
	ProcessNames []string `yaml:"process_names"`
	// TransportNames are Tor pluggable-transport clients (comm or executable
	// base name). A child of a Tor process counts as its transport whatever
	// its name.
	TransportNames []string `yaml:"transport_names"`
	// ReadTorrc: read the torrc a command line names (-f, --torrc-file,
	// --defaults-torrc) when the sensor can, for its Bridge, SocksPort and
	// transport lines. Regular files only, at most 256 KiB, once per process.
	ReadTorrc bool `yaml:"read_torrc"`
	// ProxyMinHosts is how many distinct external hosts, on ProxyPorts, a
	// process that serves a local client on its own listener must reach for
	// the socks_proxy rule. 0 disables the rule.
	ProxyMinHosts int `yaml:"proxy_min_hosts"`
	// ProxyPorts are the remote ports counted as TLS-ish fan-out.
	ProxyPorts []string `yaml:"proxy_ports"`
	// ProxyAllowNames are forward proxies run on purpose (comm or executable
	// base name) that socks_proxy ignores.
	ProxyAllowNames []string `yaml:"proxy_allow_names"`
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
		Ports:           []string{"9001", "9030", "9050", "9051", "9150", "9151"},
		SocksPorts:      []string{"9050", "9150"},
		ProcessNames:    []string{"tor"},
		TransportNames:  append([]string(nil), DefaultTransportNames...),
		ReadTorrc:       true,
		ProxyMinHosts:   DefaultProxyMinHosts,
		ProxyPorts:      []string{"443", "8443", "9001", "9443"},
		ProxyAllowNames: []string{"squid", "apt-cacher-ng", "tinyproxy", "cntlm"},
		RelayTimeout:    DefaultRelayTimeout,
		RelayRefresh:    DefaultRelayRefresh,
	}
}

type torDetector struct {
	cfg        TorConfig
	ports      PortSet
	socks      PortSet
	names      map[string]bool
	cls        *torClassifier
	proxyPorts PortSet
	proxyAllow map[string]bool

	fileAddrs []netip.Addr
	relays    atomic.Pointer[relaySet]
	markNonce uint64   // QuietKey's key while Tor processes run: never the same
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
	d.cls = newTorClassifier(cfg.ProcessNames, cfg.TransportNames, cfg.ReadTorrc)
	if d.proxyPorts, err = ParsePorts(cfg.ProxyPorts); err != nil {
		return nil, fmt.Errorf("proxy_ports: %w", err)
	}
	if cfg.ProxyMinHosts < 0 {
		return nil, fmt.Errorf("proxy_min_hosts %d: must be 0 (off) or more", cfg.ProxyMinHosts)
	}
	d.proxyAllow = map[string]bool{}
	for _, n := range cfg.ProxyAllowNames {
		if n = strings.TrimSpace(n); n != "" {
			d.proxyAllow[n] = true
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
		Description: "A Tor process by behaviour, under any name: Tor options on its command line (--SocksPort, " +
			"--UseBridges, --Bridge, ClientTransportPlugin ...), a torrc it is started with (-f; read when readable " +
			"for its Bridge, SocksPort and transport lines), or a Tor name; a pluggable transport (obfs4proxy, " +
			"lyrebird, snowflake-client, meek, or any child of a Tor process), with its bridge connections (443 " +
			"included); a connection to a Tor port or to an address on the relay list (any port); a SOCKS listener " +
			"on a Tor port. One alert per Tor process or connection, listing every reason that applied.",
		Recommendation: Recommendation(ThreatTor),
		Thresholds: map[string]any{
			"ports":           portsAsInts(d.ports),
			"socks_ports":     portsAsInts(d.socks),
			"process_names":   sortedKeys(d.names),
			"transport_names": sortedKeys(d.cls.transports),
			"read_torrc":      d.cfg.ReadTorrc,
			"relay_list":      d.cfg.RelayList,
			"relay_url":       d.cfg.RelayURL,
			"relay_refresh":   d.cfg.RelayRefresh.String(),
			"relay_entries":   d.relays.Load().len(),
			"relay_timeout":   d.cfg.RelayTimeout.String(),
			"relay_cache":     d.cfg.RelayCache,
			"relay_max_size":  MaxRelayListBytes,
		},
		Sees: Visibility{
			Privileged: "Every Tor process and pluggable transport by name, command line and torrc, with its " +
				"listeners and relay/bridge connections; every connection to a Tor port or listed relay, with its process.",
			Unprivileged: "Tor processes and transports of every user (command lines are world-readable; a torrc " +
				"only if readable, as /etc/tor/torrc is). Another user's sockets have no owner: a socket is tied " +
				"to a Tor process only when its uid matches and it is a bridge or SocksPort of that process's " +
				"config; other Tor-port and listed-relay connections alert by the socket's uid, without a process.",
		},
	}, d.proxyRule()}
}

// torProc gathers what one Tor process (with its transports) is doing in
// this snapshot.
type torProc struct {
	pid        int32
	signs      *torSigns
	listeners  []string
	socks      bool
	dests      map[string]bool
	conns      int
	relayHits  int
	bridgeHits map[string]bool
	transports []string // "obfs4proxy (pid 12)"
	byUID      int      // sockets tied by uid and config
	parent     int32    // for a Tor process's child (its transport): the Tor process
}

// torGroups indexes the Tor processes of a snapshot: each Tor process, each
// of its children (its pluggable transports, whatever their names, with the
// Tor process's configuration), and standalone transports.
type torGroups struct {
	procs  map[int32]*torProc
	member map[int32]int32 // pid -> group pid
}

func (d *torDetector) groups(snap *collector.Snapshot) torGroups {
	g := torGroups{procs: map[int32]*torProc{}, member: map[int32]int32{}}
	standalonePT := map[int32]*torSigns{}
	for pid, p := range snap.Processes {
		s := d.cls.classify(p)
		switch {
		case s == nil:
		case s.isTor():
			g.procs[pid] = &torProc{pid: pid, signs: s, dests: map[string]bool{}, bridgeHits: map[string]bool{}}
			g.member[pid] = pid
		default:
			standalonePT[pid] = s
		}
	}
	// A wrapper (timeout, sudo, nohup, setpriv ...) carries the command line
	// of the Tor it starts: its child is the one to report.
	var wrappers []int32
	for pid, p := range snap.Processes {
		if g.procs[pid] != nil && p.PPID != pid && g.procs[p.PPID] != nil {
			wrappers = append(wrappers, p.PPID)
		}
	}
	for _, pid := range wrappers {
		delete(g.procs, pid)
		delete(g.member, pid)
	}
	for pid, p := range snap.Processes {
		if p == nil || g.procs[pid] != nil {
			continue
		}
		if parent := g.procs[p.PPID]; parent != nil && parent.parent == 0 && p.PPID != pid {
			g.procs[pid] = &torProc{pid: pid, signs: parent.signs, parent: p.PPID, dests: map[string]bool{}, bridgeHits: map[string]bool{}}
			g.member[pid] = pid
			parent.transports = append(parent.transports, fmt.Sprintf("%s (pid %d)", p.Name, pid))
			delete(standalonePT, pid)
		}
	}
	for pid, s := range standalonePT {
		g.procs[pid] = &torProc{pid: pid, signs: s, dests: map[string]bool{}, bridgeHits: map[string]bool{}}
		g.member[pid] = pid
	}
	d.cls.prune(snap)
	return g
}

// owner returns the group of socket s: by its pid, or for a socket without a
// readable owner by uid when it is a bridge connection or SocksPort listener
// of exactly one Tor process of that uid.
func (g torGroups) owner(snap *collector.Snapshot, s *collector.Socket) (*torProc, bool) {
	if s.PID > 0 {
		if gp, ok := g.member[s.PID]; ok {
			return g.procs[gp], false
		}
		return nil, false
	}
	var found *torProc
	for _, tp := range g.procs {
		p := snap.Processes[tp.pid]
		if tp.parent != 0 || p == nil || p.UID != s.UID || !tp.signs.configured(s) {
			continue
		}
		if found != nil {
			return nil, false // ambiguous
		}
		found = tp
	}
	return found, found != nil
}

// configured reports whether s is a SocksPort listener or a bridge
// connection named in the process's command line or torrc.
func (s *torSigns) configured(sock *collector.Socket) bool {
	if IsListener(sock) {
		for _, p := range s.socksPorts {
			if sock.Proto == collector.ProtoTCP && sock.Local.Port() == p {
				return true
			}
		}
		return false
	}
	return s.isBridge(sock.Remote)
}

func (s *torSigns) isBridge(ap netip.AddrPort) bool {
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	for _, b := range s.bridges {
		if b == ap {
			return true
		}
	}
	return false
}

func (d *torDetector) Detect(snap *collector.Snapshot, env *Env) []Alert {
	relays := d.relays.Load()
	g := d.groups(snap)
	// Marks (quiet.go) read the relay set and, through owner, the Tor
	// processes: they carry over only while the set is the same and there
	// is no Tor process at all (the common host).
	key := uint64(1)
	if relays != nil {
		key += relays.gen
	}
	if len(g.procs) > 0 {
		d.markNonce++
		key = 1<<63 | d.markNonce
	}
	env.QuietKey(quietTor, key)

	var out []Alert
	// A socket can be listed and closed in the same poll (TIME_WAIT): it
	// counts once. Only sockets that matter are remembered, so a poll costs
	// a few checks per socket and no look-up for the rest.
	seen := map[connID]bool{}
	first := func(s *collector.Socket) bool {
		id := connIDOf(s)
		if seen[id] {
			return false
		}
		seen[id] = true
		return true
	}
	// visit returns true when it ignored s for reasons that hold while s,
	// the relay set and the Tor processes stay the same.
	visit := func(s *collector.Socket, closed bool) (quiet bool) {
		tp, byUID := g.owner(snap, s)
		if IsListener(s) {
			if !s.Local.IsValid() {
				return true
			}
			socks := s.Proto == collector.ProtoTCP && d.socks.Has(s.Local.Port())
			if tp == nil && !socks {
				return true
			}
			if !first(s) {
				return false
			}
			switch {
			case tp != nil:
				tp.listeners = append(tp.listeners, s.Proto.String()+"/"+s.Local.String())
				tp.socks = tp.socks || socks || tp.signs.configured(s)
				if byUID {
					tp.byUID++
				}
			case socks:
				out = append(out, d.listenAlert(snap, env, s))
			}
			return false
		}
		if !s.Remote.IsValid() || s.Remote.Addr().IsUnspecified() {
			return true
		}
		torPort := d.ports.Has(s.Remote.Port())
		relayHit := !s.Remote.Addr().Unmap().IsLoopback() && relays.contains(s.Remote.Addr())
		if tp == nil && !torPort && !relayHit {
			return true
		}
		if !first(s) || env.listenersFor(snap).accepts(s) {
			return false // counted, or the accepted side of a connection to a local listener
		}
		var reasons []string
		if torPort {
			reasons = append(reasons, "tor_port")
		}
		if relayHit {
			reasons = append(reasons, "relay_address")
		}
		env.Claim(s, RuleSuspiciousPort)
		if tp != nil {
			tp.conns++
			tp.dests[s.Remote.String()] = true
			if relayHit {
				tp.relayHits++
			}
			if tp.signs.isBridge(s.Remote) {
				tp.bridgeHits[s.Remote.String()] = true
			}
			if byUID {
				tp.byUID++
			}
			return false
		}
		out = append(out, d.connAlert(snap, env, s, reasons, closed, relays))
		return false
	}
	env.visitSockets(snap, quietTor, func(s *collector.Socket) bool { return visit(s, false) })
	for i := range snap.Closed {
		visit(&snap.Closed[i], true)
	}

	pids := make([]int32, 0, len(g.procs))
	for pid := range g.procs {
		pids = append(pids, pid)
	}
	sort.Slice(pids, func(i, j int) bool { return pids[i] < pids[j] })
	for _, pid := range pids {
		out = append(out, d.procAlert(snap, env, g.procs[pid], relays))
	}
	return append(out, d.proxies(snap, env, g)...)
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
	a.Transport, a.Source, a.Dest = s.Proto.String(), s.Local, s.Remote
	a.Direction = Direction(snap, env, s)
	sort.Strings(reasons)
	a.Entity = "conn:" + OwnerKey(snap, env, s) + ":" + s.Remote.Addr().Unmap().String() + ":" + strconv.Itoa(int(s.Remote.Port()))
	a.Message = fmt.Sprintf("%s connection to %s looks like Tor (%s) by %s", s.Proto, s.Remote, strings.Join(reasons, ", "), describeProc(a.Process, s.PID))
	a.Evidence = map[string]any{
		"reasons":   reasons,
		"port":      int(s.Remote.Port()),
		"state":     s.State.String(),
		"closed":    closed,
		"tor_ports": portsAsInts(d.ports),
	}
	relayEvidence(a.Evidence, relays)
	OwnerEvidence(snap, s, a.Evidence)
	return a
}

func (d *torDetector) listenAlert(snap *collector.Snapshot, env *Env, s *collector.Socket) Alert {
	a := d.base(snap, env, s.PID)
	a.Transport, a.Source = s.Proto.String(), s.Local
	a.Direction = DirIngress
	port := s.Local.Port()
	a.Entity = "listen:" + s.Proto.String() + ":" + strconv.Itoa(int(port))
	a.Message = fmt.Sprintf("SOCKS listener on Tor port %d (%s) by %s", port, s.Local, describeProc(a.Process, s.PID))
	a.Evidence = map[string]any{
		"reasons":     []string{"socks_listener"},
		"port":        int(port),
		"local":       s.Local.String(),
		"socks_ports": portsAsInts(d.socks),
	}
	OwnerEvidence(snap, s, a.Evidence)
	return a
}

func (d *torDetector) procAlert(snap *collector.Snapshot, env *Env, g *torProc, relays *relaySet) Alert {
	a := d.base(snap, env, g.pid)
	name := ProcessKey(snap, env, g.pid)
	a.Entity = "process:" + name + ":" + strconv.Itoa(int(g.pid))
	reasons := append([]string(nil), g.signs.reasons...)
	if g.parent != 0 {
		reasons = []string{"pluggable_transport"}
	}
	if g.socks {
		reasons = append(reasons, "socks_listener")
	}
	if g.relayHits > 0 {
		reasons = append(reasons, "relay_address")
	}
	if len(g.bridgeHits) > 0 {
		reasons = append(reasons, "bridge_connection")
	}
	if len(g.transports) > 0 && !containsString(reasons, "pluggable_transport") {
		reasons = append(reasons, "pluggable_transport")
	}
	sort.Strings(reasons)
	sort.Strings(g.listeners)
	sort.Strings(g.transports)
	dests := sortedKeys(g.dests)
	if len(dests) > maxTorDestinations {
		dests = dests[:maxTorDestinations]
	}
	bridges := sortedKeys(g.bridgeHits)
	what := "Tor process"
	if g.parent != 0 || !g.signs.isTor() {
		what = "Tor pluggable transport"
	}
	a.Message = fmt.Sprintf("%s %s (pid %d) running (%s): %d listeners, %d connections", what, name, g.pid,
		strings.Join(reasons, ", "), len(g.listeners), g.conns)
	if len(bridges) > 0 {
		a.Message += ", bridge " + strings.Join(bridges, ", ")
	}
	a.Evidence = map[string]any{
		"reasons":          reasons,
		"process_names":    sortedKeys(d.names),
		"listeners":        g.listeners,
		"connections":      g.conns,
		"destinations":     dests,
		"relay_connection": g.relayHits,
	}
	s := g.signs
	if g.parent != 0 {
		a.Evidence["tor_process"] = fmt.Sprintf("%s (pid %d)", ProcessKey(snap, env, g.parent), g.parent)
		a.Message += "; launched by Tor process " + a.Evidence["tor_process"].(string)
	}
	if len(s.options) > 0 && g.parent == 0 {
		a.Evidence["tor_options"] = s.options
	}
	if s.torrc != "" && g.parent == 0 {
		a.Evidence["torrc"] = s.torrc
		a.Evidence["torrc_read"] = s.torrcRead
		if len(s.torrcKeys) > 0 {
			a.Evidence["torrc_keywords"] = s.torrcKeys
		}
	}
	if len(s.bridges) > 0 {
		cfg := make([]string, len(s.bridges))
		for i, b := range s.bridges {
			cfg[i] = b.String()
		}
		a.Evidence["configured_bridges"] = cfg
	}
	if len(bridges) > 0 {
		a.Evidence["bridge_connections"] = bridges
	}
	if len(s.transports) > 0 {
		a.Evidence["client_transports"] = s.transports
	}
	if len(g.transports) > 0 {
		a.Evidence["transport_processes"] = g.transports
	}
	if g.byUID > 0 {
		a.Evidence["sockets_tied_by_uid"] = g.byUID
		a.Evidence["sockets_tied_by_uid_note"] = "socket owner not readable; tied by uid and the process's configured bridge/SocksPort"
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
