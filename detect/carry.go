package detect

// On reload (Engine.Reconfigure) a detector whose settings changed is built
// afresh and then takes over what its predecessor collected, so a threshold
// change neither forgets the hosts, bytes or connections already counted nor
// re-baselines. The windows keep their entries under the new size and expiry
// limits; a window already open inside an entry (a Distinct) keeps the length
// it was opened with until the entry expires.

// stateTaker is a detector that can take over its predecessor's state.
type stateTaker interface {
	takeState(old Detector)
}

// carry returns old limited as fresh is (size cap and expiry), or fresh when
// there is no old window.
func carry[K comparable, V any](fresh, old *Window[K, V]) *Window[K, V] {
	if old == nil {
		return fresh
	}
	old.max, old.ttl = fresh.max, fresh.ttl
	for len(old.items) > old.max {
		old.remove(old.back)
		old.evicted++
	}
	return old
}

func (d *lateral) takeState(old Detector) {
	if o, ok := old.(*lateral); ok {
		d.keys = carry(d.keys, o.keys)
	}
}

func (d *exfil) takeState(old Detector) {
	if o, ok := old.(*exfil); ok {
		d.last, d.sums = carry(d.last, o.last), carry(d.sums, o.sums)
		d.started, d.prev = o.started, o.prev
		d.evicted, d.droppedAt = o.evicted, o.droppedAt // evictions by the new cap count as drops
		d.prevEnts, d.prevSeq = o.prevEnts, o.prevSeq   // handles into last, now d's
	}
}

func (d *portScan) takeState(old Detector) {
	if o, ok := old.(*portScan); ok {
		d.inbound, d.seenTools = carry(d.inbound, o.inbound), carry(d.seenTools, o.seenTools)
		d.out.takeState(o.out)
		d.prev = o.prev
		d.closedPorts.takeState(o.closedPorts)
		d.attemptFails.takeState(o.attemptFails)
	}
}

func (d *beacon) takeState(old Detector) {
	if o, ok := old.(*beacon); ok {
		d.keys, d.seen, d.owner, d.streams = carry(d.keys, o.keys), carry(d.seen, o.seen), carry(d.owner, o.owner), carry(d.streams, o.streams)
		d.prev, d.started, d.connCount = o.prev, o.started, o.connCount
	}
}

func (d *suspiciousDNS) takeState(old Detector) {
	if o, ok := old.(*suspiciousDNS); ok {
		d.rates, d.seen = carry(d.rates, o.rates), carry(d.seen, o.seen)
		d.lastNS, d.haveNS = o.lastNS, o.haveNS
	}
}

func (d *arpSpoof) takeState(old Detector) {
	if o, ok := old.(*arpSpoof); ok {
		d.history, d.gateway = carry(d.history, o.history), o.gateway
	}
}

func (d *processSpawn) takeState(old Detector) {
	if o, ok := old.(*processSpawn); ok {
		d.seen, d.started = carry(d.seen, o.seen), o.started
	}
}

func (d *suspiciousPort) takeState(old Detector) {
	if o, ok := old.(*suspiciousPort); ok {
		d.alerted = carry(d.alerted, o.alerted)
	}
}
