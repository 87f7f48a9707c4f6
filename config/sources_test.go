package config_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nexus/nexus/config"
)

func TestDefaultShouldHaveNoSources(t *testing.T) {
	t.Parallel()
	if n := len(config.Default().Sources); n != 0 {
		t.Fatalf("Default() has %d sources", n)
	}
}

func TestParseShouldReadASourceAndFillItsDefaultsFromDatasets(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse([]byte(`{
		"datasets": {"statement_timeout": 7, "max_rows": 500},
		"sources": {
			"sales": {"kind": "postgres", "dsn_env": "SALES_DSN"},
			"warehouse_2": {"kind": "postgres", "dsn_env": "WH_DSN", "schemas": ["mart", "ref"],
				"tables": ["orders", "ref.countries"], "statement_timeout": 2.5, "max_rows": 50,
				"max_result_bytes": 65536, "max_connections": 8}
		}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Sources["sales"]; !reflect.DeepEqual(got, config.Source{Kind: "postgres", DSNEnv: "SALES_DSN"}) {
		t.Fatalf("sales as parsed: %+v", got)
	}
	eff := cfg.EffectiveSources()
	sales := eff["sales"]
	want := config.Source{Kind: "postgres", DSNEnv: "SALES_DSN", Schemas: []string{"public"}, Tables: nil,
		StatementTimeout: 7, MaxRows: 500, MaxResultBytes: 1 << 20, MaxConnections: 4}
	if !reflect.DeepEqual(sales, want) {
		t.Fatalf("sales, effective:\n got %+v\nwant %+v", sales, want)
	}
	if sales.StatementTimeout.Duration() != 7*time.Second {
		t.Fatalf("statement timeout %v", sales.StatementTimeout.Duration())
	}
	wh := eff["warehouse_2"]
	want = config.Source{Kind: "postgres", DSNEnv: "WH_DSN", Schemas: []string{"mart", "ref"}, Tables: []string{"orders", "ref.countries"},
		StatementTimeout: 2.5, MaxRows: 50, MaxResultBytes: 65536, MaxConnections: 8}
	if !reflect.DeepEqual(wh, want) {
		t.Fatalf("warehouse_2, effective:\n got %+v\nwant %+v", wh, want)
	}
	// Effective copies: editing its slices leaves the config alone.
	wh.Schemas[0] = "x"
	if cfg.Sources["warehouse_2"].Schemas[0] != "mart" {
		t.Fatal("Effective shares the schemas slice")
	}
}

func TestParseShouldRejectUnknownKeysAndWrongTypesInASource(t *testing.T) {
	t.Parallel()
	for doc, want := range map[string]string{
		`{"sources": {"sales": {"kind": "postgres", "dsn_env": "X", "dsn": "postgres://u:p@h/d"}}}`: "sources.sales.dsn: unknown key (known keys: dsn_env, kind, max_connections, max_result_bytes, max_rows, schemas, statement_timeout, tables)",
		`{"sources": {"sales": {"kind": "postgres", "dsn_env": "X", "max_rows": "many"}}}`:          "sources.sales.max_rows: must be int, got string",
		`{"sources": {"sales": {"kind": "postgres", "dsn_env": "X", "schemas": "public"}}}`:         "sources.sales.schemas: must be []string, got string",
		`{"sources": {"sales": "postgres://u:p@h/d"}}`:                                              "sources.sales: must be an object, got string",
		`{"sources": ["sales"]}`: "sources: must be an object",
		`{"sourcs": {}}`:         "sourcs: unknown key",
	} {
		_, err := config.Parse([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%s) = %v, want %q", doc, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "u:p@h") {
			t.Errorf("the error echoes a DSN: %v", err)
		}
	}
}

func TestValidateShouldCheckEverySourceByPath(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Sources = config.Sources{
		"Sales":    {Kind: "postgres", DSNEnv: "A"},
		"1st":      {Kind: "postgres", DSNEnv: "A"},
		"no_kind":  {DSNEnv: "A"},
		"mysql":    {Kind: "mysql", DSNEnv: "A"},
		"no_env":   {Kind: "postgres"},
		"dsn_here": {Kind: "postgres", DSNEnv: "postgres://reader:hunter2@db/sales"},
		"limits":   {Kind: "postgres", DSNEnv: "A", StatementTimeout: -1, MaxRows: -1, MaxResultBytes: -1, MaxConnections: -2},
		"lists": {Kind: "postgres", DSNEnv: "A", Schemas: []string{"mart", " ", "mart"},
			Tables: []string{"orders", "other.t", "a.b.c", ""}},
		"ok_1": {Kind: "postgres", DSNEnv: "OK_DSN", Tables: []string{"public.orders", "items"}},
	}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{
		"sources.Sales: a source name must match ^[a-z][a-z0-9_]{0,62}$",
		"sources.1st: a source name must match",
		`sources.no_kind.kind: required ("postgres")`,
		`sources.mysql.kind: must be "postgres", got "mysql"`,
		"sources.no_env.dsn_env: must name the environment variable that holds the DSN",
		"sources.dsn_here.dsn_env: must be an environment variable name",
		"sources.limits.statement_timeout: must be 0 (datasets.statement_timeout) or between 0.001 and 86400 seconds, got -1",
		"sources.limits.max_rows: must be >= 0",
		"sources.limits.max_result_bytes: must be >= 0",
		"sources.limits.max_connections: must be between 0 (4) and 1000, got -2",
		"sources.lists.schemas[1]: must not be blank",
		`sources.lists.schemas[2]: duplicate schema "mart"`,
		`sources.lists.tables[1]: schema "other" is not among the source's schemas (mart,`,
		`sources.lists.tables[2]: must be "table" or "schema.table", got "a.b.c"`,
		`sources.lists.tables[3]: must be "table" or "schema.table", got ""`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	for _, notWant := range []string{"hunter2", "sources.ok_1", "sources.lists.tables[0]"} {
		if strings.Contains(err.Error(), notWant) {
			t.Errorf("error holds %q:\n%v", notWant, err)
		}
	}
}

// A configuration with sources survives Marshal then Parse.
func TestSourcesShouldRoundTripThroughJSON(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Sources["sales"] = config.Source{Kind: "postgres", DSNEnv: "SALES_DSN", Schemas: []string{"public", "mart"},
		Tables: []string{"mart.orders"}, StatementTimeout: 1.5, MaxRows: 10, MaxResultBytes: 4096, MaxConnections: 2}
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	back, err := config.Parse(data)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if !reflect.DeepEqual(back, cfg) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", back.Sources, cfg.Sources)
	}
}
