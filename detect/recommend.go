package detect

// Threat types (Alert.ThreatType / RuleInfo.ThreatType). The first nine are
// the original's names; detectors may emit more specific ones below.
const (
	ThreatSuspiciousPort = "SUSPICIOUS_PORT"
	ThreatPortScan       = "PORT_SCAN_DETECTED"
	ThreatLateral        = "LATERAL_MOVEMENT"
	ThreatSuspiciousDNS  = "SUSPICIOUS_DNS"
	ThreatTor            = "TOR_USAGE"
	ThreatBeaconing      = "POTENTIAL_BEACONING"
	ThreatProcessSpawn   = "SUSPICIOUS_PROCESS_SPAWN"
	ThreatARPSpoofing    = "ARP_SPOOFING"
	ThreatExfil          = "HIGH_VOLUME_EXFIL"

	ThreatIntelMatch = "THREAT_INTEL_MATCH"
	ThreatDNSHijack  = "DNS_HIJACK"
	ThreatReverse    = "REVERSE_SHELL"
)

// genericRecommendation is returned for a threat type with no specific text.
const genericRecommendation = "Investigate the host and process named in the alert, confirm whether the activity is expected, and isolate the host if it is not."

var recommendations = map[string]string{
	ThreatSuspiciousPort: "Identify the process using the port and confirm it is authorised; block known RAT/C2 ports at the egress firewall and alert on processes that use ports not expected for their protocol.",
	ThreatPortScan:       "Find the scanning process or source; if it is not an authorised scanner, isolate the host, block the source at the firewall and review what the scan reached.",
	ThreatLateral:        "Segment the network so workstations cannot reach admin ports (SSH, SMB, RDP, WinRM) of peers; require MFA for remote administration and review the accounts used.",
	ThreatSuspiciousDNS:  "Force DNS through the approved resolvers (block 53/853 egress elsewhere), check resolv.conf for tampering, and inspect the process for DNS tunnelling or DoH to unapproved resolvers.",
	ThreatTor:            "Block Tor at the egress (relay list and Tor ports) unless it is sanctioned; find and remove the tor client or the process proxying through it.",
	ThreatBeaconing:      "Treat regular, timed connections as possible command-and-control: identify the process, check the destination's reputation, and block it if it is not a known update or telemetry service.",
	ThreatProcessSpawn:   "Deploy EDR with process-ancestry rules; restrict shells for service accounts, disable Office macros from untrusted sources, and investigate the parent process for compromise.",
	ThreatARPSpoofing:    "Enable Dynamic ARP Inspection on the switches and set static ARP entries for critical hosts such as the gateway; locate the port of the offending MAC address.",
	ThreatExfil:          "Deploy DLP and per-process network volume monitoring; verify the destination and the data the process sent, and block the destination if the transfer is not authorised.",
	ThreatIntelMatch:     "Block the listed indicator at the firewall and proxy, identify the process that contacted it, and investigate the host for compromise.",
	ThreatDNSHijack:      "Restore the resolver configuration from a trusted source, find what changed it, and pin DNS settings through configuration management.",
	ThreatReverse:        "Kill the shell and its network connection, isolate the host, and find how the shell was started (web server, service or user) before restoring it.",
}

// Recommendation returns the recommended response for a threat type (a generic
// one for a type with no specific text). It is never empty.
func Recommendation(threatType string) string {
	if r, ok := recommendations[threatType]; ok {
		return r
	}
	return genericRecommendation
}
