// Package config loads, defaults and validates Nexus's configuration file
// (config/cot_review_config.json) and the environment and flag overrides on
// top of it. It is a leaf package: nothing of ours is imported here, so every
// other package can depend on the typed Config without cycles.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// Circuit names that Nexus's agents use. Each must be configured; any other
// name under circuit_breaker.circuits is rejected as a probable typo.
const (
	CircuitDataAnalyst   = "data_analyst"
	CircuitCodeGenerator = "code_generator"
	CircuitCoTEngine     = "cot_engine"
	CircuitVisualization = "visualization"
)

// CircuitNames lists the known circuits in a stable order (the order health
// reports them in).
func CircuitNames() []string {
	return []string{CircuitDataAnalyst, CircuitCodeGenerator, CircuitCoTEngine, CircuitVisualization}
}

// DefaultPath is where the shipped configuration lives, relative to the
// repository root (the working directory of `go run ./cmd/server`).
const DefaultPath = "config/cot_review_config.json"

// Bounds on durations: beyond them a float converts to a zero or
// overflowing time.Duration.
const (
	minSeconds Seconds = 0.001
	maxSeconds Seconds = 86400
)

// Bounds on server.sse_heartbeat_seconds: faster than 0.05 s floods the
// stream with comments; slower than 300 s outlives the idle timeouts of
// common proxies, which the heartbeat exists to defeat.
const (
	minSSEHeartbeat Seconds = 0.05
	maxSSEHeartbeat Seconds = 300
)

// Seconds is a duration written in the file as a (possibly fractional)
// number of seconds, as the seed's schema does: 60, 0.2.
type Seconds float64

// Duration converts to a time.Duration.
func (s Seconds) Duration() time.Duration { return time.Duration(float64(s) * float64(time.Second)) }

// Config is the whole configuration. Zero values are never used directly:
// Default() supplies every default and the file overlays it.
type Config struct {
	CircuitBreaker CircuitBreaker `json:"circuit_breaker"`
	LLM            LLM            `json:"llm"`
	Server         Server         `json:"server"`
	Alerts         Alerts         `json:"alerts"`
	Datasets       Datasets       `json:"datasets"`
	CoTReview      CoTReview      `json:"cot_review"`
	// Sources declares live databases by name, reached read-only. Default:
	// none.
	Sources Sources `json:"sources"`
	// Auth holds the API keys (see auth.go); none means an open API.
	Auth Auth `json:"auth"`
	// RateLimit holds the request limits and token budgets (see auth.go).
	RateLimit RateLimit `json:"ratelimit"`
}

// Datasets configures dataset storage and the SQL sandbox.
type Datasets struct {
	// Dir is where datasets persist; NEXUS_DATA_DIR overrides it.
	Dir string `json:"dir"`
	// MaxUploadBytes limits an upload; larger ones get 413.
	MaxUploadBytes int64 `json:"max_upload_bytes"`
	// StatementTimeout bounds each query the analyst runs.
	StatementTimeout Seconds `json:"statement_timeout"`
	// MaxRows caps the rows a query returns (the full count is still
	// reported).
	MaxRows int `json:"max_rows"`
	// MaxResultBytes caps the size of the rows a query returns.
	MaxResultBytes int64 `json:"max_result_bytes"`
	// MaxSQLAttempts is how many queries the planner may write for one
	// question: the first and the retries after an error (the seed's code
	// generator retried twice).
	MaxSQLAttempts int `json:"max_sql_attempts"`
	// MemoryLimitMB is DuckDB's memory_limit for each database Nexus opens
	// (a stored dataset's handle, an inline table, an upload being
	// loaded), in MiB. Past it DuckDB spills to disk or the query fails.
	MemoryLimitMB int `json:"memory_limit_mb"`
	// MaxOpenDatasets caps the stored datasets kept open between queries;
	// past it the least recently used idle ones are closed (and reopened
	// on their next query).
	MaxOpenDatasets int `json:"max_open_datasets"`
	// Workers is the number of warm worker processes that run every
	// DuckDB job on untrusted input (uploads, inline data, the planner's
	// SQL, /generate's check); 0 means one per CPU.
	Workers int `json:"workers"`
	// WorkerMemoryMB is each worker's memory ceiling in MiB: the
	// supervisor kills a worker whose RSS crosses it.
	WorkerMemoryMB int `json:"worker_memory_mb"`
	// MaxJSONDepth caps the nesting of JSON uploads and inline JSON; deeper
	// input is refused with 422 before DuckDB reads it.
	MaxJSONDepth int `json:"max_json_depth"`
	// MaxColumns caps the columns of an upload or inline table.
	MaxColumns int `json:"max_columns"`
	// MaxInlineLoads caps the inline loads in flight; past it /analyze
	// answers 503 busy with Retry-After. 0 means twice the workers.
	MaxInlineLoads int `json:"max_inline_loads"`
	// UploadReadTimeoutSeconds bounds reading an upload's body (POST
	// /datasets and /datasets/{id}/tables) in place of
	// server.read_timeout_seconds. Default 600.
	UploadReadTimeoutSeconds Seconds `json:"upload_read_timeout_seconds"`
	// UploadMinBytesPerSecond is the slowest an upload may arrive, on
	// average, once UploadMinRateGraceSeconds have passed; a slower one is
	// cut with 408. 0 turns the floor off. Default 1024.
	UploadMinBytesPerSecond int64 `json:"upload_min_bytes_per_second"`
	// UploadMinRateGraceSeconds is the head start before the floor
	// applies. Default 10.
	UploadMinRateGraceSeconds Seconds `json:"upload_min_rate_grace_seconds"`
}

// CoTReview configures the critic that reviews answers (cot_engine).
type CoTReview struct {
	// Enabled reviews every answer; a request's "review": true turns it on
	// for that request alone.
	Enabled bool `json:"enabled"`
	// MaxIterations counts regenerations after an INVALID verdict.
	MaxIterations int `json:"max_iterations"`
}

// Alerts configures the optional webhook told of circuits opening and
// closing. It reloads live.
type Alerts struct {
	// WebhookURL receives a JSON POST per transition; empty disables alerts.
	WebhookURL string `json:"webhook_url"`
	// QueueSize bounds pending alerts; when full the oldest is dropped.
	QueueSize int `json:"queue_size"`
	// Attempts per alert, with exponential backoff between them.
	Attempts int `json:"attempts"`
	// Timeout per attempt.
	Timeout Seconds `json:"timeout"`
}

// CircuitBreaker is the seed's circuit_breaker section, with every flag read.
type CircuitBreaker struct {
	// Enabled false sends calls straight to the LLM (timeouts still apply)
	// and reports each circuit as "disabled".
	Enabled  bool     `json:"enabled"`
	Circuits Circuits `json:"circuits"`
	// ExposeHealthEndpoint false makes GET /api/health/status answer 404.
	ExposeHealthEndpoint bool `json:"expose_health_endpoint"`
	// LogCircuitChanges logs every state transition once.
	LogCircuitChanges bool `json:"log_circuit_changes"`
	// MetricsEnabled gates the Prometheus endpoint.
	MetricsEnabled bool `json:"metrics_enabled"`
}

// Circuits maps a circuit name to its settings. In the file, each entry is
// merged key by key over the built-in defaults, so an operator may tune one
// value of one circuit and leave the rest alone.
type Circuits map[string]Circuit

// UnmarshalJSON merges each entry over the existing (default) one and names
// the full JSON path of a value of the wrong type, which encoding/json
// does not do inside maps.
func (cs *Circuits) UnmarshalJSON(data []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return &pathError{path: "circuit_breaker.circuits", msg: "must be an object"}
	}
	if *cs == nil {
		*cs = Circuits{}
	}
	merged := Circuits{}
	for name, c := range *cs {
		merged[name] = c
	}
	for _, name := range sortedKeys(raw) {
		c := merged[name]
		if err := json.Unmarshal(raw[name], &c); err != nil {
			p := "circuit_breaker.circuits." + name
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				if te.Field != "" {
					p += "." + te.Field
				}
				return &pathError{path: p, msg: fmt.Sprintf("must be %s, got %s", te.Type, te.Value)}
			}
			return &pathError{path: p, msg: err.Error()}
		}
		merged[name] = c
	}
	*cs = merged
	return nil
}

// pathError is a decode problem at a JSON path; an empty path is the value
// being decoded itself.
type pathError struct{ path, msg string }

func (e *pathError) Error() string {
	if e.path == "" {
		return e.msg
	}
	return e.path + ": " + e.msg
}

// under returns e with its path taken as relative to prefix: "" is prefix
// itself, "[1].model" and "model" are within it.
func (e *pathError) under(prefix string) *pathError {
	switch {
	case e.path == "":
		return &pathError{path: prefix, msg: e.msg}
	case strings.HasPrefix(e.path, "["):
		return &pathError{path: prefix + e.path, msg: e.msg}
	default:
		return &pathError{path: prefix + "." + e.path, msg: e.msg}
	}
}

// Circuit holds one breaker's settings.
type Circuit struct {
	// FailureThreshold consecutive counted failures open the circuit.
	FailureThreshold int `json:"failure_threshold"`
	// RecoveryTimeout is how long an open circuit rejects before half-opening.
	RecoveryTimeout Seconds `json:"recovery_timeout"`
	// SuccessThreshold trial successes in half-open close the circuit; it is
	// also the number of trial calls let through at once.
	SuccessThreshold int `json:"success_threshold"`
	// Timeout bounds each LLM call and cancels the upstream request.
	Timeout Seconds `json:"timeout"`
	// MaxConcurrent caps the calls in flight through the circuit (a
	// bulkhead): past it a call is refused at once, without contacting
	// the LLM and without counting as a failure. 0, the default, means no
	// limit.
	MaxConcurrent int `json:"max_concurrent"`
	// MaxAttempts is how many attempts one call through the circuit may
	// make, the first included (1 to 10). 1, the default, means no retry.
	MaxAttempts int `json:"max_attempts"`
	// RetryBackoff is the wait before the first retry, in seconds; each
	// further retry waits exponentially longer, up to MaxRetryBackoff.
	// Default 0.5.
	RetryBackoff Seconds `json:"retry_backoff"`
	// MaxRetryBackoff caps the wait between two attempts, in seconds; it
	// must be >= RetryBackoff. Default 8.
	MaxRetryBackoff Seconds `json:"max_retry_backoff"`
	// MaxRetryAfter is the longest Retry-After (from a 429 or 503) that a
	// retry waits for, in seconds; a longer one is not waited for. 0 means
	// never wait for a Retry-After. Default 30.
	MaxRetryAfter Seconds `json:"max_retry_after"`
	// RecoveryBackoffMultiplier multiplies the recovery timeout each time
	// a half-open trial fails and the circuit opens again, up to
	// MaxRecoveryTimeout (1 to 10). 1, the default, keeps RecoveryTimeout
	// constant.
	RecoveryBackoffMultiplier float64 `json:"recovery_backoff_multiplier"`
	// MaxRecoveryTimeout caps the recovery timeout that
	// RecoveryBackoffMultiplier grows, in seconds; it must be >=
	// RecoveryTimeout. Default 600.
	MaxRecoveryTimeout Seconds `json:"max_recovery_timeout"`
	// FailureRateThreshold opens the circuit when at least this percent of
	// the calls within FailureRateWindow failed, once MinimumCalls calls
	// were made there (0 to 100). 0, the default, turns the rate off:
	// only FailureThreshold consecutive failures open the circuit.
	FailureRateThreshold float64 `json:"failure_rate_threshold"`
	// FailureRateWindow is the period, in seconds, over which
	// FailureRateThreshold counts calls (1 to 3600). Default 60.
	FailureRateWindow Seconds `json:"failure_rate_window"`
	// MinimumCalls is how many calls FailureRateWindow must hold before
	// FailureRateThreshold may open the circuit. Default 10.
	MinimumCalls int `json:"minimum_calls"`
	// HedgeAfter, in seconds, sends a second (hedged) request when the
	// first has not answered by then; the first answer wins and the other
	// is cancelled. 0, the default, turns hedging off.
	HedgeAfter Seconds `json:"hedge_after"`
	// HedgeBudgetPercent caps hedged requests at this percent of the
	// circuit's calls, so that a slow upstream does not get its load
	// multiplied (0 to 100). Default 10.
	HedgeBudgetPercent float64 `json:"hedge_budget_percent"`
	// RecoveryProbe makes the half-open trial a probe request of Nexus's
	// own instead of a caller's call, so that no request is spent testing
	// an upstream that may still be down. Default false.
	RecoveryProbe bool `json:"recovery_probe"`
	// FirstTokenTimeout, in seconds, bounds a streamed request's wait for
	// its first token; past it the attempt is a counted timeout, retried
	// or failed over like any other. It must be <= Timeout, which still
	// bounds the whole request. 0, the default, means Timeout.
	FirstTokenTimeout Seconds `json:"first_token_timeout"`
	// SlowCallThreshold, in seconds, makes a streamed call slow when its
	// first token takes longer; calls that do not stream are never slow. Slow calls are counted in the statistics and, with
	// SlowCallRateThreshold, can open a target. 0, the default, turns
	// slow calls off.
	SlowCallThreshold Seconds `json:"slow_call_threshold"`
	// SlowCallRateThreshold opens a closed target when at least this
	// percent of the counted outcomes within FailureRateWindow were slow,
	// once MinimumCalls were made there (0 to 100). 0, the default, turns
	// it off; above 0 it needs SlowCallThreshold above 0.
	SlowCallRateThreshold float64 `json:"slow_call_rate_threshold"`
}

// circuitDefaults holds the defaults of the settings that every circuit
// shares; Default() sets the four seed values per circuit over it.
func circuitDefaults(failureThreshold int, recoveryTimeout Seconds, successThreshold int, timeout Seconds) Circuit {
	return Circuit{
		FailureThreshold:          failureThreshold,
		RecoveryTimeout:           recoveryTimeout,
		SuccessThreshold:          successThreshold,
		Timeout:                   timeout,
		MaxAttempts:               1,
		RetryBackoff:              0.5,
		MaxRetryBackoff:           8,
		MaxRetryAfter:             30,
		RecoveryBackoffMultiplier: 1,
		MaxRecoveryTimeout:        600,
		FailureRateThreshold:      0,
		FailureRateWindow:         60,
		MinimumCalls:              10,
		HedgeAfter:                0,
		HedgeBudgetPercent:        10,
		RecoveryProbe:             false,
		FirstTokenTimeout:         0,
		SlowCallThreshold:         0,
		SlowCallRateThreshold:     0,
	}
}

// Server holds HTTP listener settings.
type Server struct {
	// Addr is the listen address; NEXUS_ADDR or -addr override it.
	// Default 127.0.0.1:8080: this machine only.
	Addr string `json:"addr"`
	// AllowOpenAPI lets Nexus listen on a non-loopback address with no
	// API key configured; without it start-up refuses (see CheckOpenAPI).
	AllowOpenAPI bool `json:"allow_open_api"`
	// MaxBodyBytes limits request bodies; larger ones get 413.
	MaxBodyBytes int64 `json:"max_body_bytes"`
	// DrainSeconds is how long /readyz answers 503 after SIGTERM before the
	// listener closes, so that load balancers stop sending traffic first.
	DrainSeconds Seconds `json:"drain_seconds"`
	// ShutdownGraceSeconds is how long in-flight requests may take to
	// finish once the listener has closed.
	ShutdownGraceSeconds Seconds `json:"shutdown_grace_seconds"`
	// RequestTimeoutSeconds bounds a whole /analyze or /generate request,
	// every step and fallback included; past it the request's LLM calls
	// and queries are cancelled and it answers 504. 0 means no limit.
	RequestTimeoutSeconds Seconds `json:"request_timeout_seconds"`
	// SSEHeartbeatSeconds is the interval between the heartbeat comments
	// that a streamed (SSE) answer sends while it has nothing else to
	// send, so that proxies and clients do not take a slow first token for
	// a dead connection (0.05 to 300). Restart-only, like the rest of
	// server. Default 15.
	SSEHeartbeatSeconds Seconds `json:"sse_heartbeat_seconds"`

	// The edge: see server_edge.go for what each guards against.

	// ReadTimeoutSeconds bounds reading a whole request, headers and body;
	// a body still arriving then is cut with 408. Uploads have their own
	// bound (datasets.upload_read_timeout_seconds). Default 60.
	ReadTimeoutSeconds Seconds `json:"read_timeout_seconds"`
	// IdleTimeoutSeconds is how long a keep-alive connection may wait for
	// its next request. Default 120.
	IdleTimeoutSeconds Seconds `json:"idle_timeout_seconds"`
	// MaxHeaderBytes caps a request's header section. Default 65536.
	MaxHeaderBytes int `json:"max_header_bytes"`
	// MaxConnections caps the connections open at once; past it new ones
	// wait in the kernel's accept queue. Default 1024.
	MaxConnections int `json:"max_connections"`
	// TrustedProxies lists the CIDRs (or single addresses) of the proxies
	// whose X-Forwarded-For and X-Real-IP are believed. Default: none.
	TrustedProxies []string `json:"trusted_proxies"`
	// CORSOrigins lists the exact origins (scheme://host[:port]) that
	// browsers may call the API from. Default: none, and no CORS headers.
	CORSOrigins []string `json:"cors_origins"`
	// TLSCertFile and TLSKeyFile, both or neither, serve HTTPS; the pair
	// is re-read on every reload. Default: plain HTTP.
	TLSCertFile string `json:"tls_cert_file"`
	TLSKeyFile  string `json:"tls_key_file"`
}

// Default returns the built-in configuration: the seed's four circuits and
// a local Ollama as the LLM.
func Default() Config {
	return Config{
		CircuitBreaker: CircuitBreaker{
			Enabled: true,
			Circuits: Circuits{
				CircuitDataAnalyst:   circuitDefaults(3, 60, 2, 30),
				CircuitCodeGenerator: circuitDefaults(2, 45, 2, 45),
				CircuitCoTEngine:     circuitDefaults(3, 60, 2, 40),
				CircuitVisualization: circuitDefaults(2, 30, 1, 20),
			},
			ExposeHealthEndpoint: true,
			LogCircuitChanges:    true,
			MetricsEnabled:       true,
		},
		LLM: LLM{
			BaseURL:   "http://localhost:11434/v1",
			APIKeyEnv: "LLM_API_KEY",
			Models: map[string]Targets{
				CircuitDataAnalyst:   Single("llama3.1"),
				CircuitCodeGenerator: Single("llama3.1"),
				CircuitCoTEngine:     Single("llama3.1"),
				CircuitVisualization: Single("llama3.1"),
			},
			Providers:           map[string]Provider{},
			ProbeInterval:       30,
			MaxIdleConnsPerHost: 64,
			MaxResponseBytes:    4 << 20,
		},
		Server: Server{
			Addr:                  "127.0.0.1:8080",
			MaxBodyBytes:          10 << 20,
			DrainSeconds:          0,
			ShutdownGraceSeconds:  30,
			RequestTimeoutSeconds: 300,
			SSEHeartbeatSeconds:   15,
			ReadTimeoutSeconds:    60,
			IdleTimeoutSeconds:    120,
			MaxHeaderBytes:        64 << 10,
			MaxConnections:        1024,
			TrustedProxies:        []string{},
			CORSOrigins:           []string{},
		},
		Alerts: Alerts{
			QueueSize: 256,
			Attempts:  3,
			Timeout:   5,
		},
		Datasets: Datasets{
			Dir:              "./data",
			MaxUploadBytes:   100 << 20,
			StatementTimeout: 10,
			MaxRows:          1000,
			MaxResultBytes:   1 << 20,
			MaxSQLAttempts:   3,
			MemoryLimitMB:    1024,
			MaxOpenDatasets:  16,
			Workers:          0,
			WorkerMemoryMB:   2048,
			MaxJSONDepth:     64,
			MaxColumns:       1024,
			MaxInlineLoads:   0,

			UploadReadTimeoutSeconds:  600,
			UploadMinBytesPerSecond:   1024,
			UploadMinRateGraceSeconds: 10,
		},
		CoTReview: CoTReview{
			Enabled:       false,
			MaxIterations: 2,
		},
		Sources:   Sources{},
		Auth:      defaultAuth(),
		RateLimit: defaultRateLimit(),
	}
}

// Parse overlays the JSON document on Default() and validates the result.
// Unknown keys anywhere are errors, so a typo never silently falls back to a
// default. Every problem is reported, joined, each naming its JSON path.
func Parse(data []byte) (Config, error) {
	cfg := Default()
	var errs []error
	errs = append(errs, unknownKeys(data)...)
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&cfg); err != nil {
		errs = append(errs, describeDecodeError(err))
		return Config{}, errors.Join(errs...)
	}
	if dec.More() {
		errs = append(errs, errors.New("config: trailing data after the JSON object"))
	}
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Load reads and parses the file at path.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("config %s:\n%w", path, err)
	}
	return cfg, nil
}

// Validate checks every value that a failsafe-go builder would panic on or
// that would make no sense, and returns all problems joined.
func (c Config) Validate() error {
	var errs []error
	bad := func(path, msg string, got any) {
		errs = append(errs, fmt.Errorf("%s: %s, got %v", path, msg, got))
	}
	for _, name := range CircuitNames() {
		if _, ok := c.CircuitBreaker.Circuits[name]; !ok {
			errs = append(errs, fmt.Errorf("circuit_breaker.circuits.%s: required circuit is missing", name))
		}
	}
	names := make([]string, 0, len(c.CircuitBreaker.Circuits))
	for name := range c.CircuitBreaker.Circuits {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p := "circuit_breaker.circuits." + name
		if !isKnownCircuit(name) {
			errs = append(errs, fmt.Errorf("%s: unknown circuit (known: %s)", p, strings.Join(CircuitNames(), ", ")))
			continue
		}
		cc := c.CircuitBreaker.Circuits[name]
		if cc.FailureThreshold < 1 {
			bad(p+".failure_threshold", "must be >= 1", cc.FailureThreshold)
		}
		if cc.SuccessThreshold < 1 {
			bad(p+".success_threshold", "must be >= 1", cc.SuccessThreshold)
		}
		if cc.MaxConcurrent < 0 {
			bad(p+".max_concurrent", "must be >= 0 (0: no limit)", cc.MaxConcurrent)
		}
		if !(cc.Timeout > 0) {
			bad(p+".timeout", "must be > 0 seconds", float64(cc.Timeout))
		} else if cc.Timeout < minSeconds || cc.Timeout > maxSeconds {
			bad(p+".timeout", "must be between 0.001 and 86400 seconds", float64(cc.Timeout))
		}
		if !(cc.RecoveryTimeout > 0) {
			bad(p+".recovery_timeout", "must be > 0 seconds", float64(cc.RecoveryTimeout))
		} else if cc.RecoveryTimeout < minSeconds || cc.RecoveryTimeout > maxSeconds {
			bad(p+".recovery_timeout", "must be between 0.001 and 86400 seconds", float64(cc.RecoveryTimeout))
		}
		errs = append(errs, cc.validateResilience(p)...)
	}
	if c.LLM.BaseURL == "" {
		errs = append(errs, errors.New("llm.base_url: must not be empty"))
	} else if !strings.HasPrefix(c.LLM.BaseURL, "http://") && !strings.HasPrefix(c.LLM.BaseURL, "https://") {
		bad("llm.base_url", "must start with http:// or https://", fmt.Sprintf("%q", c.LLM.BaseURL))
	}
	if c.LLM.APIKeyEnv == "" {
		errs = append(errs, errors.New("llm.api_key_env: must name an environment variable"))
	}
	errs = append(errs, c.LLM.validateProviders()...)
	if p := c.LLM.ProbeInterval; !(p == 0 || (p >= 0.05 && p <= maxSeconds)) {
		bad("llm.probe_interval", "must be 0 (off) or between 0.05 and 86400 seconds", float64(p))
	}
	errs = append(errs, c.LLM.validateModels()...)
	if c.LLM.MaxIdleConnsPerHost < 1 {
		bad("llm.max_idle_conns_per_host", "must be >= 1", c.LLM.MaxIdleConnsPerHost)
	}
	if c.Server.Addr == "" {
		errs = append(errs, errors.New("server.addr: must not be empty"))
	}
	if c.Server.MaxBodyBytes < 1 {
		bad("server.max_body_bytes", "must be >= 1", c.Server.MaxBodyBytes)
	}
	if c.Server.DrainSeconds < 0 {
		bad("server.drain_seconds", "must be >= 0 seconds", float64(c.Server.DrainSeconds))
	}
	if c.Server.ShutdownGraceSeconds < 0 {
		bad("server.shutdown_grace_seconds", "must be >= 0 seconds", float64(c.Server.ShutdownGraceSeconds))
	}
	if c.Server.RequestTimeoutSeconds < 0 || c.Server.RequestTimeoutSeconds > maxSeconds {
		bad("server.request_timeout_seconds", "must be between 0 (no limit) and 86400 seconds", float64(c.Server.RequestTimeoutSeconds))
	}
	if h := c.Server.SSEHeartbeatSeconds; !(h >= minSSEHeartbeat && h <= maxSSEHeartbeat) {
		bad("server.sse_heartbeat_seconds", "must be between 0.05 and 300 seconds", float64(h))
	}
	errs = append(errs, c.validateAuth()...)
	if u := c.Alerts.WebhookURL; u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		errs = append(errs, errors.New("alerts.webhook_url: must start with http:// or https://"))
	}
	if c.Alerts.QueueSize < 1 {
		bad("alerts.queue_size", "must be >= 1", c.Alerts.QueueSize)
	}
	if c.Alerts.Attempts < 1 {
		bad("alerts.attempts", "must be >= 1", c.Alerts.Attempts)
	}
	if !(c.Alerts.Timeout > 0) {
		bad("alerts.timeout", "must be > 0 seconds", float64(c.Alerts.Timeout))
	}
	if c.Datasets.Dir == "" {
		errs = append(errs, errors.New("datasets.dir: must not be empty"))
	}
	if c.Datasets.MaxUploadBytes < 1 {
		bad("datasets.max_upload_bytes", "must be >= 1", c.Datasets.MaxUploadBytes)
	}
	if !(c.Datasets.StatementTimeout > 0) {
		bad("datasets.statement_timeout", "must be > 0 seconds", float64(c.Datasets.StatementTimeout))
	}
	if c.Datasets.MaxRows < 1 {
		bad("datasets.max_rows", "must be >= 1", c.Datasets.MaxRows)
	}
	if c.Datasets.MaxResultBytes < 1 {
		bad("datasets.max_result_bytes", "must be >= 1", c.Datasets.MaxResultBytes)
	}
	if c.Datasets.MaxSQLAttempts < 1 {
		bad("datasets.max_sql_attempts", "must be >= 1", c.Datasets.MaxSQLAttempts)
	}
	if c.Datasets.MemoryLimitMB < 64 {
		bad("datasets.memory_limit_mb", "must be >= 64", c.Datasets.MemoryLimitMB)
	}
	if c.Datasets.MaxOpenDatasets < 1 {
		bad("datasets.max_open_datasets", "must be >= 1", c.Datasets.MaxOpenDatasets)
	}
	if c.Datasets.Workers < 0 || c.Datasets.Workers > 64 {
		bad("datasets.workers", "must be between 0 (one per CPU) and 64", c.Datasets.Workers)
	}
	if c.Datasets.WorkerMemoryMB < 256 {
		bad("datasets.worker_memory_mb", "must be >= 256", c.Datasets.WorkerMemoryMB)
	}
	if c.Datasets.MaxJSONDepth < 2 || c.Datasets.MaxJSONDepth > 1000 {
		bad("datasets.max_json_depth", "must be between 2 and 1000", c.Datasets.MaxJSONDepth)
	}
	if c.Datasets.MaxColumns < 1 || c.Datasets.MaxColumns > 10000 {
		bad("datasets.max_columns", "must be between 1 and 10000", c.Datasets.MaxColumns)
	}
	if c.Datasets.MaxInlineLoads < 0 {
		bad("datasets.max_inline_loads", "must be >= 0 (0: twice the workers)", c.Datasets.MaxInlineLoads)
	}
	if c.LLM.MaxResponseBytes < 1024 {
		bad("llm.max_response_bytes", "must be >= 1024", c.LLM.MaxResponseBytes)
	}
	if c.CoTReview.MaxIterations < 0 {
		bad("cot_review.max_iterations", "must be >= 0", c.CoTReview.MaxIterations)
	}
	errs = append(errs, c.Sources.validate()...)
	errs = append(errs, c.validateEdge()...)
	return errors.Join(errs...)
}

// Effective fills in the defaults of the retry, recovery and failure-rate
// settings left at 0 (a circuit written as a Go literal with only the seed's
// four values, say): max_attempts 1, retry_backoff 0.5, max_retry_backoff 8,
// recovery_backoff_multiplier 1, max_recovery_timeout 600, failure_rate_window
// 60, minimum_calls 10, and first_token_timeout the circuit's timeout. A
// max_recovery_timeout below recovery_timeout is raised to it, so that a long
// recovery_timeout needs no second change. max_retry_after,
// failure_rate_threshold, hedge_after, hedge_budget_percent,
// slow_call_threshold and slow_call_rate_threshold keep 0, which means
// something of its own for each.
func (cc Circuit) Effective() Circuit {
	d := circuitDefaults(cc.FailureThreshold, cc.RecoveryTimeout, cc.SuccessThreshold, cc.Timeout)
	if cc.MaxAttempts == 0 {
		cc.MaxAttempts = d.MaxAttempts
	}
	if cc.RetryBackoff == 0 {
		cc.RetryBackoff = d.RetryBackoff
	}
	if cc.MaxRetryBackoff == 0 {
		cc.MaxRetryBackoff = max(d.MaxRetryBackoff, cc.RetryBackoff)
	}
	if cc.RecoveryBackoffMultiplier == 0 {
		cc.RecoveryBackoffMultiplier = d.RecoveryBackoffMultiplier
	}
	if cc.MaxRecoveryTimeout == 0 {
		cc.MaxRecoveryTimeout = d.MaxRecoveryTimeout
	}
	if cc.MaxRecoveryTimeout > 0 && cc.MaxRecoveryTimeout < cc.RecoveryTimeout {
		cc.MaxRecoveryTimeout = cc.RecoveryTimeout
	}
	if cc.FailureRateWindow == 0 {
		cc.FailureRateWindow = d.FailureRateWindow
	}
	if cc.MinimumCalls == 0 {
		cc.MinimumCalls = d.MinimumCalls
	}
	if cc.FirstTokenTimeout == 0 {
		cc.FirstTokenTimeout = cc.Timeout
	}
	return cc
}

// validateResilience checks the retry, recovery, failure-rate and hedging
// settings of the circuit at path p. Every float comparison is written so
// that NaN fails it.
func (cc Circuit) validateResilience(p string) []error {
	// Checked as written: Effective turns 0 into timeout, which may itself
	// be out of range (and is reported as timeout).
	firstToken := cc.FirstTokenTimeout
	cc = cc.Effective()
	var errs []error
	bad := func(key, msg string, got any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s, got %v", p, key, msg, got))
	}
	inSeconds := func(s Seconds) bool { return s >= minSeconds && s <= maxSeconds }
	if cc.MaxAttempts < 1 || cc.MaxAttempts > 10 {
		bad("max_attempts", "must be between 1 (no retry) and 10", cc.MaxAttempts)
	}
	if !inSeconds(cc.RetryBackoff) {
		bad("retry_backoff", "must be between 0.001 and 86400 seconds", float64(cc.RetryBackoff))
	}
	if !inSeconds(cc.MaxRetryBackoff) {
		bad("max_retry_backoff", "must be between 0.001 and 86400 seconds", float64(cc.MaxRetryBackoff))
	} else if inSeconds(cc.RetryBackoff) && cc.MaxRetryBackoff < cc.RetryBackoff {
		bad("max_retry_backoff", fmt.Sprintf("must be >= retry_backoff (%v seconds)", float64(cc.RetryBackoff)), float64(cc.MaxRetryBackoff))
	}
	if !(cc.MaxRetryAfter >= 0 && cc.MaxRetryAfter <= maxSeconds) {
		bad("max_retry_after", "must be between 0 (never wait) and 86400 seconds", float64(cc.MaxRetryAfter))
	}
	if !(cc.RecoveryBackoffMultiplier >= 1 && cc.RecoveryBackoffMultiplier <= 10) {
		bad("recovery_backoff_multiplier", "must be between 1 and 10", cc.RecoveryBackoffMultiplier)
	}
	if !inSeconds(cc.MaxRecoveryTimeout) {
		bad("max_recovery_timeout", "must be between 0.001 and 86400 seconds", float64(cc.MaxRecoveryTimeout))
	}
	if !(cc.FailureRateThreshold >= 0 && cc.FailureRateThreshold <= 100) {
		bad("failure_rate_threshold", "must be between 0 (off) and 100 percent", cc.FailureRateThreshold)
	}
	if !(cc.FailureRateWindow >= 1 && cc.FailureRateWindow <= 3600) {
		bad("failure_rate_window", "must be between 1 and 3600 seconds", float64(cc.FailureRateWindow))
	}
	if cc.MinimumCalls < 1 {
		bad("minimum_calls", "must be >= 1", cc.MinimumCalls)
	}
	if !(cc.HedgeAfter == 0 || inSeconds(cc.HedgeAfter)) {
		bad("hedge_after", "must be 0 (off) or between 0.001 and 86400 seconds", float64(cc.HedgeAfter))
	}
	if !(cc.HedgeBudgetPercent >= 0 && cc.HedgeBudgetPercent <= 100) {
		bad("hedge_budget_percent", "must be between 0 and 100 percent", cc.HedgeBudgetPercent)
	}
	if !(firstToken == 0 || inSeconds(firstToken)) {
		bad("first_token_timeout", "must be 0 (the circuit's timeout) or between 0.001 and 86400 seconds", float64(firstToken))
	} else if inSeconds(cc.Timeout) && firstToken > cc.Timeout {
		bad("first_token_timeout", fmt.Sprintf("must be <= timeout (%v seconds)", float64(cc.Timeout)), float64(firstToken))
	}
	if !(cc.SlowCallThreshold == 0 || inSeconds(cc.SlowCallThreshold)) {
		bad("slow_call_threshold", "must be 0 (off) or between 0.001 and 86400 seconds", float64(cc.SlowCallThreshold))
	}
	if !(cc.SlowCallRateThreshold >= 0 && cc.SlowCallRateThreshold <= 100) {
		bad("slow_call_rate_threshold", "must be between 0 (off) and 100 percent", cc.SlowCallRateThreshold)
	} else if cc.SlowCallRateThreshold > 0 && cc.SlowCallThreshold == 0 {
		bad("slow_call_rate_threshold", "must be 0 (off) while slow_call_threshold is 0 (set slow_call_threshold to what counts as slow)", cc.SlowCallRateThreshold)
	}
	return errs
}

func isKnownCircuit(name string) bool {
	for _, n := range CircuitNames() {
		if n == name {
			return true
		}
	}
	return false
}

func describeDecodeError(err error) error {
	var pe *pathError
	if errors.As(err, &pe) {
		return pe
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("config: invalid JSON: unexpected end of input")
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("%s: must be %s, got %s", te.Field, te.Type, te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("config: invalid JSON at byte %d: %v", se.Offset, err)
	}
	return fmt.Errorf("config: %v", err)
}
