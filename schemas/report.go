package schemas

import (
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/netsentinel/netsentinel/collector"
	"github.com/netsentinel/netsentinel/detect"
)

// Report is one window's report: the original tool's structure
// (report_metadata, executive_summary, threat_events, network_state,
// system_metrics, recommendations) plus NetSentinel's additions
// (executive_summary.by_technique, recommendation_details,
// detection_statistics, collection_statistics, sink_statistics and the
// window bounds in report_metadata).
type Report struct {
	Metadata              ReportMetadata           `json:"report_metadata"`
	Summary               ExecutiveSummary         `json:"executive_summary"`
	ThreatEvents          []NativeAlert            `json:"threat_events"`
	NetworkState          NetworkState             `json:"network_state"`
	SystemMetrics         collector.SystemMetrics  `json:"system_metrics"`
	Recommendations       []string                 `json:"recommendations"`
	RecommendationDetails []RecommendationDetail   `json:"recommendation_details"`
	Detection             DetectionStatistics      `json:"detection_statistics"`
	Collection            CollectionStatistics     `json:"collection_statistics"`
	Sinks                 map[string]SinkStatistic `json:"sink_statistics"`
}

// ReportMetadata identifies the report.
type ReportMetadata struct {
	Tool                    string  `json:"tool"`
	Version                 string  `json:"version"`
	GeneratedAt             string  `json:"generated_at"`
	Hostname                string  `json:"hostname"`
	AnalysisDurationSeconds float64 `json:"analysis_duration_seconds"`
	WindowStart             string  `json:"window_start"`
	WindowEnd               string  `json:"window_end"`
	SchemaVersion           int     `json:"schema_version"`
}

// ReportSchemaVersion is report_metadata.schema_version; it changes when
// report.schema.json changes incompatibly.
const ReportSchemaVersion = 1

// ExecutiveSummary counts the window's alerts.
type ExecutiveSummary struct {
	TotalThreats      int            `json:"total_threats"`
	BySeverity        map[string]int `json:"by_severity"`     // all of LOW..CRITICAL, zero included
	ByMitreTactic     map[string]int `json:"by_mitre_tactic"` // tactic name → alerts ("Unknown" when unresolved)
	ByTechnique       map[string]int `json:"by_technique"`    // technique id → alerts
	ActiveConnections int            `json:"active_connections"`
	ListeningPorts    int            `json:"listening_ports"`
	RiskLevel         string         `json:"risk_level"` // CRITICAL, HIGH, MEDIUM, LOW, CLEAN
	// ThreatEventsOmitted counts alerts left out of threat_events by the cap
	// (the least severe go first); they are still counted above.
	ThreatEventsOmitted int `json:"threat_events_omitted,omitempty"`
}

// NetworkState is what the window's last snapshot saw.
type NetworkState struct {
	ActiveConnections []Connection `json:"active_connections"`
	ListeningPorts    []Listener   `json:"listening_ports"`
	ARPTable          []ARPEntry   `json:"arp_table"`
	// Omitted* count entries left out by the list cap (counts in the
	// executive summary are complete).
	OmittedConnections int `json:"omitted_connections,omitempty"`
	OmittedListeners   int `json:"omitted_listening_ports,omitempty"`
	OmittedARP         int `json:"omitted_arp_entries,omitempty"`
}

// Connection is an established TCP connection or a connected UDP socket.
type Connection struct {
	Protocol      string `json:"protocol"`
	LocalAddress  string `json:"local_address"`
	LocalPort     int    `json:"local_port"`
	RemoteAddress string `json:"remote_address"`
	RemotePort    int    `json:"remote_port"`
	Status        string `json:"status"`
	PID           int32  `json:"pid,omitempty"`
	Process       string `json:"process,omitempty"`
}

// Listener is a listening TCP socket or a bound, unconnected UDP socket.
type Listener struct {
	Protocol string `json:"protocol"`
	Address  string `json:"address"`
	Port     int    `json:"port"`
	PID      int32  `json:"pid,omitempty"`
	Process  string `json:"process,omitempty"`
}

// ARPEntry is one neighbour table entry.
type ARPEntry struct {
	IP        string `json:"ip"`
	MAC       string `json:"mac"`
	Interface string `json:"interface"`
	Complete  bool   `json:"complete"`
	Permanent bool   `json:"permanent"`
}

// RecommendationDetail is the recommendation for one alert type present in
// the window.
type RecommendationDetail struct {
	ThreatType     string `json:"threat_type"`
	Severity       string `json:"severity"` // worst severity seen for the type
	Count          int    `json:"count"`
	Recommendation string `json:"recommendation"`
}

// DetectionStatistics counts alerts per rule and threat type, plus any
// counters the engine supplies.
type DetectionStatistics struct {
	AlertsByRule       map[string]int `json:"alerts_by_rule"`
	AlertsByThreatType map[string]int `json:"alerts_by_threat_type"`
	// SuppressedByException counts the window's alerts silenced by each
	// exception (config exceptions:); they are not in the counts above.
	SuppressedByException map[string]uint64 `json:"suppressed_by_exception,omitempty"`
	Counters              map[string]uint64 `json:"counters,omitempty"`
}

// CollectionStats is the pipeline's account of the window's polls.
type CollectionStats struct {
	Polls         int
	PollErrors    int
	FormatErrors  int
	TotalDuration time.Duration
	MaxDuration   time.Duration
	SourceErrors  map[string]int // collector sub-source error → occurrences
}

// CollectionStatistics is collection_statistics in the report.
type CollectionStatistics struct {
	Polls                  int            `json:"polls"`
	PollErrors             int            `json:"poll_errors"`
	FormatErrors           int            `json:"format_errors"`
	CollectionSecondsTotal float64        `json:"collection_seconds_total"`
	CollectionSecondsMax   float64        `json:"collection_seconds_max"`
	CollectionSecondsMean  float64        `json:"collection_seconds_mean"`
	SourceErrors           map[string]int `json:"source_errors,omitempty"`
	LastSnapshot           *SnapshotStats `json:"last_snapshot,omitempty"`
}

// SnapshotStats summarises the window's last snapshot.
type SnapshotStats struct {
	Time              string `json:"time"`
	Sockets           int    `json:"sockets"`
	SocketsWithoutPID int    `json:"sockets_without_pid"`
	Processes         int    `json:"processes"`
	DestroyEvents     int    `json:"destroy_events"`
	DestroyEventsLost uint64 `json:"destroy_events_lost"`
	CountersValid     bool   `json:"counters_valid"`
}

// SinkStatistic is one sink's delivery account for the run so far.
type SinkStatistic struct {
	Delivered uint64       `json:"delivered"` // sent, including duplicates the server already had
	Failed    uint64       `json:"failed"`    // will not be delivered: dead-lettered + dropped
	Counters  SinkCounters `json:"counters"`
}

// SinkCounters are one sink's delivery counters as the report shows them.
// The caller fills them from its sink runners (schemas does not know the
// sinks package).
type SinkCounters struct {
	Sent         uint64            `json:"sent"`          // delivered (including duplicates)
	Retried      uint64            `json:"retried"`       // re-sent after a transient failure
	Duplicate    uint64            `json:"duplicate"`     // the server had it already
	DeadLettered uint64            `json:"dead_lettered"` // rejected permanently, in the dead-letter file
	Spooled      uint64            `json:"spooled"`       // written to the disk buffer
	Failed       uint64            `json:"failed"`        // write attempts that failed
	Offered      uint64            `json:"offered"`       // alerts offered (before the route)
	Filtered     uint64            `json:"filtered"`      // alerts the route left out
	Dropped      uint64            `json:"dropped"`
	DroppedBy    map[string]uint64 `json:"dropped_by_reason,omitempty"`
}

// Report list caps (bounded memory and file size).
const (
	// DefaultMaxListed caps each network_state list: a report lists the
	// first 1,000 connections (sorted) and counts the rest in
	// omitted_connections, whatever the host holds (issue 11: a proxy node
	// with 50,000 connections).
	DefaultMaxListed       = 1000
	DefaultMaxThreatEvents = 10000
)

// ReportInput is everything a window report is built from.
type ReportInput struct {
	Alerts      []detect.Alert      // every alert of the window
	Snapshot    *collector.Snapshot // the window's last snapshot; nil when none
	WindowStart time.Time
	WindowEnd   time.Time
	GeneratedAt time.Time // default time.Now()
	Version     string
	Hostname    string // default Snapshot.Hostname
	Collection  CollectionStats
	Sinks       map[string]SinkCounters
	// DetectorCounters are optional engine counters (evictions ...).
	DetectorCounters map[string]uint64
	// Suppressed counts the window's alerts silenced per exception.
	Suppressed map[string]uint64
	Lookup     TechniqueLookup
	// Recommend gives the recommendation for a threat type; default
	// detect.Recommendation.
	Recommend func(threatType string) string
	// MaxListed caps each network_state list (default DefaultMaxListed);
	// MaxThreatEvents caps threat_events (default DefaultMaxThreatEvents).
	MaxListed       int
	MaxThreatEvents int
}

// BuildReport builds the window report. It does no I/O.
func BuildReport(in ReportInput) *Report {
	if in.GeneratedAt.IsZero() {
		in.GeneratedAt = time.Now()
	}
	if in.Recommend == nil {
		in.Recommend = detect.Recommendation
	}
	if in.MaxListed <= 0 {
		in.MaxListed = DefaultMaxListed
	}
	if in.MaxThreatEvents <= 0 {
		in.MaxThreatEvents = DefaultMaxThreatEvents
	}
	host := in.Hostname
	if host == "" && in.Snapshot != nil {
		host = in.Snapshot.Hostname
	}
	dur := in.WindowEnd.Sub(in.WindowStart).Seconds()
	if dur < 0 {
		dur = 0
	}
	r := &Report{
		Metadata: ReportMetadata{
			Tool: ProductName, Version: clean(in.Version, MaxKeyword),
			GeneratedAt: formatTime(in.GeneratedAt), Hostname: clean(host, MaxKeyword),
			AnalysisDurationSeconds: dur,
			WindowStart:             formatTime(in.WindowStart), WindowEnd: formatTime(in.WindowEnd),
			SchemaVersion: ReportSchemaVersion,
		},
		Summary: ExecutiveSummary{
			BySeverity:    map[string]int{"CRITICAL": 0, "HIGH": 0, "MEDIUM": 0, "LOW": 0},
			ByMitreTactic: map[string]int{},
			ByTechnique:   map[string]int{},
		},
		ThreatEvents:          []NativeAlert{},
		Recommendations:       []string{},
		RecommendationDetails: []RecommendationDetail{},
		Detection: DetectionStatistics{
			AlertsByRule: map[string]int{}, AlertsByThreatType: map[string]int{},
			Counters: in.DetectorCounters, SuppressedByException: in.Suppressed,
		},
		Sinks: map[string]SinkStatistic{},
	}

	// Alerts: counts, severity order, recommendations.
	order := make([]int, len(in.Alerts))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(x, y int) bool {
		a, b := &in.Alerts[order[x]], &in.Alerts[order[y]]
		if sa, sb := sevIndex(a.Severity), sevIndex(b.Severity); sa != sb {
			return sa > sb
		}
		if !a.Time.Equal(b.Time) {
			return a.Time.Before(b.Time)
		}
		return a.ID < b.ID
	})
	types := map[string]*RecommendationDetail{}
	worst := map[string]int{}
	for _, i := range order {
		a := &in.Alerts[i]
		r.Summary.TotalThreats++
		r.Summary.BySeverity[SeverityName(a.Severity)]++
		tech := resolveTechnique(in.Lookup, clean(a.Technique, 32))
		if tech.ID != "" {
			r.Summary.ByTechnique[tech.ID]++
		}
		if len(tech.Tactics) == 0 {
			r.Summary.ByMitreTactic["Unknown"]++
		}
		for _, t := range tech.Tactics {
			r.Summary.ByMitreTactic[t.Name]++
		}
		rule, tt := clean(a.RuleID, MaxKeyword), clean(a.ThreatType, MaxKeyword)
		r.Detection.AlertsByRule[rule]++
		r.Detection.AlertsByThreatType[tt]++
		if len(r.ThreatEvents) < in.MaxThreatEvents {
			r.ThreatEvents = append(r.ThreatEvents, ToNative(a, in.Lookup))
		} else {
			r.Summary.ThreatEventsOmitted++
		}
		d := types[tt]
		if d == nil {
			text := in.Recommend(a.ThreatType)
			if text == "" {
				text = a.Recommendation
			}
			d = &RecommendationDetail{ThreatType: tt, Severity: SeverityName(a.Severity),
				Recommendation: clean(text, MaxMessage)}
			types[tt] = d
			worst[tt] = sevIndex(a.Severity) // alerts arrive worst first
		}
		d.Count++
	}
	for _, d := range types {
		r.RecommendationDetails = append(r.RecommendationDetails, *d)
	}
	sort.Slice(r.RecommendationDetails, func(i, j int) bool {
		a, b := r.RecommendationDetails[i], r.RecommendationDetails[j]
		if worst[a.ThreatType] != worst[b.ThreatType] {
			return worst[a.ThreatType] > worst[b.ThreatType]
		}
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return a.ThreatType < b.ThreatType
	})
	for _, d := range r.RecommendationDetails {
		r.Recommendations = append(r.Recommendations, d.Recommendation)
	}
	r.Summary.RiskLevel = RiskLevel(r.Summary.BySeverity)

	// Network state and system metrics from the last snapshot.
	r.NetworkState = networkState(in.Snapshot, in.MaxListed)
	r.Summary.ActiveConnections = len(r.NetworkState.ActiveConnections) + r.NetworkState.OmittedConnections
	r.Summary.ListeningPorts = len(r.NetworkState.ListeningPorts) + r.NetworkState.OmittedListeners
	if in.Snapshot != nil {
		r.SystemMetrics = in.Snapshot.System
	}

	// Collection statistics.
	c := in.Collection
	r.Collection = CollectionStatistics{
		Polls: c.Polls, PollErrors: c.PollErrors, FormatErrors: c.FormatErrors,
		CollectionSecondsTotal: c.TotalDuration.Seconds(), CollectionSecondsMax: c.MaxDuration.Seconds(),
	}
	if c.Polls > 0 {
		r.Collection.CollectionSecondsMean = c.TotalDuration.Seconds() / float64(c.Polls)
	}
	if len(c.SourceErrors) > 0 {
		r.Collection.SourceErrors = make(map[string]int, len(c.SourceErrors))
		for k, v := range c.SourceErrors {
			r.Collection.SourceErrors[clean(k, MaxMessage)] += v
		}
	}
	if s := in.Snapshot; s != nil {
		r.Collection.LastSnapshot = &SnapshotStats{
			Time: formatTime(s.Time), Sockets: s.Stats.Sockets, SocketsWithoutPID: s.Stats.SocketsNoPID,
			Processes: s.Stats.Processes, DestroyEvents: s.Stats.DestroyEvents,
			DestroyEventsLost: s.Stats.DestroyEventsLost, CountersValid: s.Counters.Valid,
		}
	}

	// Sinks.
	for name, st := range in.Sinks {
		r.Sinks[name] = SinkStatistic{Delivered: st.Sent, Failed: st.DeadLettered + st.Dropped, Counters: st}
	}
	return r
}

// RiskLevel applies the original tool's rule to severity counts (keys LOW ..
// CRITICAL): CRITICAL if any critical; HIGH if more than 2 high; MEDIUM if
// any high or more than 3 medium; LOW if any medium; else CLEAN. The original
// had no low-severity alerts; here any low alert also makes the level LOW, so
// a window with alerts is never reported CLEAN.
func RiskLevel(bySeverity map[string]int) string {
	switch {
	case bySeverity["CRITICAL"] > 0:
		return "CRITICAL"
	case bySeverity["HIGH"] > 2:
		return "HIGH"
	case bySeverity["HIGH"] > 0 || bySeverity["MEDIUM"] > 3:
		return "MEDIUM"
	case bySeverity["MEDIUM"] > 0 || bySeverity["LOW"] > 0:
		return "LOW"
	default:
		return "CLEAN"
	}
}

func networkState(s *collector.Snapshot, maxListed int) NetworkState {
	ns := NetworkState{ActiveConnections: []Connection{}, ListeningPorts: []Listener{}, ARPTable: []ARPEntry{}}
	if s == nil {
		return ns
	}
	procName := func(pid int32) string {
		if p := s.Processes[pid]; pid > 0 && p != nil {
			return clean(p.Name, MaxKeyword)
		}
		return ""
	}
	// Active connections are sorted on their keys and only the listed ones
	// become Connections: at 50,000 connections the report builds 1,000, not
	// 100,000. Address strings are cached (most sockets share a few local
	// addresses).
	addrs := map[netip.Addr]string{}
	str := func(a netip.Addr) string {
		v, ok := addrs[a]
		if !ok {
			v = addrString(a)
			addrs[a] = v
		}
		return v
	}
	type connRef struct {
		raddr, laddr string
		rport, lport uint16
		so           *collector.Socket
	}
	less := func(a, b *connRef) bool {
		// Early returns: cmp.Or would compare every field every time.
		if c := strings.Compare(a.so.Proto.String(), b.so.Proto.String()); c != 0 {
			return c < 0
		}
		if c := strings.Compare(a.raddr, b.raddr); c != 0 {
			return c < 0
		}
		if a.rport != b.rport {
			return a.rport < b.rport
		}
		if c := strings.Compare(a.laddr, b.laddr); c != 0 {
			return c < 0
		}
		return a.lport < b.lport
	}
	// The first maxListed connections in that order are kept in a max-heap
	// (the largest kept at conns[0]) as the sockets stream by: a row that
	// does not beat the largest kept costs one comparison, and no slice of
	// every connection is built or sorted.
	var conns []connRef
	omitted := 0
	siftDown := func(i int) {
		for {
			l, big := 2*i+1, i
			if l < len(conns) && less(&conns[big], &conns[l]) {
				big = l
			}
			if r := l + 1; r < len(conns) && less(&conns[big], &conns[r]) {
				big = r
			}
			if big == i {
				return
			}
			conns[i], conns[big] = conns[big], conns[i]
			i = big
		}
	}
	keep := func(c connRef) {
		if maxListed <= 0 {
			omitted++
			return
		}
		if len(conns) < maxListed {
			conns = append(conns, c)
			for i := len(conns) - 1; i > 0; {
				p := (i - 1) / 2
				if !less(&conns[p], &conns[i]) {
					break
				}
				conns[p], conns[i] = conns[i], conns[p]
				i = p
			}
			return
		}
		omitted++
		if less(&c, &conns[0]) {
			conns[0] = c
			siftDown(0)
		}
	}
	var lis []Listener
	for i := range s.Sockets {
		so := &s.Sockets[i]
		if so.Destroyed {
			continue
		}
		switch {
		case isActive(so):
			keep(connRef{raddr: str(so.Remote.Addr()), laddr: str(so.Local.Addr()),
				rport: so.Remote.Port(), lport: so.Local.Port(), so: so})
		case isListening(so):
			lis = append(lis, Listener{Protocol: so.Proto.String(), Address: addrString(so.Local.Addr()),
				Port: int(so.Local.Port()), PID: so.PID, Process: procName(so.PID)})
		}
	}
	slices.SortFunc(conns, func(a, b connRef) int {
		switch {
		case less(&a, &b):
			return -1
		case less(&b, &a):
			return 1
		}
		return 0
	})
	ns.OmittedConnections = omitted
	ns.ActiveConnections = slices.Grow(ns.ActiveConnections, len(conns))
	for _, c := range conns {
		so := c.so
		ns.ActiveConnections = append(ns.ActiveConnections, Connection{
			Protocol: so.Proto.String(), LocalAddress: c.laddr, LocalPort: int(c.lport),
			RemoteAddress: c.raddr, RemotePort: int(c.rport),
			Status: so.State.String(), PID: so.PID, Process: procName(so.PID),
		})
	}
	sort.Slice(lis, func(i, j int) bool {
		a, b := lis[i], lis[j]
		if a.Protocol != b.Protocol {
			return a.Protocol < b.Protocol
		}
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		return a.Address < b.Address
	})
	if len(lis) > maxListed {
		ns.OmittedListeners = len(lis) - maxListed
		lis = lis[:maxListed]
	}
	ns.ListeningPorts = append(ns.ListeningPorts, lis...)
	for i, n := range s.ARP {
		if i >= maxListed {
			ns.OmittedARP = len(s.ARP) - maxListed
			break
		}
		ns.ARPTable = append(ns.ARPTable, ARPEntry{IP: addrString(n.IP), MAC: clean(n.MAC, 64),
			Interface: clean(n.Device, 64), Complete: n.Complete, Permanent: n.Permanent})
	}
	return ns
}

// isActive: an established TCP connection, or a UDP socket connected to a
// peer.
func isActive(s *collector.Socket) bool {
	switch s.Proto {
	case collector.ProtoTCP:
		return s.State == collector.StateEstablished
	case collector.ProtoUDP:
		return hasPeer(s.Remote)
	}
	return false
}

// isListening: a TCP socket in LISTEN, or a UDP socket bound to a port with no
// peer (the original counted TCP LISTEN only; UDP services are listed too).
func isListening(s *collector.Socket) bool {
	switch s.Proto {
	case collector.ProtoTCP:
		return s.State == collector.StateListen
	case collector.ProtoUDP:
		return !hasPeer(s.Remote) && s.Local.Port() != 0
	}
	return false
}

func hasPeer(ap netip.AddrPort) bool {
	return ap.IsValid() && !ap.Addr().IsUnspecified() && ap.Port() != 0
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.Unmap().String()
}
