package dataset_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/nexus/nexus/internal/infra/dataset"
)

// TestQueryValueFidelity runs values of every type through a real query
// (a worker, the wire, the server's decoding) and checks the exact JSON
// the API would write for the row.
func TestQueryValueFidelity(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, dataset.Config{})
	q := mustInline(t, s, "csv", "a\n1\n")
	res := mustQuery(t, q, `SELECT
		CAST(13.08784 AS FLOAT) f,
		CAST('NaN' AS FLOAT) f_nan,
		13.08784::DOUBLE dbl,
		CAST('12345678901234567.89' AS DECIMAL(20,2)) d,
		CAST('-0.50' AS DECIMAL(4,2)) d_small,
		DATE '2024-03-01' dt,
		TIMESTAMP '2024-03-01 12:34:56' ts,
		TIMESTAMP '2024-03-01 12:34:56.5' ts_frac,
		TIMESTAMP '2024-03-01 12:34:56.123456' ts_micro,
		TIMESTAMPTZ '2024-03-01 12:34:56+02' tstz,
		TIME '12:34:56' tm,
		TIME '12:34:56.25' tm_frac,
		[1.5::FLOAT, 2.25::FLOAT, 13.08784::FLOAT] l,
		[DATE '2024-03-01']::DATE[1] arr,
		{'a': 1, 'b': 'x'} s,
		{'f': 13.08784::FLOAT, 'd': DATE '2024-03-01', 'n': [CAST('1.10' AS DECIMAL(20,2))]} s_nested,
		MAP {'k': 1} m,
		MAP {DATE '2024-03-01': 13.08784::FLOAT} m_typed,
		18446744073709551615::UBIGINT u,
		9007199254740992::UBIGINT u_safe,
		170141183460469231731687303715884105727::HUGEINT h,
		-9007199254740993::HUGEINT h_neg,
		340282366920938463463374607431768211455::UHUGEINT uh,
		42::HUGEINT small,
		9223372036854775807::BIGINT big`)
	b, err := json.Marshal(res.Rows)
	if err != nil {
		t.Fatal(err)
	}
	want := `[[13.08784,"NaN",13.08784,12345678901234567.89,-0.5,` +
		`"2024-03-01","2024-03-01T12:34:56Z","2024-03-01T12:34:56.5Z","2024-03-01T12:34:56.123456Z","2024-03-01T10:34:56Z",` +
		`"12:34:56","12:34:56.25",` +
		`[1.5,2.25,13.08784],["2024-03-01"],` +
		`{"a":1,"b":"x"},{"d":"2024-03-01","f":13.08784,"n":[1.1]},` +
		`{"k":1},{"2024-03-01":13.08784},` +
		`"18446744073709551615",9007199254740992,"170141183460469231731687303715884105727","-9007199254740993",` +
		`"340282366920938463463374607431768211455",42,9223372036854775807]]`
	if string(b) != want {
		t.Errorf("row JSON:\n got %s\nwant %s", b, want)
	}
}

// TestProfileValueFidelity: a profile's min and max follow the same
// mapping, through the worker, the wire and the stored metadata.
func TestProfileValueFidelity(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, dataset.Config{})
	content := parquetFixture(t, `SELECT * FROM (VALUES
		(13.08784::FLOAT, CAST('12345678901234567.89' AS DECIMAL(20,2)), 18446744073709551615::UBIGINT,
		 TIMESTAMPTZ '2024-03-01 12:34:56.5+02', DATE '2024-03-01', TIME '12:34:56'),
		(2.5::FLOAT, CAST('-1.50' AS DECIMAL(20,2)), 1::UBIGINT,
		 TIMESTAMPTZ '2024-03-01 09:00:00+00', DATE '2024-02-29', TIME '08:00:00.5')
		) t(f, d, u, tstz, dt, tm)`)
	ds := mustCreate(t, s, "fidelity.parquet", content)
	prof, err := s.Profile(context.Background(), ds.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got [][]any
	var types []string
	for _, c := range prof.Columns {
		got = append(got, []any{c.Min, c.Max})
		types = append(types, c.Type)
	}
	requireSameJSON(t, types, []string{"FLOAT", "DECIMAL(20,2)", "UBIGINT", "TIMESTAMPTZ", "DATE", "TIME"})
	requireSameJSON(t, got, []any{
		[]any{json.Number("2.5"), json.Number("13.08784")},
		[]any{json.Number("-1.5"), json.Number("12345678901234567.89")},
		[]any{1, "18446744073709551615"},
		[]any{"2024-03-01T09:00:00Z", "2024-03-01T10:34:56.5Z"},
		[]any{"2024-02-29", "2024-03-01"},
		[]any{"08:00:00.5", "12:34:56"},
	})
}
