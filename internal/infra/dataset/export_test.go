package dataset

import (
	"context"
	"slices"
)

// QueryUnguarded runs text without the guard, to prove the layers under
// it hold on their own.
func (q *Session) QueryUnguarded(ctx context.Context, text string) (Result, error) {
	return q.run(ctx, text, false)
}

// OpenIDs lists the datasets whose handle is open, sorted.
func (s *Store) OpenIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id, e := range s.datasets {
		if e.isOpen.Load() {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}
