package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// LLM says where the OpenAI-compatible endpoints are and which models to use.
type LLM struct {
	// BaseURL of an OpenAI-compatible API, including its /v1 suffix. With
	// APIKeyEnv and MaxIdleConnsPerHost it defines the provider named
	// DefaultProvider.
	BaseURL string `json:"base_url"`
	// APIKeyEnv names the environment variable that holds the API key. The
	// key itself never appears in the file.
	APIKeyEnv string `json:"api_key_env"`
	// Providers declares further OpenAI-compatible endpoints by name, for
	// llm.models to fail over to. The default provider is not declared
	// here: BaseURL and APIKeyEnv define it. Default: none.
	Providers map[string]Provider `json:"providers"`
	// ProbeInterval is how often, in seconds, each provider's health is
	// probed in the background; 0 turns probes off. Default 30.
	ProbeInterval Seconds `json:"probe_interval"`
	// Models maps a circuit name to the targets its calls use, in order of
	// preference. In the file, a string names one model on the default
	// provider; an array lists {"provider", "model"} objects, the first
	// preferred and the others its failovers (at most MaxTargets).
	Models map[string]Targets `json:"models"`
	// MaxIdleConnsPerHost tunes the HTTP transport (Go's default of 2
	// throttles a busy service).
	MaxIdleConnsPerHost int `json:"max_idle_conns_per_host"`
	// MaxResponseBytes caps an LLM reply body, counted while reading; past
	// it the attempt is a counted failure of kind malformed.
	MaxResponseBytes int64 `json:"max_response_bytes"`
}

// DefaultProvider names the provider that llm.base_url and llm.api_key_env
// define. It may not be declared under llm.providers.
const DefaultProvider = "default"

// providerName is what a provider's name under llm.providers must match.
var providerName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)

// Provider is one OpenAI-compatible endpoint.
type Provider struct {
	// BaseURL of the API, including its /v1 suffix.
	BaseURL string `json:"base_url"`
	// APIKeyEnv names the environment variable that holds the provider's
	// API key.
	APIKeyEnv string `json:"api_key_env"`
	// MaxIdleConnsPerHost tunes the provider's HTTP transport; 0, the
	// default, means llm.max_idle_conns_per_host.
	MaxIdleConnsPerHost int `json:"max_idle_conns_per_host"`
}

// ResolvedProviders returns every provider, DefaultProvider included (built
// from BaseURL, APIKeyEnv and MaxIdleConnsPerHost), each with its
// MaxIdleConnsPerHost filled in. A DefaultProvider entry in Providers, which
// Validate rejects, is ignored.
func (l LLM) ResolvedProviders() map[string]Provider {
	out := make(map[string]Provider, len(l.Providers)+1)
	for name, p := range l.Providers {
		if p.MaxIdleConnsPerHost == 0 {
			p.MaxIdleConnsPerHost = l.MaxIdleConnsPerHost
		}
		out[name] = p
	}
	out[DefaultProvider] = Provider{BaseURL: l.BaseURL, APIKeyEnv: l.APIKeyEnv, MaxIdleConnsPerHost: l.MaxIdleConnsPerHost}
	return out
}

// ProviderNames returns the names of every provider: DefaultProvider first,
// then the declared ones sorted.
func (l LLM) ProviderNames() []string {
	names := []string{DefaultProvider}
	for _, name := range sortedKeys(l.Providers) {
		if name != DefaultProvider {
			names = append(names, name)
		}
	}
	return names
}

// MaxTargets caps the targets of one circuit under llm.models.
const MaxTargets = 8

// Target is one model on one provider that a circuit's calls may use.
type Target struct {
	// Provider names a provider: DefaultProvider or one of llm.providers.
	Provider string `json:"provider"`
	// Model is the model name sent to the provider.
	Model string `json:"model"`
}

// String returns "provider/model".
func (t Target) String() string { return t.Provider + "/" + t.Model }

// Targets lists a circuit's targets in order of preference.
type Targets []Target

// Single returns the one target model on DefaultProvider: what a plain
// string under llm.models means.
func Single(model string) Targets { return Targets{{Provider: DefaultProvider, Model: model}} }

// MarshalJSON writes a single target on DefaultProvider as the plain string
// of its model, as the file spells it, and anything else as an array of
// {"provider", "model"} objects.
func (ts Targets) MarshalJSON() ([]byte, error) {
	if len(ts) == 1 && ts[0].Provider == DefaultProvider {
		return json.Marshal(ts[0].Model)
	}
	return json.Marshal([]Target(ts))
}

// UnmarshalJSON accepts a string (one model on DefaultProvider) or an array
// of {"provider", "model"} objects. A value of the wrong type is a
// pathError whose path is relative to the list ("" for the list itself,
// "[1].model" within it); LLM.UnmarshalJSON prefixes the circuit's path.
// Unknown keys inside a target are left to Parse's key check, which reports
// them all with their paths.
func (ts *Targets) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	switch jsonKind(data) {
	case "null":
		*ts = nil
		return nil
	case "string":
		var model string
		if err := json.Unmarshal(data, &model); err != nil {
			return &pathError{msg: err.Error()}
		}
		*ts = Single(model)
		return nil
	case "array":
		var raw []json.RawMessage
		if err := json.Unmarshal(data, &raw); err != nil {
			return &pathError{msg: err.Error()}
		}
		out := make(Targets, len(raw))
		for i, r := range raw {
			if err := json.Unmarshal(r, &out[i]); err != nil {
				return typeErrorAt(fmt.Sprintf("[%d]", i), err, "an object with provider and model")
			}
		}
		*ts = out
		return nil
	default:
		return &pathError{msg: "must be a model name or an array of {provider, model} objects, got " + jsonKind(data)}
	}
}

// jsonKind names the kind of the JSON value that data starts with, as
// json.UnmarshalTypeError's Value does.
func jsonKind(data []byte) string {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return "nothing"
	}
	switch data[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	default:
		return "number"
	}
}

// First returns the circuit's preferred target; the zero Target when the
// circuit has none.
func (l LLM) First(circuit string) Target {
	if ts := l.Models[circuit]; len(ts) > 0 {
		return ts[0]
	}
	return Target{}
}

// UnmarshalJSON decodes llm over its current (default) value, as the plain
// decode would, but decodes models and providers itself so that a value of
// the wrong type there is named by its full JSON path. Each circuit under
// models replaces that circuit's default targets and leaves the others.
func (l *LLM) UnmarshalJSON(data []byte) error {
	if isJSONNull(data) {
		return nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return &pathError{path: "llm", msg: "must be an object"}
	}
	models, hasModels := raw["models"]
	providers, hasProviders := raw["providers"]
	delete(raw, "models")
	delete(raw, "providers")
	rest, err := json.Marshal(raw)
	if err != nil {
		return err
	}
	type plain LLM // without the methods, so without this UnmarshalJSON
	if err := json.Unmarshal(rest, (*plain)(l)); err != nil {
		return err // the caller's decoder prefixes "llm." to a type error
	}
	if hasProviders {
		ps, err := decodeProviders(providers)
		if err != nil {
			return err
		}
		l.Providers = ps
	}
	if hasModels {
		ms, err := decodeModels(models, l.Models)
		if err != nil {
			return err
		}
		l.Models = ms
	}
	return nil
}

// decodeModels decodes llm.models over a copy of current, naming the path of
// a value of the wrong type.
func decodeModels(data []byte, current map[string]Targets) (map[string]Targets, error) {
	const path = "llm.models"
	if isJSONNull(data) {
		return nil, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, &pathError{path: path, msg: "must be an object"}
	}
	merged := make(map[string]Targets, len(current)+len(raw))
	for name, ts := range current {
		merged[name] = ts
	}
	for _, name := range sortedKeys(raw) {
		var ts Targets
		if err := ts.UnmarshalJSON(raw[name]); err != nil {
			var pe *pathError
			if errors.As(err, &pe) {
				return nil, pe.under(path + "." + name)
			}
			return nil, &pathError{path: path + "." + name, msg: err.Error()}
		}
		merged[name] = ts
	}
	return merged, nil
}

// decodeProviders decodes llm.providers, naming the path of a value of the
// wrong type. It replaces the providers: no provider has a default.
func decodeProviders(data []byte) (map[string]Provider, error) {
	const path = "llm.providers"
	if isJSONNull(data) {
		return nil, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, &pathError{path: path, msg: "must be an object"}
	}
	ps := make(map[string]Provider, len(raw))
	for _, name := range sortedKeys(raw) {
		var p Provider
		if err := json.Unmarshal(raw[name], &p); err != nil {
			return nil, typeErrorAt(path+"."+name, err, "an object")
		}
		ps[name] = p
	}
	return ps, nil
}

// typeErrorAt turns err, from decoding the value at path, into a pathError
// naming the path of the wrong value within it; what says what the value
// itself must be.
func typeErrorAt(path string, err error, what string) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return &pathError{path: path, msg: fmt.Sprintf("must be %s, got %s", what, te.Value)}
		}
		return &pathError{path: path + "." + te.Field, msg: fmt.Sprintf("must be %s, got %s", te.Type, te.Value)}
	}
	return &pathError{path: path, msg: err.Error()}
}

func isJSONNull(data []byte) bool { return string(bytes.TrimSpace(data)) == "null" }

// validateModels checks llm.models: every circuit there and known, and
// each of its targets a non-blank model on a provider that exists, once.
func (l LLM) validateModels() []error {
	var errs []error
	for _, name := range CircuitNames() {
		if _, ok := l.Models[name]; !ok {
			errs = append(errs, fmt.Errorf("llm.models.%s: a model is required for each circuit", name))
		}
	}
	providers := l.ResolvedProviders()
	known := strings.Join(l.ProviderNames(), ", ")
	for _, name := range sortedKeys(l.Models) {
		p := "llm.models." + name
		if !isKnownCircuit(name) {
			errs = append(errs, fmt.Errorf("%s: unknown circuit (known: %s)", p, strings.Join(CircuitNames(), ", ")))
			continue
		}
		ts := l.Models[name]
		switch {
		case len(ts) == 0:
			errs = append(errs, fmt.Errorf("%s: must name at least one target", p))
			continue
		case len(ts) == 1 && ts[0].Provider == DefaultProvider && strings.TrimSpace(ts[0].Model) == "":
			// The string form: keep its message.
			errs = append(errs, fmt.Errorf("%s: a model is required for each circuit", p))
			continue
		case len(ts) > MaxTargets:
			errs = append(errs, fmt.Errorf("%s: at most %d targets per circuit, got %d", p, MaxTargets, len(ts)))
		}
		seen := make(map[Target]bool, len(ts))
		for i, t := range ts {
			tp := fmt.Sprintf("%s[%d]", p, i)
			if t.Provider == "" {
				errs = append(errs, fmt.Errorf("%s.provider: must name a provider (known: %s)", tp, known))
			} else if _, ok := providers[t.Provider]; !ok {
				errs = append(errs, fmt.Errorf("%s.provider: unknown provider %q (known: %s)", tp, t.Provider, known))
			}
			if strings.TrimSpace(t.Model) == "" {
				errs = append(errs, fmt.Errorf("%s.model: must not be blank", tp))
			} else if seen[t] {
				errs = append(errs, fmt.Errorf("%s: duplicate target %s", tp, t))
			}
			seen[t] = true
		}
	}
	return errs
}

// validateProviders checks llm.providers.
func (l LLM) validateProviders() []error {
	var errs []error
	for _, name := range sortedKeys(l.Providers) {
		p := "llm.providers." + name
		if name == DefaultProvider {
			errs = append(errs, fmt.Errorf("%s: not allowed: default is defined by llm.base_url and llm.api_key_env", p))
			continue
		}
		if !providerName.MatchString(name) {
			errs = append(errs, fmt.Errorf("%s: a provider name must match %s", p, providerName))
		}
		pr := l.Providers[name]
		if pr.BaseURL == "" {
			errs = append(errs, fmt.Errorf("%s.base_url: must not be empty", p))
		} else if !strings.HasPrefix(pr.BaseURL, "http://") && !strings.HasPrefix(pr.BaseURL, "https://") {
			errs = append(errs, fmt.Errorf("%s.base_url: must start with http:// or https://, got %q", p, pr.BaseURL))
		}
		if pr.APIKeyEnv == "" {
			errs = append(errs, fmt.Errorf("%s.api_key_env: must name an environment variable", p))
		}
		if pr.MaxIdleConnsPerHost < 0 {
			errs = append(errs, fmt.Errorf("%s.max_idle_conns_per_host: must be >= 0 (0: llm.max_idle_conns_per_host), got %d", p, pr.MaxIdleConnsPerHost))
		}
	}
	return errs
}
