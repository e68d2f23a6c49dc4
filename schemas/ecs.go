package schemas

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/netsentinel/netsentinel/detect"
)

// ECSVersion is the ECS version the documents follow.
const ECSVersion = "9.4.0"

// Product identity written to observer.* and agent.*.
const (
	ProductName = "NetSentinel"
	AgentType   = "netsentinel"
	EventModule = "netsentinel"
	Ruleset     = "netsentinel"
	// DefaultDataset and DefaultNamespace name the data stream
	// logs-netsentinel.alert-default.
	DefaultDataset   = "netsentinel.alert"
	DefaultNamespace = "default"
	// ThreatFramework is threat.framework.
	ThreatFramework = "MITRE ATT&CK"
)

// Meta identifies the agent and the data stream of ECS documents.
type Meta struct {
	Version string // agent.version, observer.version, rule.version
	AgentID string // agent.id; defaults to the host id
	// AgentName is agent.name: the sensor's own hostname (a pod or container
	// name when it runs in one); defaults to host.name.
	AgentName string
	// EphemeralID is agent.ephemeral_id: new at every start of the sensor.
	EphemeralID string
	Dataset     string // data_stream.dataset = event.dataset (default netsentinel.alert)
	Namespace   string // data_stream.namespace (default "default")
	// Labels (ECS labels: keyword values) and Tags (ECS tags) go into every
	// document.
	Labels map[string]string
	Tags   []string
	// Orchestrator is orchestrator.*: the cluster and pod the sensor runs in.
	Orchestrator Orchestrator
	// Rules optionally describes a rule id (rule.name, rule.description);
	// without it rule.name is the threat type and rule.description the
	// technique name.
	Rules func(ruleID string) (detect.RuleInfo, bool)
}

// Orchestrator identifies the cluster resource the sensor runs as
// (orchestrator.type, .cluster.name, .namespace, .resource.name/type).
type Orchestrator struct {
	Type         string // "kubernetes"
	ClusterName  string
	Namespace    string
	ResourceName string
	ResourceType string // "pod"
}

// ErrInvalidMeta is wrapped by errors about a bad dataset or namespace.
var ErrInvalidMeta = errors.New("invalid event metadata")

// withDefaults fills empty fields and validates the data stream naming rule:
// dataset and namespace are 1-100 characters of a-z, 0-9, '_' and '.' (so
// never '-', which separates the parts of logs-<dataset>-<namespace>).
func (m Meta) withDefaults(h Host) (Meta, error) {
	if m.Dataset == "" {
		m.Dataset = DefaultDataset
	}
	if m.Namespace == "" {
		m.Namespace = DefaultNamespace
	}
	if m.AgentID == "" {
		m.AgentID = h.ID
	}
	if m.AgentName == "" {
		m.AgentName = h.Name
		if m.AgentName == "" {
			m.AgentName = h.Hostname
		}
	}
	for _, f := range []struct{ name, v string }{{"dataset", m.Dataset}, {"namespace", m.Namespace}} {
		if err := checkDataStreamPart(f.v); err != nil {
			return m, fmt.Errorf("%w: %s %q: %v", ErrInvalidMeta, f.name, f.v, err)
		}
	}
	return m, nil
}

func checkDataStreamPart(s string) error {
	if s == "" || len(s) > 100 {
		return errors.New("must be 1 to 100 characters")
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.') {
			return fmt.Errorf("character %q not allowed (use a-z, 0-9, '_' and '.'; never '-')", c)
		}
	}
	return nil
}

// ECS formats alerts as ECS 9.x alert documents.
type ECS struct {
	host Host
	meta Meta
	// orchestrator, labels and tags, cleaned once and shared by every
	// document (never mutated).
	orch   *ecsOrch
	labels map[string]string
	tags   []string
	lookup TechniqueLookup
	now    func() time.Time // event.created clock; replaced in tests
}

// NewECS builds the ECS formatter. lookup may be nil (technique names and
// tactics are then omitted; ids and references are still written).
func NewECS(h Host, m Meta, lookup TechniqueLookup) (*ECS, error) {
	m, err := m.withDefaults(h)
	if err != nil {
		return nil, err
	}
	if h.Name == "" {
		h.Name = h.Hostname
	}
	f := &ECS{host: h, meta: m, lookup: lookup, now: time.Now}
	if len(m.Labels) > 0 {
		f.labels = make(map[string]string, len(m.Labels))
		for k, v := range m.Labels {
			f.labels[clean(k, MaxKeyword)] = clean(v, MaxKeyword)
		}
	}
	for _, t := range m.Tags {
		f.tags = append(f.tags, clean(t, MaxKeyword))
	}
	o := m.Orchestrator
	if o != (Orchestrator{}) {
		oc := &ecsOrch{Type: clean(o.Type, MaxKeyword), Namespace: clean(o.Namespace, MaxKeyword)}
		if o.ClusterName != "" {
			oc.Cluster = &ecsOrchCluster{Name: clean(o.ClusterName, MaxKeyword)}
		}
		if o.ResourceName != "" || o.ResourceType != "" {
			oc.Resource = &ecsOrchRes{Name: clean(o.ResourceName, MaxKeyword), Type: clean(o.ResourceType, MaxKeyword)}
		}
		f.orch = oc
	}
	return f, nil
}

// Name is "ecs".
func (f *ECS) Name() string { return "ecs" }

// Index is the data stream the documents belong to:
// logs-<dataset>-<namespace>.
func (f *ECS) Index() string { return "logs-" + f.meta.Dataset + "-" + f.meta.Namespace }

// The document model. Field order here is the order in the output.
type ecsDoc struct {
	Timestamp   string            `json:"@timestamp"`
	Message     string            `json:"message"`
	ECS         ecsECS            `json:"ecs"`
	Event       ecsEvent          `json:"event"`
	Rule        ecsRule           `json:"rule"`
	Threat      ecsThreat         `json:"threat"`
	Source      *ecsEndpoint      `json:"source,omitempty"`
	Destination *ecsEndpoint      `json:"destination,omitempty"`
	Network     *ecsNetwork       `json:"network,omitempty"`
	Process     *ecsProcess       `json:"process,omitempty"`
	Host        ecsHost           `json:"host"`
	Observer    ecsObserver       `json:"observer"`
	Agent       ecsAgent          `json:"agent"`
	Orch        *ecsOrch          `json:"orchestrator,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Tags        []string          `json:"tags,omitempty"`
	Related     *ecsRelated       `json:"related,omitempty"`
	DataStream  ecsDataStream     `json:"data_stream"`
	NetSentinel ecsNetSentinel    `json:"netsentinel"`
}

type ecsECS struct {
	Version string `json:"version"`
}

type ecsEvent struct {
	Kind          string   `json:"kind"`
	Category      []string `json:"category"`
	Type          []string `json:"type"`
	Action        string   `json:"action"`
	ID            string   `json:"id"`
	Dataset       string   `json:"dataset"`
	Module        string   `json:"module"`
	Severity      int      `json:"severity"`
	RiskScore     float64  `json:"risk_score"`
	RiskScoreNorm float64  `json:"risk_score_norm"`
	Created       string   `json:"created"`
	Start         string   `json:"start,omitempty"`
	End           string   `json:"end,omitempty"`
}

type ecsRule struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Category    string `json:"category,omitempty"`
	Ruleset     string `json:"ruleset"`
	Reference   string `json:"reference,omitempty"`
	Version     string `json:"version,omitempty"`
}

type ecsThreat struct {
	Framework string        `json:"framework"`
	Tactic    *ecsRefs      `json:"tactic,omitempty"`
	Technique *ecsTechnique `json:"technique,omitempty"`
}

type ecsRefs struct {
	ID        []string `json:"id"`
	Name      []string `json:"name,omitempty"`
	Reference []string `json:"reference,omitempty"`
}

type ecsTechnique struct {
	ID           []string `json:"id"`
	Name         []string `json:"name,omitempty"`
	Reference    []string `json:"reference,omitempty"`
	Subtechnique *ecsRefs `json:"subtechnique,omitempty"`
}

type ecsEndpoint struct {
	IP   string `json:"ip,omitempty"`
	Port int    `json:"port,omitempty"`
}

type ecsNetwork struct {
	Transport   string `json:"transport,omitempty"`
	Type        string `json:"type,omitempty"`
	Direction   string `json:"direction,omitempty"`
	CommunityID string `json:"community_id,omitempty"`
}

type ecsProcess struct {
	PID         int32      `json:"pid,omitempty"`
	Name        string     `json:"name,omitempty"`
	Executable  string     `json:"executable,omitempty"`
	CommandLine string     `json:"command_line,omitempty"`
	Args        []string   `json:"args,omitempty"`
	ArgsCount   int        `json:"args_count,omitempty"`
	Parent      *ecsParent `json:"parent,omitempty"`
	User        *ecsUser   `json:"user,omitempty"`
}

type ecsParent struct {
	PID  int32  `json:"pid,omitempty"`
	Name string `json:"name,omitempty"`
}

type ecsUser struct {
	ID   string `json:"id,omitempty"`
	Name string `json:"name,omitempty"`
}

type ecsHost struct {
	Hostname     string   `json:"hostname,omitempty"`
	Name         string   `json:"name,omitempty"`
	ID           string   `json:"id,omitempty"`
	IP           []string `json:"ip,omitempty"`
	OS           *ecsOS   `json:"os,omitempty"`
	Architecture string   `json:"architecture,omitempty"`
}

type ecsOS struct {
	Type     string `json:"type,omitempty"`
	Name     string `json:"name,omitempty"`
	Full     string `json:"full,omitempty"`
	Family   string `json:"family,omitempty"`
	Version  string `json:"version,omitempty"`
	Kernel   string `json:"kernel,omitempty"`
	Platform string `json:"platform,omitempty"`
}

type ecsObserver struct {
	Type     string `json:"type"`
	Product  string `json:"product"`
	Vendor   string `json:"vendor"`
	Version  string `json:"version,omitempty"`
	Hostname string `json:"hostname,omitempty"`
}

type ecsAgent struct {
	Type        string `json:"type"`
	Name        string `json:"name,omitempty"`
	Version     string `json:"version,omitempty"`
	ID          string `json:"id,omitempty"`
	EphemeralID string `json:"ephemeral_id,omitempty"`
}

type ecsOrch struct {
	Type      string          `json:"type,omitempty"`
	Cluster   *ecsOrchCluster `json:"cluster,omitempty"`
	Namespace string          `json:"namespace,omitempty"`
	Resource  *ecsOrchRes     `json:"resource,omitempty"`
}

type ecsOrchCluster struct {
	Name string `json:"name"`
}

type ecsOrchRes struct {
	Name string `json:"name,omitempty"`
	Type string `json:"type,omitempty"`
}

type ecsRelated struct {
	IP   []string `json:"ip,omitempty"`
	User []string `json:"user,omitempty"`
}

type ecsDataStream struct {
	Type      string `json:"type"`
	Dataset   string `json:"dataset"`
	Namespace string `json:"namespace"`
}

// ecsNetSentinel holds what ECS has no field for.
type ecsNetSentinel struct {
	ThreatType     string         `json:"threat_type"`
	Severity       string         `json:"severity"` // LOW..CRITICAL
	Technique      string         `json:"technique,omitempty"`
	Entity         string         `json:"entity,omitempty"`
	Count          int            `json:"count,omitempty"`
	Recommendation string         `json:"recommendation,omitempty"`
	Evidence       map[string]any `json:"evidence,omitempty"` // mapped as flattened
}

// alertID is a.ID, or for an alert that reached the formatter without one, a
// deterministic id derived from what identifies it (so a re-formatted alert
// keeps its id and sinks can still de-duplicate on it).
func alertID(a *detect.Alert) string {
	if a.ID != "" {
		return clean(a.ID, MaxKeyword)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%d\x00%s\x00%s\x00%s", a.RuleID, a.Entity, a.Technique,
		a.Time.UnixNano(), a.Source, a.Dest, a.Message)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// processThreats are threat types about a process starting (ECS category
// process, type start) rather than network activity alone.
var processThreats = map[string]bool{
	detect.ThreatProcessSpawn: true,
	detect.ThreatReverse:      true,
}

// networkDirections are the ECS network.direction expected values.
var networkDirections = map[string]bool{
	"ingress": true, "egress": true, "inbound": true, "outbound": true,
	"internal": true, "external": true, "unknown": true,
}

// Format renders a as one compact ECS JSON object (no trailing newline).
func (f *ECS) Format(a *detect.Alert) ([]byte, error) {
	if a == nil {
		return nil, errors.New("ecs: nil alert")
	}
	d := f.build(a)
	b, err := marshalCompact(d)
	if err != nil {
		return nil, fmt.Errorf("ecs: encoding alert %s (rule %s): %w", clean(a.ID, 64), clean(a.RuleID, 64), err)
	}
	return b, nil
}

func (f *ECS) build(a *detect.Alert) *ecsDoc {
	tech := resolveTechnique(f.lookup, clean(a.Technique, 32))
	threatType := clean(a.ThreatType, MaxKeyword)
	ruleID := clean(a.RuleID, MaxKeyword)
	ts := a.Time
	if ts.IsZero() {
		ts = f.now()
	}
	d := &ecsDoc{
		Timestamp: formatTime(ts.UTC()),
		Message:   clean(a.Message, MaxMessage),
		ECS:       ecsECS{Version: ECSVersion},
	}

	// event.*
	isProc := processThreats[a.ThreatType] || strings.HasPrefix(a.Technique, "T1059")
	hasNet := a.Source.IsValid() || a.Dest.IsValid() || a.Transport != ""
	var cats, types []string
	if hasNet || !isProc {
		cats = append(cats, "network")
	}
	cats = append(cats, "intrusion_detection")
	types = append(types, "info")
	if isProc {
		cats = append(cats, "process")
		types = append(types, "start")
	}
	d.Event = ecsEvent{
		Kind: "alert", Category: cats, Type: types,
		Action: ruleID, ID: alertID(a),
		Dataset: f.meta.Dataset, Module: EventModule,
		Severity: ECSSeverity(a.Severity), RiskScore: RiskScore(a.Severity), RiskScoreNorm: RiskScore(a.Severity),
		Created: formatTime(f.now().UTC()),
	}
	if !a.Start.IsZero() {
		d.Event.Start = formatTime(a.Start.UTC())
	}
	if !a.End.IsZero() {
		d.Event.End = formatTime(a.End.UTC())
	}

	// rule.*
	d.Rule = ecsRule{ID: ruleID, Name: threatType, Category: threatType, Ruleset: Ruleset,
		Reference: tech.URL, Version: clean(f.meta.Version, MaxKeyword)}
	if d.Rule.Name == "" {
		d.Rule.Name = ruleID
	}
	d.Rule.Description = tech.Name
	if f.meta.Rules != nil {
		if ri, ok := f.meta.Rules(a.RuleID); ok {
			if ri.Name != "" {
				d.Rule.Name = clean(ri.Name, MaxKeyword)
			}
			if ri.Description != "" {
				d.Rule.Description = clean(ri.Description, MaxMessage)
			}
		}
	}

	// threat.*
	d.Threat = f.threat(tech)

	// source/destination/network
	if ep := endpoint(a.Source); ep != nil {
		d.Source = ep
	}
	if ep := endpoint(a.Dest); ep != nil {
		d.Destination = ep
	}
	if hasNet {
		n := &ecsNetwork{Transport: strings.ToLower(clean(a.Transport, 32))}
		if a.Dest.IsValid() {
			n.Type = ipType(a.Dest.Addr())
		} else if a.Source.IsValid() {
			n.Type = ipType(a.Source.Addr())
		}
		if a.Direction != "" {
			n.Direction = "unknown"
			if networkDirections[a.Direction] {
				n.Direction = a.Direction
			}
		}
		n.CommunityID = CommunityID(n.Transport, a.Source, a.Dest, 0)
		if *n != (ecsNetwork{}) {
			d.Network = n
		}
	}

	// process.*
	d.Process = ecsProcessOf(a.Process)

	// host, observer, agent
	d.Host = f.ecsHost()
	d.Observer = ecsObserver{Type: "sensor", Product: ProductName, Vendor: ProductName,
		Version: clean(f.meta.Version, MaxKeyword), Hostname: clean(f.meta.AgentName, MaxKeyword)}
	d.Agent = ecsAgent{Type: AgentType, Name: clean(f.meta.AgentName, MaxKeyword),
		Version: clean(f.meta.Version, MaxKeyword), ID: clean(f.meta.AgentID, MaxKeyword),
		EphemeralID: clean(f.meta.EphemeralID, MaxKeyword)}
	d.Orch, d.Labels, d.Tags = f.orch, f.labels, f.tags

	// related.*
	var rel ecsRelated
	seen := map[string]bool{}
	for _, ap := range []netip.AddrPort{a.Source, a.Dest} {
		if ap.IsValid() {
			s := ap.Addr().Unmap().String()
			if !seen[s] {
				seen[s] = true
				rel.IP = append(rel.IP, s)
			}
		}
	}
	if d.Process != nil && d.Process.User != nil && d.Process.User.Name != "" {
		rel.User = []string{d.Process.User.Name}
	}
	if len(rel.IP) > 0 || len(rel.User) > 0 {
		d.Related = &rel
	}

	d.DataStream = ecsDataStream{Type: "logs", Dataset: f.meta.Dataset, Namespace: f.meta.Namespace}
	d.NetSentinel = ecsNetSentinel{
		ThreatType:     threatType,
		Severity:       SeverityName(a.Severity),
		Technique:      tech.ID,
		Entity:         clean(a.Entity, MaxKeyword),
		Count:          a.Count,
		Recommendation: clean(a.Recommendation, MaxMessage),
		Evidence:       sanitizeEvidence(a.Evidence),
	}
	return d
}

func (f *ECS) threat(tech TechniqueRef) ecsThreat {
	t := ecsThreat{Framework: ThreatFramework}
	if len(tech.Tactics) > 0 {
		r := &ecsRefs{}
		for _, ta := range tech.Tactics {
			r.ID = append(r.ID, ta.ID)
			r.Name = append(r.Name, ta.Name)
			r.Reference = append(r.Reference, ta.URL)
		}
		t.Tactic = r
	}
	if tech.ID == "" {
		return t
	}
	if tech.ParentID != "" {
		te := &ecsTechnique{ID: []string{tech.ParentID}, Reference: []string{tech.ParentURL}}
		if tech.ParentName != "" {
			te.Name = []string{tech.ParentName}
		}
		sub := &ecsRefs{ID: []string{tech.ID}, Reference: []string{tech.URL}}
		if tech.Name != "" {
			sub.Name = []string{tech.Name}
		}
		te.Subtechnique = sub
		t.Technique = te
		return t
	}
	te := &ecsTechnique{ID: []string{tech.ID}, Reference: []string{tech.URL}}
	if tech.Name != "" {
		te.Name = []string{tech.Name}
	}
	t.Technique = te
	return t
}

func (f *ECS) ecsHost() ecsHost {
	h := f.host
	out := ecsHost{
		Hostname: clean(h.Hostname, MaxKeyword), Name: clean(h.Name, MaxKeyword),
		ID: clean(h.ID, MaxKeyword), Architecture: clean(h.Architecture, MaxKeyword),
	}
	for _, ip := range h.IPs {
		if a, err := netip.ParseAddr(ip); err == nil {
			out.IP = append(out.IP, a.Unmap().String())
		}
	}
	os := ecsOS{Type: h.OSType, Name: h.OSName, Full: h.OSFull, Family: h.OSFamily,
		Version: h.OSVersion, Kernel: h.OSKernel, Platform: h.OSPlatform}
	for _, p := range []*string{&os.Type, &os.Name, &os.Full, &os.Family, &os.Version, &os.Kernel, &os.Platform} {
		*p = clean(*p, MaxKeyword)
	}
	if os != (ecsOS{}) {
		out.OS = &os
	}
	return out
}

func endpoint(ap netip.AddrPort) *ecsEndpoint {
	if !ap.IsValid() {
		return nil
	}
	return &ecsEndpoint{IP: ap.Addr().Unmap().String(), Port: int(ap.Port())}
}

func ipType(a netip.Addr) string {
	if a.Unmap().Is4() {
		return "ipv4"
	}
	return "ipv6"
}

func ecsProcessOf(p *detect.ProcessInfo) *ecsProcess {
	if p == nil || (p.PID == 0 && p.Name == "" && p.Executable == "" && len(p.Args) == 0) {
		return nil
	}
	out := &ecsProcess{
		PID:         p.PID,
		Name:        clean(p.Name, MaxKeyword),
		Executable:  clean(p.Executable, MaxKeyword),
		CommandLine: commandLine(p.Args),
		Args:        cleanArgs(p.Args),
		ArgsCount:   len(p.Args),
	}
	if p.PPID > 0 || p.ParentName != "" {
		out.Parent = &ecsParent{PID: p.PPID, Name: clean(p.ParentName, MaxKeyword)}
	}
	// uid 0 is root, a real value; it is written whenever the process is known
	// by pid (a process without a pid has no meaningful uid).
	u := &ecsUser{Name: clean(p.User, MaxKeyword)}
	if p.PID > 0 {
		u.ID = strconv.FormatUint(uint64(p.UID), 10)
	}
	if u.ID != "" || u.Name != "" {
		out.User = u
	}
	return out
}
