package config_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/nexus/nexus/config"
)

// Each variable that overrides a key names a real JSON path, and setting it
// changes exactly that key.
func TestEnvVarsShouldOverrideTheKeyTheyName(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, e := range config.EnvVars() {
		if seen[e.Name] {
			t.Errorf("%s listed twice", e.Name)
		}
		seen[e.Name] = true
		if e.Name == "" || e.Usage == "" {
			t.Errorf("%+v: a variable needs a name and a usage", e)
		}
		if e.Key == "" {
			cfg := config.Default()
			e.Set(&cfg, "x")
			if got := e.Get(cfg); got != "" {
				t.Errorf("%s overrides no key, yet Get = %q", e.Name, got)
			}
			continue
		}
		t.Run(e.Name, func(t *testing.T) {
			cfg := config.Default()
			const v = "value-from-the-environment"
			e.Set(&cfg, v)
			if got := e.Get(cfg); got != v {
				t.Fatalf("Get after Set = %q", got)
			}
			if got := jsonPath(t, cfg, e.Key); got != v {
				t.Fatalf("%s in the JSON form = %v, want the value set through %s", e.Key, got, e.Name)
			}
		})
	}
}

// jsonPath returns the value at a dotted path of cfg's JSON form.
func jsonPath(t *testing.T, cfg config.Config, path string) any {
	t.Helper()
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s: %q is not under an object", path, k)
		}
		if v, ok = m[k]; !ok {
			t.Fatalf("%s: no key %q", path, k)
		}
	}
	return v
}
