package pgsource

import (
	"strings"
	"testing"
)

// The caller's own text is checked for what planning would evaluate
// before the plan check could refuse it: denied calls in any case or
// quoting, calls and operators of other schemas, pg_catalog-qualified
// denied names, Unicode escapes and OID alias types.
func TestCheckNamesShouldRefuseDeniedCallsOtherSchemasAndHiddenNames(t *testing.T) {
	t.Parallel()
	allowed := []string{"shop", "Mixed"}
	for sql, want := range map[string]string{
		"SELECT 1 LIMIT table_to_xml('secret.cards', true, false, '')::text::int": "calls table_to_xml, which is not allowed",
		"SELECT database_to_xml(true, false, '')":                                 "calls database_to_xml",
		`SELECT "TABLE_TO_XML"('x', true, false, '')`:                             "calls TABLE_TO_XML, which is not allowed",
		"SELECT Table_To_Xml /* a comment */ ('x', true, false, '')":              "calls table_to_xml",
		"SELECT pg_catalog.database_to_xmlschema(true, false, '')":                "calls pg_catalog.database_to_xmlschema",
		"SELECT shop.cursor_to_xml('c', 1, true, false, '')":                      "calls shop.cursor_to_xml",
		"SELECT x FROM t WHERE y = some_table_to_xml(1)":                          "calls some_table_to_xml",
		"SELECT pg_stat_get_activity(NULL)":                                       "calls pg_stat_get_activity",
		"SELECT (pg_show_all_settings()).name":                                    "calls pg_show_all_settings",
		"SELECT pg_get_viewdef(12345)":                                            "calls pg_get_viewdef",
		"SELECT pg_filenode_relation(0, 1)":                                       "calls pg_filenode_relation",
		"SELECT to_regclass('secret.cards')":                                      "calls to_regclass",
		"SELECT secret.peek()":                                                    "calls secret.peek, outside the allowed schemas (shop, Mixed)",
		`SELECT "Secret".peek()`:                                                  "calls Secret.peek, outside the allowed schemas",
		`SELECT "mixed".f()`:                                                      "calls mixed.f, outside the allowed schemas",
		"SELECT db.secret.peek()":                                                 "calls secret.peek, outside",
		"SELECT 1 LIMIT 1 OPERATOR(secret.+++) 1":                                 "uses an operator of schema secret",
		"SELECT pg_catalog . lo_import":                                           "names pg_catalog.lo_import, which is not allowed",
		`SELECT U&"\0074able_to_xml"('x', true, false, '')`:                       "Unicode-escape",
		`SELECT u&'\0073ecret.cards'`:                                             "Unicode-escape",
		"SELECT 'secret.cards'::regclass":                                         "uses the type regclass",
		`SELECT CAST('secret.v' AS "RegClass")`:                                   "uses the type regclass",
		"SELECT 'f'::regprocedure":                                                "uses the type regprocedure",
	} {
		_, ge := checkNames(sql, allowed)
		if ge == nil || !strings.Contains(ge.Error(), want) {
			t.Errorf("checkNames(%q) = %v, want %q", sql, ge, want)
		}
	}
}

// What checkNames cannot settle is handed to the catalog: qualifiers that
// may be an alias or a schema, and the calls that may name a function of
// an allowed schema. Allowed schemas, pg_catalog, strings and comments
// pass.
func TestCheckNamesShouldLeaveAliasesAndAllowedNamesToTheCatalog(t *testing.T) {
	t.Parallel()
	allowed := []string{"shop", "Mixed"}
	names, ge := checkNames(`SELECT o.id, shop.orders.amount, "Mixed".f(1), pg_catalog.upper(o.name), u & 1, x::secret.dom,
	'table_to_xml(1)', $$ secret.peek() $$, e'U&"x"' -- pg_read_file('x')
	FROM shop.orders o JOIN secret.cards c ON true, db.other.t WHERE lower(c.num) = 'x'`, allowed)
	if ge != nil {
		t.Fatalf("checkNames refused: %v", ge)
	}
	var quals []string
	for _, q := range names.qualifiers {
		s := q.String()
		if q.isType {
			s = "::" + s
		}
		quals = append(quals, s)
	}
	if got := strings.Join(quals, ","); got != "o.id,orders.amount,o.name,::secret.dom,secret.cards,db.other,other.t,c.num" {
		t.Errorf("qualifiers = %s", got)
	}
	if got := strings.Join(names.calls, ","); got != "f,lower" {
		t.Errorf("calls = %s", got)
	}
	// A name past 63 bytes is cut as the server cuts it.
	long := strings.Repeat("s", 70)
	names, _ = checkNames("SELECT 1 FROM "+long+".t", allowed)
	if len(names.qualifiers) != 1 || names.qualifiers[0].qualifier != long[:63] {
		t.Errorf("qualifiers of a long name = %v", names.qualifiers)
	}
}

// A Foreign Scan that pushes a join or an aggregate down names its
// relations only in "Relations"; a node that names none is refused.
func TestCheckPlanShouldNameTheRelationsOfAForeignOrCustomScan(t *testing.T) {
	t.Parallel()
	rep, ge := checkPlan([]byte(`[{"Plan": {"Node Type": "Foreign Scan", "Operation": "Select",
		"Output": ["(string_agg(num, ','::text))"], "Relations": "(secret.ft a) INNER JOIN (\"Other\".\"F t\" b)",
		"Remote SQL": "SELECT string_agg(num, ',') FROM secret.cards"}}]`), []string{"shop"})
	if ge != nil {
		t.Fatal(ge)
	}
	if len(rep.relations) != 2 || rep.relations[0].String() != "Other.F t" || rep.relations[1].String() != "secret.ft" {
		t.Fatalf("relations = %v", rep.relations)
	}
	for _, plan := range []string{
		`[{"Plan": {"Node Type": "Foreign Scan", "Operation": "Select", "Output": ["x"]}}]`,
		`[{"Plan": {"Node Type": "Foreign Scan", "Operation": "Select", "Relations": "Aggregate on ()"}}]`,
		`[{"Plan": {"Node Type": "Custom Scan", "Custom Plan Provider": "x", "Output": ["x"]}}]`,
	} {
		if _, ge := checkPlan([]byte(plan), []string{"shop"}); ge == nil || !strings.Contains(ge.Error(), "names no relation") {
			t.Errorf("checkPlan(%s) = %v", plan, ge)
		}
	}
}

// The cap on a protocol message leaves room for plans and the catalog
// whatever the result cap, and grows with it.
func TestMaxMessageBodyLenShouldBeTwiceTheResultCapAtLeast8MiB(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cap  int64
		want int
	}{{1000, 8 << 20}, {1 << 20, 8 << 20}, {16 << 20, 32 << 20}, {1 << 40, 1<<31 - 1}} {
		if got := maxMessageBodyLen(Config{MaxResultBytes: tc.cap}); got != tc.want {
			t.Errorf("maxMessageBodyLen(%d) = %d, want %d", tc.cap, got, tc.want)
		}
	}
}
