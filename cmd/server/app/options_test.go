package app

// Internal tests: options, loadConfig and the reloader are unexported, and
// Run cannot be started here (its dataset workers re-execute the test
// binary, which only test/ is set up for). test/config_test.go runs them
// through Run.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nexus/nexus/config"
)

func envOf(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestHelpShouldListEveryEnvironmentVariableAndFlag(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	err := Run(context.Background(), []string{"-h"}, envOf(nil), &stdout, &stderr, nil, nil)
	if err != nil {
		t.Fatalf("Run -h = %v, want nil (exit 0)", err)
	}
	if stderr.Len() != 0 {
		t.Errorf("-h wrote to stderr: %q", stderr.String())
	}
	out := stdout.String()
	env := out[strings.Index(out, "\nEnvironment:\n"):]
	vars := config.EnvVars()
	if len(vars) == 0 {
		t.Fatal("config.EnvVars is empty")
	}
	for _, e := range vars {
		if !strings.Contains(env, "\n  "+e.Name+" ") {
			t.Errorf("-h's environment section lacks %s:\n%s", e.Name, out)
		}
		if e.Flag != "" && !strings.Contains(out, "\n  -"+e.Flag+" ") {
			t.Errorf("-h lacks the flag -%s:\n%s", e.Flag, out)
		}
		if e.Key != "" && !strings.Contains(env, "overrides "+e.Key) {
			t.Errorf("-h does not say that %s overrides %s:\n%s", e.Name, e.Key, out)
		}
	}
	if !strings.Contains(env, "llm.api_key_env") {
		t.Errorf("-h does not name llm.api_key_env, the variable read by name from the config:\n%s", out)
	}
}

func TestABadFlagShouldFailWithTheUsageOnStderr(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	err := Run(context.Background(), []string{"-adr", ":1"}, envOf(nil), &stdout, &stderr, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "flag provided but not defined: -adr") {
		t.Fatalf("err = %v", err)
	}
	if stdout.Len() != 0 || !strings.Contains(stderr.String(), "Environment:") {
		t.Fatalf("stdout %q, stderr %q: want the usage on stderr only", stdout.String(), stderr.String())
	}
	err = Run(context.Background(), []string{"my.json"}, envOf(nil), &stdout, &stderr, nil, nil)
	if err == nil || !strings.Contains(err.Error(), `unexpected argument "my.json"`) {
		t.Fatalf("a positional argument: err = %v", err)
	}
}

func TestFlagsShouldWinOverTheEnvironmentWhichWinsOverTheFile(t *testing.T) {
	t.Parallel()
	path := writeConfigFile(t, config.Default())
	env := map[string]string{
		config.EnvConfig: path, config.EnvAddr: "127.0.0.1:1", config.EnvBaseURL: "http://env.example/v1",
		config.EnvDataDir: "/env/data",
	}
	opts, err := parseOptions([]string{"-addr", "127.0.0.1:2"}, envOf(env), &bytes.Buffer{}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := loadConfig(opts)
	if err != nil {
		t.Fatal(err)
	}
	if l.defaults || !opts.configGiven || opts.configPath != path {
		t.Fatalf("config source: defaults %v, given %v, path %q", l.defaults, opts.configGiven, opts.configPath)
	}
	got := [3]string{l.cfg.Server.Addr, l.cfg.LLM.BaseURL, l.cfg.Datasets.Dir}
	want := [3]string{"127.0.0.1:2", "http://env.example/v1", "/env/data"}
	if got != want {
		t.Fatalf("in force %v, want %v", got, want)
	}
	if l.file.Server.Addr != "127.0.0.1:8080" {
		t.Fatalf("file's own server.addr = %q, want the file's 127.0.0.1:8080", l.file.Server.Addr)
	}
	var keys []string
	for _, o := range overriddenKeys(opts) {
		keys = append(keys, o.key+"="+o.source)
	}
	if strings.Join(keys, ",") != "server.addr=-addr,llm.base_url=LLM_BASE_URL,datasets.dir=NEXUS_DATA_DIR" {
		t.Fatalf("overridden keys = %v", keys)
	}
}

func TestAnAbsentDefaultConfigShouldMeanTheBuiltInDefaults(t *testing.T) {
	t.Parallel()
	absent := filepath.Join(t.TempDir(), "config", "cot_review_config.json")

	// Given no path named, as when the binary runs where the default file
	// is not
	l, err := loadConfig(options{configPath: absent})
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	if !l.defaults {
		t.Fatal("defaults = false for an absent default file")
	}
	want, _ := json.Marshal(config.Default())
	if got, _ := json.Marshal(l.cfg); !bytes.Equal(got, want) {
		t.Fatalf("config in force is not the built-in defaults:\n%s", got)
	}

	// Given the same path named by -config or NEXUS_CONFIG
	_, err = loadConfig(options{configPath: absent, configGiven: true})
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), absent) {
		t.Fatalf("a named absent file: err = %v, want not-exist naming the path", err)
	}
}

func writeConfigFile(tb testing.TB, cfg config.Config) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "nexus.json")
	writeConfigAt(tb, path, cfg)
	return path
}

// jsonLines returns the log lines whose message is msg.
func jsonLines(tb testing.TB, logs string, msg string) []map[string]any {
	tb.Helper()
	var out []map[string]any
	for line := range strings.Lines(logs) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			tb.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}
