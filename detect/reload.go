package detect

import (
	"fmt"
	"io"
	"net/netip"
	"reflect"
	"slices"

	"go.uber.org/zap"
)

// Exceptions returns the live per-exception counts of silenced alerts (for
// the metrics endpoint: netsentinel_alerts_suppressed_total{exception}).
func (e *Engine) Exceptions() *ExceptionCounts { return &e.excepted }

// SetExceptions replaces the exception list (nil: none). Counts of earlier
// exceptions are kept.
func (e *Engine) SetExceptions(x *Exceptions) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.exceptions = x
}

// Reconfigure applies cfg to the running engine (SIGHUP reload) without
// losing state: detectors whose configuration is unchanged keep their
// windows and trackers; a detector whose configuration changed is rebuilt
// and takes over its predecessor's windows under the new limits (carry.go),
// a newly disabled one is closed, a newly enabled one is built and started.
// The cooldown table (so an ongoing condition is not raised again), the
// recent-process cache and the counters are kept; the new cooldown applies
// to every key. A change of home_net rebuilds every detector from scratch
// (what was counted as internal may no longer be). On error nothing changes.
func (e *Engine) Reconfigure(cfg Config) error {
	e.reMu.Lock()
	defer e.reMu.Unlock()
	if cfg.Cooldown < 0 {
		return fmt.Errorf("detect: cooldown %v is negative", cfg.Cooldown)
	}
	if cfg.Cooldown == 0 {
		cfg.Cooldown = DefaultCooldown
	}
	if cfg.HomeNet == nil {
		cfg.HomeNet = DefaultHomeNet()
	}
	known := map[string]bool{}
	for _, f := range e.factories {
		known[f.Name] = true
	}
	disabled := map[string]bool{}
	for _, name := range cfg.Disabled {
		if !known[name] {
			return fmt.Errorf("detect: disabled: unknown detector %q", name)
		}
		disabled[name] = true
	}
	for name := range cfg.Detectors {
		if !known[name] {
			return fmt.Errorf("detect: detectors: unknown detector %q", name)
		}
	}

	e.mu.Lock()
	old := map[string]*runner{}
	for _, r := range e.runners {
		old[r.stats.Name] = r
	}
	homeChanged := !slices.Equal(e.env.HomeNet, cfg.HomeNet)
	e.mu.Unlock()

	common := Common{HomeNet: append([]netip.Prefix(nil), cfg.HomeNet...)}
	var next, built []*runner
	var dropped []Detector
	heirs := map[*runner]Detector{} // rebuilt runner -> its predecessor
	fail := func(err error) error {
		for _, r := range built {
			closeDetector(r.det)
		}
		return err
	}
	for _, f := range e.factories {
		prev := old[f.Name]
		if disabled[f.Name] {
			if prev != nil {
				dropped = append(dropped, prev.det)
			}
			continue
		}
		dc, ok := cfg.Detectors[f.Name]
		if !ok || dc == nil {
			dc = f.DefaultConfig()
		}
		if prev != nil && !homeChanged && reflect.DeepEqual(prev.cfg, dc) {
			next = append(next, prev)
			continue
		}
		det, err := f.New(dc, common)
		if err != nil {
			return fail(fmt.Errorf("detect: detector %q: %w", f.Name, err))
		}
		r := &runner{det: det, cfg: dc, stats: DetectorStats{Name: f.Name}}
		if prev != nil {
			r.stats = prev.stats // counters run on across a rebuild
			dropped = append(dropped, prev.det)
			heirs[r] = prev.det
		}
		built = append(built, r)
		next = append(next, r)
	}

	e.mu.Lock()
	for r, old := range heirs {
		if t, ok := r.det.(stateTaker); ok && !homeChanged {
			t.takeState(old) // under the lock: old may be mid-Run otherwise
		}
	}
	e.runners = next
	e.env.quiet.reset() // a mark depends on its detector's configuration
	e.cooldown = cfg.Cooldown
	e.cool.SetTTL(cfg.Cooldown)
	e.env.Common = common
	e.exceptions = cfg.Exceptions
	e.mu.Unlock()

	for _, r := range built {
		if s, ok := r.det.(Starter); ok {
			s.Start(e.log.With(zap.String("detector", r.stats.Name)))
		}
	}
	for _, d := range dropped {
		closeDetector(d)
	}
	names := make([]string, len(built))
	for i, r := range built {
		names[i] = r.stats.Name
	}
	e.log.Info("detection reconfigured", zap.Strings("rebuilt", names), zap.Int("detectors", len(next)),
		zap.Duration("cooldown", cfg.Cooldown), zap.Int("exceptions", cfg.Exceptions.Len()))
	return nil
}

func closeDetector(d Detector) {
	if c, ok := d.(io.Closer); ok {
		_ = c.Close()
	}
}
