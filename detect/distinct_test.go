package detect

import (
	"reflect"
	"sort"
	"testing"
	"time"
)

func TestDistinctWindow(t *testing.T) {
	d := NewDistinct[string](5*time.Minute, 3)
	d.Add("h1", t0)
	d.Add("h2", t0.Add(time.Minute))
	d.Add("h1", t0.Add(2*time.Minute)) // refresh h1
	d.Add("h3", t0.Add(3*time.Minute))
	if d.Len() != 3 || !d.Earliest().Equal(t0.Add(time.Minute)) {
		t.Fatalf("len %d earliest %v", d.Len(), d.Earliest())
	}
	d.Add("h4", t0.Add(4*time.Minute)) // full: drops h2 (oldest)
	items := d.Items()
	sort.Strings(items)
	if !reflect.DeepEqual(items, []string{"h1", "h3", "h4"}) {
		t.Fatalf("items %v", items)
	}
	d.Prune(t0.Add(7*time.Minute + 30*time.Second)) // drops h1 (2m) only
	items = d.Items()
	sort.Strings(items)
	if !reflect.DeepEqual(items, []string{"h3", "h4"}) {
		t.Fatalf("after prune %v", items)
	}
}
