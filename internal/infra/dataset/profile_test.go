package dataset_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/nexus/nexus/internal/infra/dataset"
)

var profileCSV = []byte(`id,name,score,city,tag
1,alice,10,Paris,b
2,bob,20,,a
3,carol,,Paris,b
4,dave,40,Lyon,a
5,,50,Paris,c
6,erin,60,Nice,d
7,frank,70,Rome,e
8,gina,80,Oslo,f
`)

func ptr(f float64) *float64 { return &f }

func wantProfile() dataset.Profile {
	return dataset.Profile{
		RowCount: 8,
		Columns: []dataset.ColumnProfile{
			{Name: "id", Type: "BIGINT", Nulls: 0, Distinct: 8, Min: json.Number("1"), Max: json.Number("8"), Mean: ptr(4.5), TopValues: []dataset.TopValue{}},
			{Name: "name", Type: "VARCHAR", Nulls: 1, Distinct: 7, Min: "alice", Max: "gina", TopValues: []dataset.TopValue{
				{Value: "alice", Count: 1}, {Value: "bob", Count: 1}, {Value: "carol", Count: 1}, {Value: "dave", Count: 1}, {Value: "erin", Count: 1},
			}},
			{Name: "score", Type: "BIGINT", Nulls: 1, Distinct: 7, Min: json.Number("10"), Max: json.Number("80"), Mean: ptr(330.0 / 7), TopValues: []dataset.TopValue{}},
			{Name: "city", Type: "VARCHAR", Nulls: 1, Distinct: 5, Min: "Lyon", Max: "Rome", TopValues: []dataset.TopValue{
				{Value: "Paris", Count: 3}, {Value: "Lyon", Count: 1}, {Value: "Nice", Count: 1}, {Value: "Oslo", Count: 1}, {Value: "Rome", Count: 1},
			}},
			{Name: "tag", Type: "VARCHAR", Nulls: 0, Distinct: 6, Min: "a", Max: "f", TopValues: []dataset.TopValue{
				{Value: "a", Count: 2}, {Value: "b", Count: 2}, {Value: "c", Count: 1}, {Value: "d", Count: 1}, {Value: "e", Count: 1},
			}},
		},
	}
}

// requireSameJSON compares two values by their JSON encoding, which is
// what clients see.
func requireSameJSON(tb testing.TB, got, want any) {
	tb.Helper()
	g, err := json.Marshal(got)
	if err != nil {
		tb.Fatalf("got is not JSON-encodable: %v", err)
	}
	w, err := json.Marshal(want)
	if err != nil {
		tb.Fatal(err)
	}
	if string(g) != string(w) {
		tb.Fatalf("JSON differs:\n got %s\nwant %s", g, w)
	}
}

func TestProfileIsExact(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, dataset.Config{})
	ds := mustCreate(t, s, "people.csv", profileCSV)

	t.Run("stored at upload", func(t *testing.T) {
		t.Parallel()
		prof, err := s.Profile(context.Background(), ds.ID)
		if err != nil {
			t.Fatal(err)
		}
		requireSameJSON(t, prof, wantProfile())
	})
	t.Run("served by a session", func(t *testing.T) {
		t.Parallel()
		prof, err := mustSession(t, s, ds.ID).Profile(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		requireSameJSON(t, prof, wantProfile())
	})
	t.Run("computed for inline data", func(t *testing.T) {
		t.Parallel()
		prof, err := mustInline(t, s, "csv", string(profileCSV)).Profile(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		requireSameJSON(t, prof, wantProfile())
	})
}

func TestProfileHandlesEveryType(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, dataset.Config{})
	content := parquetFixture(t, `SELECT
		(range * 1.5)::DECIMAL(10,2) AS amount,
		DATE '2024-01-01' + range::INTEGER AS day,
		TIMESTAMP '2024-01-01 10:00:00' + INTERVAL (range) HOUR AS at,
		range % 2 = 0 AS even,
		[range, range + 1] AS pair,
		{'k': range} AS obj,
		'6ba7b810-9dad-11d1-80b4-00c04fd430c8'::UUID AS u,
		CASE WHEN range = 0 THEN 'NaN'::DOUBLE ELSE range END AS f,
		NULL::VARCHAR AS nothing
		FROM range(4)`)
	ds := mustCreate(t, s, "types.parquet", content)
	prof, err := s.Profile(context.Background(), ds.ID)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]dataset.ColumnProfile{}
	for _, c := range prof.Columns {
		byName[c.Name] = c
	}
	requireSameJSON(t, []any{byName["amount"].Min, byName["amount"].Max, byName["amount"].Mean}, []any{0, 4.5, 2.25})
	requireSameJSON(t, []any{byName["day"].Min, byName["day"].Max}, []any{"2024-01-01", "2024-01-04"})
	requireSameJSON(t, []any{byName["at"].Min, byName["even"].Min, byName["even"].Max}, []any{"2024-01-01T10:00:00Z", false, true})
	requireSameJSON(t, []any{byName["pair"].Distinct, byName["pair"].Min, byName["obj"].Distinct}, []any{4, nil, 4})
	requireSameJSON(t, []any{byName["u"].Min, byName["u"].Distinct}, []any{"6ba7b810-9dad-11d1-80b4-00c04fd430c8", 1})
	requireSameJSON(t, byName["nothing"], dataset.ColumnProfile{Name: "nothing", Type: "VARCHAR", Nulls: 4, TopValues: []dataset.TopValue{}})
	if byName["f"].Mean != nil {
		t.Errorf("mean over NaN should be nil (JSON has no NaN), got %v", *byName["f"].Mean)
	}
}
