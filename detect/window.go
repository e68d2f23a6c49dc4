package detect

import (
	"container/list"
	"time"
)

// DefaultWindowKeys is the size cap NewWindow uses when given max <= 0.
const DefaultWindowKeys = 10000

// Window is a map from K to V bounded in size (least recently touched key
// evicted first) and in time (keys not touched for ttl are dropped by Expire).
// Times are snapshot times. Not safe for concurrent use.
type Window[K comparable, V any] struct {
	ttl     time.Duration
	max     int
	items   map[K]*list.Element
	order   *list.List // front: most recently touched
	evicted uint64
	// newest is the latest time given to Touch; disordered is set once a
	// Touch came with an earlier time (then the list is not sorted by last
	// touch time and Expire must scan it all).
	newest     time.Time
	disordered bool
}

type windowEntry[K comparable, V any] struct {
	key         K
	val         V
	first, last time.Time
}

// NewWindow returns a Window holding at most max keys (DefaultWindowKeys when
// max <= 0); ttl <= 0 means keys expire only by the size cap.
func NewWindow[K comparable, V any](max int, ttl time.Duration) *Window[K, V] {
	if max <= 0 {
		max = DefaultWindowKeys
	}
	return &Window[K, V]{ttl: ttl, max: max, items: map[K]*list.Element{}, order: list.New()}
}

// Touch returns a pointer to k's value, creating it with init (zero value when
// init is nil) when absent, and marks k touched at now. The pointer stays
// valid until k is deleted, expired or evicted.
func (w *Window[K, V]) Touch(k K, now time.Time, init func() V) *V {
	if now.Before(w.newest) {
		w.disordered = true
	} else {
		w.newest = now
	}
	if el, ok := w.items[k]; ok {
		e := el.Value.(*windowEntry[K, V])
		if now.After(e.last) {
			e.last = now
		}
		w.order.MoveToFront(el)
		return &e.val
	}
	e := &windowEntry[K, V]{key: k, first: now, last: now}
	if init != nil {
		e.val = init()
	}
	w.items[k] = w.order.PushFront(e)
	for len(w.items) > w.max {
		w.removeElement(w.order.Back())
		w.evicted++
	}
	return &e.val
}

// Put sets k's value and marks it touched at now.
func (w *Window[K, V]) Put(k K, v V, now time.Time) {
	*w.Touch(k, now, nil) = v
}

// Get returns a pointer to k's value without touching it.
func (w *Window[K, V]) Get(k K) (*V, bool) {
	el, ok := w.items[k]
	if !ok {
		return nil, false
	}
	return &el.Value.(*windowEntry[K, V]).val, true
}

// Seen returns when k was first and last touched.
func (w *Window[K, V]) Seen(k K) (first, last time.Time, ok bool) {
	el, ok := w.items[k]
	if !ok {
		return time.Time{}, time.Time{}, false
	}
	e := el.Value.(*windowEntry[K, V])
	return e.first, e.last, true
}

// Delete removes k.
func (w *Window[K, V]) Delete(k K) {
	if el, ok := w.items[k]; ok {
		w.removeElement(el)
	}
}

// Expire drops keys last touched more than ttl before now and returns how
// many it dropped.
func (w *Window[K, V]) Expire(now time.Time) int {
	if w.ttl <= 0 {
		return 0
	}
	cutoff := now.Add(-w.ttl)
	n := 0
	// Keys are ordered by touch order. While every Touch came in time order
	// the oldest are at the back and the scan stops at the first key still
	// fresh (a poll's Expire then costs what expired, not every key); with
	// out-of-order times a stale key may sit behind a fresher one, so the
	// whole list is scanned (bounded by max).
	for el := w.order.Back(); el != nil; {
		prev := el.Prev()
		if el.Value.(*windowEntry[K, V]).last.Before(cutoff) {
			w.removeElement(el)
			n++
		} else if !w.disordered {
			break
		}
		el = prev
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
	for el := w.order.Front(); el != nil; el = el.Next() {
		e := el.Value.(*windowEntry[K, V])
		if !fn(e.key, &e.val) {
			return
		}
	}
}

func (w *Window[K, V]) removeElement(el *list.Element) {
	e := el.Value.(*windowEntry[K, V])
	delete(w.items, e.key)
	w.order.Remove(el)
}
