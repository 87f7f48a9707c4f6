package dataset

import "context"

// QueryUnguarded runs text without the guard, to prove the layers under
// it hold on their own.
func (q *Session) QueryUnguarded(ctx context.Context, text string) (Result, error) {
	return q.run(ctx, text, false)
}
