package detect

import (
	"testing"
)

func TestRecommendationCoversAllThreatTypes(t *testing.T) {
	for _, tt := range []string{ThreatSuspiciousPort, ThreatPortScan, ThreatLateral, ThreatSuspiciousDNS, ThreatTor,
		ThreatBeaconing, ThreatProcessSpawn, ThreatARPSpoofing, ThreatExfil, ThreatIntelMatch, ThreatDNSHijack, ThreatReverse} {
		if r := Recommendation(tt); r == genericRecommendation || len(r) < 40 {
			t.Errorf("%s has no specific recommendation: %q", tt, r)
		}
	}
	if Recommendation("SOMETHING_NEW") != genericRecommendation {
		t.Error("unknown threat type must get the generic text")
	}
	// Every rule of every registered detector gets a non-generic text.
	for _, f := range Factories() {
		d, err := f.New(f.DefaultConfig(), Common{HomeNet: DefaultHomeNet()})
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		for _, r := range d.Rules() {
			if Recommendation(r.ThreatType) == genericRecommendation {
				t.Errorf("rule %s threat type %s has no recommendation in recommend.go", r.ID, r.ThreatType)
			}
		}
	}
}
