package detect

import "time"

// CooldownEntry is one (rule, entity) of the cooldown table, as saved across
// restarts so that an ongoing condition is not raised again.
type CooldownEntry struct {
	Rule   string `json:"rule"`
	Entity string `json:"entity"`
	// LastAlert is when the (rule, entity) alert was last emitted.
	LastAlert time.Time `json:"last_alert"`
	// LastSeen is when the condition was last seen (emitted or held back).
	LastSeen time.Time `json:"last_seen"`
	// Count is how many occurrences were held back since LastAlert.
	Count int `json:"count"`
}

// Cooldowns returns at most max entries of the cooldown table (all when max
// <= 0), most recently seen first.
func (e *Engine) Cooldowns(max int) []CooldownEntry {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []CooldownEntry
	e.cool.Range(func(k coolKey, v *coolState) bool {
		if max > 0 && len(out) >= max {
			return false
		}
		_, last, _ := e.cool.Seen(k)
		out = append(out, CooldownEntry{Rule: k.rule, Entity: k.entity, LastAlert: v.lastEmit, LastSeen: last, Count: v.suppressed})
		return true
	})
	return out
}

// RestoreCooldowns loads saved entries (most recently seen first, as
// Cooldowns returns them) into the cooldown table, then drops those not seen
// within the cooldown before now; it returns how many were kept. Entries
// already in the table win over saved ones. Times after now (a clock that
// went back) are taken as now.
func (e *Engine) RestoreCooldowns(entries []CooldownEntry, now time.Time) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := len(entries) - 1; i >= 0; i-- { // oldest first: the newest ends up most recent
		en := entries[i]
		if en.Rule == "" || en.LastAlert.IsZero() {
			continue
		}
		k := coolKey{en.Rule, en.Entity}
		if _, ok := e.cool.Get(k); ok {
			continue
		}
		seen := en.LastSeen
		if seen.Before(en.LastAlert) {
			seen = en.LastAlert
		}
		last := en.LastAlert
		if last.After(now) {
			last = now
		}
		if seen.After(now) {
			seen = now
		}
		count := en.Count
		if count < 0 {
			count = 0
		}
		e.cool.Put(k, coolState{lastEmit: last, suppressed: count}, seen)
	}
	e.cool.Expire(now)
	return e.cool.Len()
}
