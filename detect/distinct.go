package detect

import (
	"time"
)

// DefaultDistinctMax is the cap NewDistinct uses when given max <= 0.
const DefaultDistinctMax = 1024

// Distinct counts distinct items seen within a sliding window. It holds at
// most max items: when full, the item seen longest ago is dropped (a count at
// the cap is already past any sensible threshold). Not safe for concurrent use.
type Distinct[T comparable] struct {
	window time.Duration
	max    int
	seen   map[T]time.Time
}

// NewDistinct returns an empty Distinct over window holding at most max items
// (DefaultDistinctMax when max <= 0).
func NewDistinct[T comparable](window time.Duration, max int) *Distinct[T] {
	if max <= 0 {
		max = DefaultDistinctMax
	}
	return &Distinct[T]{window: window, max: max, seen: map[T]time.Time{}}
}

// Add records item as seen at t.
func (d *Distinct[T]) Add(item T, t time.Time) {
	if old, ok := d.seen[item]; ok {
		if t.After(old) {
			d.seen[item] = t
		}
		return
	}
	if len(d.seen) >= d.max {
		var oldest T
		var ot time.Time
		first := true
		for k, v := range d.seen {
			if first || v.Before(ot) {
				oldest, ot, first = k, v, false
			}
		}
		delete(d.seen, oldest)
	}
	d.seen[item] = t
}

// Prune drops items last seen more than the window before now.
func (d *Distinct[T]) Prune(now time.Time) {
	cutoff := now.Add(-d.window)
	for k, v := range d.seen {
		if v.Before(cutoff) {
			delete(d.seen, k)
		}
	}
}

// Len is the number of distinct items held.
func (d *Distinct[T]) Len() int { return len(d.seen) }

// Items returns the items held, in no particular order.
func (d *Distinct[T]) Items() []T {
	out := make([]T, 0, len(d.seen))
	for k := range d.seen {
		out = append(out, k)
	}
	return out
}

// Earliest returns the oldest last-seen time among the items (the effective
// window start), or the zero time when empty.
func (d *Distinct[T]) Earliest() time.Time {
	var t time.Time
	for _, v := range d.seen {
		if t.IsZero() || v.Before(t) {
			t = v
		}
	}
	return t
}
