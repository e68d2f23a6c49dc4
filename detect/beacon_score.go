package detect

import (
	"cmp"
	"math"
	"slices"
	"sort"
	"time"
)

// The beaconing decision for one series of start times (see beacon.go for
// how the times are gathered). In the spirit of RITA's beacon analysis, with
// gates that keep random traffic below the measured false-positive budget
// (TestBeaconFalsePositiveBudget) at up to 50 % jitter:
//
//   - Observability. Identical start times are merged; a poll-stamped series
//     must show the same number of connections at every start (else: bursts).
//     A series known mostly to the poll must have a median interval of at
//     least beaconObservablePolls polls: shorter periods cannot be told from
//     random traffic rounded to the poll.
//   - Jitter. The spread of the intervals, (max-min)/(max+min), is the jitter
//     a period T would need to fit them all: T(1±J). Net of each interval's
//     poll slack (or an exact time's stamping noise) it must be within
//     max_jitter; raw, within max_jitter plus beaconRawJitterSlack. From 16
//     intervals, one in eight may be dropped as an outlier (a missed or
//     extra connection), but only when what remains is tight
//     (beaconTightJitter): dropping the tail of a heavy-tailed random series
//     would otherwise make it look regular. A series just outside the band
//     (one connection made late pushes an edge interval out) may drop one in
//     sixteen from 32 intervals if the rest then fits max_jitter, and then
//     needs min_connections_at_max_jitter start times.
//   - Evidence grows with jitter: min_connections start times at most
//     beaconTightJitter, rising linearly to min_connections_at_max_jitter at
//     max_jitter. A ±50 % band holds most of a random series' gaps now and
//     then; forty in a row, evenly spread, it does not.
//   - RITA-class score, the mean of: interval skew (1 - |Bowley skew|),
//     dispersion (1 - MAD/median), connection count (connections seen over
//     those a strict period would make in the span) and, when four or more
//     sizes are known, data-size regularity (the same two statistics on the
//     bytes per connection). It must reach min_score; the count part must be
//     at least beaconMinCount (no long silences), and the intervals must sit
//     symmetrically in their range (mean within beaconSymmetry of its middle:
//     jitter is symmetric, random gaps pile up at the short end).

const (
	beaconObservablePolls = 3
	beaconTightJitter     = 0.12
	beaconRawJitterSlack  = 0.1
	beaconMinCount        = 0.9
	beaconSymmetry        = 0.12
	// beaconStampNoise (seconds) is the slack an exact start time gets on
	// each side when the intervals are fitted to the jitter band. An exact
	// time is when the sensor read a destroy notification (or the kernel's
	// last-data time of a burst), and a loaded host delays both the client's
	// connects and the sensor's reads by tens of milliseconds: a 2 s beacon
	// drawn to the edge of ±50 % then reads 0.97 s against a 1.0 s floor.
	// It is absolute, so it widens the band only for short periods (5 % at
	// 1 s); TestBeaconFalsePositiveBudget's random rows do not move with it.
	beaconStampNoise = 0.05
)

// beaconEvent is one start time: unix nanoseconds, its uncertainty (0 =
// exact, else the poll interval before it) in milliseconds, and how many
// connections started then. 16 bytes.
type beaconEvent struct {
	t    int64
	res  int32
	mult int32
}

func (e beaconEvent) time() time.Time { return time.Unix(0, e.t) }

type beaconResult struct {
	period, minD, maxD, jitter, res float64
	score, skew, mad, count         float64
	symmetry                        float64
	sizeScore                       any // float64, or nil when sizes are unknown
	outliers, need                  int
}

// beaconInterval is the gap d (seconds) between two start times. A
// poll-stamped time lies up to its resolution before the stamp, so the true
// gap is in [d-below, d+above].
type beaconInterval struct{ d, below, above float64 }

// needConnections is how many start times a series with raw jitter j needs.
func needConnections(c BeaconConfig, j float64) int {
	if j <= beaconTightJitter || c.MaxJitter <= beaconTightJitter {
		return c.MinConnections
	}
	f := math.Min(1, (j-beaconTightJitter)/(c.MaxJitter-beaconTightJitter))
	return c.MinConnections + int(math.Ceil(f*float64(c.MaxConnections-c.MinConnections)))
}

// analyzeBeacon decides whether the start times ev (in time order, merged)
// are periodic and scores them; sizes are bytes per connection (any order).
func analyzeBeacon(ev []beaconEvent, sizes []float32, c BeaconConfig) (beaconResult, bool) {
	var r beaconResult
	if len(ev) < c.MinConnections {
		return r, false
	}
	last := ev[len(ev)-1].mult
	polled := 0
	for _, e := range ev {
		if e.res > 0 && e.mult != last {
			return r, false // varying counts per poll: bursts, not a beacon
		}
	}
	const eps = beaconStampNoise
	iv := make([]beaconInterval, len(ev)-1)
	for i := range iv {
		a, b := ev[i], ev[i+1]
		iv[i] = beaconInterval{
			d:     float64(b.t-a.t) / 1e9,
			below: float64(b.res)/1e3 + eps,
			above: float64(a.res)/1e3 + eps,
		}
		if a.res > 0 || b.res > 0 {
			polled++
		}
	}
	slices.SortFunc(iv, func(a, b beaconInterval) int { return cmp.Compare(a.d, b.d) })
	ds := make([]float64, len(iv))
	maxRes := 0.0
	for i, x := range iv {
		ds[i] = x.d
		maxRes = math.Max(maxRes, math.Max(x.below, x.above)-eps)
	}
	med := quantile(ds, 0.5)
	if med <= 0 || med < c.MinInterval.Seconds()*(1-c.MaxJitter) || med > c.MaxInterval.Seconds()*(1+c.MaxJitter) {
		return r, false
	}
	if 2*polled >= len(iv) && med < beaconObservablePolls*maxRes {
		return r, false
	}
	// The tightest set after dropping allowed outliers from either end.
	kept, out := iv, 0
	if len(iv) >= 16 {
		allowed := len(iv) / 8
		if sub, j := trimEnds(iv, allowed, spread); j < spread(iv) && j <= beaconTightJitter {
			kept, out = sub, allowed
		}
	}
	jNet := netJitter(kept)
	// One connection made late (a loaded host, a retransmitted SYN)
	// lengthens one interval and shortens the next by the delay. In a
	// series at the edge of max_jitter that pushes an interval out of the
	// band, and every judgement until it leaves the history fails. From 32
	// intervals, one in sixteen may be dropped from the ends when the rest
	// then fits the band; such a series needs min_connections_at_max_jitter.
	lateTrim := false
	if out == 0 && jNet > c.MaxJitter && len(iv) >= 32 {
		allowed := len(iv) / 16
		if sub, j := trimEnds(iv, allowed, netJitter); j <= c.MaxJitter {
			jNet, kept, out, lateTrim = j, sub, allowed, true
		}
	}
	// The intervals whose length is known: all of them in a series known
	// mostly to the poll (their rounding is part of the spread), only the
	// exact ones in a series known mostly exactly (a connection first seen
	// open at a poll is known to lie in its poll interval: jNet checks it).
	core, coreRes := make([]float64, 0, len(kept)), 0.0
	for _, x := range kept {
		if 2*polled < len(iv) && (x.below > eps || x.above > eps) {
			continue
		}
		core = append(core, x.d)
		coreRes = math.Max(coreRes, math.Max(x.below, x.above)-eps)
	}
	if len(core) < 3 {
		return r, false
	}
	jRaw := (core[len(core)-1] - core[0]) / (core[len(core)-1] + core[0])
	if jNet > c.MaxJitter || jRaw > c.MaxJitter+beaconRawJitterSlack {
		return r, false
	}
	r.need = needConnections(c, jRaw)
	if lateTrim {
		r.need = c.MaxConnections
	}
	if len(ev) < r.need {
		return r, false
	}
	r.minD, r.maxD, r.res, r.outliers = core[0], core[len(core)-1], maxRes, out
	r.period = quantile(core, 0.5)
	r.jitter = jRaw
	// Symmetry: where the mean sits in the range (0.5 for symmetric jitter).
	r.symmetry = 0.5
	if rg := r.maxD - r.minD; rg > 2*coreRes+2*eps {
		mean := 0.0
		for _, d := range core {
			mean += d
		}
		r.symmetry = (mean/float64(len(core)) - r.minD) / rg
	}
	if jRaw > beaconTightJitter && math.Abs(r.symmetry-0.5) > beaconSymmetry {
		return r, false
	}
	r.skew = 1 - math.Abs(bowley(ds, coreRes))
	r.mad = madScore(ds)
	span := float64(ev[len(ev)-1].t-ev[0].t) / 1e9
	r.count = clamp01(float64(len(iv)) * med / span)
	if r.count < beaconMinCount {
		return r, false
	}
	parts := []float64{r.skew, r.mad, r.count}
	if len(sizes) >= 4 {
		ss := make([]float64, len(sizes))
		for i, s := range sizes {
			ss[i] = float64(s)
		}
		sort.Float64s(ss)
		sz := (1 - math.Abs(bowley(ss, 0)) + madScore(ss)) / 2
		r.sizeScore = round3(sz)
		parts = append(parts, sz)
	}
	for _, p := range parts {
		r.score += p
	}
	r.score /= float64(len(parts))
	return r, r.score >= c.MinScore
}

// trimEnds drops allowed intervals from the ends of sorted iv (a from the
// short end, the rest from the long end) and returns the split whose
// jitter is lowest (the first such) with that jitter.
func trimEnds(iv []beaconInterval, allowed int, jitter func([]beaconInterval) float64) ([]beaconInterval, float64) {
	best, bestJ := iv, math.Inf(1)
	for a := 0; a <= allowed; a++ {
		sub := iv[a : len(iv)-(allowed-a)]
		if j := jitter(sub); j < bestJ {
			best, bestJ = sub, j
		}
	}
	return best, bestJ
}

// netJitter is the jitter J of the narrowest band T(1±J) that holds every
// interval of iv once each is given its slack (poll rounding, stamp noise).
func netJitter(iv []beaconInterval) float64 {
	hi, lo := math.Inf(-1), math.Inf(1)
	for _, x := range iv {
		hi = math.Max(hi, x.d-x.below)
		lo = math.Min(lo, x.d+x.above)
	}
	if hi <= lo {
		return 0
	}
	return (hi - lo) / (hi + lo)
}

// spread is (max-min)/(max+min) of sorted intervals: the jitter J a period
// T(1±J) needs to hold them all.
func spread(iv []beaconInterval) float64 {
	a, b := iv[0].d, iv[len(iv)-1].d
	if a+b <= 0 {
		return 0
	}
	return (b - a) / (b + a)
}

// bowley is the quartile skew of sorted s; 0 (as RITA does for a narrow
// quartile range) when the quartile range is within res or within
// beaconTightJitter of the median, where its sign is noise, or when the
// median sits on a quartile.
func bowley(s []float64, res float64) float64 {
	q1, q2, q3 := quantile(s, 0.25), quantile(s, 0.5), quantile(s, 0.75)
	if q3-q1 <= math.Max(res, beaconTightJitter*q2) || q2 == q1 || q2 == q3 {
		return 0
	}
	return (q1 + q3 - 2*q2) / (q3 - q1)
}

// madScore is 1 - MAD/median of sorted s (RITA's dispersion score), in [0, 1].
func madScore(s []float64) float64 {
	med := quantile(s, 0.5)
	if med <= 0 {
		return 0
	}
	dev := make([]float64, len(s))
	for i, x := range s {
		dev[i] = math.Abs(x - med)
	}
	sort.Float64s(dev)
	return clamp01(1 - quantile(dev, 0.5)/med)
}

func clamp01(x float64) float64 { return math.Min(1, math.Max(0, x)) }

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// quantile of sorted s by linear interpolation.
func quantile(s []float64, q float64) float64 {
	if len(s) == 0 {
		return 0
	}
	pos := q * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	f := pos - float64(lo)
	return s[lo]*(1-f) + s[hi]*f
}
