package main

import (
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/netsentinel/netsentinel/detect"
	"github.com/netsentinel/netsentinel/internal/config"
	"github.com/netsentinel/netsentinel/internal/pipeline"
	"github.com/netsentinel/netsentinel/internal/state"
	"github.com/netsentinel/netsentinel/sinks"
)

// engineConfig is the detection engine's config: detect: and exceptions:.
func engineConfig(cfg *config.Config) (detect.Config, error) {
	homeNet, err := cfg.HomeNet()
	if err != nil {
		return detect.Config{}, err
	}
	dcfgs, err := cfg.DetectorConfigs()
	if err != nil {
		return detect.Config{}, err
	}
	exc, err := cfg.CompileExceptions()
	if err != nil {
		return detect.Config{}, err
	}
	return detect.Config{
		Cooldown:   cfg.Detect.Cooldown.D(),
		Disabled:   cfg.Detect.Disabled,
		HomeNet:    homeNet,
		Detectors:  dcfgs,
		Exceptions: exc,
	}, nil
}

// watchHUP serves SIGHUP until hup is closed: file sinks reopen (logrotate),
// then the configuration is read again (reparse: the file under the same
// flags) and its detect:, exceptions: and sink routes applied without
// restarting sinks or losing detector state. An invalid file is logged with
// the reason and ignored; changes that need a restart are named.
func watchHUP(hup <-chan os.Signal, p *pipeline.Pipeline, running config.Config, reparse func() (config.Config, error), log *zap.Logger) {
	for range hup {
		p.ReopenSinks()
		reload(p, &running, reparse, log)
	}
}

func reload(p *pipeline.Pipeline, running *config.Config, reparse func() (config.Config, error), log *zap.Logger) {
	next, err := reparse()
	if err != nil {
		log.Error("reload: configuration rejected; the running configuration stays", zap.Error(err))
		return
	}
	dc, err := engineConfig(&next)
	if err != nil {
		log.Error("reload: configuration rejected; the running configuration stays", zap.Error(err))
		return
	}
	specs, err := next.SinkSpecs()
	if err != nil {
		log.Error("reload: configuration rejected; the running configuration stays", zap.Error(err))
		return
	}
	runningSpecs, _ := running.SinkSpecs() // validated at start
	open := map[string]bool{}
	for _, s := range runningSpecs {
		open[s.Spec.Redacted()] = true
	}
	routes := map[string]sinks.Route{}
	for _, s := range specs {
		if name := s.Spec.Redacted(); open[name] {
			routes[name] = s.Route
		}
	}
	restart := config.RestartRequired(running, &next)
	if err := p.Reload(pipeline.Reloadable{Detect: dc, Routes: routes}); err != nil {
		log.Error("reload: configuration rejected; the running configuration stays", zap.Error(err))
		return
	}
	running.Detect, running.Exceptions = next.Detect, next.Exceptions
	if len(restart) > 0 {
		// Key names only: values may hold credentials.
		log.Warn("reload: restart required to apply changes of these keys; they are ignored until then",
			zap.Strings("keys", restart))
	} else {
		running.Sinks = next.Sinks // same sinks, maybe new routes
	}
	log.Info("configuration reloaded", zap.Int("exceptions", dc.Exceptions.Len()))
}

// restoreCooldowns loads the saved cooldown table from the state directory;
// a damaged file is reported once and ignored.
func restoreCooldowns(eng *detect.Engine, dir string, log *zap.Logger) {
	entries, err := state.LoadCooldowns(dir)
	if err != nil {
		log.Warn("cooldown state unreadable; starting without it (conditions may alert again)", zap.Error(err))
		return
	}
	if len(entries) > 0 {
		n := eng.RestoreCooldowns(entries, time.Now())
		log.Info("cooldown state loaded", zap.String("dir", dir), zap.Int("entries", n))
	}
}
