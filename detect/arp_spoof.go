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

// ARP cache poisoning (T1557.002) from the neighbour table:
//   - one MAC claiming several IPv4 addresses (IPv6 hosts legitimately hold
//     several addresses per MAC, so IPv6 is off by default);
//   - the default gateway's MAC changing;
//   - one of this host's own addresses claimed by another MAC;
//   - an address whose MAC flips back and forth (A -> B -> A) within a window.
// Broadcast, multicast, all-zero and incomplete entries are ignored.

// RuleARPSpoofing is the registry name (and rule id) of the ARP spoofing detector.
const RuleARPSpoofing = "arp_spoofing"

// ARPConfig configures the ARP spoofing detector.
type ARPConfig struct {
	// MaxIPsPerMAC: a MAC holding more IPv4 addresses than this alerts.
	MaxIPsPerMAC int `yaml:"max_ips_per_mac"`
	// IncludeIPv6 also counts IPv6 neighbours for one-MAC-many-IPs.
	IncludeIPv6 bool `yaml:"include_ipv6"`
	// FlipWindow is how long MAC history per IP is kept for flip-flops.
	FlipWindow time.Duration `yaml:"flip_window"`
	// AllowedMACs may hold many IPs (routers with proxy ARP, load balancers).
	AllowedMACs []string `yaml:"allowed_macs"`
	// MaxEntries caps the tracked IPs.
	MaxEntries int `yaml:"max_entries"`
}

func defaultARPConfig() *ARPConfig {
	return &ARPConfig{MaxIPsPerMAC: 1, FlipWindow: time.Hour, MaxEntries: 10000}
}

func init() { registerConfig(RuleARPSpoofing, defaultARPConfig, newARP) }

type macChange struct {
	mac string
	t   time.Time
}

type arpSpoof struct {
	cfg     ARPConfig
	allowed map[string]bool
	history *Window[netip.Addr, []macChange] // per IP: MACs in order of change, last 4
	gateway map[netip.Addr]string            // gateway IP -> MAC (bounded by routes)
}

func newARP(c ARPConfig) (*arpSpoof, error) {
	if c.MaxIPsPerMAC < 1 || c.FlipWindow <= 0 {
		return nil, fmt.Errorf("max_ips_per_mac must be at least 1 and flip_window positive")
	}
	d := &arpSpoof{cfg: c, allowed: map[string]bool{}, gateway: map[netip.Addr]string{},
		history: NewWindow[netip.Addr, []macChange](c.MaxEntries, c.FlipWindow)}
	for _, m := range c.AllowedMACs {
		d.allowed[strings.ToLower(m)] = true
	}
	return d, nil
}

func (d *arpSpoof) Name() string { return RuleARPSpoofing }

func (d *arpSpoof) Rules() []RuleInfo {
	return []RuleInfo{{
		ID: RuleARPSpoofing, Name: "ARP cache poisoning", ThreatType: ThreatARPSpoofing, Technique: "T1557.002",
		Severity:    SeverityCritical,
		Description: "Neighbour table: one MAC claiming several IPs, the gateway's MAC changing, this host's IP claimed by another MAC, or an IP's MAC flip-flopping.",
		Thresholds: map[string]any{"max_ips_per_mac": d.cfg.MaxIPsPerMAC, "include_ipv6": d.cfg.IncludeIPv6,
			"flip_window": d.cfg.FlipWindow.String(), "allowed_macs": d.cfg.AllowedMACs},
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

func (d *arpSpoof) alert(sev Severity, msg, entity string, ip netip.Addr, ev map[string]any) Alert {
	return Alert{
		ThreatType: ThreatARPSpoofing, Technique: "T1557.002", Severity: sev, Message: msg,
		Source: netip.AddrPortFrom(ip, 0), Direction: DirIngress, Evidence: ev,
		Recommendation: Recommendation(ThreatARPSpoofing), Entity: entity,
	}
}

func (d *arpSpoof) Detect(snap *collector.Snapshot, env *Env) []Alert {
	now := snap.Time
	own := map[netip.Addr]bool{}
	for _, a := range snap.HostIPs {
		own[a.Unmap()] = true
	}
	gws := map[netip.Addr]bool{}
	for _, r := range snap.Gateways {
		if r.Gateway.IsValid() {
			gws[r.Gateway.Unmap()] = true
		}
	}
	current := map[netip.Addr]string{}
	byMAC := map[string][]netip.Addr{}
	for _, n := range snap.ARP {
		mac := strings.ToLower(n.MAC)
		if !n.Complete || !usableMAC(mac) || !n.IP.IsValid() {
			continue
		}
		ip := n.IP.Unmap()
		if ip.IsMulticast() || (ip.Is4() && ip == netip.AddrFrom4([4]byte{255, 255, 255, 255})) {
			continue
		}
		current[ip] = mac
		if ip.Is4() || (d.cfg.IncludeIPv6 && !ip.IsLinkLocalUnicast()) {
			byMAC[mac] = append(byMAC[mac], ip)
		}
	}
	var out []Alert

	// One MAC, several IPs.
	macs := make([]string, 0, len(byMAC))
	for m := range byMAC {
		macs = append(macs, m)
	}
	sort.Strings(macs)
	for _, mac := range macs {
		ips := byMAC[mac]
		if len(ips) <= d.cfg.MaxIPsPerMAC || d.allowed[mac] {
			continue
		}
		sort.Slice(ips, func(i, j int) bool { return ips[i].Less(ips[j]) })
		sev, note := SeverityHigh, ""
		for _, ip := range ips {
			if gws[ip] {
				sev, note = SeverityCritical, " including the default gateway "+ip.String()
			}
		}
		strs := make([]string, len(ips))
		for i, ip := range ips {
			strs[i] = ip.String()
		}
		out = append(out, d.alert(sev, fmt.Sprintf("ARP spoofing: MAC %s claims %d addresses%s: %s", mac, len(ips), note, strings.Join(strs, ", ")),
			"mac:"+mac, ips[0], map[string]any{"mac": mac, "ips": strs, "ip_count": len(ips), "threshold": d.cfg.MaxIPsPerMAC}))
	}

	// Our own address claimed by another MAC.
	ownIPs := make([]netip.Addr, 0)
	for ip := range current {
		if own[ip] {
			ownIPs = append(ownIPs, ip)
		}
	}
	sort.Slice(ownIPs, func(i, j int) bool { return ownIPs[i].Less(ownIPs[j]) })
	for _, ip := range ownIPs {
		out = append(out, d.alert(SeverityCritical, fmt.Sprintf("ARP spoofing: this host's address %s is claimed by MAC %s", ip, current[ip]),
			"own:"+ip.String(), ip, map[string]any{"ip": ip.String(), "mac": current[ip]}))
	}

	// Gateway MAC change (baseline on first sight).
	gwList := make([]netip.Addr, 0, len(gws))
	for gw := range gws {
		gwList = append(gwList, gw)
	}
	sort.Slice(gwList, func(i, j int) bool { return gwList[i].Less(gwList[j]) })
	for _, gw := range gwList {
		mac, ok := current[gw]
		if !ok {
			continue
		}
		if old, seen := d.gateway[gw]; seen && old != mac {
			out = append(out, d.alert(SeverityCritical, fmt.Sprintf("ARP spoofing: default gateway %s changed MAC from %s to %s", gw, old, mac),
				"gw:"+gw.String(), gw, map[string]any{"gateway": gw.String(), "old_mac": old, "new_mac": mac}))
		}
		d.gateway[gw] = mac
	}
	for gw := range d.gateway { // routes that went away
		if !gws[gw] {
			delete(d.gateway, gw)
		}
	}

	// Flip-flops: A -> B -> A.
	ips := make([]netip.Addr, 0, len(current))
	for ip := range current {
		ips = append(ips, ip)
	}
	sort.Slice(ips, func(i, j int) bool { return ips[i].Less(ips[j]) })
	for _, ip := range ips {
		mac := current[ip]
		h := d.history.Touch(ip, now, nil)
		cut := now.Add(-d.cfg.FlipWindow)
		k := 0
		for k < len(*h)-1 && (*h)[k].t.Before(cut) {
			k++
		}
		*h = (*h)[k:]
		if n := len(*h); n > 0 && (*h)[n-1].mac == mac {
			continue
		}
		*h = append(*h, macChange{mac, now})
		if len(*h) > 4 {
			*h = (*h)[len(*h)-4:]
		}
		if n := len(*h); n >= 3 && (*h)[n-3].mac == mac {
			seq := make([]string, n)
			for i, c := range *h {
				seq[i] = c.mac
			}
			out = append(out, d.alert(SeverityHigh, fmt.Sprintf("ARP flip-flop: %s moved between MACs %s and %s within %s", ip, (*h)[n-2].mac, mac, d.cfg.FlipWindow),
				"flip:"+ip.String(), ip, map[string]any{"ip": ip.String(), "macs": seq, "window_seconds": d.cfg.FlipWindow.Seconds()}))
		}
	}
	d.history.Expire(now)
	return out
}
