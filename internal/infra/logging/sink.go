package logging

import (
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog/diode"
)

// Defaults for NewSink.
const (
	// DefaultBufferLines is how many lines a Sink holds for its writer
	// before it drops the oldest.
	DefaultBufferLines = 8192
	// DefaultPollInterval is how long a Sink's writer goroutine sleeps
	// once it has written everything. Writers never wake it, so logging
	// costs no wake-up; a line reaches the output within this delay.
	DefaultPollInterval = 10 * time.Millisecond
)

// Sink is a log destination that never blocks the goroutine that logs: a
// line is copied into zerolog's diode, a lock-free ring, and one goroutine
// writes the ring out to the real output, a burst of lines per Write. A
// slow output (a full pipe, a stalled terminal) therefore cannot stall
// requests; when the ring is full the oldest unwritten lines are dropped,
// and counted (Dropped).
//
// Close drains the ring. Lines written during or after Close go straight
// to the output, so the last lines before shutdown, and any logged later,
// are never lost.
type Sink struct {
	w    io.Writer
	size int64
	// mu is read-held by every Write and held by Close, so that no line
	// can enter the ring after its drain has begun.
	mu     sync.RWMutex
	closed bool
	ring   diode.Writer
	batch  *batch
	// in counts lines put into the ring, out lines written from it; the
	// difference is what the ring holds or dropped. drained is set once
	// Close has emptied the ring; reported keeps Dropped monotonic.
	in, out, reported atomic.Int64
	drained           atomic.Bool
}

// NewSink starts a Sink writing to w, holding up to lines lines and
// polling every poll; zero values take the defaults. w must be safe for
// concurrent use: lines written after Close reach it from their own
// goroutines. Closing the Sink does not close w.
func NewSink(w io.Writer, lines int, poll time.Duration) *Sink {
	if lines <= 0 {
		lines = DefaultBufferLines
	}
	if poll <= 0 {
		poll = DefaultPollInterval
	}
	s := &Sink{w: w, size: int64(lines)}
	s.batch = newBatch(w, &s.out)
	// batch has no Close: diode.Writer.Close closes an io.Closer, and the
	// output (os.Stdout) is not the Sink's to close. The diode's own drop
	// alert is not used: it counts a slot skipped after a write collision
	// as a drop, and misses slots lapped more than once.
	s.ring = diode.NewWriter(s.batch, lines, poll, nil)
	return s
}

// Batching of the ring's output.
const (
	// batchDelay is how long the first line of a burst waits for the
	// rest: the ring's goroutine drains a burst in microseconds.
	batchDelay = time.Millisecond
	// maxBatchBytes writes a batch out early.
	maxBatchBytes = 64 << 10
)

// batch gathers the lines that the ring's goroutine takes out and writes
// them with one Write per burst, instead of one system call per line.
type batch struct {
	w   io.Writer
	out *atomic.Int64 // lines taken out of the ring

	mu    sync.Mutex
	buf   []byte
	armed bool
	timer *time.Timer
}

func newBatch(w io.Writer, out *atomic.Int64) *batch {
	b := &batch{w: w, out: out}
	b.timer = time.AfterFunc(time.Hour, b.flush)
	b.timer.Stop()
	return b
}

// Write takes one line from the ring. While the output is slow, a flush
// holds mu, so the ring's goroutine waits here and the ring, not the
// goroutines that log, absorbs the delay.
func (b *batch) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	b.out.Add(1)
	switch {
	case len(b.buf) >= maxBatchBytes:
		b.flushLocked()
	case !b.armed:
		b.armed = true
		b.timer.Reset(batchDelay)
	}
	return len(p), nil
}

func (b *batch) flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
}

func (b *batch) flushLocked() {
	b.armed = false
	if len(b.buf) == 0 {
		return
	}
	_, _ = b.w.Write(b.buf)
	b.buf = b.buf[:0]
	if cap(b.buf) > 4*maxBatchBytes {
		b.buf = nil // a burst of huge lines need not stay allocated
	}
}

// close writes out what is left; the ring's goroutine must have stopped.
func (b *batch) close() {
	b.timer.Stop()
	b.flush()
}

// Write queues p, one whole line, without blocking on the output. It
// never fails: a line the output cannot take in time is dropped and
// counted instead.
func (s *Sink) Write(p []byte) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return s.w.Write(p)
	}
	s.in.Add(1)
	return s.ring.Write(p)
}

// Close writes out every queued line and stops the Sink's goroutine; later
// lines are written synchronously. It takes up to one poll interval more
// than the writing itself (the goroutine may be asleep). It is safe to
// call more than once.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.ring.Close()
	s.batch.close()
	s.drained.Store(true)
	return err
}

// Dropped is how many lines were dropped because the output fell more
// than the ring's size behind. It never decreases, and it is exact once
// Close has returned. Before that it counts the lines that the ring cannot
// be holding, a lower bound that is short by at most the ring's size.
func (s *Sink) Dropped() int64 {
	// in before out: a line counted out after in was read only lowers the
	// estimate, which must never exceed the truth.
	in := s.in.Load()
	drained := s.drained.Load()
	out := s.out.Load()
	gone := in - out
	if !drained {
		// The ring holds at most size lines, and one more is being
		// written out.
		gone -= s.size + 1
	}
	v := max(gone, 0)
	for {
		old := s.reported.Load()
		if v <= old {
			return old
		}
		if s.reported.CompareAndSwap(old, v) {
			return v
		}
	}
}
