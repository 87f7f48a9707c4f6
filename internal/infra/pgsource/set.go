package pgsource

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrUnknownSource is wrapped by Set.Get's error for a name that no source
// has.
var ErrUnknownSource = errors.New("no source with that name")

// Defaults of Set's prober.
const (
	DefaultProbeInterval = 30 * time.Second
	DefaultProbeTimeout  = 5 * time.Second
)

// Set holds the configured sources by name, in the order given, and probes
// them: every Ping updates the source's Health, so that health reports and
// GET /sources show a database that went away before a query fails on it.
// A nil or empty Set has no sources. It is safe for concurrent use.
type Set struct {
	list   []*Source
	byName map[string]*Source

	mu      sync.Mutex
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started bool
	closed  bool
}

// NewSet returns a Set of sources, which it owns: Close closes them.
func NewSet(sources ...*Source) *Set {
	s := &Set{byName: make(map[string]*Source, len(sources))}
	for _, src := range sources {
		s.list = append(s.list, src)
		s.byName[src.Name()] = src
	}
	return s
}

// Get returns the named source, or an error wrapping ErrUnknownSource.
func (s *Set) Get(name string) (*Source, error) {
	if s != nil {
		if src, ok := s.byName[name]; ok {
			return src, nil
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownSource, name)
}

// All returns the sources in the order given to NewSet.
func (s *Set) All() []*Source {
	if s == nil {
		return nil
	}
	return append([]*Source(nil), s.list...)
}

// Refresh refreshes every source at once (see Source.Refresh) and returns
// their errors joined; a source that fails keeps its previous tables.
func (s *Set) Refresh(ctx context.Context) error {
	if s == nil {
		return nil
	}
	errs := make([]error, len(s.list))
	var wg sync.WaitGroup
	for i, src := range s.list {
		wg.Go(func() { errs[i] = src.Refresh(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// StartProbing pings every source every interval (DefaultProbeInterval
// when <= 0), each Ping bounded by timeout (DefaultProbeTimeout when <=
// 0), until Close. Calling it again, or after Close, does nothing.
func (s *Set) StartProbing(interval, timeout time.Duration) {
	if s == nil {
		return
	}
	if interval <= 0 {
		interval = DefaultProbeInterval
	}
	if timeout <= 0 {
		timeout = DefaultProbeTimeout
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed {
		return
	}
	s.started = true
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	for _, src := range s.list {
		s.wg.Go(func() {
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					pctx, pcancel := context.WithTimeout(ctx, timeout)
					_, _ = src.Ping(pctx)
					pcancel()
				}
			}
		})
	}
}

// Close stops the probing, waits for it to end and closes every source
// (which waits for the connections in use). It is idempotent.
func (s *Set) Close() {
	if s == nil {
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	cancel := s.cancel
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	s.wg.Wait()
	for _, src := range s.list {
		src.Close()
	}
}
