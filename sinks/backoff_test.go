package sinks

import (
	"testing"
	"time"
)

func TestBackoffCeilingDoublesAndCaps(t *testing.T) {
	b := Backoff{Initial: time.Second, Max: 60 * time.Second}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60}
	for i, w := range want {
		if got := b.Ceiling(i); got != w*time.Second {
			t.Fatalf("Ceiling(%d) = %s, want %s", i, got, w*time.Second)
		}
	}
	if got := b.Ceiling(1000); got != 60*time.Second {
		t.Fatalf("Ceiling(1000) = %s (overflow?)", got)
	}
	huge := Backoff{Initial: time.Duration(1 << 62), Max: time.Duration(1<<63 - 1)}
	if got := huge.Ceiling(5); got <= 0 {
		t.Fatalf("huge Ceiling overflowed: %s", got)
	}
	if got := (Backoff{}).Delay(3); got != 0 {
		t.Fatalf("zero backoff delay = %s", got)
	}
}

func TestBackoffDelayIsFullJitter(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: 400 * time.Millisecond}
	for attempt := 0; attempt < 6; attempt++ {
		c := b.Ceiling(attempt)
		var lowHalf, highHalf int
		var sum time.Duration
		const n = 2000
		for i := 0; i < n; i++ {
			d := b.Delay(attempt)
			if d < 0 || d > c {
				t.Fatalf("Delay(%d) = %s outside [0, %s]", attempt, d, c)
			}
			if d < c/2 {
				lowHalf++
			} else {
				highHalf++
			}
			sum += d
		}
		// Uniform over [0, c]: both halves are well populated and the mean
		// is near c/2 (the bounds are > 10 standard deviations wide).
		if lowHalf < n/4 || highHalf < n/4 {
			t.Fatalf("attempt %d: halves %d/%d, not spread over [0, %s]", attempt, lowHalf, highHalf, c)
		}
		mean := sum / n
		if mean < c*4/10 || mean > c*6/10 {
			t.Fatalf("attempt %d: mean %s, want about %s", attempt, mean, c/2)
		}
	}
}
