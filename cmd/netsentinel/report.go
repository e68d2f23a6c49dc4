package main

import (
	"github.com/netsentinel/netsentinel/detect"
	"github.com/netsentinel/netsentinel/internal/pipeline"
	"github.com/netsentinel/netsentinel/schemas"
	"github.com/netsentinel/netsentinel/sinks"
)

// reportWriter builds and atomically writes a window report with the
// engine's and every sink's counters as they are when it is called (after the
// drain, for the final report).
func reportWriter(eng *detect.Engine, outs []pipeline.Output, host schemas.Host, version string) pipeline.ReportFunc {
	return func(w *pipeline.Window, path string) error {
		sinkStats := make(map[string]schemas.SinkCounters, len(outs))
		for _, o := range outs {
			sinkStats[o.Name] = reportCounters(o.Runner.Stats())
		}
		counters := map[string]uint64{}
		es := eng.Stats()
		counters["cooldown_evicted"] = es.CooldownEvicted
		for _, d := range es.Detectors {
			counters[d.Name+".alerts"] = d.Alerts
			counters[d.Name+".suppressed"] = d.Suppressed
			counters[d.Name+".superseded"] = d.Superseded
			counters[d.Name+".excepted"] = d.Excepted
			if d.Panics > 0 {
				counters[d.Name+".panics"] = d.Panics
			}
		}
		rep := schemas.BuildReport(schemas.ReportInput{
			Alerts:      w.Alerts,
			Snapshot:    w.Last,
			WindowStart: w.Start,
			WindowEnd:   w.End,
			Version:     version,
			Hostname:    host.Hostname,
			Collection: schemas.CollectionStats{
				Polls: w.Polls, PollErrors: w.PollErrors, FormatErrors: w.FormatErrs,
				TotalDuration: w.CollectDur, MaxDuration: w.MaxCollect, SourceErrors: w.Errors,
			},
			Sinks:            sinkStats,
			DetectorCounters: counters,
			Suppressed:       w.Suppressed,
			Lookup:           schemas.DetectLookup,
		})
		return schemas.WriteReportAtomic(path, rep)
	}
}

// reportCounters copies a runner's counters into the report's type.
func reportCounters(s sinks.StatsSnapshot) schemas.SinkCounters {
	return schemas.SinkCounters{
		Sent: s.Sent, Retried: s.Retried, Duplicate: s.Duplicate, DeadLettered: s.DeadLettered,
		Spooled: s.Spooled, Failed: s.Failed, Offered: s.Offered, Filtered: s.Filtered,
		Dropped: s.Dropped, DroppedBy: s.DroppedBy,
	}
}
