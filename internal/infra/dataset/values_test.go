package dataset

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math"
	"math/big"
	"testing"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

func bigInt(tb testing.TB, s string) *big.Int {
	tb.Helper()
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		tb.Fatalf("bad big.Int %q", s)
	}
	return n
}

func orderedMap(kv ...any) duckdb.OrderedMap {
	var m duckdb.OrderedMap
	for i := 0; i < len(kv); i += 2 {
		m.Set(kv[i], kv[i+1])
	}
	return m
}

// TestJSONValue checks each DuckDB type's JSON, both as the worker encodes
// it and as the server hands it on after the wire (a frame decoded with
// UseNumber, then Store.result), which must be the same text.
func TestJSONValue(t *testing.T) {
	t.Parallel()
	at := time.Date(2024, 3, 1, 12, 34, 56, 0, time.UTC)
	clock := time.Date(1, 1, 1, 12, 34, 56, 0, time.UTC)
	plus2 := time.FixedZone("", 2*3600)
	uuid := []byte{0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}
	tests := []struct {
		name   string
		v      any
		dbType string
		want   string
	}{
		{"null", nil, "INTEGER", `null`},
		{"boolean", true, "BOOLEAN", `true`},
		{"integer", int32(-7), "INTEGER", `-7`},
		{"bigint beyond 2^53 stays a number", int64(math.MaxInt64), "BIGINT", `9223372036854775807`},

		{"float keeps 32-bit precision", float32(13.08784), "FLOAT", `13.08784`},
		{"float tenth", float32(0.1), "FLOAT", `0.1`},
		{"float integral", float32(2.5e6), "FLOAT", `2500000`},
		{"float tiny", float32(1e-7), "FLOAT", `1e-7`},
		{"float huge", float32(1e21), "FLOAT", `1e+21`},
		{"float max", float32(math.MaxFloat32), "FLOAT", `3.4028235e+38`},
		{"float negative zero", float32(math.Copysign(0, -1)), "FLOAT", `-0`},
		{"float NaN", float32(math.NaN()), "FLOAT", `"NaN"`},
		{"float infinity", float32(math.Inf(1)), "FLOAT", `"Infinity"`},
		{"float minus infinity", float32(math.Inf(-1)), "FLOAT", `"-Infinity"`},
		{"double", 13.08784008026123, "DOUBLE", `13.08784008026123`},
		{"double NaN", math.NaN(), "DOUBLE", `"NaN"`},

		{"decimal exact", duckdb.Decimal{Width: 20, Scale: 2, Value: bigInt(t, "1234567890123456789")}, "DECIMAL(20,2)", `12345678901234567.89`},
		{"decimal 38 digits", duckdb.Decimal{Width: 38, Scale: 10, Value: bigInt(t, "-12345678901234567890123456789012345678")}, "DECIMAL(38,10)", `-1234567890123456789012345678.9012345678`},
		{"decimal below one", duckdb.Decimal{Width: 10, Scale: 2, Value: big.NewInt(-5)}, "DECIMAL(10,2)", `-0.05`},
		{"decimal trailing zero", duckdb.Decimal{Width: 10, Scale: 2, Value: big.NewInt(150)}, "DECIMAL(10,2)", `1.5`},
		{"decimal whole", duckdb.Decimal{Width: 10, Scale: 2, Value: big.NewInt(200)}, "DECIMAL(10,2)", `2`},
		{"decimal zero", duckdb.Decimal{Width: 10, Scale: 2, Value: big.NewInt(0)}, "DECIMAL(10,2)", `0`},
		{"decimal scale 0", duckdb.Decimal{Width: 18, Scale: 0, Value: big.NewInt(-42)}, "DECIMAL(18,0)", `-42`},
		{"decimal null", duckdb.Decimal{Width: 10, Scale: 2}, "DECIMAL(10,2)", `null`},

		{"hugeint small", big.NewInt(42), "HUGEINT", `42`},
		{"hugeint 2^53", big.NewInt(1 << 53), "HUGEINT", `9007199254740992`},
		{"hugeint -2^53", big.NewInt(-1 << 53), "HUGEINT", `-9007199254740992`},
		{"hugeint 2^53+1", big.NewInt(1<<53 + 1), "HUGEINT", `"9007199254740993"`},
		{"hugeint -2^53-1", big.NewInt(-1<<53 - 1), "HUGEINT", `"-9007199254740993"`},
		{"hugeint max", bigInt(t, "170141183460469231731687303715884105727"), "HUGEINT", `"170141183460469231731687303715884105727"`},
		{"uhugeint max", bigInt(t, "340282366920938463463374607431768211455"), "UHUGEINT", `"340282366920938463463374607431768211455"`},
		{"ubigint small", uint64(7), "UBIGINT", `7`},
		{"ubigint 2^53", uint64(1 << 53), "UBIGINT", `9007199254740992`},
		{"ubigint 2^53+1", uint64(1<<53 + 1), "UBIGINT", `"9007199254740993"`},
		{"ubigint max", uint64(math.MaxUint64), "UBIGINT", `"18446744073709551615"`},

		{"date", at.Truncate(24 * time.Hour), "DATE", `"2024-03-01"`},
		{"timestamp", at, "TIMESTAMP", `"2024-03-01T12:34:56Z"`},
		{"timestamp fraction", at.Add(123456 * time.Microsecond), "TIMESTAMP", `"2024-03-01T12:34:56.123456Z"`},
		{"timestamp half second", at.Add(500 * time.Millisecond), "TIMESTAMP", `"2024-03-01T12:34:56.5Z"`},
		{"timestamp_ns", at.Add(1), "TIMESTAMP_NS", `"2024-03-01T12:34:56.000000001Z"`},
		{"timestamptz in UTC", at.In(plus2), "TIMESTAMPTZ", `"2024-03-01T12:34:56Z"`},
		{"time", clock, "TIME", `"12:34:56"`},
		{"time fraction", clock.Add(250 * time.Millisecond), "TIME", `"12:34:56.25"`},
		{"timetz", time.Date(1, 1, 1, 12, 34, 56, 0, plus2), "TIMETZ", `"12:34:56+02:00"`},
		{"timetz utc", clock, "TIMETZ", `"12:34:56Z"`},
		{"interval", duckdb.Interval{Months: 14, Days: 3, Micros: 14706500000}, "INTERVAL", `"1 year 2 months 3 days 04:05:06.5"`},

		{"uuid", uuid, "UUID", `"6ba7b810-9dad-11d1-80b4-00c04fd430c8"`},
		{"blob", []byte("a\xffb"), "BLOB", `"a\\xFFb"`},
		{"bit", duckdb.Bit{Data: []byte{4, 0x05}}, "BIT", `"0101"`},

		{"list of float", []any{float32(1.5), float32(13.08784), nil}, "FLOAT[]", `[1.5,13.08784,null]`},
		{"array of date", []any{at, at}, "DATE[2]", `["2024-03-01","2024-03-01"]`},
		{"list of uuid", []any{uuid}, "UUID[]", `["6ba7b810-9dad-11d1-80b4-00c04fd430c8"]`},
		{"list of list of decimal", []any{[]any{duckdb.Decimal{Width: 20, Scale: 2, Value: bigInt(t, "1234567890123456789")}}}, "DECIMAL(20,2)[][]", `[[12345678901234567.89]]`},
		{"list of ubigint", []any{uint64(math.MaxUint64), uint64(1)}, "UBIGINT[]", `["18446744073709551615",1]`},
		{
			"struct", map[string]any{"a": int32(1), "b": "x"},
			`STRUCT("a" INTEGER, "b" VARCHAR)`, `{"a":1,"b":"x"}`,
		},
		{
			"struct of nested types",
			map[string]any{
				"d": at, `say "hi", ok`: clock, "l": []any{float32(13.08784)},
				"s": map[string]any{"t": at.Add(500 * time.Millisecond)},
			},
			`STRUCT("d" DATE, "say ""hi"", ok" TIME, "l" FLOAT[], "s" STRUCT("t" TIMESTAMP))`,
			`{"d":"2024-03-01","l":[13.08784],"s":{"t":"2024-03-01T12:34:56.5Z"},"say \"hi\", ok":"12:34:56"}`,
		},
		{"list of struct", []any{map[string]any{"d": at}}, `STRUCT("d" DATE)[]`, `[{"d":"2024-03-01"}]`},
		{"map", orderedMap("k", int32(1)), "MAP(VARCHAR, INTEGER)", `{"k":1}`},
		{
			"map of date to decimal", orderedMap(at, duckdb.Decimal{Width: 10, Scale: 2, Value: big.NewInt(150)}),
			"MAP(DATE, DECIMAL(10,2))", `{"2024-03-01":1.5}`,
		},
		{"map of float keys", orderedMap(float32(13.08784), "x"), "MAP(FLOAT, VARCHAR)", `{"13.08784":"x"}`},
		{"map of hugeint keys", orderedMap(bigInt(t, "170141183460469231731687303715884105727"), true), "MAP(HUGEINT, BOOLEAN)", `{"170141183460469231731687303715884105727":true}`},
		{
			"map of struct", orderedMap(int32(1), map[string]any{"t": clock}),
			`MAP(INTEGER, STRUCT("t" TIME))`, `{"1":{"t":"12:34:56"}}`,
		},
		{"map of list keys", orderedMap([]any{int32(1), int32(2)}, "x"), "MAP(INTEGER[], VARCHAR)", `{"[1,2]":"x"}`},
		{"union", duckdb.Union{Tag: "d", Value: at}, `UNION("n" INTEGER, "d" DATE)`, `"2024-03-01"`},
		{"unknown type falls back", []any{at}, "", `["2024-03-01T12:34:56Z"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := json.Marshal(jsonValue(tt.v, tt.dbType))
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			if string(b) != tt.want {
				t.Errorf("worker JSON: got %s, want %s", b, tt.want)
			}
			if got := afterWire(t, tt.v, tt.dbType); got != tt.want {
				t.Errorf("server JSON: got %s, want %s", got, tt.want)
			}
		})
	}
}

// afterWire sends v as a one-column row the way a query does (worker.go's
// collect, wire.go's frames, Store.result) and returns the JSON the API
// would write for it.
func afterWire(tb testing.TB, v any, dbType string) string {
	tb.Helper()
	row, err := json.Marshal([]any{jsonValue(v, dbType)})
	if err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	err = writeFrame(&buf, reply{Columns: []Column{{Name: "c", Type: dbType}}, Rows: []json.RawMessage{row}, RowCount: 1})
	if err != nil {
		tb.Fatal(err)
	}
	var rep reply
	if err := readFrame(bufio.NewReader(&buf), &rep); err != nil {
		tb.Fatal(err)
	}
	res, err := (&Store{}).result(rep)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := json.Marshal(res.Rows[0][0])
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// TestJSONFloat32MatchesEncodingJSON: a FLOAT is written exactly as
// encoding/json writes a float32.
func TestJSONFloat32MatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, f := range []float32{
		0, 1, -1, 0.1, 13.08784, 1e-6, 9.999999e-7, 1e-7, 1.5e-45, 123456.79, 16777216, 1e20, 9.99999e20, 1e21, -3.4028235e38,
		math.SmallestNonzeroFloat32, math.MaxFloat32, float32(math.Pi),
	} {
		want, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := json.Marshal(jsonFloat32(f))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%v: got %s, want %s", f, got, want)
		}
	}
}

func TestMemberTypes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		dbType, prefix string
		want           map[string]string
	}{
		{`STRUCT("a" INTEGER, "b" DECIMAL(10,2))`, "STRUCT(", map[string]string{"a": "INTEGER", "b": "DECIMAL(10,2)"}},
		{`STRUCT("x, y" MAP(VARCHAR, STRUCT("p" FLOAT[])), "q""(" DATE[3])`, "STRUCT(", map[string]string{"x, y": `MAP(VARCHAR, STRUCT("p" FLOAT[]))`, `q"(`: "DATE[3]"}},
		{`STRUCT(a INTEGER)`, "STRUCT(", map[string]string{"a": "INTEGER"}},
		{`UNION("n" INTEGER, "s" VARCHAR)`, "UNION(", map[string]string{"n": "INTEGER", "s": "VARCHAR"}},
		{`INTEGER[]`, "STRUCT(", nil},
		{`STRUCT("a`, "STRUCT(", nil},
	}
	for _, tt := range tests {
		got := memberTypes(tt.dbType, tt.prefix)
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(tt.want)
		if string(g) != string(w) {
			t.Errorf("memberTypes(%q): got %s, want %s", tt.dbType, g, w)
		}
	}
	k, v := mapTypes(`MAP(STRUCT("a" INTEGER, "b" VARCHAR), MAP(VARCHAR, DECIMAL(10,2)))`)
	if k != `STRUCT("a" INTEGER, "b" VARCHAR)` || v != "MAP(VARCHAR, DECIMAL(10,2))" {
		t.Errorf("mapTypes: got %q, %q", k, v)
	}
}
