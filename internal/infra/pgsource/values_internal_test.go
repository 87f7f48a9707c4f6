package pgsource

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
)

func TestConvertersShouldMapPostgresTextToJSON(t *testing.T) {
	t.Parallel()
	tm := pgtype.NewMap()
	for _, tc := range []struct {
		oid  uint32
		text string
		want string
	}{
		{pgtype.Int8OID, "9007199254740992", "9007199254740992"},
		{pgtype.Int8OID, "-9007199254740993", `"-9007199254740993"`},
		{pgtype.Float4OID, "13.08784", "13.08784"},
		{pgtype.Float4OID, "Infinity", `"Infinity"`},
		{pgtype.Float8OID, "1e+300", "1e+300"},
		{pgtype.NumericOID, "-0.000000000000000000001", "-0.000000000000000000001"},
		{pgtype.BoolOID, "f", "false"},
		{pgtype.TimestamptzOID, "2024-01-31 13:45:00+05:30", `"2024-01-31T13:45:00+05:30"`},
		{pgtype.TimestamptzOID, "2024-01-31 13:45:00-08", `"2024-01-31T13:45:00-08:00"`},
		{pgtype.TimestamptzOID, "-infinity", `"-infinity"`},
		{pgtype.TimestampOID, "0044-03-15 12:00:00 BC", `"0044-03-15 12:00:00 BC"`},
		{pgtype.JSONBOID, `{"a": 1}`, `{"a":1}`},
		{pgtype.Int4ArrayOID, "{{1,NULL},{3,4}}", "[[1,null],[3,4]]"},
		{pgtype.Int4ArrayOID, "[0:1]={5,6}", "[5,6]"},
		{pgtype.TextArrayOID, `{"a,b","\"q\"",NULL,"NULL",""}`, `["a,b","\"q\"",null,"NULL",""]`},
		{pgtype.TextArrayOID, "{unclosed", `"{unclosed"`},
		{pgtype.BoxArrayOID, "{(1,1),(0,0);(2,2),(1,1)}", `["(1,1),(0,0)","(2,2),(1,1)"]`},
		{pgtype.TimestamptzArrayOID, `{"2024-01-01 00:00:00+00"}`, `["2024-01-01T00:00:00Z"]`},
		{999999, "(1,\"x y\")", `"(1,\"x y\")"`},
	} {
		got, err := json.Marshal(converterFor(tm, tc.oid)([]byte(tc.text)))
		if err != nil || string(got) != tc.want {
			t.Errorf("oid %d %q: got %s (%v), want %s", tc.oid, tc.text, got, err, tc.want)
		}
	}
	if v := converterFor(tm, pgtype.Int4OID)(nil); v != nil {
		t.Errorf("NULL: %v", v)
	}
}

func TestScrubShouldHideTheDSNPasswordsAndPaths(t *testing.T) {
	t.Parallel()
	dsn := "postgres://reader:hunter2pw@db.internal:5432/sales?sslmode=require"
	sc := newScrubber(dsn, "hunter2pw")
	for _, msg := range []string{
		"failed: " + dsn,
		"cannot parse `host=db password=hunter2pw user=reader`: invalid port",
		"auth failed for password='hunter2pw x' please",
		`could not open file "/var/lib/postgresql/15/main/pg_hba.conf": denied`,
		"socket /var/run/postgresql/.s.PGSQL.5432 refused",
	} {
		got := sc.scrub(msg)
		for _, bad := range []string{"hunter2pw", "/var/lib", "/var/run", "reader:"} {
			if strings.Contains(got, bad) {
				t.Errorf("scrub(%q) = %q still holds %q", msg, got, bad)
			}
		}
	}
}
