package pgsource_test

import (
	"encoding/json"
	"testing"

	"github.com/nexus/nexus/internal/infra/pgsource"
)

// Every value comes back JSON-friendly and faithful: real keeps 32-bit
// digits, numeric is exact, bigints past 2^53 are strings, times are ISO
// 8601, json is JSON, arrays are arrays.
func TestQueryShouldConvertValuesFaithfullyToJSON(t *testing.T) {
	t.Parallel()
	s := openRO(t, pgsource.Config{})
	res := query(t, s, `SELECT
	13.08784::real AS f4, 1.1::float8 AS f8, 'NaN'::float8 AS nan, '-Infinity'::real AS ninf,
	12345678901234567890.123456789::numeric AS num, 'NaN'::numeric AS numnan, 12.50::numeric(10,2) AS money,
	(2^60)::bigint AS big, 9007199254740992::bigint AS edge, 9007199254740993::bigint AS over, -5::int2 AS small,
	true AS yes, NULL::int AS nothing,
	'2024-01-31'::date AS d, '2024-01-31 13:45:00.123456'::timestamp AS ts,
	'2024-01-31 13:45:00+02'::timestamptz AS tstz, 'infinity'::timestamp AS forever,
	'13:45:00'::time AS tm, '13:45:00+02'::timetz AS tmtz,
	'1 year 2 mons 3 days 04:05:06'::interval AS iv,
	'\x01ff'::bytea AS bin,
	'{"a": [1, 2.50, 12345678901234567890]}'::jsonb AS jb, '{"b":1}'::json AS j,
	ARRAY[[1, 2], [3, 4]] AS grid, ARRAY['a b', 'c"d', NULL, 'NULL', 'x\y'] AS words, ARRAY[1.5::numeric] AS nums,
	ARRAY['2024-01-01'::date] AS dates, '{}'::int[] AS empty, ARRAY['{"k": 1}'::jsonb] AS docs,
	'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS id, '192.168.0.1/24'::inet AS net,
	ROW(1, 'a') AS rec, int4range(1, 5) AS rng`)
	got, err := json.Marshal(res.Rows)
	if err != nil {
		t.Fatal(err)
	}
	want := `[[13.08784,1.1,"NaN","-Infinity",12345678901234567890.123456789,"NaN",12.50,` +
		`"1152921504606846976",9007199254740992,"9007199254740993",-5,true,null,` +
		`"2024-01-31","2024-01-31T13:45:00.123456","2024-01-31T11:45:00Z","infinity","13:45:00","13:45:00+02:00",` +
		`"P1Y2M3DT4H5M6S","\\x01ff",{"a":[1,2.50,12345678901234567890]},{"b":1},` +
		`[[1,2],[3,4]],["a b","c\"d",null,"NULL","x\\y"],[1.5],["2024-01-01"],[],[{"k":1}],` +
		`"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","192.168.0.1/24","(1,a)","[1,5)"]]`
	if string(got) != want {
		t.Fatalf("rows as JSON:\n got %s\nwant %s", got, want)
	}
	if v, ok := res.Rows[0][0].(float32); !ok || v != 13.08784 {
		t.Fatalf("real: %T %v", res.Rows[0][0], res.Rows[0][0])
	}
	types := map[string]string{}
	for _, c := range res.Columns {
		types[c.Name] = c.Type
	}
	for name, want := range map[string]string{"f4": "real", "money": "numeric(10,2)", "big": "bigint", "small": "smallint",
		"tstz": "timestamp with time zone", "grid": "integer[]", "jb": "jsonb", "id": "uuid", "rec": "record"} {
		if types[name] != want {
			t.Errorf("column %s has type %q, want %q", name, types[name], want)
		}
	}
}
