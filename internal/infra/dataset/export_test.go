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

// WorkerPIDs lists the live worker processes, sorted.
func (s *Store) WorkerPIDs() []int {
	pids := s.pool.pids()
	slices.Sort(pids)
	return pids
}

// RSSBytes is the supervisor's reading of a process's resident set size.
func RSSBytes(pid int) int64 { return rssBytes(pid) }
