package dataset

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

// jsonValue converts a value scanned from DuckDB into one that
// encoding/json encodes faithfully. dbType is DuckDB's type name for the
// column ("" when unknown); it tells a UUID from a BLOB and a DATE from a
// TIMESTAMP, which the driver returns as the same Go types.
//
// Decimals become float64; HUGEINT and other big integers become
// json.Number (exact); UUIDs, times, intervals and blobs become strings;
// NaN and infinities, which JSON cannot carry, become the strings "NaN",
// "Infinity" and "-Infinity"; maps become objects keyed by the key's text.
func jsonValue(v any, dbType string) any {
	switch x := v.(type) {
	case nil, bool, string, int8, int16, int32, int64, int, uint8, uint16, uint32, uint64, uint:
		return x
	case float32:
		return jsonFloat(float64(x))
	case float64:
		return jsonFloat(x)
	case *big.Int:
		if x == nil {
			return nil
		}
		return json.Number(x.String())
	case duckdb.Decimal:
		if x.Value == nil {
			return nil
		}
		return jsonFloat(x.Float64())
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
		switch dbType {
		case "DATE":
			return x.Format(time.DateOnly)
		case "TIME":
			return x.Format("15:04:05.999999")
		}
		return x.Format(time.RFC3339Nano)
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
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonValue(e, "")
		}
		return out
	case duckdb.Union:
		return jsonValue(x.Value, "")
	case fmt.Stringer:
		return x.String()
	}
	// Anything else the driver may add later: its text is the safest
	// JSON-encodable form.
	return fmt.Sprint(v)
}

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

func mapKey(k any) string {
	switch x := k.(type) {
	case string:
		return x
	case json.Number:
		return string(x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
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

// mapTypes splits "MAP(K, V)" for the simple cases (scalar K and V).
func mapTypes(dbType string) (string, string) {
	inner, ok := strings.CutPrefix(dbType, "MAP(")
	if !ok || !strings.HasSuffix(inner, ")") {
		return "", ""
	}
	k, v, ok := strings.Cut(strings.TrimSuffix(inner, ")"), ", ")
	if !ok || strings.ContainsAny(k, "(,") {
		return "", ""
	}
	return k, v
}
