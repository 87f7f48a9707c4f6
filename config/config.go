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

// pathError is a decode problem at a JSON path.
type pathError struct{ path, msg string }

func (e *pathError) Error() string { return e.path + ": " + e.msg }

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
}

// LLM says where the OpenAI-compatible endpoint is and which models to use.
type LLM struct {
	// BaseURL of an OpenAI-compatible API, including its /v1 suffix.
	BaseURL string `json:"base_url"`
	// APIKeyEnv names the environment variable that holds the API key. The
	// key itself never appears in the file.
	APIKeyEnv string `json:"api_key_env"`
	// Models maps a circuit name to the model its calls use.
	Models map[string]string `json:"models"`
	// MaxIdleConnsPerHost tunes the HTTP transport (Go's default of 2
	// throttles a busy service).
	MaxIdleConnsPerHost int `json:"max_idle_conns_per_host"`
	// MaxResponseBytes caps an LLM reply body, counted while reading; past
	// it the attempt is a counted failure of kind malformed.
	MaxResponseBytes int64 `json:"max_response_bytes"`
}

// Server holds HTTP listener settings.
type Server struct {
	// Addr is the listen address; NEXUS_ADDR or -addr override it.
	Addr string `json:"addr"`
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
}

// Default returns the built-in configuration: the seed's four circuits and
// a local Ollama as the LLM.
func Default() Config {
	return Config{
		CircuitBreaker: CircuitBreaker{
			Enabled: true,
			Circuits: Circuits{
				CircuitDataAnalyst:   {FailureThreshold: 3, RecoveryTimeout: 60, SuccessThreshold: 2, Timeout: 30},
				CircuitCodeGenerator: {FailureThreshold: 2, RecoveryTimeout: 45, SuccessThreshold: 2, Timeout: 45},
				CircuitCoTEngine:     {FailureThreshold: 3, RecoveryTimeout: 60, SuccessThreshold: 2, Timeout: 40},
				CircuitVisualization: {FailureThreshold: 2, RecoveryTimeout: 30, SuccessThreshold: 1, Timeout: 20},
			},
			ExposeHealthEndpoint: true,
			LogCircuitChanges:    true,
			MetricsEnabled:       true,
		},
		LLM: LLM{
			BaseURL:   "http://localhost:11434/v1",
			APIKeyEnv: "LLM_API_KEY",
			Models: map[string]string{
				CircuitDataAnalyst:   "llama3.1",
				CircuitCodeGenerator: "llama3.1",
				CircuitCoTEngine:     "llama3.1",
				CircuitVisualization: "llama3.1",
			},
			MaxIdleConnsPerHost: 64,
			MaxResponseBytes:    4 << 20,
		},
		Server: Server{
			Addr:                  ":8080",
			MaxBodyBytes:          10 << 20,
			DrainSeconds:          0,
			ShutdownGraceSeconds:  30,
			RequestTimeoutSeconds: 300,
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
		},
		CoTReview: CoTReview{
			Enabled:       false,
			MaxIterations: 2,
		},
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
	}
	if c.LLM.BaseURL == "" {
		errs = append(errs, errors.New("llm.base_url: must not be empty"))
	} else if !strings.HasPrefix(c.LLM.BaseURL, "http://") && !strings.HasPrefix(c.LLM.BaseURL, "https://") {
		bad("llm.base_url", "must start with http:// or https://", fmt.Sprintf("%q", c.LLM.BaseURL))
	}
	if c.LLM.APIKeyEnv == "" {
		errs = append(errs, errors.New("llm.api_key_env: must name an environment variable"))
	}
	for _, name := range CircuitNames() {
		if strings.TrimSpace(c.LLM.Models[name]) == "" {
			errs = append(errs, fmt.Errorf("llm.models.%s: a model is required for each circuit", name))
		}
	}
	for name := range c.LLM.Models {
		if !isKnownCircuit(name) {
			errs = append(errs, fmt.Errorf("llm.models.%s: unknown circuit (known: %s)", name, strings.Join(CircuitNames(), ", ")))
		}
	}
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
	return errors.Join(errs...)
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
