package sinks

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
)

// CEF (ArcSight Common Event Format, version 0) rendering of alert documents
// for the syslog sink. The document is the formatted event body: an ECS alert
// (schemas/ecs.go, the default) or a native one (--format native).
//
// Header: CEF:0|NetSentinel|NetSentinel|<version>|<rule id>|<rule name>|<severity>|
// with '\' and '|' escaped by a backslash and control characters replaced by
// spaces. Extension values escape '\', '=' and line breaks (\n, \r); other
// control characters become spaces. The field map is in cefExtensions and
// the README ("Syslog sink").

// CEF header identity.
const (
	CEFVendor  = "NetSentinel"
	CEFProduct = "NetSentinel"
)

// cefSeverities maps our severity names to CEF 0-10, placed in ArcSight's
// bands (0-3 low, 4-6 medium, 7-8 high, 9-10 very high).
var cefSeverities = map[string]int{"LOW": 3, "MEDIUM": 6, "HIGH": 8, "CRITICAL": 10}

// cefUnknownSeverity is used for a document without a known severity.
const cefUnknownSeverity = 5

// CEFSeverity is the CEF severity (0-10) of one of our severity names
// (LOW, MEDIUM, HIGH, CRITICAL).
func CEFSeverity(name string) int {
	if v, ok := cefSeverities[strings.ToUpper(name)]; ok {
		return v
	}
	return cefUnknownSeverity
}

// cefAlert is what CEF needs from an alert document, whichever its shape.
type cefAlert struct {
	time, start, end                  string // RFC 3339
	rule, name, category, msg, id     string
	version, severity, host           string
	techniques, tactics, techNames    []string
	src, dst, proto, dir, communityID string
	spt, dpt, count                   int
	procName, procCmd, user, uid      string
	pid                               int
	entity                            string
}

// ecsForCEF is the subset of the ECS alert document CEF uses.
type ecsForCEF struct {
	Timestamp string `json:"@timestamp"`
	Message   string `json:"message"`
	ECS       struct {
		Version string `json:"version"`
	} `json:"ecs"`
	Event struct {
		Action string `json:"action"`
		ID     string `json:"id"`
		Start  string `json:"start"`
		End    string `json:"end"`
	} `json:"event"`
	Rule struct {
		ID       string `json:"id"`
		Name     string `json:"name"`
		Category string `json:"category"`
		Version  string `json:"version"`
	} `json:"rule"`
	Threat struct {
		Tactic *struct {
			ID []string `json:"id"`
		} `json:"tactic"`
		Technique *struct {
			ID           []string `json:"id"`
			Name         []string `json:"name"`
			Subtechnique *struct {
				ID   []string `json:"id"`
				Name []string `json:"name"`
			} `json:"subtechnique"`
		} `json:"technique"`
	} `json:"threat"`
	Source      *ecsEndpointForCEF `json:"source"`
	Destination *ecsEndpointForCEF `json:"destination"`
	Network     *struct {
		Transport   string `json:"transport"`
		Direction   string `json:"direction"`
		CommunityID string `json:"community_id"`
	} `json:"network"`
	Process *struct {
		PID         int    `json:"pid"`
		Name        string `json:"name"`
		CommandLine string `json:"command_line"`
		User        *struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"user"`
	} `json:"process"`
	Host struct {
		Hostname string `json:"hostname"`
	} `json:"host"`
	Observer struct {
		Version string `json:"version"`
	} `json:"observer"`
	NetSentinel struct {
		ThreatType string `json:"threat_type"`
		Severity   string `json:"severity"`
		Technique  string `json:"technique"`
		Entity     string `json:"entity"`
		Count      int    `json:"count"`
	} `json:"netsentinel"`
}

type ecsEndpointForCEF struct {
	IP   string `json:"ip"`
	Port int    `json:"port"`
}

// nativeForCEF is the subset of the native document CEF uses.
type nativeForCEF struct {
	Timestamp      string   `json:"timestamp"`
	ThreatType     string   `json:"threat_type"`
	Severity       string   `json:"severity"`
	SourceIP       string   `json:"source_ip"`
	DestIP         string   `json:"dest_ip"`
	Port           int      `json:"port"`
	Description    string   `json:"description"`
	MitreTechnique string   `json:"mitre_technique"`
	EventID        string   `json:"event_id"`
	Rule           string   `json:"rule"`
	TechniqueName  string   `json:"mitre_technique_name"`
	TacticIDs      []string `json:"mitre_tactic_ids"`
	SourcePort     int      `json:"source_port"`
	Transport      string   `json:"transport"`
	Direction      string   `json:"direction"`
	WindowStart    string   `json:"window_start"`
	WindowEnd      string   `json:"window_end"`
	Count          int      `json:"count"`
	Entity         string   `json:"entity"`
	Process        *struct {
		PID         int    `json:"pid"`
		Name        string `json:"name"`
		CommandLine string `json:"command_line"`
		User        string `json:"user"`
		UID         uint32 `json:"uid"`
	} `json:"process"`
}

// errNotAlert is returned for a body that is not an alert document.
var errNotAlert = errors.New("body is not an ECS or native alert document")

// parseCEFAlert reads an ECS or native alert document.
func parseCEFAlert(body []byte) (cefAlert, error) {
	var e ecsForCEF
	if err := json.Unmarshal(body, &e); err == nil && e.ECS.Version != "" {
		return e.alert(), nil
	}
	var n nativeForCEF
	if err := json.Unmarshal(body, &n); err != nil || (n.Rule == "" && n.ThreatType == "") {
		return cefAlert{}, errNotAlert
	}
	return n.alert(), nil
}

func (e *ecsForCEF) alert() cefAlert {
	a := cefAlert{
		time: e.Timestamp, start: e.Event.Start, end: e.Event.End,
		rule: e.Rule.ID, name: e.Rule.Name, category: e.Rule.Category, msg: e.Message, id: e.Event.ID,
		version: e.Observer.Version, severity: e.NetSentinel.Severity, host: e.Host.Hostname,
		entity: e.NetSentinel.Entity, count: e.NetSentinel.Count,
	}
	if a.rule == "" {
		a.rule = e.Event.Action
	}
	if a.version == "" {
		a.version = e.Rule.Version
	}
	if a.category == "" {
		a.category = e.NetSentinel.ThreatType
	}
	if t := e.Threat.Technique; t != nil {
		a.techniques = append(a.techniques, t.ID...)
		a.techNames = append(a.techNames, t.Name...)
		if st := t.Subtechnique; st != nil {
			a.techniques = append(a.techniques, st.ID...)
			a.techNames = append(a.techNames, st.Name...)
		}
	} else if e.NetSentinel.Technique != "" {
		a.techniques = []string{e.NetSentinel.Technique}
	}
	if e.Threat.Tactic != nil {
		a.tactics = e.Threat.Tactic.ID
	}
	if s := e.Source; s != nil {
		a.src, a.spt = s.IP, s.Port
	}
	if d := e.Destination; d != nil {
		a.dst, a.dpt = d.IP, d.Port
	}
	if n := e.Network; n != nil {
		a.proto, a.dir, a.communityID = n.Transport, n.Direction, n.CommunityID
	}
	if p := e.Process; p != nil {
		a.pid, a.procName, a.procCmd = p.PID, p.Name, p.CommandLine
		if p.User != nil {
			a.user, a.uid = p.User.Name, p.User.ID
		}
	}
	return a
}

func (n *nativeForCEF) alert() cefAlert {
	a := cefAlert{
		time: n.Timestamp, start: n.WindowStart, end: n.WindowEnd,
		rule: n.Rule, name: n.ThreatType, category: n.ThreatType, msg: n.Description, id: n.EventID,
		severity: n.Severity, tactics: n.TacticIDs,
		src: n.SourceIP, dst: n.DestIP, spt: n.SourcePort, dpt: n.Port, proto: n.Transport, dir: n.Direction,
		entity: n.Entity, count: n.Count,
	}
	if a.rule == "" {
		a.rule = n.ThreatType
	}
	if n.MitreTechnique != "" {
		a.techniques = []string{n.MitreTechnique}
	}
	if n.TechniqueName != "" {
		a.techNames = []string{n.TechniqueName}
	}
	if p := n.Process; p != nil {
		a.pid, a.procName, a.procCmd, a.user = p.PID, p.Name, p.CommandLine, p.User
		if p.UID != 0 || p.User != "" { // uid 0 without a user name: unknown
			a.uid = strconv.FormatUint(uint64(p.UID), 10)
		}
	}
	return a
}

// cefCustomStrings are the labels of cs1..cs6.
var cefCustomStrings = [...]string{
	"MITRE ATT&CK Technique ID",   // cs1: technique, then sub-technique ids, comma-separated
	"MITRE ATT&CK Tactic ID",      // cs2
	"MITRE ATT&CK Technique Name", // cs3
	"Community ID",                // cs4: network.community_id
	"Process Command Line",        // cs5
	"Entity",                      // cs6: what the detector keyed the alert on
}

// FormatCEF renders an alert document (ECS or native JSON) as one CEF:0
// line (no trailing newline). version fills Device Version when the document
// carries none.
func FormatCEF(body []byte, version string) ([]byte, error) {
	a, err := parseCEFAlert(body)
	if err != nil {
		return nil, err
	}
	if a.version == "" {
		a.version = version
	}
	name := a.name
	if name == "" {
		name = a.rule
	}
	b := make([]byte, 0, 512+len(body)/2)
	b = append(b, "CEF:0|"...)
	for _, h := range []string{CEFVendor, CEFProduct, a.version, a.rule, name} {
		b = appendCEFHeader(b, h)
		b = append(b, '|')
	}
	b = strconv.AppendInt(b, int64(CEFSeverity(a.severity)), 10)
	b = append(b, '|')

	first := true
	ext := func(key, val string) {
		if val == "" {
			return
		}
		if !first {
			b = append(b, ' ')
		}
		first = false
		b = append(b, key...)
		b = append(b, '=')
		b = appendCEFValue(b, val)
	}
	num := func(key string, v int) {
		if v != 0 {
			ext(key, strconv.Itoa(v))
		}
	}
	ext("rt", cefMillis(a.time))
	ext("start", cefMillis(a.start))
	ext("end", cefMillis(a.end))
	ext("msg", a.msg)
	ext("cat", a.category)
	ext("externalId", a.id)
	ext("src", a.src)
	num("spt", a.spt)
	ext("dst", a.dst)
	num("dpt", a.dpt)
	ext("proto", strings.ToUpper(a.proto))
	inbound := false
	switch a.dir {
	case "ingress", "inbound":
		inbound = true
		ext("deviceDirection", "0")
	case "egress", "outbound":
		ext("deviceDirection", "1")
	}
	num("cnt", a.count)
	ext("dvchost", a.host)
	// The process owning the socket runs on this host: the destination of an
	// inbound connection, otherwise the source.
	side := "s"
	if inbound {
		side = "d"
	}
	ext(side+"proc", a.procName)
	num(side+"pid", a.pid)
	ext(side+"user", a.user)
	ext(side+"uid", a.uid)
	for i, v := range []string{
		strings.Join(a.techniques, ","), strings.Join(a.tactics, ","), strings.Join(a.techNames, ", "),
		a.communityID, a.procCmd, a.entity,
	} {
		if v != "" {
			n := strconv.Itoa(i + 1)
			ext("cs"+n, v)
			ext("cs"+n+"Label", cefCustomStrings[i])
		}
	}
	return b, nil
}

// cefMillis converts an RFC 3339 time to milliseconds since the epoch, the
// CEF form of rt/start/end; "" when it does not parse.
func cefMillis(s string) string {
	if s == "" {
		return ""
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return ""
	}
	return strconv.FormatInt(t.UnixMilli(), 10)
}

// appendCEFHeader escapes a header field: '\' and '|' get a backslash,
// control characters (line breaks included) become spaces.
func appendCEFHeader(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' || c == '|':
			b = append(b, '\\', c)
		case c < 0x20 || c == 0x7f:
			b = append(b, ' ')
		default:
			b = append(b, c)
		}
	}
	return b
}

// appendCEFValue escapes an extension value: '\' and '=' get a backslash,
// CR and LF are written as \r and \n, other control characters become
// spaces.
func appendCEFValue(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' || c == '=':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c < 0x20 || c == 0x7f:
			b = append(b, ' ')
		default:
			b = append(b, c)
		}
	}
	return b
}
