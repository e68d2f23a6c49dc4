package sinks

import (
	"context"
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

// EqualJitter returns a delay for attempt (0 = first retry) uniform in
// [c/2, c] with c = Ceiling(attempt) ("equal jitter"): the in-Write retries
// of the Elasticsearch and Kafka sinks, which must wait at least a little.
func (b Backoff) EqualJitter(attempt int) time.Duration {
	return equalJitter(b.Ceiling(attempt), rand.Int64N)
}

func equalJitter(c time.Duration, randN func(int64) int64) time.Duration {
	if c <= 1 {
		return c
	}
	half := c / 2
	return half + time.Duration(randN(int64(c-half)+1))
}

// sleepCtx waits d; false if ctx ended or wake was closed first. It is the
// one wait of every retry loop in this package.
func sleepCtx(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-wake:
		return false
	}
}

// Sleep waits d, or returns ctx.Err() when ctx ends first.
func Sleep(ctx context.Context, d time.Duration) error {
	if !sleepCtx(ctx, d, nil) {
		return ctx.Err()
	}
	return nil
}
