package detect

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/netsentinel/netsentinel/collector"
)

// ARP cache poisoning and NDP spoofing (T1557.002) from the neighbour table
// (IPv4 and IPv6) and from the neighbour changes the kernel announced
// between two polls (Snapshot.NeighborEvents), replayed in order before the
// table, so a change reverted within one poll is still seen:
//   - one MAC claiming several IPv4 addresses (IPv6 hosts legitimately hold
//     several addresses per MAC, so IPv6 is off by default);
//   - one MAC taking over IPv6 addresses that two or more other MACs held
//     (parasite6-style NDP spoofing of several hosts);
//   - an IPv6 address whose interface identifier is the EUI-64 form of one
//     MAC answered by another MAC;
//   - a default gateway's MAC changing (IPv4 and IPv6 default routes, and
//     neighbours that announced themselves as IPv6 routers);
//   - one of this host's own addresses claimed by another MAC;
//   - an address whose MAC flips back and forth (A -> B -> A) within a window.
// Broadcast, multicast, all-zero and incomplete entries are ignored.
// Failover groups (VIPs moving between known MACs, VRRP/keepalived/CARP) and
// allowed MACs (proxy ARP, load balancers) are exempt as configured.

// RuleARPSpoofing is the registry name (and rule id) of the ARP spoofing detector.
const RuleARPSpoofing = "arp_spoofing"

// ARPConfig configures the ARP spoofing detector.
type ARPConfig struct {
	// MaxIPsPerMAC: a MAC holding more IPv4 addresses than this alerts.
	MaxIPsPerMAC int `yaml:"max_ips_per_mac"`
	// IncludeIPv6 also counts IPv6 neighbours (not link-local) for one-MAC-many-IPs.
	IncludeIPv6 bool `yaml:"include_ipv6"`
	// FlipWindow is how long MAC history per IP is kept for flip-flops.
	FlipWindow time.Duration `yaml:"flip_window"`
	// AllowedMACs may hold many IPs and answer for EUI-64 addresses of other
	// MACs (routers with proxy ARP or proxy NDP, load balancers).
	AllowedMACs []string `yaml:"allowed_macs"`
	// Failover groups: addresses that may move between the group's MACs
	// (a VIP held by whichever node is master) without an alert. A move to
	// any other MAC still alerts.
	Failover []FailoverGroup `yaml:"failover"`
	// MaxEntries caps the tracked IPs.
	MaxEntries int `yaml:"max_entries"`
}

// FailoverGroup is one set of addresses shared by a set of MACs.
type FailoverGroup struct {
	// Addresses are IPs or CIDR prefixes (IPv4 or IPv6).
	Addresses []string `yaml:"addresses"`
	// MACs may hold any of the addresses.
	MACs []string `yaml:"macs"`
}

func defaultARPConfig() *ARPConfig {
	return &ARPConfig{MaxIPsPerMAC: 1, FlipWindow: time.Hour, MaxEntries: 10000}
}

func init() { registerConfig(RuleARPSpoofing, defaultARPConfig, newARP) }

type macChange struct {
	mac string
	t   time.Time
}

type failover struct {
	prefixes []netip.Prefix
	macs     map[string]bool
}

type arpSpoof struct {
	cfg      ARPConfig
	allowed  map[string]bool
	failover []failover
	history  *Window[netip.Addr, []macChange] // per IP: MACs in order of change, last 4
	gateway  map[netip.Addr]string            // gateway IP -> MAC (bounded by routes and routers)
	routers  *Window[netip.Addr, struct{}]    // IPv6 neighbours seen with the router flag
	view     map[netip.Addr]string            // the previous poll's table, IP -> MAC
}

// normMAC returns mac in lower-case colon form ("-" separators accepted),
// or false when it is not a hardware address.
func normMAC(mac string) (string, bool) {
	m := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(mac), "-", ":"))
	if len(m) != len("00:00:00:00:00:00") {
		return "", false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if i%3 == 2 {
			if c != ':' {
				return "", false
			}
		} else if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", false
		}
	}
	return m, true
}

func newARP(c ARPConfig) (*arpSpoof, error) {
	if c.MaxIPsPerMAC < 1 || c.FlipWindow <= 0 {
		return nil, fmt.Errorf("max_ips_per_mac must be at least 1 and flip_window positive")
	}
	d := &arpSpoof{cfg: c, allowed: map[string]bool{}, gateway: map[netip.Addr]string{},
		history: NewWindow[netip.Addr, []macChange](c.MaxEntries, c.FlipWindow),
		routers: NewWindow[netip.Addr, struct{}](1024, c.FlipWindow)}
	for _, m := range c.AllowedMACs {
		n, ok := normMAC(m)
		if !ok {
			return nil, fmt.Errorf("allowed_macs: %q is not a MAC address (want 52:54:00:12:34:56)", m)
		}
		d.allowed[n] = true
	}
	for i, g := range c.Failover {
		if len(g.Addresses) == 0 || len(g.MACs) < 2 {
			return nil, fmt.Errorf("failover[%d]: needs addresses and at least two macs", i)
		}
		f := failover{macs: map[string]bool{}}
		for _, a := range g.Addresses {
			p, err := netip.ParsePrefix(a)
			if err != nil {
				ip, aerr := netip.ParseAddr(a)
				if aerr != nil {
					return nil, fmt.Errorf("failover[%d].addresses: %q is neither an IP address nor a CIDR prefix", i, a)
				}
				p = netip.PrefixFrom(ip, ip.BitLen())
			}
			f.prefixes = append(f.prefixes, p.Masked())
		}
		for _, m := range g.MACs {
			n, ok := normMAC(m)
			if !ok {
				return nil, fmt.Errorf("failover[%d].macs: %q is not a MAC address (want 52:54:00:12:34:56)", i, m)
			}
			f.macs[n] = true
		}
		d.failover = append(d.failover, f)
	}
	return d, nil
}

func (d *arpSpoof) Name() string { return RuleARPSpoofing }

func (d *arpSpoof) Rules() []RuleInfo {
	return []RuleInfo{{
		ID: RuleARPSpoofing, Name: "ARP cache poisoning / NDP spoofing", ThreatType: ThreatARPSpoofing, Technique: "T1557.002",
		Severity: SeverityCritical,
		Description: "Neighbour table (IPv4 and IPv6) and its change notifications: one MAC claiming several IPv4 addresses or " +
			"IPv6 addresses of several other hosts, an EUI-64 IPv6 address answered by another MAC, a gateway's MAC changing, " +
			"this host's IP claimed by another MAC, or an IP's MAC flip-flopping, also when reverted within a poll.",
		Thresholds: map[string]any{"max_ips_per_mac": d.cfg.MaxIPsPerMAC, "include_ipv6": d.cfg.IncludeIPv6,
			"flip_window": d.cfg.FlipWindow.String(), "allowed_macs": d.cfg.AllowedMACs, "failover_groups": len(d.cfg.Failover)},
		Sees: Visibility{
			Privileged: "The neighbour table (ARP and NDP, rtnetlink dump at each poll) and every change the kernel announces " +
				"in between (RTNLGRP_NEIGH), so a poisoning reverted within a poll is seen; the gateways from the routing table.",
			Unprivileged: "The same: the neighbour dump and the RTNLGRP_NEIGH notifications need no privilege, so nothing is " +
				"missed (changes lost to a socket overflow are counted in stats.neighbor_events_lost in either mode).",
		},
	}}
}

// usableMAC reports whether mac identifies one host: not empty, all-zero,
// broadcast or multicast (group bit of the first octet).
func usableMAC(mac string) bool {
	if mac == "" || mac == "00:00:00:00:00:00" || mac == "ff:ff:ff:ff:ff:ff" {
		return false
	}
	first, _, _ := strings.Cut(mac, ":")
	b, err := strconv.ParseUint(first, 16, 8)
	if err != nil {
		return false
	}
	return b&1 == 0
}

// neighborEntry returns the entry's address (always, when valid) and its
// MAC when the entry names one unicast host.
func neighborEntry(n collector.Neighbor) (netip.Addr, string, bool) {
	if !n.IP.IsValid() {
		return netip.Addr{}, "", false
	}
	ip := n.IP.Unmap()
	mac := strings.ToLower(n.MAC)
	if !n.Complete || !usableMAC(mac) || ip.IsMulticast() || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return ip, "", false
	}
	return ip, mac, true
}

// eui64MAC returns the MAC an IPv6 address's interface identifier was
// derived from (modified EUI-64: ff:fe in the middle, U/L bit flipped).
func eui64MAC(ip netip.Addr) (string, bool) {
	if !ip.Is6() || ip.Is4In6() {
		return "", false
	}
	b := ip.As16()
	if b[11] != 0xff || b[12] != 0xfe {
		return "", false
	}
	mac := fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", b[8]^0x02, b[9], b[10], b[13], b[14], b[15])
	return mac, usableMAC(mac)
}

// failoverOK reports whether mac may hold ip as a member of a failover group.
func (d *arpSpoof) failoverOK(ip netip.Addr, mac string) bool {
	for _, f := range d.failover {
		if !f.macs[mac] {
			continue
		}
		for _, p := range f.prefixes {
			if p.Contains(ip) {
				return true
			}
		}
	}
	return false
}

func (d *arpSpoof) alert(sev Severity, msg, entity string, ip netip.Addr, ev map[string]any) Alert {
	return Alert{
		ThreatType: ThreatARPSpoofing, Technique: "T1557.002", Severity: sev, Message: msg,
		Source: netip.AddrPortFrom(ip, 0), Direction: DirIngress, Evidence: ev,
		Recommendation: Recommendation(ThreatARPSpoofing), Entity: entity,
	}
}

// arpRun is one Detect call: what it knows and what it raised.
type arpRun struct {
	d    *arpSpoof
	own  map[netip.Addr]bool
	gws  map[netip.Addr]bool
	out  []Alert
	seen map[string]bool // entities alerted in this run
}

func (r *arpRun) emit(a Alert) {
	if r.seen[a.Entity] {
		return
	}
	r.seen[a.Entity] = true
	r.out = append(r.out, a)
}

func (d *arpSpoof) Detect(snap *collector.Snapshot, env *Env) []Alert {
	now := snap.Time
	r := &arpRun{d: d, own: map[netip.Addr]bool{}, gws: map[netip.Addr]bool{}, seen: map[string]bool{}}
	for _, a := range snap.HostIPs {
		r.own[a.Unmap()] = true
	}
	for _, rt := range snap.Gateways {
		if rt.Gateway.IsValid() {
			r.gws[rt.Gateway.Unmap()] = true
		}
	}
	for _, e := range snap.NeighborEvents {
		if e.Router && !e.Deleted && e.IP.IsValid() {
			d.routers.Touch(e.IP.Unmap(), now, nil)
		}
	}
	for _, n := range snap.ARP {
		if n.Router && n.IP.IsValid() {
			d.routers.Touch(n.IP.Unmap(), now, nil)
		}
	}
	d.routers.Range(func(ip netip.Addr, _ *struct{}) bool { r.gws[ip] = true; return true })

	// The changes announced since the last poll, on the last poll's table.
	view := d.view
	if view == nil {
		view = map[netip.Addr]string{}
	}
	for _, e := range snap.NeighborEvents {
		ip, mac, ok := neighborEntry(e.Neighbor)
		if !ip.IsValid() {
			continue
		}
		if e.Deleted || !ok {
			delete(view, ip)
			continue
		}
		t := e.Time
		if t.IsZero() || t.After(now) {
			t = now
		}
		r.observe(ip, mac, t)
		view[ip] = mac
		r.checkMAC(view, mac)
	}

	// The table itself.
	table := make(map[netip.Addr]string, len(snap.ARP))
	for _, n := range snap.ARP {
		if ip, mac, ok := neighborEntry(n); ok {
			table[ip] = mac
		}
	}
	ips := make([]netip.Addr, 0, len(table))
	for ip := range table {
		ips = append(ips, ip)
	}
	sort.Slice(ips, func(i, j int) bool { return ips[i].Less(ips[j]) })
	for _, ip := range ips {
		r.observe(ip, table[ip], now)
	}
	macs := map[string]bool{}
	for _, mac := range table {
		macs[mac] = true
	}
	macList := make([]string, 0, len(macs))
	for m := range macs {
		macList = append(macList, m)
	}
	sort.Strings(macList)
	for _, mac := range macList {
		r.checkMAC(table, mac)
	}
	d.view = table

	for gw := range d.gateway { // routes and routers that went away
		if !r.gws[gw] {
			delete(d.gateway, gw)
		}
	}
	d.history.Expire(now)
	d.routers.Expire(now)
	return r.out
}

// observe checks one (address, MAC) sighting at time t: this host's own
// address, a gateway's MAC, an EUI-64 address, flip-flops.
func (r *arpRun) observe(ip netip.Addr, mac string, t time.Time) {
	d := r.d
	if r.own[ip] {
		r.emit(d.alert(SeverityCritical, fmt.Sprintf("ARP spoofing: this host's address %s is claimed by MAC %s", ip, mac),
			"own:"+ip.String(), ip, map[string]any{"ip": ip.String(), "mac": mac}))
	}
	proto := "ARP"
	if ip.Is6() {
		proto = "NDP"
	}
	if r.gws[ip] {
		if old, seen := d.gateway[ip]; seen && old != mac && !(d.failoverOK(ip, old) && d.failoverOK(ip, mac)) {
			r.emit(d.alert(SeverityCritical, fmt.Sprintf("%s spoofing: default gateway %s changed MAC from %s to %s", proto, ip, old, mac),
				"gw:"+ip.String(), ip, map[string]any{"gateway": ip.String(), "old_mac": old, "new_mac": mac}))
		}
		d.gateway[ip] = mac
	}
	if want, ok := eui64MAC(ip); ok && want != mac && !d.allowed[mac] && !d.failoverOK(ip, mac) {
		r.emit(d.alert(SeverityHigh, fmt.Sprintf("NDP spoofing: %s is the EUI-64 address of MAC %s but MAC %s answers for it", ip, want, mac),
			"eui64:"+ip.String(), ip, map[string]any{"ip": ip.String(), "eui64_mac": want, "mac": mac}))
	}

	// Flip-flops: A -> B -> A.
	h := d.history.Touch(ip, t, nil)
	cut := t.Add(-d.cfg.FlipWindow)
	k := 0
	for k < len(*h)-1 && (*h)[k].t.Before(cut) {
		k++
	}
	*h = (*h)[k:]
	if n := len(*h); n > 0 && (*h)[n-1].mac == mac {
		return
	}
	*h = append(*h, macChange{mac, t})
	if len(*h) > 4 {
		*h = (*h)[len(*h)-4:]
	}
	n := len(*h)
	if n < 3 || (*h)[n-3].mac != mac {
		return
	}
	if d.failoverOK(ip, mac) && d.failoverOK(ip, (*h)[n-2].mac) {
		return // a VIP failing over and back
	}
	seq := make([]string, n)
	for i, c := range *h {
		seq[i] = c.mac
	}
	r.emit(d.alert(SeverityHigh, fmt.Sprintf("%s flip-flop: %s moved between MACs %s and %s within %s", proto, ip, (*h)[n-2].mac, mac, d.cfg.FlipWindow),
		"flip:"+ip.String(), ip, map[string]any{"ip": ip.String(), "macs": seq, "window_seconds": d.cfg.FlipWindow.Seconds()}))
}

// checkMAC checks the addresses mac holds in tab: too many IPv4 addresses,
// or IPv6 addresses taken over from two or more other MACs.
func (r *arpRun) checkMAC(tab map[netip.Addr]string, mac string) {
	d := r.d
	if d.allowed[mac] {
		return
	}
	var counted, v6 []netip.Addr
	for ip, m := range tab {
		if m != mac || d.failoverOK(ip, mac) {
			continue
		}
		if ip.Is4() || (d.cfg.IncludeIPv6 && !ip.IsLinkLocalUnicast()) {
			counted = append(counted, ip)
		}
		if ip.Is6() {
			v6 = append(v6, ip)
		}
	}
	sortAddrs := func(a []netip.Addr) []string {
		sort.Slice(a, func(i, j int) bool { return a[i].Less(a[j]) })
		s := make([]string, len(a))
		for i, ip := range a {
			s[i] = ip.String()
		}
		return s
	}
	gwNote := func(ips []netip.Addr) (Severity, string) {
		for _, ip := range ips {
			if r.gws[ip] {
				return SeverityCritical, " including the default gateway " + ip.String()
			}
		}
		return SeverityHigh, ""
	}
	if len(counted) > d.cfg.MaxIPsPerMAC {
		strs := sortAddrs(counted)
		sev, note := gwNote(counted)
		r.emit(d.alert(sev, fmt.Sprintf("ARP spoofing: MAC %s claims %d addresses%s: %s", mac, len(counted), note, strings.Join(strs, ", ")),
			"mac:"+mac, counted[0], map[string]any{"mac": mac, "ips": strs, "ip_count": len(counted), "threshold": d.cfg.MaxIPsPerMAC}))
	}

	// IPv6 takeover: the other MACs that held the addresses mac holds now.
	former := map[string]bool{}
	var taken []netip.Addr
	for _, ip := range v6 {
		h, ok := d.history.Get(ip)
		if !ok {
			continue
		}
		took := false
		for _, c := range *h {
			if c.mac != mac && !d.failoverOK(ip, c.mac) {
				former[c.mac] = true
				took = true
			}
		}
		if took {
			taken = append(taken, ip)
		}
	}
	if len(former) >= 2 {
		strs := sortAddrs(taken)
		owners := make([]string, 0, len(former))
		for m := range former {
			owners = append(owners, m)
		}
		sort.Strings(owners)
		sev, note := gwNote(taken)
		r.emit(d.alert(sev, fmt.Sprintf("NDP spoofing: MAC %s took over IPv6 addresses of %d other hosts%s: %s", mac, len(owners), note, strings.Join(strs, ", ")),
			"ndp:"+mac, taken[0], map[string]any{"mac": mac, "ips": strs, "former_macs": owners}))
	}
}
