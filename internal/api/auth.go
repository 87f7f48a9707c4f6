package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/agent"
	"github.com/nexus/nexus/internal/codegen"
	"github.com/nexus/nexus/internal/infra/dataset"
	"github.com/nexus/nexus/internal/infra/ratelimit"
)

// AnonymousKey is the key name that tokens are counted under while no key
// is configured.
const AnonymousKey = "anonymous"

// Access decides who may call what: the API keys and their scopes, the
// tenants' datasets, the rate limits and the token budgets. One
// middleware (guard) applies it to every route, by the route's entry in
// routePolicies. With no key configured the API is open, as it was before
// keys, and the limits count per client address.
//
// The keys and limits in force are swapped in whole by Apply (at start and
// on every accepted reload), so a request sees one set from start to end.
type Access struct {
	limiter  Limiter
	failOpen bool
	log      *slog.Logger
	metrics  LimitMetrics
	// failures is shared with the admin token's check (see routes), so
	// that failed keys and failed tokens from one address count together.
	failures *authFailures

	state atomic.Pointer[accessState]
}

// Limiter counts requests and tokens; *ratelimit.Local and
// *ratelimit.Redis are the real ones.
type Limiter interface {
	Allow(ctx context.Context, key string, limits ...ratelimit.Limit) (ratelimit.Decision, error)
	Spent(ctx context.Context, key string, window time.Duration) (int64, time.Duration, error)
	Spend(ctx context.Context, key string, n int64, window time.Duration) error
}

// LimitMetrics counts refused requests; *metrics.Limits is the real one.
type LimitMetrics interface {
	ObserveRefused(reason string)
}

// AccessConfig holds Access's dependencies.
type AccessConfig struct {
	// Limiter holds the counters; nil means no rate limit and no budget.
	Limiter Limiter
	// OnRedisError is ratelimit.on_redis_error: with "deny", a request
	// whose counters cannot be read is refused with 503; otherwise it goes
	// through unlimited.
	OnRedisError string
	Logger       *slog.Logger
	// Metrics may be nil.
	Metrics LimitMetrics
	// Now is the clock of the failed-key limiter; time.Now when nil.
	Now func() time.Time
}

// NewAccess returns an Access with no key and no limit; Apply installs
// them.
func NewAccess(cfg AccessConfig) *Access {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Access{limiter: cfg.Limiter, failOpen: cfg.OnRedisError != config.OnRedisErrorDeny, log: cfg.Logger,
		metrics: cfg.Metrics, failures: newAuthFailures(AuthFailureLimits{}, cfg.Now)}
	a.state.Store(&accessState{})
	return a
}

// accessState is one configuration's keys and limits, compiled.
type accessState struct {
	keys              []*apiKey
	openObservability bool
	// anonymous are the limits per client address while no key exists.
	anonymous    []ratelimit.Limit
	budgetWindow time.Duration
}

// apiKey is a configured key, ready to match.
type apiKey struct {
	config.APIKey
	digest [sha256.Size]byte
	limits []ratelimit.Limit
}

// Apply installs the keys and limits of a configuration, which Validate
// has checked.
func (a *Access) Apply(auth config.Auth, rl config.RateLimit) {
	st := &accessState{openObservability: auth.OpenObservability, anonymous: limitsOf(rl.For(nil)),
		budgetWindow: rl.BudgetWindowSeconds.Duration()}
	for _, k := range auth.Keys {
		ak := &apiKey{APIKey: k, limits: limitsOf(rl.For(&k))}
		if b, err := hex.DecodeString(k.SHA256); err == nil && len(b) == sha256.Size {
			copy(ak.digest[:], b)
		} else {
			continue // Validate refuses it; never match a zero digest
		}
		st.keys = append(st.keys, ak)
	}
	a.state.Store(st)
}

// limitsOf turns a window into limits, the minute first: Redis checks
// them in order and stops at the first refusal.
func limitsOf(w config.Window) []ratelimit.Limit {
	var out []ratelimit.Limit
	if w.PerMinute > 0 {
		out = append(out, ratelimit.Limit{Name: "minute", Rate: w.PerMinute, Burst: max(w.Burst, 1), Period: time.Minute})
	}
	if w.PerHour > 0 {
		out = append(out, ratelimit.Limit{Name: "hour", Rate: w.PerHour, Burst: w.PerHour, Period: time.Hour})
	}
	return out
}

// routePolicy is what a route needs of its caller.
type routePolicy struct {
	// scope is the scope a key needs; "" leaves the route open.
	scope string
	// limited routes count against the rate limits.
	limited bool
	// llm routes spend LLM tokens: the token budget applies.
	llm bool
	// dataset routes name a dataset by :id, which must be the caller's.
	dataset bool
	// source routes name a source by :name, which the key must be allowed.
	source bool
	// admin routes are the admin API, which also takes NEXUS_ADMIN_TOKEN
	// (adminOnly checks it).
	admin bool
	// observe routes are open while auth.open_observability is set.
	observe bool
}

// routePolicies lists every route by method and path template. A route
// missing here needs the admin scope once keys exist, so that a route
// added without thought is closed, not open; TestEveryRouteShouldHaveAPolicy
// holds routes.go and this table together. HEAD is looked up as GET.
var routePolicies = map[string]routePolicy{
	"POST /analyze":             {scope: config.ScopeAnalyze, limited: true, llm: true},
	"POST /generate":            {scope: config.ScopeGenerate, limited: true, llm: true},
	"POST /datasets":            {scope: config.ScopeDatasetsWrite, limited: true},
	"GET /datasets":             {scope: config.ScopeDatasetsRead, limited: true},
	"GET /datasets/:id":         {scope: config.ScopeDatasetsRead, limited: true, dataset: true},
	"DELETE /datasets/:id":      {scope: config.ScopeDatasetsWrite, limited: true, dataset: true},
	"POST /datasets/:id/tables": {scope: config.ScopeDatasetsWrite, limited: true, dataset: true},
	"GET /datasets/:id/rows":    {scope: config.ScopeDatasetsRead, limited: true, dataset: true},
	"POST /datasets/:id/query":  {scope: config.ScopeDatasetsRead, limited: true, dataset: true},
	// The live sources' routes (branch sources): a key's sources list
	// limits which :name it may use.
	"GET /sources":              {scope: config.ScopeSources, limited: true},
	"GET /sources/:name":        {scope: config.ScopeSources, limited: true, source: true},
	"GET /sources/:name/rows":   {scope: config.ScopeSources, limited: true, source: true},
	"POST /sources/:name/query": {scope: config.ScopeSources, limited: true, source: true},

	"GET /healthz":           {},
	"GET /readyz":            {},
	"GET /dashboard":         {},
	"GET /api/health/status": {scope: config.ScopeObserve, observe: true},
	"GET /metrics":           {scope: config.ScopeObserve, observe: true},

	"POST /api/circuits/:name/open":  {scope: config.ScopeAdmin, admin: true},
	"POST /api/circuits/:name/close": {scope: config.ScopeAdmin, admin: true},
	"POST /api/circuits/:name/reset": {scope: config.ScopeAdmin, admin: true},
	"GET /api/circuits/:name/events": {scope: config.ScopeAdmin, admin: true},
	"POST /api/config/reload":        {scope: config.ScopeAdmin, admin: true},
}

// policyOf returns the route's policy; ok is false for a request that
// matched no route (Echo answers it 404 or 405 on its own). registered
// holds every route of the server as "METHOD path".
func policyOf(c echo.Context, registered map[string]bool) (routePolicy, bool) {
	method := c.Request().Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	route := method + " " + c.Path()
	if p, ok := routePolicies[route]; ok {
		return p, true
	}
	if registered[route] {
		return routePolicy{scope: config.ScopeAdmin}, true // forgotten here: closed
	}
	return routePolicy{}, false
}

// routesOf lists e's routes as policyOf looks them up.
func routesOf(e *echo.Echo) map[string]bool {
	out := map[string]bool{}
	for _, r := range e.Routes() {
		m := r.Method
		if m == http.MethodHead {
			m = http.MethodGet
		}
		out[m+" "+r.Path] = true
	}
	return out
}

// caller is who a request comes from, as guard established it.
type caller struct {
	// key is nil while no key is configured.
	key *apiKey
	// meter counts the LLM tokens the request spends (see RecordUsage).
	meter atomic.Int64
}

type callerCtxKey struct{}

func callerFrom(ctx context.Context) *caller {
	cl, _ := ctx.Value(callerCtxKey{}).(*caller)
	return cl
}

// name is the key's name, AnonymousKey without one.
func (cl *caller) name() string {
	if cl == nil || cl.key == nil {
		return AnonymousKey
	}
	return cl.key.Name
}

// admin reports whether the caller sees every tenant's data: an admin key,
// or anyone while the API is open.
func (cl *caller) admin() bool {
	return cl == nil || cl.key == nil || cl.key.HasScope(config.ScopeAdmin)
}

// RecordUsage adds n LLM tokens to the request that ctx belongs to, for
// its key's token budget, and returns the key's name (AnonymousKey when
// there is none, or ctx is not a request's), for the metric's label. It
// is how cmd/server/app's circuit hook attributes the tokens each LLM
// attempt reports: the request's context carries its caller down to the
// circuit, which passes it to the hook without knowing what it holds.
func RecordUsage(ctx context.Context, n int) string {
	cl := callerFrom(ctx)
	if cl == nil {
		return AnonymousKey
	}
	cl.meter.Add(int64(n))
	return cl.name()
}

// presentedKey returns the API key a request presents: Authorization:
// Bearer (the scheme in any case, RFC 9110 §11.1) or X-API-Key.
func presentedKey(r *http.Request) (string, bool) {
	if h := r.Header.Get(echo.HeaderAuthorization); h != "" {
		scheme, token, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			if token = strings.TrimSpace(token); token != "" {
				return token, true
			}
		}
	}
	if k := strings.TrimSpace(r.Header.Get("X-API-Key")); k != "" {
		return k, true
	}
	return "", false
}

// match finds the key whose digest is the presented key's, comparing every
// configured digest in constant time so that neither the key nor which
// entry matched shows in the timing.
func (st *accessState) match(presented string) *apiKey {
	sum := sha256.Sum256([]byte(presented))
	var found *apiKey
	for _, k := range st.keys {
		if subtle.ConstantTimeCompare(sum[:], k.digest[:]) == 1 {
			found = k
		}
	}
	return found
}

func unauthorized(c echo.Context, msg string) error {
	c.Response().Header().Set("WWW-Authenticate", `Bearer realm="nexus"`)
	return &Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: msg}
}

func forbidden(scope string) error {
	return &Error{Status: http.StatusForbidden, Code: "forbidden",
		Message: fmt.Sprintf("this API key lacks the %s scope", scope), Field: "scope"}
}

// guard applies Access to every route (see routePolicies). It runs after
// routing, before the route's own middleware and handler, so a refused
// request costs no body read and no LLM call. adminToken tells whether
// NEXUS_ADMIN_TOKEN is set, for the admin routes; store checks the
// datasets' owners. A nil Access leaves everything open and unlimited.
func guard(a *Access, adminToken string, store DatasetStore) echo.MiddlewareFunc {
	// Routes are registered after this middleware; they are read once, at
	// the first request. (Echo applies global middleware to the handler
	// on every request, so this lives outside the function it returns.)
	var registered map[string]bool
	var once sync.Once
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if a == nil {
			return next
		}
		return func(c echo.Context) error {
			once.Do(func() { registered = routesOf(c.Echo()) })
			p, ok := policyOf(c, registered)
			if !ok {
				return next(c)
			}
			st := a.state.Load()
			open := len(st.keys) == 0
			switch {
			case p.scope == "":
				return next(c)
			case p.admin:
				return a.guardAdmin(c, st, adminToken != "", next)
			case p.observe && (open || st.openObservability):
				return next(c)
			}
			cl := &caller{}
			if !open {
				k, err := a.authenticate(c, st, p.scope)
				if err != nil {
					return err
				}
				cl.key = k
			}
			req := c.Request()
			c.SetRequest(req.WithContext(context.WithValue(req.Context(), callerCtxKey{}, cl)))
			if p.limited {
				if err := a.limit(c, st, cl); err != nil {
					return err
				}
			}
			if p.llm {
				if err := a.checkBudget(c, st, cl); err != nil {
					return err
				}
				defer a.charge(c, st, cl)
			}
			if p.dataset {
				if err := visibleDataset(c.Request().Context(), store, c.Param("id")); err != nil {
					return err
				}
			}
			if p.source && !keyAllowsSource(c, c.Param("name")) {
				return sourceNotFound(c.Param("name"))
			}
			return next(c)
		}
	}
}

// authenticate finds the request's key and checks that it holds scope.
// An address that has failed too often is refused before its key is
// looked at, so that a refused guess tells nothing.
func (a *Access) authenticate(c echo.Context, st *accessState, scope string) (*apiKey, error) {
	presented, ok := presentedKey(c.Request())
	if !ok {
		return nil, unauthorized(c, "an API key is required: send it as Authorization: Bearer <key> or X-API-Key")
	}
	remote := c.RealIP()
	if wait := a.failures.Wait(remote); wait > 0 {
		a.refused("auth_failures")
		return nil, tooManyAuthFailures(wait)
	}
	k := st.match(presented)
	if k == nil {
		if a.failures.Fail(remote) {
			a.log.Warn("too many invalid API keys from one address; it is refused for a while",
				slog.String("remote", remote), slog.Float64("retry_after_seconds", a.failures.Wait(remote).Seconds()))
		}
		a.log.Warn("invalid API key", slog.String("request_id", requestIDOf(c)), slog.String("route", c.Path()),
			slog.String("remote", remote))
		return nil, unauthorized(c, "the API key is not valid")
	}
	if !k.HasScope(scope) {
		return nil, forbidden(scope)
	}
	return k, nil
}

// guardAdmin lets an admin key through to an admin route. Anything else
// goes on to adminOnly, which checks NEXUS_ADMIN_TOKEN, unless no token
// is configured: then a missing or unknown key is 401 here (the admin API
// exists because admin keys may exist), and without any key at all the
// admin routes stay 404 as before.
func (a *Access) guardAdmin(c echo.Context, st *accessState, hasToken bool, next echo.HandlerFunc) error {
	if len(st.keys) == 0 {
		return next(c)
	}
	presented, ok := presentedKey(c.Request())
	k := (*apiKey)(nil)
	if ok {
		k = st.match(presented)
	}
	switch {
	case k != nil && k.HasScope(config.ScopeAdmin):
		c.Set(adminKeyCtxKey, k.Name)
		return next(c)
	case k != nil:
		return forbidden(config.ScopeAdmin)
	case hasToken:
		return next(c) // adminOnly decides, and counts its failures
	case !ok:
		return unauthorized(c, "an API key with the admin scope is required")
	}
	remote := c.RealIP()
	if wait := a.failures.Wait(remote); wait > 0 {
		a.refused("auth_failures")
		return tooManyAuthFailures(wait)
	}
	a.failures.Fail(remote)
	return unauthorized(c, "the API key is not valid")
}

// adminKeyCtxKey marks a request that an admin key authenticated.
const adminKeyCtxKey = "admin_key"

// adminKeyAccepted reports whether guard let an admin key through, so
// that adminOnly need not ask for NEXUS_ADMIN_TOKEN.
func adminKeyAccepted(c echo.Context) bool {
	name, _ := c.Get(adminKeyCtxKey).(string)
	return name != ""
}

func (a *Access) refused(reason string) {
	if a.metrics != nil {
		a.metrics.ObserveRefused(reason)
	}
}

// visibleDataset returns the dataset store's not-found error unless the
// request's caller may see dataset id: its own, or any for an admin key
// and while the API is open. Another tenant's dataset is 404, never 403,
// so that its existence does not leak.
func visibleDataset(ctx context.Context, store DatasetStore, id string) error {
	cl := callerFrom(ctx)
	if cl.admin() || store == nil {
		return nil
	}
	ds, err := store.Get(ctx, id)
	if err != nil {
		return err
	}
	if ds.Owner != cl.name() {
		return fmt.Errorf("dataset %q: %w", id, dataset.ErrNotFound)
	}
	return nil
}

// visibleDatasets keeps the datasets the caller may see: its own, or all
// of them for an admin key and while the API is open.
func visibleDatasets(ctx context.Context, list []dataset.Dataset) []dataset.Dataset {
	cl := callerFrom(ctx)
	if cl.admin() {
		return list
	}
	return slices.DeleteFunc(list, func(d dataset.Dataset) bool { return d.Owner != cl.name() })
}

// uploadOwner is the owner a new dataset gets: the caller's key name, or
// none while the API is open.
func uploadOwner(ctx context.Context) dataset.UploadOption {
	cl := callerFrom(ctx)
	if cl == nil || cl.key == nil {
		return dataset.WithOwner("")
	}
	return dataset.WithOwner(cl.key.Name)
}

// keyAllowsSource reports whether the request's key may use the
// configured source name: every source while the API is open or for a
// key without a sources list, else those it lists. The source routes'
// :name is checked by guard; /analyze and /generate check their source
// field with it, and GET /sources lists only what it allows.
func keyAllowsSource(c echo.Context, name string) bool {
	cl := callerFrom(c.Request().Context())
	if cl == nil || cl.key == nil || len(cl.key.Sources) == 0 {
		return true
	}
	return slices.Contains(cl.key.Sources, name)
}

// sourceNotFound is the 404 for a source a key may not use, the same as
// for one that is not configured.
func sourceNotFound(name string) error {
	return &Error{Status: http.StatusNotFound, Code: "source_not_found", Field: "source",
		Message: fmt.Sprintf("no source named %q", name)}
}

// tenantAnalyzer refuses a dataset_id that is not the caller's with the
// store's 404, before the analyst reads it.
type tenantAnalyzer struct {
	Analyzer
	store DatasetStore
}

func (t tenantAnalyzer) Analyze(ctx context.Context, req agent.Request) (agent.Answer, error) {
	if req.DatasetID != "" {
		if err := visibleDataset(ctx, t.store, req.DatasetID); err != nil {
			return agent.Answer{}, err
		}
	}
	return t.Analyzer.Analyze(ctx, req)
}

// tenantGenerator does the same for /generate's dataset_id.
type tenantGenerator struct {
	CodeGenerator
	store DatasetStore
}

func (t tenantGenerator) Generate(ctx context.Context, req codegen.Request) (codegen.Result, error) {
	if req.DatasetID != "" {
		if err := visibleDataset(ctx, t.store, req.DatasetID); err != nil {
			return codegen.Result{}, err
		}
	}
	return t.CodeGenerator.Generate(ctx, req)
}

// tenants wraps the analyst and the generator of cfg so that a dataset_id
// in a request body is checked as a dataset route's :id is.
func tenants(cfg Config) Config {
	if cfg.Analyst != nil {
		cfg.Analyst = tenantAnalyzer{Analyzer: cfg.Analyst, store: cfg.Datasets}
	}
	if cfg.Generator != nil {
		cfg.Generator = tenantGenerator{CodeGenerator: cfg.Generator, store: cfg.Datasets}
	}
	return cfg
}
