package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/infra/metrics"
	"github.com/nexus/nexus/internal/infra/pgsource"
	"github.com/nexus/nexus/internal/infra/redact"
)

// sourceOpenTimeout bounds opening one source at start-up: connecting,
// checking the role and introspecting.
const sourceOpenTimeout = 30 * time.Second

// sourceRefreshTimeout bounds a reload's refresh of every source.
const sourceRefreshTimeout = 30 * time.Second

// openSources opens every configured source, in name order: the DSN is
// read from the environment variable its dsn_env names (through getenv
// only) and added to the redactor before anything can quote it. Any
// failure closes the sources already open and stops start-up with an
// error naming the config path: a missing variable, a DSN that does not
// parse, a database that cannot be reached, a role that can write or
// escape. The DSN is never in the error.
func openSources(ctx context.Context, cfg config.Config, getenv func(string) string, redactor *redact.Redactor,
	log *slog.Logger, m *metrics.Metrics) (*pgsource.Set, error) {
	eff := cfg.EffectiveSources()
	names := make([]string, 0, len(eff))
	for name := range eff {
		names = append(names, name)
	}
	sort.Strings(names)
	m.ObserveSources(names)
	var opened []*pgsource.Source
	fail := func(err error) (*pgsource.Set, error) {
		for _, s := range opened {
			s.Close()
		}
		return nil, err
	}
	for _, name := range names {
		sc := eff[name]
		path := "sources." + name
		dsn := getenv(sc.DSNEnv)
		if strings.TrimSpace(dsn) == "" {
			return fail(fmt.Errorf("%s.dsn_env: environment variable %s is not set", path, sc.DSNEnv))
		}
		redactor.Add(pgsource.Secrets(dsn)...)
		octx, cancel := context.WithTimeout(ctx, sourceOpenTimeout)
		src, err := pgsource.Open(octx, pgsource.Config{
			Name:             name,
			DSN:              dsn,
			Schemas:          sc.Schemas,
			Tables:           sc.Tables,
			StatementTimeout: sc.StatementTimeout.Duration(),
			MaxRows:          sc.MaxRows,
			MaxResultBytes:   sc.MaxResultBytes,
			MaxConnections:   int32(sc.MaxConnections),
			OnQuery: func(outcome string, d time.Duration) {
				m.ObserveSourceQuery(name, outcome, d)
			},
		}, log)
		cancel()
		if err != nil {
			return fail(errors.New(redactor.Redact(sourceOpenError(path, sc.DSNEnv, err))))
		}
		opened = append(opened, src)
		log.Info("source ready", slog.String("source", name), slog.String("kind", sc.Kind),
			slog.Any("schemas", sc.Schemas), slog.Any("tables", tableNames(src)))
	}
	return pgsource.NewSet(opened...), nil
}

// sourceOpenError names the config path of a source that failed to open:
// the dsn_env key for a DSN that is not valid, the source for the rest.
func sourceOpenError(path, env string, err error) string {
	var e *pgsource.Error
	switch {
	case errors.As(err, &e) && e.Kind == pgsource.KindInvalidConfig:
		return fmt.Sprintf("%s.dsn_env: the value of %s: %s", path, env, e.Message)
	case errors.As(err, &e):
		return fmt.Sprintf("%s: %s", path, e.Message)
	default:
		return fmt.Sprintf("%s: %v", path, err)
	}
}

// tableNames lists a source's tables as schema.name.
func tableNames(src *pgsource.Source) []string {
	tables := src.Tables()
	out := make([]string, len(tables))
	for i, t := range tables {
		out[i] = t.QualifiedName()
	}
	return out
}

// sourcesEqual compares two sources sections, an absent one and an empty
// one being the same.
func sourcesEqual(a, b config.Sources) bool {
	if len(a) != len(b) {
		return false
	}
	for name, s := range a {
		t, ok := b[name]
		if !ok || s.Kind != t.Kind || s.DSNEnv != t.DSNEnv || !slices.Equal(s.Schemas, t.Schemas) || !slices.Equal(s.Tables, t.Tables) ||
			s.StatementTimeout != t.StatementTimeout || s.MaxRows != t.MaxRows || s.MaxResultBytes != t.MaxResultBytes ||
			s.MaxConnections != t.MaxConnections {
			return false
		}
	}
	return true
}

// refreshSources re-introspects every source (and checks its role again),
// as a reload does: a table created or granted since start-up appears, one
// dropped goes. A source that fails keeps its tables, and says why.
func refreshSources(ctx context.Context, set *pgsource.Set, log *slog.Logger, redactor *redact.Redactor) {
	if len(set.All()) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, sourceRefreshTimeout)
	defer cancel()
	if err := set.Refresh(ctx); err != nil {
		log.Warn("source refresh failed; the sources that failed keep their previous tables",
			slog.String("error", redactor.Redact(err.Error())))
	}
	tables := map[string][]string{}
	for _, src := range set.All() {
		tables[src.Name()] = tableNames(src)
	}
	log.Info("sources refreshed", slog.Any("tables", tables))
}

// sourceSummary is what the effective config shows of the sources
// section: never a DSN, only the variable that holds it.
func sourceSummary(cfg config.Config) map[string]any {
	out := map[string]any{}
	for name, s := range cfg.EffectiveSources() {
		out[name] = map[string]any{
			"kind": s.Kind, "dsn_env": s.DSNEnv, "schemas": s.Schemas, "tables": s.Tables,
			"statement_timeout": float64(s.StatementTimeout), "max_rows": s.MaxRows,
			"max_result_bytes": s.MaxResultBytes, "max_connections": s.MaxConnections,
		}
	}
	return out
}
