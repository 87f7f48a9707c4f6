package llm

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/nexus/nexus/internal/infra/redact"
)

// Probe asks the provider for its model list (GET {base_url}/models)
// through the client's own transport, so the reply body is capped as for a
// chat call. It returns nil when the provider answered with a success status
// and a body that parses as a model list; otherwise go-openai's error (an
// *openai.APIError or *openai.RequestError for an error status, a
// *ResponseTooLargeError past the body cap, a *url.Error when the provider
// could not be reached). Probes are not chat calls: they go through no
// circuit and count in no breaker.
func (c *Client) Probe(ctx context.Context) error {
	_, err := c.client.ListModels(ctx)
	return err
}

// DefaultProbeTimeout bounds a probe when NewProber is given no positive
// timeout.
const DefaultProbeTimeout = 5 * time.Second

// ProbeTarget is one LLM provider to probe.
type ProbeTarget struct {
	// Name is the provider's configured name; it is logged and reported.
	Name string
	// URL is the provider's address as it may be shown: scheme://host[:port]
	// (see redact.URL). The prober reduces it with redact.URL again before
	// showing it, so a full base URL given by mistake leaks no userinfo,
	// path or query.
	URL string
	// Client is the provider's client; the prober calls only its Probe
	// method. It must not be nil.
	Client *Client
}

// ProviderStatus is what the last finished probe of a provider found. The
// pointer fields are nil until the first probe finished.
type ProviderStatus struct {
	// Name is the provider's name, as given in its ProbeTarget.
	Name string
	// URL is the provider's scheme://host[:port].
	URL string
	// Reachable is whether the last probe succeeded; nil before the first
	// probe finished.
	Reachable *bool
	// LastProbeAt is when the last probe finished, in UTC.
	LastProbeAt *time.Time
	// LatencyMS is how long the last probe took, in milliseconds rounded to
	// two decimals, failed probes included.
	LatencyMS *float64
	// LastError describes why the last probe failed, redacted and at most
	// redact.MaxRunes runes (plus an ellipsis); nil when it succeeded.
	LastError *string
}

// Prober probes LLM providers with Client.Probe at start-up and then
// periodically, keeps the last result of each, and logs a WARN when a
// provider becomes unreachable and an INFO when it comes back. Create it
// with NewProber, give it providers with Set, run it with Start and stop
// it with Close. All its methods are safe for concurrent use.
type Prober struct {
	interval time.Duration
	timeout  time.Duration
	log      *slog.Logger
	redactor *redact.Redactor

	// ctx is the parent of every entry's context; Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	// wg counts every goroutine the prober started. Add is called only
	// under mu while closed is false, so that no Add races Close's Wait.
	wg sync.WaitGroup

	mu      sync.Mutex
	entries []*probeEntry // in the order given to Set
	started bool
	closed  bool
}

// probeEntry is one provider as the prober tracks it. target.Client and
// the results are guarded by Prober.mu; probeMu serializes the entry's
// probes, so that results are applied and logged in the order they were
// taken.
type probeEntry struct {
	target ProbeTarget
	shown  string // redact.URL(target.URL)

	// ctx is canceled when the entry leaves the provider set, or on Close.
	ctx    context.Context
	cancel context.CancelFunc

	probeMu sync.Mutex

	reachable *bool
	at        *time.Time
	latencyMS *float64
	lastErr   *string
}

// NewProber returns a prober that probes every interval (0 or less: only
// at Start and when Set adds a provider) and gives each probe at most
// timeout (0 or less: DefaultProbeTimeout). A nil log means slog.Default();
// a nil redactor redacts as redact.Text does.
func NewProber(interval, timeout time.Duration, log *slog.Logger, redactor *redact.Redactor) *Prober {
	if timeout <= 0 {
		timeout = DefaultProbeTimeout
	}
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Prober{
		interval: max(interval, 0),
		timeout:  timeout,
		log:      log,
		redactor: redactor,
		ctx:      ctx,
		cancel:   cancel,
	}
}

// Set replaces the provider set, as on a configuration reload. A provider
// whose Name and URL match one already held keeps its results (and its
// probing schedule) and is probed with the given Client from then on. A
// new provider, or one whose URL changed, starts with no results; once the
// prober has started it is probed at once, asynchronously, and then every
// interval. Providers no longer listed are dropped and their probes in
// flight canceled. Set panics if a target's Client is nil.
func (p *Prober) Set(targets []ProbeTarget) {
	for _, t := range targets {
		if t.Client == nil {
			panic("llm: ProbeTarget " + t.Name + " has no Client")
		}
	}
	type key struct{ name, url string }
	p.mu.Lock()
	defer p.mu.Unlock()
	old := make(map[key][]*probeEntry, len(p.entries))
	for _, e := range p.entries {
		k := key{e.target.Name, e.target.URL}
		old[k] = append(old[k], e)
	}
	next := make([]*probeEntry, 0, len(targets))
	for _, t := range targets {
		k := key{t.Name, t.URL}
		if kept := old[k]; len(kept) > 0 {
			e := kept[0]
			old[k] = kept[1:]
			e.target.Client = t.Client
			next = append(next, e)
			continue
		}
		e := &probeEntry{target: t, shown: redact.URL(t.URL)}
		e.ctx, e.cancel = context.WithCancel(p.ctx)
		next = append(next, e)
		if p.started {
			p.spawnLocked(e)
		}
	}
	for _, gone := range old {
		for _, e := range gone {
			e.cancel()
		}
	}
	p.entries = next
}

// Start probes every provider at once, asynchronously, and then every
// interval until Close (with interval 0, only that first probe). Calling it
// again, or after Close, does nothing.
func (p *Prober) Start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started || p.closed {
		return
	}
	p.started = true
	for _, e := range p.entries {
		p.spawnLocked(e)
	}
}

// spawnLocked starts e's probing loop unless the prober is closed. p.mu must
// be held.
func (p *Prober) spawnLocked(e *probeEntry) {
	if p.closed {
		return
	}
	p.wg.Add(1)
	go p.run(e)
}

// run probes e at once and then every interval until e's context ends.
func (p *Prober) run(e *probeEntry) {
	defer p.wg.Done()
	p.probe(e.ctx, e)
	if p.interval <= 0 {
		return
	}
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
			p.probe(e.ctx, e)
		}
	}
}

// ProbeNow probes every provider once, in parallel, and returns when all
// those probes have finished, so that a provider found unreachable is
// logged before it returns. A probe that ctx, Close or Set cuts short
// records nothing. After Close it does nothing.
func (p *Prober) ProbeNow(ctx context.Context) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	entries := slices.Clone(p.entries)
	p.wg.Add(len(entries))
	p.mu.Unlock()

	var done sync.WaitGroup
	done.Add(len(entries))
	for _, e := range entries {
		go func() {
			defer p.wg.Done()
			defer done.Done()
			pctx, cancel := context.WithCancel(ctx)
			defer cancel()
			// Tie the probe to e's context too (Set, Close), and wait
			// for that tie's goroutine if it ran.
			fired := make(chan struct{})
			stop := context.AfterFunc(e.ctx, func() {
				cancel()
				close(fired)
			})
			p.probe(pctx, e)
			if !stop() {
				<-fired
			}
		}()
	}
	done.Wait()
}

// probe probes e once, bounded by p.timeout, and records and logs the
// result unless ctx or e's context ended first.
func (p *Prober) probe(ctx context.Context, e *probeEntry) {
	e.probeMu.Lock()
	defer e.probeMu.Unlock()
	if ctx.Err() != nil || e.ctx.Err() != nil {
		return
	}
	p.mu.Lock()
	client := e.target.Client
	p.mu.Unlock()

	tctx, cancel := context.WithTimeout(ctx, p.timeout)
	start := time.Now()
	err := client.Probe(tctx)
	elapsed := time.Since(start)
	// A reply that came back (an error status, a body too large) is the
	// provider's answer even if the deadline passed just after it.
	timedOut := err != nil && HTTPStatus(err) == 0 && errors.Is(tctx.Err(), context.DeadlineExceeded)
	cancel()

	now := time.Now().UTC().Round(0)
	latency := math.Round(float64(elapsed)/float64(time.Millisecond)*100) / 100
	ok := err == nil
	var desc *string
	if !ok {
		d := p.describe(err, timedOut)
		desc = &d
	}

	p.mu.Lock()
	// e.ctx is canceled under mu (by Set) or with p.ctx (by Close), so this
	// check sees a removal that happened before the result is applied.
	if ctx.Err() != nil || e.ctx.Err() != nil {
		p.mu.Unlock()
		return
	}
	was := e.reachable
	e.reachable, e.at, e.latencyMS, e.lastErr = &ok, &now, &latency, desc
	name, shown := e.target.Name, e.shown
	p.mu.Unlock()

	switch {
	case !ok && (was == nil || *was):
		p.log.Warn("LLM provider unreachable", "provider", name, "url", shown, "error", *desc)
	case ok && was != nil && !*was:
		p.log.Info("LLM provider reachable again", "provider", name, "url", shown)
	}
}

// describe renders a failed probe's error for the status and the log: a
// fixed wording for a timeout or a connection error, the status and the
// upstream's message for an error answer, always redacted and bounded.
func (p *Prober) describe(err error, timedOut bool) string {
	kind := KindUnavailable
	if timedOut || errors.Is(err, context.DeadlineExceeded) {
		kind = KindTimeout
	}
	return p.redactor.Scrub(Describe(kind, err, p.timeout))
}

// Statuses returns what the last probe of each provider found, in the order
// given to Set. The result is a copy: the caller may keep and change it.
func (p *Prober) Statuses() []ProviderStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]ProviderStatus, len(p.entries))
	for i, e := range p.entries {
		out[i] = ProviderStatus{
			Name:        e.target.Name,
			URL:         e.shown,
			Reachable:   clonePtr(e.reachable),
			LastProbeAt: clonePtr(e.at),
			LatencyMS:   clonePtr(e.latencyMS),
			LastError:   clonePtr(e.lastErr),
		}
	}
	return out
}

func clonePtr[T any](v *T) *T {
	if v == nil {
		return nil
	}
	c := *v
	return &c
}

// Close stops periodic probing, cancels the probes in flight and waits for
// every goroutine the prober started to end. The results stay readable
// with Statuses. It is idempotent; Start, Set and ProbeNow probe nothing
// after it.
func (p *Prober) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
}
