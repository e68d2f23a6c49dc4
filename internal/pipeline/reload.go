package pipeline

import (
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/netsentinel/netsentinel/detect"
	"github.com/netsentinel/netsentinel/internal/state"
	"github.com/netsentinel/netsentinel/sinks"
)

// Reloadable is what a SIGHUP may change in a running pipeline.
type Reloadable struct {
	// Detect is the engine config: cooldown, home_net, disabled detectors,
	// detector sections and exceptions.
	Detect detect.Config
	// Routes are the sinks' routes by Output.Name; a sink not listed keeps
	// its route.
	Routes map[string]sinks.Route
}

// Reload applies r without restarting sinks or losing detector state (see
// detect.Engine.Reconfigure). When the detection config is rejected nothing
// changes and the error says why.
func (p *Pipeline) Reload(r Reloadable) error {
	for name := range r.Routes {
		if p.output(name) < 0 {
			return fmt.Errorf("reload: routes: no sink %q", name)
		}
	}
	if err := p.eng.Reconfigure(r.Detect); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	routes := append([]sinks.Route(nil), *p.routes.Load()...)
	for name, rt := range r.Routes {
		i := p.output(name)
		if routes[i].String() != rt.String() {
			p.log.Info("sink route changed", zap.String("sink", name), zap.String("route", rt.String()))
		}
		routes[i] = rt
	}
	p.routes.Store(&routes)
	return nil
}

func (p *Pipeline) output(name string) int {
	for i, o := range p.outs {
		if o.Name == name {
			return i
		}
	}
	return -1
}

// ReopenSinks reopens the sinks that write files (after logrotate moved
// them); the others are untouched.
func (p *Pipeline) ReopenSinks() {
	for _, o := range p.outs {
		if r, ok := o.Runner.Sink().(interface{ Reopen() error }); ok {
			if err := r.Reopen(); err != nil {
				p.log.Error("reopening sink", zap.String("sink", o.Name), zap.Error(err))
			} else {
				p.log.Info("sink reopened", zap.String("sink", o.Name))
			}
		}
	}
}

// windowSuppressed returns the alerts silenced per exception since the
// previous call (the window's share of the engine's running counts).
func (p *Pipeline) windowSuppressed() map[string]uint64 {
	now := p.eng.Exceptions().Snapshot()
	out := map[string]uint64{}
	for name, n := range now {
		if d := n - p.excBase[name]; d > 0 {
			out[name] = d
		}
	}
	p.excBase = now
	return out
}

// saveState writes the cooldown table to the state directory; a failure is
// logged (the run goes on; a restart may then re-alert).
func (p *Pipeline) saveState(now time.Time) {
	if p.cfg.StateDir == "" {
		return
	}
	if err := state.SaveCooldowns(p.cfg.StateDir, p.eng.Cooldowns(state.MaxCooldowns), now); err != nil {
		p.log.Error("saving cooldown state", zap.Error(err))
	}
}
