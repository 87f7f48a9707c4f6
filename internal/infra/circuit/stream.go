package circuit

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nexus/nexus/internal/infra/llm"
)

// stream sends one streamed request to target t through up, bounded by
// first_token_timeout until its first token. It holds back leading pieces
// that are only whitespace, so that nothing of an attempt that fails
// before saying anything reaches the caller; the first piece with more
// commits the walk. firstToken is set to the wait for the first piece.
// A client that cannot stream answers in one piece.
func (w *walk) stream(ctx context.Context, up Chatter, model string, t *target, label string, firstToken *time.Duration) (llm.ChatResponse, error) {
	limit := w.s.firstTokenTimeout()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// 0: waiting for the first token; 1: it came; 2: the limit fired
	// first, and whatever comes after is dropped; 3: the call ended
	// without a token, before the limit.
	var state atomic.Int32
	timer := time.AfterFunc(limit, func() {
		if state.CompareAndSwap(0, 2) {
			cancel(&llm.FirstTokenTimeoutError{Limit: limit})
		}
	})
	defer timer.Stop()
	start := time.Now()
	var held strings.Builder
	onDelta := func(d string) {
		if d == "" {
			return
		}
		if state.CompareAndSwap(0, 1) {
			timer.Stop()
			*firstToken = time.Since(start)
			w.c.firstToken(t, label, *firstToken)
		} else if state.Load() == 2 {
			return
		}
		if w.committed {
			w.onToken(d)
			return
		}
		held.WriteString(d)
		if strings.TrimSpace(held.String()) != "" {
			w.committed = true
			w.onToken(held.String())
		}
	}
	var resp llm.ChatResponse
	var err error
	if s, ok := up.(Streamer); ok {
		resp, err = s.ChatStream(ctx, model, w.req, onDelta)
	} else {
		resp, err = up.Chat(ctx, model, w.req)
		if err == nil {
			onDelta(resp.Content)
		}
	}
	// The call is over: from here the limit can no longer fire.
	state.CompareAndSwap(0, 3)
	if state.Load() == 2 {
		// The limit fired first: whatever the call returned (it may have
		// read a whole short reply from its buffer and ended cleanly),
		// its text never reached the caller. It is a timeout, or the
		// caller's own end if the caller left meanwhile.
		if err = w.ctx.Err(); err == nil {
			err = &llm.FirstTokenTimeoutError{Limit: limit}
		}
		return llm.ChatResponse{Usage: resp.Usage}, err
	}
	return resp, err
}

// ttftSamples is how many recent first-token waits a circuit keeps for
// its median.
const ttftSamples = 256

// ttftRing holds a circuit's recent first-token waits.
type ttftRing struct {
	buf  [ttftSamples]time.Duration
	n    int // samples held, up to ttftSamples
	next int
}

func (r *ttftRing) add(d time.Duration) {
	r.buf[r.next] = d
	r.next = (r.next + 1) % ttftSamples
	r.n = min(r.n+1, ttftSamples)
}

func (r *ttftRing) median() (time.Duration, bool) {
	if r.n == 0 {
		return 0, false
	}
	s := slices.Clone(r.buf[:r.n])
	slices.Sort(s)
	return s[(r.n-1)/2], true
}

// firstToken records a streamed attempt's wait for its first token.
func (c *Circuit) firstToken(t *target, label string, d time.Duration) {
	c.mu.Lock()
	c.ttft.add(d)
	c.mu.Unlock()
	if h := c.hooks.OnFirstToken; h != nil {
		h(c.name, t.spec.Provider, label, d)
	}
}

// TimeToFirstTokenP50 is the median wait for the first token over the
// circuit's last 256 streamed attempts that got one; false while there
// were none.
func (c *Circuit) TimeToFirstTokenP50() (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ttft.median()
}
