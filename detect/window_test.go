package detect

import (
	"reflect"
	"testing"
	"time"
)

func TestWindowCapsAndExpires(t *testing.T) {
	w := NewWindow[string, int](3, time.Minute)
	for i, k := range []string{"a", "b", "c"} {
		*w.Touch(k, t0.Add(time.Duration(i)*time.Second), nil) = i
	}
	w.Touch("a", t0.Add(5*time.Second), nil) // a is now the most recent
	w.Put("d", 9, t0.Add(6*time.Second))     // evicts b, the least recent
	if _, ok := w.Get("b"); ok {
		t.Fatal("b should have been evicted")
	}
	if w.Len() != 3 || w.Evicted() != 1 {
		t.Fatalf("len %d evicted %d", w.Len(), w.Evicted())
	}
	if v, _ := w.Get("a"); *v != 0 {
		t.Fatalf("a = %d, want 0 (kept across touches)", *v)
	}
	first, last, _ := w.Seen("a")
	if !first.Equal(t0) || !last.Equal(t0.Add(5*time.Second)) {
		t.Fatalf("seen a = %v %v", first, last)
	}
	// c last touched at t0+2s; at t0+63s only c is older than a minute.
	if n := w.Expire(t0.Add(63 * time.Second)); n != 1 {
		t.Fatalf("expired %d, want 1", n)
	}
	var keys []string
	w.Range(func(k string, v *int) bool { keys = append(keys, k); return true })
	if !reflect.DeepEqual(keys, []string{"d", "a"}) {
		t.Fatalf("keys after expiry %v, want [d a]", keys)
	}
	counter := w.Touch("n", t0, func() int { return 41 })
	*counter++
	if v, _ := w.Get("n"); *v != 42 {
		t.Fatalf("in-place update lost: %d", *v)
	}
	w.Delete("n")
	if _, ok := w.Get("n"); ok {
		t.Fatal("delete failed")
	}
}

// Expire drops every stale key whether touches came in time order (the scan
// stops at the first fresh key) or not (a stale key behind a fresh one).
func TestWindowExpireInAndOutOfOrder(t *testing.T) {
	ordered := NewWindow[int, struct{}](100, time.Minute)
	for i := 0; i < 10; i++ {
		ordered.Touch(i, t0.Add(time.Duration(i)*10*time.Second), nil)
	}
	if n := ordered.Expire(t0.Add(125 * time.Second)); n != 7 || ordered.Len() != 3 {
		t.Fatalf("in order: expired %d, %d left; want 7 and 3", n, ordered.Len())
	}
	mixed := NewWindow[int, struct{}](100, time.Minute)
	mixed.Touch(1, t0.Add(100*time.Second), nil)
	mixed.Touch(2, t0, nil) // an earlier time touched later: stale, but in front
	mixed.Touch(3, t0.Add(100*time.Second), nil)
	if n := mixed.Expire(t0.Add(90 * time.Second)); n != 1 {
		t.Fatalf("out of order: expired %d, want 1", n)
	}
	if _, ok := mixed.Get(2); ok {
		t.Fatal("out of order: the stale key 2 survived")
	}
}
