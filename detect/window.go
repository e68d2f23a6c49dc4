package detect

import (
	"math"
	"time"
)

// DefaultWindowKeys is the size cap NewWindow uses when given max <= 0.
const DefaultWindowKeys = 10000

// Window is a map from K to V bounded in size (least recently touched key
// evicted first) and in time (keys not touched for ttl are dropped by Expire).
// Times are snapshot times. Not safe for concurrent use.
//
// Entries sit on an intrusive doubly linked list in touch order (one
// allocation per key, times as Unix nanoseconds): detectors keep a window
// entry per connection, so its size is most of their memory.
type Window[K comparable, V any] struct {
	ttl     time.Duration
	max     int
	items   map[K]*windowEntry[K, V]
	front   *windowEntry[K, V] // most recently touched
	back    *windowEntry[K, V] // least recently touched
	evicted uint64
	// newest is the latest time given to Touch; disordered is set once a
	// Touch came with an earlier time (then the list is not sorted by last
	// touch time and Expire must scan it all).
	newest     int64
	disordered bool
}

type windowEntry[K comparable, V any] struct {
	key         K
	val         V
	first, last int64 // Unix nanoseconds
	prev, next  *windowEntry[K, V]
}

// NewWindow returns a Window holding at most max keys (DefaultWindowKeys when
// max <= 0); ttl <= 0 means keys expire only by the size cap.
func NewWindow[K comparable, V any](max int, ttl time.Duration) *Window[K, V] {
	if max <= 0 {
		max = DefaultWindowKeys
	}
	return &Window[K, V]{ttl: ttl, max: max, items: map[K]*windowEntry[K, V]{}, newest: math.MinInt64}
}

// Touch returns a pointer to k's value, creating it with init (zero value when
// init is nil) when absent, and marks k touched at now. The pointer stays
// valid until k is deleted, expired or evicted.
func (w *Window[K, V]) Touch(k K, now time.Time, init func() V) *V {
	v, existed := w.Upsert(k, now)
	if !existed && init != nil {
		*v = init()
	}
	return v
}

// Upsert is Touch with the zero value as init that also reports whether k
// was there: one map look-up for the detectors that read and update a key
// for every socket of a poll.
func (w *Window[K, V]) Upsert(k K, now time.Time) (v *V, existed bool) {
	e, existed := w.upsertEntry(k, now)
	return &e.val, existed
}

// upsertEntry is Upsert returning k's entry, a handle that touchEntry
// takes without a map look-up (for a detector that meets the same key at
// every poll).
func (w *Window[K, V]) upsertEntry(k K, now time.Time) (*windowEntry[K, V], bool) {
	if e, ok := w.items[k]; ok {
		w.touchEntry(e, now)
		return e, true
	}
	t := w.clock(now)
	e := &windowEntry[K, V]{key: k, first: t, last: t}
	w.items[k] = e
	w.pushFront(e)
	for len(w.items) > w.max {
		w.remove(w.back)
		w.evicted++
	}
	return e, false
}

// entryGone marks, in last, an entry no longer in its window: a handle
// kept across polls is checked before use.
const entryGone = math.MinInt64

// touchEntry marks e touched at now, as Upsert does its key, and reports
// whether e is still in the window (false: deleted, expired or evicted since
// the handle was taken; nothing is done).
func (w *Window[K, V]) touchEntry(e *windowEntry[K, V], now time.Time) bool {
	if e.last == entryGone {
		return false
	}
	if t := w.clock(now); t > e.last {
		e.last = t
	}
	w.unlink(e)
	w.pushFront(e)
	return true
}

// clock returns now in Unix nanoseconds and notes whether times came out
// of order (see Expire).
func (w *Window[K, V]) clock(now time.Time) int64 {
	t := now.UnixNano()
	if t < w.newest {
		w.disordered = true
	} else {
		w.newest = t
	}
	return t
}

// Put sets k's value and marks it touched at now.
func (w *Window[K, V]) Put(k K, v V, now time.Time) {
	*w.Touch(k, now, nil) = v
}

// Get returns a pointer to k's value without touching it.
func (w *Window[K, V]) Get(k K) (*V, bool) {
	e, ok := w.getEntry(k)
	if !ok {
		return nil, false
	}
	return &e.val, true
}

// getEntry is Get returning k's entry (a handle for touchEntry).
func (w *Window[K, V]) getEntry(k K) (*windowEntry[K, V], bool) {
	e, ok := w.items[k]
	return e, ok
}

// Seen returns when k was first and last touched.
func (w *Window[K, V]) Seen(k K) (first, last time.Time, ok bool) {
	e, ok := w.items[k]
	if !ok {
		return time.Time{}, time.Time{}, false
	}
	return time.Unix(0, e.first).UTC(), time.Unix(0, e.last).UTC(), true
}

// Delete removes k.
func (w *Window[K, V]) Delete(k K) {
	if e, ok := w.items[k]; ok {
		w.remove(e)
	}
}

// Expire drops keys last touched more than ttl before now and returns how
// many it dropped.
func (w *Window[K, V]) Expire(now time.Time) int {
	if w.ttl <= 0 {
		return 0
	}
	cutoff := now.Add(-w.ttl).UnixNano()
	n := 0
	// Keys are ordered by touch order. While every Touch came in time order
	// the oldest are at the back and the scan stops at the first key still
	// fresh (a poll's Expire then costs what expired, not every key); with
	// out-of-order times a stale key may sit behind a fresher one, so the
	// whole list is scanned (bounded by max).
	for e := w.back; e != nil; {
		prev := e.prev
		if e.last < cutoff {
			w.remove(e)
			n++
		} else if !w.disordered {
			break
		}
		e = prev
	}
	return n
}

// Len is the number of keys held.
func (w *Window[K, V]) Len() int { return len(w.items) }

// SetTTL changes the expiry of untouched keys (from the next Expire).
func (w *Window[K, V]) SetTTL(ttl time.Duration) { w.ttl = ttl }

// Evicted counts keys dropped by the size cap since creation.
func (w *Window[K, V]) Evicted() uint64 { return w.evicted }

// Range calls fn for each key, most recently touched first, until fn returns
// false. fn must not add or remove keys.
func (w *Window[K, V]) Range(fn func(k K, v *V) bool) {
	for e := w.front; e != nil; e = e.next {
		if !fn(e.key, &e.val) {
			return
		}
	}
}

func (w *Window[K, V]) pushFront(e *windowEntry[K, V]) {
	e.prev, e.next = nil, w.front
	if w.front != nil {
		w.front.prev = e
	}
	w.front = e
	if w.back == nil {
		w.back = e
	}
}

func (w *Window[K, V]) unlink(e *windowEntry[K, V]) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		w.front = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		w.back = e.prev
	}
	e.prev, e.next = nil, nil
}

func (w *Window[K, V]) remove(e *windowEntry[K, V]) {
	delete(w.items, e.key)
	w.unlink(e)
	e.last = entryGone
}
