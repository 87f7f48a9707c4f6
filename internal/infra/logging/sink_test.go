package logging_test

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nexus/nexus/internal/infra/logging"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// buffer is a concurrency-safe output that records each Write.
type buffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.writes++
	return b.buf.Write(p)
}

func (b *buffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Split(strings.TrimSuffix(b.buf.String(), "\n"), "\n")
}

// gate is an output that blocks every Write until opened: a log reader
// that has stopped reading.
type gate struct {
	buffer
	open chan struct{}
}

func (g *gate) Write(p []byte) (int, error) {
	<-g.open
	return g.buffer.Write(p)
}

// within fails the test if fn has not returned after d, instead of
// hanging the suite.
func within(t *testing.T, d time.Duration, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %s", what, d)
	}
}

func TestSinkShouldWriteEveryLineBeforeCloseReturns(t *testing.T) {
	// Given a sink in front of an output, and four goroutines logging
	var out buffer
	s := logging.NewSink(&out, 0, 0)
	const perWriter, writers = 500, 4
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				fmt.Fprintf(s, "writer %d line %d\n", w, i)
			}
		}()
	}
	wg.Wait()

	// When the sink closes, as at shutdown
	within(t, 10*time.Second, "Close", func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})

	// Then every line is in the output, each writer's in order, in far
	// fewer writes than lines, and none was dropped
	lines := out.lines()
	if out.writes > len(lines)/2 {
		t.Errorf("%d writes for %d lines: the lines were not batched", out.writes, len(lines))
	}
	if len(lines) != perWriter*writers {
		t.Fatalf("%d lines in the output, want %d", len(lines), perWriter*writers)
	}
	next := make([]int, writers)
	for _, l := range lines {
		var w, i int
		if _, err := fmt.Sscanf(l, "writer %d line %d", &w, &i); err != nil || i != next[w] {
			t.Fatalf("line %q out of order or mangled (want writer %d line %d)", l, w, next[w])
		}
		next[w]++
	}
	if got := s.Dropped(); got != 0 {
		t.Fatalf("Dropped() = %d, want 0", got)
	}
}

func TestSinkShouldWriteLinesLoggedAfterCloseDirectly(t *testing.T) {
	// Given a closed sink
	var out buffer
	s := logging.NewSink(&out, 16, 0)
	fmt.Fprintln(s, "before close")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// When a straggler logs after the shutdown
	fmt.Fprintln(s, "after close")

	// Then its line is written at once, after the others
	if got := out.lines(); len(got) != 2 || got[0] != "before close" || got[1] != "after close" {
		t.Fatalf("output = %q", got)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestSinkShouldNeitherBlockNorLoseCountWhenTheOutputStalls(t *testing.T) {
	// Given a sink of 16 lines in front of an output that takes nothing
	// until it is opened
	out := &gate{open: make(chan struct{})}
	s := logging.NewSink(out, 16, time.Millisecond)
	const total = 5000
	pad := strings.Repeat("x", 100) // 5000 lines are far more than the ring and a batch hold

	// When far more lines than the ring holds are logged
	within(t, 10*time.Second, "logging into a stalled output", func() {
		for i := range total {
			fmt.Fprintf(s, "line %d %s\n", i, pad)
		}
	})
	// (the producer was never held up by the output, and the drops show
	// while it is stalled)
	if got := s.Dropped(); got == 0 {
		t.Fatal("Dropped() = 0 while the output is stalled")
	}
	close(out.open)
	within(t, 10*time.Second, "Close", func() { _ = s.Close() })

	// Then what was not written is exactly what is counted as dropped, the
	// newest line survived, and every line that was written is whole
	lines := out.lines()
	if dropped := s.Dropped(); dropped == 0 || int64(len(lines))+dropped != total {
		t.Fatalf("%d lines written + %d dropped, want %d with some dropped", len(lines), dropped, total)
	}
	if last := lines[len(lines)-1]; last != fmt.Sprintf("line %d %s", total-1, pad) {
		t.Fatalf("last line written = %q, want the last one logged", last)
	}
	for _, l := range lines {
		var i int
		var rest string
		if _, err := fmt.Sscanf(l, "line %d %s", &i, &rest); err != nil || rest != pad {
			t.Fatalf("mangled line %q", l)
		}
	}
}

func TestSinkDroppedShouldNeverDecrease(t *testing.T) {
	// Given a stalled sink that has dropped lines
	out := &gate{open: make(chan struct{})}
	s := logging.NewSink(out, 16, time.Millisecond)
	pad := strings.Repeat("x", 100)
	for i := range 5000 {
		fmt.Fprintf(s, "line %d %s\n", i, pad)
	}
	before := s.Dropped()
	if before == 0 {
		t.Fatal("nothing dropped while stalled")
	}

	// When the output drains and the sink closes
	close(out.open)
	within(t, 10*time.Second, "Close", func() { _ = s.Close() })

	// Then the count, a Prometheus counter, has not gone down
	if after := s.Dropped(); after < before {
		t.Fatalf("Dropped() went from %d to %d", before, after)
	}
}
