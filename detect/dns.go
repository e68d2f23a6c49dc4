package detect

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/netsentinel/netsentinel/collector"
)

// Suspicious DNS (T1071.004). A host sensor cannot see query names; it can
// see where DNS goes and how much of it:
//   - DNS (53/udp, 53/tcp) to a server not in resolv.conf (snap.Nameservers,
//     loopback stubs such as 127.0.0.53 included) and not in extra_resolvers;
//   - DNS over TLS (853/tcp);
//   - known DoH resolver addresses on 443 by a process that is not a browser;
//   - per-process DNS socket rate over a window (short query sockets are seen
//     through snap.Closed / destroy events);
//   - the resolver configuration changing during the run (rule dns_hijack).
// Local resolvers (systemd-resolved, dnsmasq, unbound ...) query upstream
// servers by design and are exempt from the first three rules. When a
// socket's PID is unknown (another user's process, unprivileged sensor), it
// is exempt when its uid is that of a running resolver or browser process.

// RuleSuspiciousDNS is the registry name (and main rule id) of the suspicious
// DNS detector; RuleDNSHijack is the rule id of resolver-configuration changes.
const (
	RuleSuspiciousDNS = "suspicious_dns"
	RuleDNSHijack     = "dns_hijack"
)

// DNSConfig configures the suspicious DNS detector.
type DNSConfig struct {
	// ExtraResolvers are allowed DNS servers besides resolv.conf's.
	ExtraResolvers []string `yaml:"extra_resolvers"`
	// ResolverProcesses may talk DNS/DoT to any server.
	ResolverProcesses []string `yaml:"resolver_processes"`
	// DoHResolvers are DoH resolver addresses watched on DoHPorts.
	DoHResolvers []string `yaml:"doh_resolvers"`
	DoHPorts     []uint16 `yaml:"doh_ports"`
	// Browsers may use DoH.
	Browsers []string `yaml:"browsers"`
	// RateWindow and MaxSocketsPerWindow: DNS sockets one process opens.
	RateWindow          time.Duration `yaml:"rate_window"`
	MaxSocketsPerWindow int           `yaml:"max_sockets_per_window"`
	// MaxKeys caps the per-process rate trackers.
	MaxKeys int `yaml:"max_keys"`
}

func defaultDNSConfig() *DNSConfig {
	return &DNSConfig{
		ResolverProcesses: []string{"systemd-resolve", "systemd-resolved", "dnsmasq", "unbound", "named", "pdns_recursor",
			"kresd", "coredns", "nscd", "stubby", "dnscrypt-proxy", "cloudflared", "knot-resolver"},
		DoHResolvers: []string{"1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4", "9.9.9.9", "149.112.112.112",
			"94.140.14.14", "94.140.15.15", "208.67.222.222", "208.67.220.220",
			"2606:4700:4700::1111", "2606:4700:4700::1001", "2001:4860:4860::8888", "2001:4860:4860::8844",
			"2620:fe::fe", "2620:fe::9"},
		DoHPorts: []uint16{443},
		Browsers: []string{"firefox", "firefox-esr", "chrome", "chromium", "chromium-browse", "google-chrome", "brave", "brave-browser",
			"msedge", "microsoft-edge", "opera", "vivaldi", "vivaldi-bin", "epiphany", "safari", "librewolf", "Web Content", "Socket Process"},
		RateWindow:          time.Minute,
		MaxSocketsPerWindow: 300,
		MaxKeys:             10000,
	}
}

func init() { registerConfig(RuleSuspiciousDNS, defaultDNSConfig, newDNS) }

type dnsRate struct {
	times []time.Time
	pid   int32
}

type suspiciousDNS struct {
	cfg       DNSConfig
	extra     map[netip.Addr]bool
	doh       map[netip.Addr]bool
	dohPorts  PortSet
	resolvers map[string]bool
	browsers  map[string]bool
	rates     *Window[string, dnsRate]
	seen      *Window[connID, struct{}] // DNS connections already counted for the rate
	lastNS    []netip.Addr
	haveNS    bool
}

func newDNS(c DNSConfig) (*suspiciousDNS, error) {
	if c.RateWindow <= 0 || c.MaxSocketsPerWindow < 1 {
		return nil, fmt.Errorf("rate_window must be positive and max_sockets_per_window at least 1")
	}
	d := &suspiciousDNS{cfg: c, extra: map[netip.Addr]bool{}, doh: map[netip.Addr]bool{}, dohPorts: NewPortSet(c.DoHPorts...),
		resolvers: lowerSet(c.ResolverProcesses), browsers: lowerSet(c.Browsers),
		rates: NewWindow[string, dnsRate](c.MaxKeys, c.RateWindow),
		seen:  NewWindow[connID, struct{}](maxBeaconSeen, 10*time.Minute)}
	for _, s := range c.ExtraResolvers {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("extra_resolvers: invalid address %q: %w", s, err)
		}
		d.extra[a.Unmap()] = true
	}
	for _, s := range c.DoHResolvers {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("doh_resolvers: invalid address %q: %w", s, err)
		}
		d.doh[a.Unmap()] = true
	}
	return d, nil
}

func lowerSet(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[strings.ToLower(n)] = true
	}
	return m
}

func (d *suspiciousDNS) Name() string { return RuleSuspiciousDNS }

func (d *suspiciousDNS) Rules() []RuleInfo {
	return []RuleInfo{
		{
			ID: RuleSuspiciousDNS, Name: "Suspicious DNS traffic", ThreatType: ThreatSuspiciousDNS, Technique: "T1071.004",
			Severity: SeverityMedium,
			Description: "DNS to a server not in resolv.conf, DNS over TLS (853), DoH resolvers on 443 by non-browser processes, " +
				"or a process opening DNS sockets at a high rate.",
			Thresholds: map[string]any{"rate_window": d.cfg.RateWindow.String(), "max_sockets_per_window": d.cfg.MaxSocketsPerWindow,
				"doh_resolvers": d.cfg.DoHResolvers, "doh_ports": d.cfg.DoHPorts, "extra_resolvers": d.cfg.ExtraResolvers},
			Sees: Visibility{
				Privileged: "Every DNS, DoT and DoH socket with its process (resolver and browser exemptions by name); " +
					"query sockets shorter than a poll through destroy notifications, which carry no owner, so their rate " +
					"counts under an unknown owner.",
				Unprivileged: "The same sockets; another user's socket has no process: exemptions go by uid (the uid of " +
					"any running resolver or browser), the rate counts per uid, and DoH by such a socket is low severity.",
			},
		},
		{
			ID: RuleDNSHijack, Name: "Resolver configuration changed", ThreatType: ThreatDNSHijack, Technique: "T1071.004",
			Severity:    SeverityHigh,
			Description: "The nameservers in the resolver configuration changed while the sensor was running.",
			Sees: Visibility{
				Privileged:   "The resolver configuration file, read at every poll: a change reverted within one poll is missed.",
				Unprivileged: "The same (the file is world-readable).",
			},
		},
	}
}

// procName returns a socket's process name (lower case), "" when unknown.
func procName(snap *collector.Snapshot, env *Env, pid int32) string {
	p := env.Process(snap, pid)
	if p == nil {
		return ""
	}
	if p.Exe != "" && !strings.EqualFold(filepath.Base(p.Exe), p.Name) && len(p.Name) == 15 {
		return strings.ToLower(filepath.Base(p.Exe)) // comm is truncated to 15 bytes
	}
	return strings.ToLower(p.Name)
}

func (d *suspiciousDNS) Detect(snap *collector.Snapshot, env *Env) []Alert {
	now := snap.Time
	var out []Alert
	out = append(out, d.hijack(snap)...)

	configured := map[netip.Addr]bool{}
	for _, a := range snap.Nameservers {
		configured[a.Unmap()] = true
	}
	// UIDs of running resolvers and browsers, for sockets without a PID.
	resolverUID, browserUID := map[uint32]bool{}, map[uint32]bool{}
	for _, p := range snap.Processes {
		if p == nil {
			continue
		}
		n := strings.ToLower(p.Name)
		if d.resolvers[n] {
			resolverUID[p.UID] = true
		}
		if d.browsers[n] {
			browserUID[p.UID] = true
		}
	}
	isResolver := func(s *collector.Socket, name string) bool {
		if name != "" {
			return d.resolvers[name]
		}
		return resolverUID[s.UID]
	}
	seenKeys := map[string]bool{}
	rateKeys := map[string]bool{}

	check := func(s *collector.Socket, fresh bool) {
		if !s.Remote.IsValid() || IsListener(s) || Direction(snap, env, s) == DirIngress {
			return
		}
		port := s.Remote.Port()
		ra := s.Remote.Addr().Unmap()
		name := procName(snap, env, s.PID)
		pkey := OwnerKey(snap, env, s)
		isDNS := port == 53 || (port == 853 && s.Proto == collector.ProtoTCP)
		if isDNS && fresh {
			st := d.rates.Touch(pkey, now, nil)
			st.times = append(st.times, now)
			if len(st.times) > 4*d.cfg.MaxSocketsPerWindow {
				st.times = st.times[len(st.times)-4*d.cfg.MaxSocketsPerWindow:]
			}
			if s.PID > 0 {
				st.pid = s.PID
			}
			rateKeys[pkey] = true
		}
		mk := func(kind, msg string, sev Severity, ev map[string]any) {
			entity := kind + "|" + pkey + "|" + ra.String()
			if seenKeys[entity] {
				return
			}
			seenKeys[entity] = true
			proc := ownerContext(snap, env, s, ev)
			out = append(out, Alert{
				ThreatType: ThreatSuspiciousDNS, Technique: "T1071.004", Severity: sev, Message: msg,
				Transport: s.Proto.String(), Direction: Direction(snap, env, s), Source: s.Local, Dest: netip.AddrPortFrom(ra, port),
				Process: proc, Evidence: ev,
				Recommendation: Recommendation(ThreatSuspiciousDNS), Entity: entity,
			})
		}
		switch {
		case port == 53 && !configured[ra] && !d.extra[ra] && !isResolver(s, name):
			mk("unconfigured", fmt.Sprintf("DNS to %s, a server not in the resolver configuration, by %s", ra, pkey), SeverityMedium,
				map[string]any{"server": ra.String(), "configured_nameservers": addrStrings(snap.Nameservers), "port": port})
		case port == 853 && s.Proto == collector.ProtoTCP && !isResolver(s, name):
			mk("dot", fmt.Sprintf("DNS over TLS to %s by %s (bypasses the configured resolvers)", ra, pkey), SeverityMedium,
				map[string]any{"server": ra.String(), "port": port})
		case d.dohPorts.Has(port) && s.Proto == collector.ProtoTCP && d.doh[ra] && !d.browsers[name] && !isResolver(s, name):
			sev := SeverityMedium
			if name == "" {
				if browserUID[s.UID] {
					return
				}
				sev = SeverityLow // process unknown: could be another user's browser
			}
			mk("doh", fmt.Sprintf("connection to DoH resolver %s:%d by non-browser process %s", ra, port, pkey), sev,
				map[string]any{"resolver": ra.String(), "port": port})
		}
	}
	// Only DNS (53, 853/tcp) and DoH connections can match; the rest of the
	// table is skipped before any look-up, and only DNS connections are
	// remembered (fresh matters only for them).
	// visit returns true when s can never match (quiet.go): neither DNS
	// nor a configured DoH resolver.
	visit := func(s *collector.Socket) (quiet bool) {
		if !s.Remote.IsValid() {
			return true
		}
		port := s.Remote.Port()
		if port == 53 || (port == 853 && s.Proto == collector.ProtoTCP) {
			_, dup := d.seen.Upsert(connIDOf(s), now)
			check(s, !dup)
		} else if s.Proto == collector.ProtoTCP && d.dohPorts.Has(port) && d.doh[s.Remote.Addr().Unmap()] {
			check(s, false)
		} else {
			return true
		}
		return false
	}
	env.visitSockets(snap, quietDNS, visit)
	for i := range snap.Closed {
		visit(&snap.Closed[i])
	}
	d.seen.Expire(now)

	keys := make([]string, 0, len(rateKeys))
	for k := range rateKeys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	cut := now.Add(-d.cfg.RateWindow)
	for _, k := range keys {
		st, ok := d.rates.Get(k)
		if !ok {
			continue
		}
		i := 0
		for i < len(st.times) && !st.times[i].After(cut) {
			i++
		}
		st.times = st.times[i:]
		if len(st.times) < d.cfg.MaxSocketsPerWindow {
			continue
		}
		out = append(out, Alert{
			ThreatType: ThreatSuspiciousDNS, Technique: "T1071.004", Severity: SeverityMedium,
			Start: st.times[0], End: now,
			Message:   fmt.Sprintf("high DNS query rate: %s opened %d DNS sockets within %s (possible DNS tunnelling)", k, len(st.times), d.cfg.RateWindow),
			Transport: "udp", Direction: DirEgress, Process: ProcessContext(snap, env, st.pid),
			Evidence: map[string]any{"dns_sockets": len(st.times), "threshold": d.cfg.MaxSocketsPerWindow,
				"window_seconds": d.cfg.RateWindow.Seconds()},
			Recommendation: Recommendation(ThreatSuspiciousDNS), Entity: "rate|" + k,
		})
	}
	d.rates.Expire(now)
	return out
}

func addrStrings(as []netip.Addr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

// hijack compares the nameservers with the previous snapshot's. A snapshot
// whose resolver configuration could not be read is skipped.
func (d *suspiciousDNS) hijack(snap *collector.Snapshot) []Alert {
	for _, e := range snap.Stats.Errors {
		if strings.Contains(strings.ToLower(e), "resolv") || strings.Contains(strings.ToLower(e), "dns") {
			return nil
		}
	}
	cur := append([]netip.Addr(nil), snap.Nameservers...)
	if !d.haveNS {
		d.lastNS, d.haveNS = cur, true
		return nil
	}
	same := len(cur) == len(d.lastNS)
	for i := 0; same && i < len(cur); i++ {
		same = cur[i] == d.lastNS[i]
	}
	if same {
		return nil
	}
	old := d.lastNS
	d.lastNS = cur
	var added []string
	oldSet := map[netip.Addr]bool{}
	for _, a := range old {
		oldSet[a] = true
	}
	for _, a := range cur {
		if !oldSet[a] {
			added = append(added, a.String())
		}
	}
	a := Alert{
		RuleID: RuleDNSHijack, ThreatType: ThreatDNSHijack, Technique: "T1071.004", Severity: SeverityHigh,
		Message:        fmt.Sprintf("resolver configuration changed: nameservers %v -> %v", addrStrings(old), addrStrings(cur)),
		Evidence:       map[string]any{"old_nameservers": addrStrings(old), "new_nameservers": addrStrings(cur), "added": added},
		Recommendation: Recommendation(ThreatDNSHijack),
		Entity:         "nameservers:" + strings.Join(addrStrings(cur), ","),
	}
	if len(cur) > 0 {
		a.Dest = netip.AddrPortFrom(cur[0], 53)
	}
	return []Alert{a}
}
