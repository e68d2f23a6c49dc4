package detect

import (
	"math"
	"slices"
	"time"
)

// counterBaseline learns the normal rate of one host-wide kernel counter
// (Tcp OutRsts + Udp NoPorts, or Tcp AttemptFails) and says when the counter
// rises above it by more than its own noise: a busy web server resets
// thousands of connections a minute, a quiet host none, and the same probe
// count cannot mean "scan" on both.
//
// Model, per poll i with counter rise d_i over dt_i seconds (rate r_i):
//   - level: mu, an exponentially weighted mean of r with half-life halfLife,
//     seeded from the counter's average since it started (value / age, where
//     age is how long the network namespace has been counting) when that is
//     known; without that prior the first warmupPolls polls only learn (a
//     running mean) and cannot alarm. Inputs are clipped at what an alarm
//     would need, so a scan teaches the baseline little;
//   - noise: sigma = 1.4826 * MAD of the last ringLen per-poll rates (a robust
//     standard deviation; a scan's polls are a minority of them). Until the
//     ring holds minNoise rates, sigma is mu (a bursty prior);
//     The expected level is mu, or when higher the first quartile of the
//     ring's rates or the median of the latest shortRun rates (a surge);
//   - test, over every run of the latest polls within the window (1 poll,
//     2 polls, ... the whole window): excess = sum(d) - mu*sum(dt) alarms when
//     excess >= max(floor, z*sqrt(sigma^2*sum(dt^2) + mu*sum(dt))) (the
//     rates' spread plus a Poisson term for counts) and sum(d) >= ratio *
//     mu*sum(dt) (a sustained traffic surge raises resets in proportion; a
//     scan multiplies them). A burst alarms within one poll, a slow scan once
//     floor probes beyond the baseline accumulate within the window.
//
// After an alarm the polls it covered no longer count towards the next one.
type counterBaseline struct {
	window   time.Duration
	halfLife time.Duration
	floor    float64
	z        float64
	ratio    float64

	mu      float64 // learned rate, per second
	seeded  bool    // mu has a value (prior or first rate)
	prior   bool    // mu was seeded from the counter's lifetime average
	n       int     // rates learned
	last    uint64
	lastT   time.Time
	started bool
	polls   []basePoll // polls within the window, oldest first (after the last alarm)
	rates   []float64  // ring of the last ringLen rates, for the MAD
	ringPos int
	scratch []float64
	// noise() cache
	sigmaC, levelC float64
	noiseAge       int
}

type basePoll struct {
	t  time.Time
	d  float64 // counter rise
	dt float64 // seconds
}

// baselineAlarm describes a rise above the baseline.
type baselineAlarm struct {
	Start, End time.Time
	Observed   uint64  // counter rise over the alarming polls
	Expected   float64 // what the baseline predicts for them
	Threshold  float64 // the excess that was needed
	Rate       float64 // learned baseline, per second
	Noise      float64 // learned noise of the per-second rate
}

const (
	baselineRing     = 600 // rates kept for the MAD (10 min at a 1 s poll)
	baselineMinNoise = 120 // rates before the MAD replaces the prior (2 min at 1 s)
	warmupPolls      = 10  // polls that only learn when there is no prior
	shortRun         = 60  // latest rates whose median is a level too (a surge)
	noiseEvery       = 10  // polls between recomputations of the noise and level
	madToSigma       = 1.4826
	maxBaselinePolls = 4096
)

func newCounterBaseline(window, halfLife time.Duration, floor, z, ratio float64) *counterBaseline {
	return &counterBaseline{window: window, halfLife: halfLife, floor: floor, z: z, ratio: ratio}
}

// seed sets the prior rate from the counter's value and how long it has been
// counting (age <= 0: unknown, no prior).
func (b *counterBaseline) seed(value uint64, age time.Duration) {
	if b.seeded || age <= 0 {
		return
	}
	b.mu = float64(value) / age.Seconds()
	b.seeded, b.prior = true, true
}

// takeState keeps what old learned (rate, noise, polls) under b's settings.
func (b *counterBaseline) takeState(old *counterBaseline) {
	params := *b
	*b = *old
	b.window, b.halfLife, b.floor, b.z, b.ratio = params.window, params.halfLife, params.floor, params.z, params.ratio
}

// noise returns the noise estimate of the per-second rate and the rate the
// test expects: the learned level, or when higher the first quartile of the
// ring's rates or the median of the latest shortRun (a traffic surge that has
// lasted half a minute or a quarter of the ring is the new normal; a scan
// needs more than shortRun/2 polls of probes to hide in it, and reaches the
// floor before at one probe a poll).
func (b *counterBaseline) noise() (sigma, level float64) {
	if len(b.rates) < baselineMinNoise {
		return b.mu, b.mu
	}
	// The ring's statistics move slowly: recompute them every noiseEvery
	// polls (sorting the ring each poll is the detector's largest cost).
	if b.noiseAge > 0 && b.noiseAge < noiseEvery {
		b.noiseAge++
		return b.sigmaC, max(b.mu, b.levelC)
	}
	b.noiseAge = 1
	// the median of the latest shortRun rates (the ring is circular)
	n, last := len(b.rates), len(b.rates)-1
	if n == baselineRing {
		last = (b.ringPos - 1 + n) % n
	}
	b.scratch = b.scratch[:0]
	for i := 0; i < shortRun; i++ {
		b.scratch = append(b.scratch, b.rates[(last-i+n)%n])
	}
	slices.Sort(b.scratch)
	recent := median(b.scratch)
	b.scratch = append(b.scratch[:0], b.rates...)
	slices.Sort(b.scratch)
	b.levelC = max(b.scratch[len(b.scratch)/4], recent)
	med := median(b.scratch)
	for i, r := range b.scratch {
		b.scratch[i] = math.Abs(r - med)
	}
	slices.Sort(b.scratch)
	b.sigmaC = madToSigma * median(b.scratch)
	return b.sigmaC, max(b.mu, b.levelC)
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// observe takes the counter's value at t and returns an alarm when the rise
// since the polls before is above the baseline.
func (b *counterBaseline) observe(t time.Time, value uint64) *baselineAlarm {
	if !b.started || !t.After(b.lastT) {
		b.started, b.last, b.lastT = true, value, t
		return nil
	}
	dt := t.Sub(b.lastT).Seconds()
	var d float64
	if value >= b.last { // else a counter reset (namespace or reboot): a zero rise
		d = float64(value - b.last)
	}
	b.last, b.lastT = value, t
	b.polls = append(b.polls, basePoll{t, d, dt})
	cut := 0
	for cut < len(b.polls)-1 && t.Sub(b.polls[cut].t) >= b.window {
		cut++
	}
	cut = max(cut, len(b.polls)-maxBaselinePolls)
	if cut > 0 {
		b.polls = append(b.polls[:0], b.polls[cut:]...)
	}

	sigma, level := b.noise()
	var alarm *baselineAlarm
	if b.prior || b.n >= warmupPolls {
		alarm = b.test(sigma, level)
	}
	b.learn(d/dt, dt, sigma)
	if alarm != nil {
		b.polls = b.polls[:0]
	}
	return alarm
}

// test checks every run of the latest polls, shortest first.
func (b *counterBaseline) test(sigma, level float64) *baselineAlarm {
	var sumD, sumDT, sumDT2 float64
	for i := len(b.polls) - 1; i >= 0; i-- {
		p := b.polls[i]
		sumD += p.d
		sumDT += p.dt
		sumDT2 += p.dt * p.dt
		expected := level * sumDT
		need := max(b.floor, b.z*math.Sqrt(sigma*sigma*sumDT2+level*sumDT))
		// Counts are whole: a fraction of an expected reset is not one.
		if sumD-math.Round(expected) >= need && sumD >= b.ratio*expected {
			return &baselineAlarm{
				Start: p.t.Add(-time.Duration(p.dt * float64(time.Second))), End: b.polls[len(b.polls)-1].t,
				Observed: uint64(sumD), Expected: expected, Threshold: need, Rate: level, Noise: sigma,
			}
		}
	}
	return nil
}

// learn folds rate r (over dt seconds) into the level and the noise ring.
func (b *counterBaseline) learn(r, dt, sigma float64) {
	if len(b.rates) < baselineRing {
		b.rates = append(b.rates, r)
	} else {
		b.rates[b.ringPos] = r
		b.ringPos = (b.ringPos + 1) % baselineRing
	}
	b.n++
	b.seeded = true
	// Clip at what one poll would need to alarm, but never below one count
	// per poll or ratio times the level, so a host that gets busier is
	// still learned (slowly), while a scan burst is not.
	clip := max(b.mu+b.z*math.Sqrt(sigma*sigma+b.mu/dt), b.ratio*b.mu, 1/dt)
	alpha := 1 - math.Exp2(-dt/b.halfLife.Seconds())
	if !b.prior && b.n <= warmupPolls { // no prior: learn the first polls as a running mean
		b.mu += (r - b.mu) / float64(b.n)
		return
	}
	b.mu += alpha * (min(r, clip) - b.mu)
}
