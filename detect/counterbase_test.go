package detect

import (
	"math"
	"math/rand"
	"testing"
	"time"
)

// busyServer generates the Tcp OutRsts series of a busy web server polled
// every interval for length: about 25 resets a second (clients aborting,
// late segments after close, background SYNs to closed ports) following a
// daily cycle (±40 %), with a gamma-distributed load changing every 10 s
// (coefficient of variation 0.25: the resets of
// thousands of independent clients), Pareto bursts of aborts (1 % of polls, up to twice the base rate more),
// Poisson counts, and two traffic
// surges ramping up and down over a minute (2x for 5 minutes at 1 h, 1.5x
// for 10 minutes at 2 h, a crawler).
// It returns the cumulative counter per poll and the counter's value and age
// when the sensor started (the server had been up three days).
func busyServer(seed int64, interval, length time.Duration) (series []uint64, startValue uint64, age time.Duration) {
	rng := rand.New(rand.NewSource(seed))
	const base = 25.0
	age = 72 * time.Hour
	value := uint64(base * age.Seconds())
	startValue = value
	dt := interval.Seconds()
	load, nextBlock := 1.0, time.Duration(0)
	for t := time.Duration(0); t <= length; t += interval {
		h := t.Hours()
		rate := base * (1 + 0.4*math.Sin(2*math.Pi*(h+72)/24))
		rate *= surge(t, time.Hour, 5*time.Minute, 2) * surge(t, 2*time.Hour, 10*time.Minute, 1.5)
		if t >= nextBlock { // the load changes every 10 s
			load = 0.0 // gamma(16, 1/16): mean 1, CV 0.25
			for i := 0; i < 16; i++ {
				load += rng.ExpFloat64() / 16
			}
			nextBlock = t + 10*time.Second
		}
		extra := 0.0
		if rng.Float64() < 0.01 { // a batch of aborts: up to twice the base rate more
			extra = base * dt * (min(3, math.Pow(rng.Float64(), -1.0/3)) - 1) // Pareto, alpha 3
		}
		value += poisson(rng, rate*dt*load+extra)
		series = append(series, value)
	}
	return series, startValue, age
}

// surge is the traffic factor at t of a surge to factor from start for
// length, ramping up and down over a minute as visitors arrive and leave.
func surge(t, start, length time.Duration, factor float64) float64 {
	const ramp = time.Minute
	var f float64
	switch {
	case t < start || t >= start+length+ramp:
		return 1
	case t < start+ramp:
		f = float64(t-start) / float64(ramp)
	case t < start+length:
		f = 1
	default:
		f = 1 - float64(t-start-length)/float64(ramp)
	}
	return 1 + f*(factor-1)
}

// poisson draws a Poisson count with mean m (normal approximation above 50).
func poisson(rng *rand.Rand, m float64) uint64 {
	if m > 50 {
		return uint64(max(0, math.Round(m+math.Sqrt(m)*rng.NormFloat64())))
	}
	l, k, p := math.Exp(-m), uint64(0), 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

func defaultBaseline() *counterBaseline {
	c := defaultPortScanConfig()
	return newCounterBaseline(c.CounterWindow, c.CounterHalfLife, float64(c.ClosedPortProbes), c.CounterZ, c.CounterRatio)
}

// A busy server's resets, at the poll intervals a user would choose, stay
// silent for three hours (surges included); a scan burst on top of the
// same series alarms within the poll it happens in.
func TestCounterBaselineBusyServer(t *testing.T) {
	for _, interval := range []time.Duration{time.Second, 2 * time.Second, 5 * time.Second} {
		t.Run(interval.String(), func(t *testing.T) {
			for seed := int64(1); seed <= 3; seed++ {
				series, v0, age := busyServer(seed, interval, 3*time.Hour)
				b := defaultBaseline()
				b.seed(v0, age)
				b.observe(bldT0, v0)
				for i, v := range series {
					if a := b.observe(bldT0.Add(time.Duration(i+1)*interval), v); a != nil {
						t.Fatalf("seed %d: busy server alarmed at poll %d (%s): %+v", seed, i, time.Duration(i)*interval, *a)
					}
				}
				// The same server, scanned: nmap's 1000 ports in 2 s add
				// ~1000 resets, spread over the polls of those 2 s.
				b = defaultBaseline()
				b.seed(v0, age)
				b.observe(bldT0, v0)
				scanAt := int((150 * time.Minute) / interval)
				scanPolls := max(1, int(2*time.Second/interval))
				var added uint64
				for i, v := range series {
					if i >= scanAt && i < scanAt+scanPolls {
						added += 1000 / uint64(scanPolls)
					}
					a := b.observe(bldT0.Add(time.Duration(i+1)*interval), v+added)
					switch {
					case a != nil && i < scanAt:
						t.Fatalf("seed %d: alarm at poll %d before the scan: %+v", seed, i, *a)
					case a != nil:
						if i > scanAt+scanPolls {
							t.Errorf("seed %d: alarm %d polls after the scan started, want within %d", seed, i-scanAt, scanPolls)
						}
						if a.Observed < 1000/uint64(scanPolls) || a.Rate < 10 {
							t.Errorf("seed %d: alarm %+v", seed, *a)
						}
					}
					if a != nil {
						break
					}
					if i == scanAt+scanPolls+1 {
						t.Fatalf("seed %d: no alarm within %d polls of a 1000-reset burst", seed, scanPolls+1)
					}
				}
			}
		})
	}
}

// A quiet host (a stray reset now and then) alarms on a slow scan of
// closed ports, one probe every 2 s, once the floor's worth of probes has
// come, and not before; the probes do not become its baseline.
func TestCounterBaselineSlowScanQuietHost(t *testing.T) {
	rng := rand.New(rand.NewSource(9))
	b := defaultBaseline()
	var v uint64 = 400 // a day of stray resets
	b.seed(v, 24*time.Hour)
	now := bldT0
	b.observe(now, v)
	for i := 0; i < 1800; i++ { // an hour of 2 s polls
		now = now.Add(2 * time.Second)
		v += poisson(rng, 2*400.0/86400)
		if a := b.observe(now, v); a != nil {
			t.Fatalf("quiet host alarmed at poll %d: %+v", i, *a)
		}
	}
	floor := int(b.floor)
	for probe := 1; probe <= 2*floor; probe++ {
		now = now.Add(2 * time.Second)
		v++
		a := b.observe(now, v)
		if a == nil && probe >= floor+1 {
			t.Fatalf("no alarm after %d slow probes (floor %d)", probe, floor)
		}
		if a != nil {
			if probe < floor {
				t.Fatalf("alarm after only %d probes: %+v", probe, *a)
			}
			if a.Start.After(now.Add(-time.Duration(probe-1) * 2 * time.Second)) {
				t.Errorf("alarm window %s..%s does not cover the scan", a.Start, a.End)
			}
			return
		}
	}
}

// Without a prior (the counter's age unknown) the first polls only learn:
// a busy host's resets at start-up are its baseline, not a scan.
func TestCounterBaselineNoPriorLearnsFirst(t *testing.T) {
	series, _, _ := busyServer(3, 2*time.Second, 30*time.Minute)
	b := defaultBaseline()
	for i, v := range series {
		if a := b.observe(bldT0.Add(time.Duration(i)*2*time.Second), v); a != nil {
			t.Fatalf("alarm at poll %d: %+v", i, *a)
		}
	}
	now := bldT0.Add(time.Duration(len(series)) * 2 * time.Second)
	if a := b.observe(now, series[len(series)-1]+60+1500); a == nil {
		t.Fatal("no alarm for a 1500-reset burst after learning")
	}
}

// A counter that goes backwards (network namespace recreated) is a zero
// rise, not a huge one.
func TestCounterBaselineReset(t *testing.T) {
	b := defaultBaseline()
	b.seed(0, time.Hour)
	b.observe(bldT0, 5000)
	if a := b.observe(bldT0.Add(2*time.Second), 3); a != nil {
		t.Fatalf("alarm on a counter reset: %+v", *a)
	}
	if a := b.observe(bldT0.Add(4*time.Second), 3+uint64(b.floor)); a == nil {
		t.Fatal("no alarm for floor probes after the reset")
	}
}
