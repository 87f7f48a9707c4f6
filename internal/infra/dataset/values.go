package dataset

// How DuckDB values appear in JSON: query results, profiles' min and max,
// and everything else that goes through jsonValue. The worker encodes
// them, the wire keeps numbers as written (json.Number), and the API
// re-encodes them unchanged.
//
//	DuckDB type                       JSON
//	--------------------------------  ------------------------------------------------
//	BOOLEAN                           true / false
//	TINYINT … BIGINT, UTINYINT …      number
//	  UINTEGER
//	UBIGINT, HUGEINT, UHUGEINT,       number within ±2^53 (9007199254740992);
//	  BIGNUM                          beyond it a string of the exact value:
//	                                  "18446744073709551615"
//	FLOAT                             number, shortest 32-bit form: 13.08784
//	DOUBLE                            number, shortest 64-bit form
//	FLOAT/DOUBLE NaN, ±infinity       "NaN", "Infinity", "-Infinity"
//	DECIMAL(w,s)                      number, exact, trailing zeros dropped:
//	                                  12345678901234567.89, 1.50 → 1.5
//	DATE                              "2024-03-01"
//	TIME                              "12:34:56", "12:34:56.123456"
//	TIMETZ                            "12:34:56+02:00", "12:34:56Z"
//	TIMESTAMP (_S, _MS, _NS)          "2024-03-01T12:34:56Z", "…56.123456Z"
//	TIMESTAMPTZ                       the instant in UTC: "2024-03-01T10:34:56Z"
//	INTERVAL                          "1 year 2 months 3 days 04:05:06.5"
//	VARCHAR, ENUM                     string
//	UUID                              "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
//	BLOB                              string; bytes that are not UTF-8 as \xNN
//	BIT                               "0101"
//	LIST, ARRAY                       array
//	STRUCT                            object keyed by field name
//	MAP                               object keyed by the key's JSON text
//	                                  (a string as is, a number as written)
//	UNION                             the value of its member
//	JSON                              the document
//	NULL                              null
//
// Nested values follow the same rules: a FLOAT in a LIST is 13.08784 too,
// and a DATE in a STRUCT is "2024-03-01".

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// maxSafeInt is 2^53: every integer up to it in magnitude is exact in an
// IEEE double, so a JavaScript client reads it right. Larger unsigned and
// huge integers are sent as strings.
const maxSafeInt = 1 << 53

// jsonValue converts a value scanned from DuckDB into one that
// encoding/json encodes as the table at the top of this file says. dbType
// is DuckDB's type name for the value ("" when unknown); it tells a UUID
// from a BLOB and a DATE from a TIMESTAMP, which the driver returns as the
// same Go types, and it is followed into LIST, ARRAY, STRUCT, MAP and
// UNION members. Numbers that encoding/json would not print exactly
// (FLOAT, DECIMAL, huge integers) become json.Number, which the wire's
// decoder (UseNumber) and the API's encoder both keep as written.
func jsonValue(v any, dbType string) any {
	switch x := v.(type) {
	case nil, bool, string, int8, int16, int32, int64, int, uint8, uint16, uint32:
		return x
	case uint64:
		return unsignedValue(x)
	case uint:
		return unsignedValue(uint64(x))
	case float32:
		return jsonFloat32(x)
	case float64:
		return jsonFloat(x)
	case *big.Int:
		if x == nil {
			return nil
		}
		return bigIntValue(x)
	case duckdb.Decimal:
		if x.Value == nil {
			return nil
		}
		return decimalNumber(x)
	case duckdb.UUID:
		return x.String()
	case *duckdb.UUID:
		if x == nil {
			return nil
		}
		return x.String()
	case []byte:
		if dbType == "UUID" && len(x) == 16 {
			u := duckdb.UUID(x)
			return u.String()
		}
		return blobString(x)
	case time.Time:
		return timeString(x, dbType)
	case duckdb.Interval:
		return intervalString(x)
	case duckdb.OrderedMap:
		keyType, valType := mapTypes(dbType)
		out := make(map[string]any, x.Len())
		vals := x.Values()
		for i, k := range x.Keys() {
			out[mapKey(jsonValue(k, keyType))] = jsonValue(vals[i], valType)
		}
		return out
	case duckdb.Map:
		keyType, valType := mapTypes(dbType)
		out := make(map[string]any, len(x))
		for k, val := range x {
			out[mapKey(jsonValue(k, keyType))] = jsonValue(val, valType)
		}
		return out
	case []any:
		elem := listElem(dbType)
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonValue(e, elem)
		}
		return out
	case map[string]any:
		fields := memberTypes(dbType, "STRUCT(")
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonValue(e, fields[k])
		}
		return out
	case duckdb.Union:
		return jsonValue(x.Value, memberTypes(dbType, "UNION(")[x.Tag])
	case fmt.Stringer:
		return x.String()
	}
	// Anything else the driver may add later: its text is the safest
	// JSON-encodable form.
	return fmt.Sprint(v)
}

// jsonFloat passes a DOUBLE on as float64, which encoding/json prints in
// its shortest exact form; NaN and infinities, which JSON cannot carry,
// become strings.
func jsonFloat(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return f
}

// jsonFloat32 prints a FLOAT in its shortest 32-bit form (13.08784, where
// float64 would print 13.08784008026123), laid out as encoding/json lays
// out a float32: plain digits, or an exponent below 1e-6 and from 1e21.
// NaN and infinities become strings, as for DOUBLE.
func jsonFloat32(f float32) any {
	f64 := float64(f)
	if math.IsNaN(f64) || math.IsInf(f64, 0) {
		return jsonFloat(f64)
	}
	format := byte('f')
	if a := float32(math.Abs(f64)); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	b := strconv.AppendFloat(nil, f64, format, -1, 32)
	if format == 'e' {
		// 1e-07 → 1e-7, as encoding/json writes it.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return json.Number(b)
}

// unsignedValue keeps a UBIGINT a number up to 2^53 and makes it an exact
// string beyond.
func unsignedValue(u uint64) any {
	if u > maxSafeInt {
		return strconv.FormatUint(u, 10)
	}
	return u
}

// bigIntValue keeps a HUGEINT, UHUGEINT or BIGNUM a number within ±2^53
// and makes it an exact string beyond.
func bigIntValue(x *big.Int) any {
	if x.IsInt64() {
		if n := x.Int64(); n >= -maxSafeInt && n <= maxSafeInt {
			return json.Number(strconv.FormatInt(n, 10))
		}
	}
	return x.String()
}

// decimalNumber writes a DECIMAL exactly, as DuckDB would print it but
// without trailing zeros in the fraction (1.50 → 1.5, 2.00 → 2), the form
// encoding/json gives any other number.
func decimalNumber(d duckdb.Decimal) json.Number {
	digits := new(big.Int).Abs(d.Value).String()
	if scale := int(d.Scale); scale > 0 {
		if len(digits) <= scale {
			digits = strings.Repeat("0", scale-len(digits)+1) + digits
		}
		whole := digits[:len(digits)-scale]
		frac := strings.TrimRight(digits[len(digits)-scale:], "0")
		digits = whole
		if frac != "" {
			digits += "." + frac
		}
	}
	if d.Value.Sign() < 0 {
		digits = "-" + digits
	}
	return json.Number(digits)
}

// timeString writes dates and times in ISO 8601, with fractional seconds
// only when present. The driver returns TIMESTAMP as UTC and TIMESTAMPTZ
// as its instant; both are written in UTC with a Z.
func timeString(t time.Time, dbType string) string {
	switch dbType {
	case "DATE":
		return t.Format(time.DateOnly)
	case "TIME":
		return t.Format("15:04:05.999999")
	case "TIMETZ":
		return t.Format("15:04:05.999999Z07:00")
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// blobString renders bytes as text: as-is when valid UTF-8, else with
// DuckDB's \xNN escapes for the invalid bytes (JSON would otherwise
// replace them with U+FFFD and lose them).
func blobString(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size <= 1 {
			sb.WriteString(`\x`)
			sb.WriteString(strings.ToUpper(hex.EncodeToString(b[:1])))
			b = b[1:]
			continue
		}
		sb.Write(b[:size])
		b = b[size:]
	}
	return sb.String()
}

// intervalString renders an interval the way DuckDB prints one:
// "1 year 2 months 3 days 04:05:06.5".
func intervalString(iv duckdb.Interval) string {
	var parts []string
	plural := func(n int64, unit string) {
		if n == 0 {
			return
		}
		if n == 1 || n == -1 {
			parts = append(parts, fmt.Sprintf("%d %s", n, unit))
			return
		}
		parts = append(parts, fmt.Sprintf("%d %ss", n, unit))
	}
	plural(int64(iv.Months/12), "year")
	plural(int64(iv.Months%12), "month")
	plural(int64(iv.Days), "day")
	if iv.Micros != 0 || len(parts) == 0 {
		us := iv.Micros
		sign := ""
		if us < 0 {
			sign, us = "-", -us
		}
		h, us := us/3_600_000_000, us%3_600_000_000
		m, us := us/60_000_000, us%60_000_000
		sec, us := us/1_000_000, us%1_000_000
		t := fmt.Sprintf("%s%02d:%02d:%02d", sign, h, m, sec)
		if us != 0 {
			t += strings.TrimRight(fmt.Sprintf(".%06d", us), "0")
		}
		parts = append(parts, t)
	}
	return strings.Join(parts, " ")
}

// mapKey is the object key for a MAP key already converted by jsonValue:
// strings as they are, numbers as written.
func mapKey(k any) string {
	switch x := k.(type) {
	case string:
		return x
	case json.Number:
		return string(x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case int64:
		return strconv.FormatInt(x, 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case nil:
		return "null"
	}
	if b, err := json.Marshal(k); err == nil {
		return string(b) // a nested key: its JSON text
	}
	return fmt.Sprint(k)
}

// listElem returns the element type of "T[]" or "T[n]".
func listElem(dbType string) string {
	if !strings.HasSuffix(dbType, "]") {
		return ""
	}
	if i := strings.LastIndexByte(dbType, '['); i > 0 {
		return dbType[:i]
	}
	return ""
}

// mapTypes splits "MAP(K, V)" into K and V, which may be nested types.
func mapTypes(dbType string) (string, string) {
	inner, ok := strings.CutPrefix(dbType, "MAP(")
	if !ok || !strings.HasSuffix(inner, ")") {
		return "", ""
	}
	parts := splitTypeList(strings.TrimSuffix(inner, ")"))
	if len(parts) != 2 {
		return "", ""
	}
	return parts[0], parts[1]
}

// memberTypes maps the member names of `STRUCT("a" T, …)` or
// `UNION("a" T, …)` (prefix "STRUCT(" or "UNION(") to their types; nil
// when dbType is not of that form. The driver quotes every name, doubling
// a quote inside it.
func memberTypes(dbType, prefix string) map[string]string {
	inner, ok := strings.CutPrefix(dbType, prefix)
	if !ok || !strings.HasSuffix(inner, ")") {
		return nil
	}
	parts := splitTypeList(strings.TrimSuffix(inner, ")"))
	out := make(map[string]string, len(parts))
	for _, p := range parts {
		name, typ, ok := cutMember(p)
		if !ok {
			return nil
		}
		out[name] = typ
	}
	return out
}

// cutMember splits `"name" TYPE` (or `name TYPE`) into the unquoted name
// and the type.
func cutMember(s string) (name, typ string, ok bool) {
	if !strings.HasPrefix(s, `"`) {
		name, typ, ok = strings.Cut(s, " ")
		return name, strings.TrimSpace(typ), ok
	}
	var sb strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] != '"' {
			sb.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '"' {
			sb.WriteByte('"')
			i++
			continue
		}
		rest, found := strings.CutPrefix(s[i+1:], " ")
		return sb.String(), strings.TrimSpace(rest), found
	}
	return "", "", false
}

// splitTypeList splits a comma-separated list of types or members at its
// top level, ignoring commas inside parentheses, brackets and quoted
// names, and trims each part.
func splitTypeList(s string) []string {
	var parts []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			quoted = !quoted // a doubled quote toggles twice
		case quoted:
		case c == '(' || c == '[':
			depth++
		case c == ')' || c == ']':
			depth--
		case c == ',' && depth == 0:
			parts = append(parts, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
	}
	return append(parts, strings.TrimSpace(s[start:]))
}
