package sinks

import (
	"math/rand/v2"
	"time"
)

// Backoff computes retry delays: exponential growth from Initial, capped at
// Max, with full jitter (a uniform delay in [0, min(Max, Initial·2^attempt)],
// the AWS "full jitter" scheme). Full jitter spreads the retries of many
// sensors hitting the same recovering cluster instead of synchronising them.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
}

// Ceiling is the upper bound of the delay for attempt (0 = first retry):
// Initial·2^attempt, capped at Max, without overflow.
func (b Backoff) Ceiling(attempt int) time.Duration {
	if b.Initial <= 0 {
		return 0
	}
	maxD := b.Max
	if maxD < b.Initial {
		maxD = b.Initial
	}
	d := b.Initial
	for i := 0; i < attempt && d < maxD; i++ {
		if d > maxD/2 {
			return maxD
		}
		d *= 2
	}
	if d > maxD {
		return maxD
	}
	return d
}

// Delay returns a jittered delay for attempt: uniform in [0, Ceiling(attempt)].
func (b Backoff) Delay(attempt int) time.Duration {
	c := b.Ceiling(attempt)
	if c <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(c) + 1))
}
