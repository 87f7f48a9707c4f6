package alert

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/failsafe-go/failsafe-go/retrypolicy"

	"github.com/nexus/nexus/internal/infra/redact"
)

// Defaults applied by New to zero (or negative) Config fields.
const (
	DefaultQueueSize = 256
	DefaultAttempts  = 3
	DefaultTimeout   = 5 * time.Second
	DefaultBackoff   = 500 * time.Millisecond
	// MaxBackoff caps the doubling retry delay.
	MaxBackoff = 10 * time.Second
	// MaxRetryAfter caps the wait a 429 or 503 can ask for with Retry-After.
	// Events are delivered one at a time, so every later alert waits behind
	// this one: half a minute covers the usual webhook rate limits (Slack and
	// Discord ask for seconds) without holding alerts back for long. A longer
	// hint is cut to this, and if the webhook is still not ready the retry
	// costs one more attempt. Close cuts any wait short after its grace
	// period.
	MaxRetryAfter = 30 * time.Second
)

// Config says where alerts go and how hard to try. Zero values take the
// Default* constants, so a caller only sets what it cares about. A Notifier's
// config is fixed: to change it at runtime, build a new Notifier and Close the
// old one.
type Config struct {
	// URL is the webhook that receives one JSON POST per event. Empty disables
	// alerting: Notify and Close become no-ops and no goroutine is started.
	// Tokens in it are sent but never logged; logs show it as redact.URL
	// does, scheme://host[:port] alone.
	URL string
	// QueueSize bounds the events waiting behind the one being delivered;
	// when it is full the oldest waiting event is dropped.
	QueueSize int
	// Attempts is the total number of tries per event, first one included.
	Attempts int
	// Timeout bounds each attempt, and also how long Close waits for the
	// queue to drain.
	Timeout time.Duration
	// Backoff is the delay before the first retry; it doubles on each further
	// retry, up to MaxBackoff. A 429 or 503 answer with a Retry-After header
	// replaces it for the next retry, up to MaxRetryAfter.
	Backoff time.Duration
}

func (c Config) withDefaults() Config {
	if c.QueueSize <= 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.Attempts <= 0 {
		c.Attempts = DefaultAttempts
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Backoff <= 0 {
		c.Backoff = DefaultBackoff
	}
	return c
}

// Event is one circuit transition, POSTed as the JSON body
// {"circuit","from","to","reason","time","statistics"}.
type Event struct {
	Circuit string `json:"circuit"`
	// Provider and Model name the target whose breaker changed state.
	Provider string `json:"provider,omitempty"`
	Model    string `json:"model,omitempty"`
	// First is true when the target is the circuit's first, whose state is
	// the circuit's.
	First  bool   `json:"first_target,omitempty"`
	From   string `json:"from"`
	To     string `json:"to"`
	Reason string `json:"reason"`
	// Time is when the transition happened; Notify stamps the current time
	// if it is zero.
	Time time.Time `json:"time"`
	// Statistics is encoded with encoding/json on the sender goroutine, after
	// Notify has returned, so it must be a snapshot the caller no longer
	// mutates. An event whose Statistics cannot be encoded counts as failed.
	Statistics any `json:"statistics"`
}

// Hooks let the caller count outcomes, typically with metrics counters. Any
// of them may be nil. Every event accepted by an enabled Notifier ends in at
// most one of them: events still queued or in flight when Close gives up
// waiting are abandoned, logged, and reported by no hook. Hooks must be fast
// and must not block: OnDrop runs on the goroutine calling Notify.
type Hooks struct {
	// OnDrop is called once for each event discarded because the queue was
	// full (the oldest waiting event makes room for the new one).
	OnDrop func()
	// OnFail is called once for each event given up on: a non-retryable
	// response (4xx other than 429, or any non-2xx that is not retried), or
	// Attempts exhausted on 5xx, 429, timeouts and network errors.
	OnFail func()
	// OnSent is called once for each event the webhook answered with 2xx.
	OnSent func()
}

// Notifier delivers Events to a webhook in order, one at a time, from a single
// background goroutine, without ever blocking the goroutines that call
// Notify. Its methods are safe for concurrent use, and on a nil *Notifier
// they do nothing.
type Notifier struct {
	cfg     Config
	client  *http.Client
	log     *slog.Logger
	hooks   Hooks
	target  string // the full URL, possibly carrying a token: never log it
	safeURL string // redact.URL(target), for logs
	retry   retrypolicy.RetryPolicy[any]

	ctx    context.Context // cancelled when Close stops waiting
	cancel context.CancelFunc
	wake   chan struct{} // capacity 1: "the queue or closed changed"
	done   chan struct{} // closed when the sender goroutine has returned; nil when disabled
	once   sync.Once

	mu      sync.Mutex
	queue   ring
	closed  bool
	dropped int // drops not yet logged by the sender
}

// New returns a Notifier and, unless cfg.URL is empty, starts its one sender
// goroutine; the caller must Close it. A nil client means a plain
// &http.Client{}; a nil log discards log lines. A URL that is not an absolute
// http or https URL is logged at ERROR and disables the Notifier, because
// alerting must never stop the service from starting (validate the URL in
// config beforehand to fail fast).
func New(cfg Config, client *http.Client, log *slog.Logger, hooks Hooks) *Notifier {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{log: log}
	if cfg.URL == "" {
		return n
	}
	if !isWebhookURL(cfg.URL) {
		// Not even the parse error is logged: it would quote the raw URL.
		log.Error("alert: webhook URL is not an absolute http(s) URL; alerts disabled")
		return n
	}
	if client == nil {
		client = &http.Client{}
	}
	cfg = cfg.withDefaults()
	n.cfg = cfg
	n.client = client
	n.hooks = hooks
	n.target = cfg.URL
	n.safeURL = redact.URL(cfg.URL)
	n.retry = newRetryPolicy(cfg)
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.wake = make(chan struct{}, 1)
	n.done = make(chan struct{})
	n.queue = newRing(cfg.QueueSize)
	go n.run()
	return n
}

// isWebhookURL reports whether raw is an absolute http(s) URL.
func isWebhookURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// Notify queues ev for delivery and returns at once: it does no I/O and takes
// only the Notifier's own short-held mutex, so it is safe to call from a
// circuit-breaker listener holding the caller's locks. When the queue is full
// the oldest waiting event is dropped (OnDrop). After Close, or when alerting
// is disabled, it does nothing.
func (n *Notifier) Notify(ev Event) {
	if n == nil || n.done == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	dropped := n.queue.push(ev)
	if dropped {
		n.dropped++
	}
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
	if dropped && n.hooks.OnDrop != nil {
		n.hooks.OnDrop()
	}
}

// Close stops accepting events, waits up to Config.Timeout for the queue to
// drain, then cancels the attempt in flight and abandons whatever is left
// (logged at WARN, reported by no hook). When Close returns the sender
// goroutine has exited and OnSent/OnFail will not be called again. It is safe
// to call more than once; later calls wait for the first.
func (n *Notifier) Close() {
	if n == nil || n.done == nil {
		return
	}
	n.once.Do(func() {
		n.mu.Lock()
		n.closed = true
		n.mu.Unlock()
		select {
		case n.wake <- struct{}{}:
		default:
		}
		grace := time.NewTimer(n.cfg.Timeout)
		defer grace.Stop()
		select {
		case <-n.done:
		case <-grace.C:
		}
		n.cancel()
	})
	<-n.done
}

// run is the sender goroutine: it delivers queued events one at a time, in
// order, until Close either sees the queue drained or runs out of patience.
func (n *Notifier) run() {
	defer close(n.done)
	for {
		ev, ok := n.next()
		if !ok {
			break
		}
		if abandoned := n.deliver(ev); abandoned {
			n.abandon(1)
			return
		}
	}
	n.abandon(0)
}

// next blocks until there is an event to send, and returns false once the
// Notifier is closed and drained, or cancelled.
func (n *Notifier) next() (Event, bool) {
	for {
		if n.ctx.Err() != nil {
			return Event{}, false
		}
		n.mu.Lock()
		ev, ok := n.queue.pop()
		closed := n.closed
		dropped := n.dropped
		n.dropped = 0
		n.mu.Unlock()
		if dropped > 0 {
			// Logged here rather than in Notify, which must not do I/O.
			n.log.Warn("alert: queue full, dropped oldest events",
				slog.Int("dropped", dropped), slog.Int("queue_size", n.cfg.QueueSize))
		}
		if ok {
			return ev, true
		}
		if closed {
			return Event{}, false
		}
		select {
		case <-n.wake:
		case <-n.ctx.Done():
		}
	}
}

// abandon discards the queue after a cancelled Close, logging how many
// events (inFlight plus those queued) will never be delivered.
func (n *Notifier) abandon(inFlight int) {
	n.mu.Lock()
	count := inFlight + n.queue.clear()
	n.mu.Unlock()
	if count > 0 {
		n.log.Warn("alert: closed before delivering events; abandoned",
			slog.Int("abandoned", count), slog.String("url", n.safeURL))
	}
}
