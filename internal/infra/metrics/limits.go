package metrics

import "github.com/prometheus/client_golang/prometheus"

// Limits are the series of the API keys' limits: LLM tokens by key,
// requests refused by the limits, and failures of the shared (Redis)
// store. The key label takes configured key names only ("anonymous" when
// no key is configured), so it stays bounded.
type Limits struct {
	tokens      *prometheus.CounterVec
	refused     *prometheus.CounterVec
	redisErrors *prometheus.CounterVec
}

// Limit refusal reasons, as nexus_ratelimit_refused_total labels them.
var refusalReasons = []string{"rate_limited", "budget_exceeded", "auth_failures", "store_unavailable"}

// Redis operations, as nexus_ratelimit_redis_errors_total labels them.
var redisOps = []string{"limit", "spent", "spend"}

// NewLimits registers the limits' series on m's registry; call it once.
func (m *Metrics) NewLimits() *Limits {
	l := &Limits{
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_llm_tokens_total",
			Help: "LLM tokens (prompt plus completion, as the upstream's usage reports them) by circuit, target provider and model, and the API key whose request spent them (anonymous when no key is configured). Every attempt counts, retried and failed ones included; labels come from configuration only.",
		}, []string{"circuit", "provider", "model", "key"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_ratelimit_refused_total",
			Help: "Requests refused by the limits, by reason: rate_limited, budget_exceeded, auth_failures (too many failed API keys from one address), store_unavailable (Redis failed and ratelimit.on_redis_error is deny).",
		}, []string{"reason"}),
		redisErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_ratelimit_redis_errors_total",
			Help: "Failed or timed-out Redis calls of the rate limiter and token budgets, by operation: limit, spent (a budget read), spend (a budget charge). ratelimit.on_redis_error decides the requests they concern.",
		}, []string{"op"}),
	}
	for _, r := range refusalReasons {
		l.refused.WithLabelValues(r)
	}
	for _, op := range redisOps {
		l.redisErrors.WithLabelValues(op)
	}
	m.reg.MustRegister(l.tokens, l.refused, l.redisErrors)
	return l
}

// ObserveTokens counts n tokens spent through circuit on a target, for
// key.
func (l *Limits) ObserveTokens(circuit, provider, model, key string, n int) {
	l.tokens.WithLabelValues(circuit, provider, model, key).Add(float64(n))
}

// ObserveRefused counts a request refused for reason.
func (l *Limits) ObserveRefused(reason string) { l.refused.WithLabelValues(reason).Inc() }

// ObserveRedisError counts a failed Redis call of operation op.
func (l *Limits) ObserveRedisError(op string) { l.redisErrors.WithLabelValues(op).Inc() }
