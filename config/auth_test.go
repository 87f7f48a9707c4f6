package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nexus/nexus/config"
)

const sha = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae" // sha256("foo")

func TestParseShouldCheckEveryKeyAndLimitByPath(t *testing.T) {
	t.Parallel()
	_, err := config.Parse([]byte(`{"auth":{"keys":[
		{"name":"ok","sha256":"` + sha + `","scopes":["analyze"]},
		{"name":"ok","sha256":"abc","scopes":["analyse"],"token_budget":-1,"rate_limit":{"burst":-2}},
		{"name":"Bad Name","sha256":"` + sha + `","scopes":[],"sources":["No"]}]},
		"ratelimit":{"per_minute":-1,"per_hour":-1,"on_redis_error":"maybe","redis_url":"http://x","redis_timeout":0,"budget_window_seconds":0.5}}`))
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{
		`auth.keys[1].name: "ok" is also the name of auth.keys[0]`,
		"auth.keys[1].sha256: must be the 64 hex digits",
		`auth.keys[1].scopes[0]: unknown scope "analyse"`,
		"auth.keys[1].token_budget: must be >= 0",
		"auth.keys[1].rate_limit.burst: must be >= 0",
		"auth.keys[2].name: must match",
		"auth.keys[2].scopes: must list at least one scope",
		`auth.keys[2].sources[0]: "No" is not a source name`,
		"ratelimit.per_minute: must be >= 0",
		"ratelimit.per_hour: must be >= 0",
		`ratelimit.on_redis_error: must be "allow" or "deny"`,
		"ratelimit.redis_url: must start with redis://",
		"ratelimit.redis_timeout: must be between",
		"ratelimit.budget_window_seconds: must be a whole number",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestWithKeysFileShouldAppendTheFilesKeysResolvedAgainstTheConfigsDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "keys.json"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := config.Default()
	cfg.Auth.Keys = []config.APIKey{{Name: "inline", SHA256: sha, Scopes: []string{"admin"}}}
	cfg.Auth.KeysFile = "keys.json"
	configPath := filepath.Join(dir, "nexus.json")

	tests := []struct {
		name    string
		file    string
		want    []string
		wantErr string
	}{
		{name: "keys appended", file: `[{"name":"team-a","sha256":"` + sha + `","scopes":["analyze"],"token_budget":5}]`, want: []string{"inline", "team-a"}},
		{name: "empty list", file: `[]`, want: []string{"inline"}},
		{name: "duplicate across both", file: `[{"name":"inline","sha256":"` + sha + `","scopes":["analyze"]}]`, wantErr: `auth.keys_file[0].name: "inline" is also the name of auth.keys[0]`},
		{name: "unknown field", file: `[{"name":"x","sha256":"` + sha + `","scopes":["analyze"],"scope":"x"}]`, wantErr: `unknown field "scope"`},
		{name: "not a list", file: `{"keys":[]}`, wantErr: "must be a JSON list"},
	}
	for _, tt := range tests {
		write(tt.file)
		got, err := cfg.WithKeysFile(configPath)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error = %v, want %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		var names []string
		for _, k := range got.Auth.Keys {
			names = append(names, k.Name)
		}
		if strings.Join(names, ",") != strings.Join(tt.want, ",") {
			t.Errorf("%s: keys %v, want %v", tt.name, names, tt.want)
		}
	}
	if len(cfg.Auth.Keys) != 1 {
		t.Fatalf("WithKeysFile changed its receiver's keys: %v", cfg.Auth.Keys)
	}
	if _, err := os.Stat(cfg.KeysFilePath(configPath)); err != nil {
		t.Fatalf("KeysFilePath: %v", err)
	}
}

func TestCheckOpenAPIShouldRefuseAnOpenAPIOnlyOffLoopback(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		addr   string
		keys   bool
		allow  bool
		refuse bool
	}{
		{name: "loopback v4", addr: "127.0.0.1:8080"},
		{name: "loopback v6", addr: "[::1]:0"},
		{name: "localhost", addr: "localhost:8080"},
		{name: "every interface", addr: ":8080", refuse: true},
		{name: "any v4", addr: "0.0.0.0:0", refuse: true},
		{name: "a LAN address", addr: "192.0.2.10:8080", refuse: true},
		{name: "any v4 allowed", addr: "0.0.0.0:0", allow: true},
		{name: "any v4 with keys", addr: "0.0.0.0:0", keys: true},
	}
	for _, tt := range tests {
		cfg := config.Default()
		cfg.Server.Addr, cfg.Server.AllowOpenAPI = tt.addr, tt.allow
		if tt.keys {
			cfg.Auth.Keys = []config.APIKey{{Name: "k", SHA256: sha, Scopes: []string{"analyze"}}}
		}
		err := cfg.CheckOpenAPI()
		if got := errors.Is(err, config.ErrOpenAPI); got != tt.refuse {
			t.Errorf("%s: refused = %v, want %v", tt.name, got, tt.refuse)
		}
	}
	msg := config.ErrOpenAPI.Error()
	for _, key := range []string{"auth.keys", "server.allow_open_api"} {
		if !strings.Contains(msg, key) {
			t.Errorf("the refusal does not name %s: %s", key, msg)
		}
	}
}

func TestRateLimitForShouldOverrideFieldByField(t *testing.T) {
	t.Parallel()
	zero, six := 0, 600
	def := config.Default().RateLimit
	k := &config.APIKey{RateLimit: &config.KeyRateLimit{PerMinute: &six, PerHour: &zero}}
	if got, want := def.For(k), (config.Window{PerMinute: 600, Burst: 10, PerHour: 0}); got != want {
		t.Fatalf("For = %+v, want %+v", got, want)
	}
	if got, want := def.For(nil), (config.Window{PerMinute: 60, Burst: 10, PerHour: 1000}); got != want {
		t.Fatalf("For(nil) = %+v, want %+v", got, want)
	}
}
