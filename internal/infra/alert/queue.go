package alert

// ring is a fixed-capacity FIFO of events that overwrites its oldest entry
// when full, so that both push and pop are O(1) and never allocate. It is not
// safe for concurrent use; Notifier guards it with its mutex.
type ring struct {
	buf  []Event
	head int // index of the oldest event
	n    int // number of queued events
}

func newRing(size int) ring {
	return ring{buf: make([]Event, size)}
}

// push appends ev, first discarding the oldest event if the ring is full.
// It reports whether an event was discarded.
func (r *ring) push(ev Event) (dropped bool) {
	if r.n == len(r.buf) {
		r.buf[r.head] = Event{} // release Statistics for the GC
		r.head = (r.head + 1) % len(r.buf)
		r.n--
		dropped = true
	}
	r.buf[(r.head+r.n)%len(r.buf)] = ev
	r.n++
	return dropped
}

// pop removes and returns the oldest event, if any.
func (r *ring) pop() (Event, bool) {
	if r.n == 0 {
		return Event{}, false
	}
	ev := r.buf[r.head]
	r.buf[r.head] = Event{}
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	return ev, true
}

// clear discards every queued event and returns how many there were.
func (r *ring) clear() int {
	n := r.n
	for r.n > 0 {
		r.pop()
	}
	return n
}
