package config

import (
	"strings"
	"testing"

	"github.com/netsentinel/netsentinel/detect"
)

// The arp_spoofing failover allow-list as a user writes it: decoded
// strictly, built into the engine, and a bad MAC named in the error.
func TestARPFailoverFromFile(t *testing.T) {
	const good = `detect:
  detectors:
    arp_spoofing:
      allowed_macs: ["52-54-00-AA-00-01"]
      failover:
        - addresses: [10.0.0.1, "fd00::1", "10.0.1.0/29"]
          macs: ["52:54:00:00:00:01", "52:54:00:00:00:02"]
`
	cfg, err := loadText(t, good)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := cfg.DetectorConfigs()
	if err != nil {
		t.Fatal(err)
	}
	ac, err := detect.ConfigAs[detect.ARPConfig]("arp_spoofing", dc["arp_spoofing"])
	if err != nil {
		t.Fatal(err)
	}
	if len(ac.Failover) != 1 || len(ac.Failover[0].Addresses) != 3 || len(ac.Failover[0].MACs) != 2 {
		t.Fatalf("failover decoded as %+v", ac.Failover)
	}
	if _, err := detect.NewEngine(detect.Config{Detectors: dc}, nil); err != nil {
		t.Fatalf("engine: %v", err)
	}

	bad := strings.Replace(good, `"52:54:00:00:00:02"`, `"52:54:00:00:00"`, 1)
	cfg, err = loadText(t, bad)
	if err == nil {
		var dc map[string]any
		if dc, err = cfg.DetectorConfigs(); err == nil {
			_, err = detect.NewEngine(detect.Config{Detectors: dc}, nil)
		}
	}
	if err == nil || !strings.Contains(err.Error(), "failover") || !strings.Contains(err.Error(), "52:54:00:00:00") {
		t.Errorf("bad failover MAC: %v", err)
	}
	if _, err := loadText(t, strings.Replace(good, "macs:", "macz:", 1)); err == nil || !strings.Contains(err.Error(), "macz") {
		t.Errorf("unknown key in a failover group: %v", err)
	}
}
