package config

// EnvVar is one environment variable that Nexus reads. EnvVars is the only
// list of them: the server reads its environment through it and -h prints
// it, so the two cannot drift apart.
type EnvVar struct {
	// Name is the variable, such as NEXUS_ADDR.
	Name string
	// Flag is the command-line flag, without its dash, that wins over the
	// variable; "" when there is none.
	Flag string
	// Key is the JSON path of the config file key that the variable
	// overrides; "" when it sets no key (the config path, secrets).
	Key string
	// Usage says what the variable is for, in a few words.
	Usage string

	get func(Config) string
	set func(*Config, string)
}

// Get returns the value of e.Key in c; "" when e overrides no key.
func (e EnvVar) Get(c Config) string {
	if e.get == nil {
		return ""
	}
	return e.get(c)
}

// Set overrides e.Key in c with v; it does nothing when e overrides no key.
func (e EnvVar) Set(c *Config, v string) {
	if e.set != nil {
		e.set(c, v)
	}
}

// Environment variable names, for code that reads one by name.
const (
	EnvConfig     = "NEXUS_CONFIG"
	EnvAddr       = "NEXUS_ADDR"
	EnvDataDir    = "NEXUS_DATA_DIR"
	EnvLogLevel   = "NEXUS_LOG_LEVEL"
	EnvAdminToken = "NEXUS_ADMIN_TOKEN"
	EnvBaseURL    = "LLM_BASE_URL"
	EnvAPIKey     = "LLM_API_KEY"
)

// EnvVars lists every environment variable Nexus reads, in the order -h
// prints them. Besides these, the API key is also read from the variable
// that llm.api_key_env names, when LLM_API_KEY is unset, and each source's
// DSN from the variable that its sources.<name>.dsn_env names.
func EnvVars() []EnvVar {
	return []EnvVar{
		{Name: EnvConfig, Flag: "config",
			Usage: "config file path (default " + DefaultPath + " in the working directory; when that file is absent, the built-in defaults)"},
		{Name: EnvAddr, Flag: "addr", Key: "server.addr", Usage: "listen address",
			get: func(c Config) string { return c.Server.Addr },
			set: func(c *Config, v string) { c.Server.Addr = v }},
		{Name: EnvBaseURL, Flag: "llm-base-url", Key: "llm.base_url", Usage: "OpenAI-compatible base URL, /v1 included",
			get: func(c Config) string { return c.LLM.BaseURL },
			set: func(c *Config, v string) { c.LLM.BaseURL = v }},
		{Name: EnvAPIKey, Flag: "llm-api-key",
			Usage: "LLM API key, else the variable named by llm.api_key_env (prefer the environment: flags show in ps)"},
		{Name: EnvDataDir, Key: "datasets.dir", Usage: "dataset directory",
			get: func(c Config) string { return c.Datasets.Dir },
			set: func(c *Config, v string) { c.Datasets.Dir = v }},
		{Name: EnvLogLevel, Flag: "log-level", Usage: "debug, info, warn or error (default info)"},
		{Name: EnvAdminToken,
			Usage: "bearer token that enables the admin API; without it those routes answer 404"},
	}
}
