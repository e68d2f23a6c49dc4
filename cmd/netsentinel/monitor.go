package main

import (
	"github.com/netsentinel/netsentinel/detect"
	"github.com/netsentinel/netsentinel/internal/config"
	"github.com/netsentinel/netsentinel/internal/monitor"
)

// newMonitor builds the --http-address endpoint's metrics and health state.
// netsentinel_alerts_suppressed_total reads the engine's exception counters
// at scrape time; every configured exception appears, at 0 until it matches.
func newMonitor(cfg *config.Config, eng *detect.Engine) *monitor.Monitor {
	mon := monitor.New(version, cfg.Interval.D())
	configured := make([]string, 0, len(cfg.Exceptions))
	for _, e := range cfg.Exceptions {
		configured = append(configured, e.Name)
	}
	mon.SetSuppressed(func() map[string]uint64 {
		counts := eng.Exceptions().Snapshot()
		for _, name := range configured {
			if _, ok := counts[name]; !ok {
				counts[name] = 0
			}
		}
		return counts
	})
	return mon
}
