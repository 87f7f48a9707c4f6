package pgsource

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgtype"
)

// A converter turns one value, as PostgreSQL's text output sent it (nil for
// NULL), into a JSON-friendly Go value. The session settings that
// configurePool sets (DateStyle ISO, IntervalStyle iso_8601, TimeZone UTC,
// bytea_output hex, extra_float_digits 1) fix the text forms read here.
//
// The mapping:
//
//	boolean                     true / false
//	smallint, integer, bigint   int64; beyond ±2^53 (JSON's exact integers) a string
//	real                        float32, so JSON shows its own digits (13.08784)
//	double precision            float64
//	NaN, ±Infinity (floats)     the strings "NaN", "Infinity", "-Infinity"
//	numeric                     json.Number with PostgreSQL's exact digits; NaN and
//	                            ±Infinity as strings
//	date                        "2024-01-31"
//	timestamp                   "2024-01-31T13:45:00.123456" (no zone, as stored)
//	timestamp with time zone    "2024-01-31T13:45:00.123456Z" (UTC)
//	time, time with time zone   "13:45:00", "13:45:00+02:00"
//	interval                    ISO 8601 duration: "P1Y2M3DT4H5M6S"
//	infinity dates, BC dates    PostgreSQL's text: "infinity", "0044-03-15 BC"
//	bytea                       "\x0102ff" (PostgreSQL's hex form)
//	json, jsonb                 the JSON itself (json.RawMessage)
//	arrays                      JSON arrays, nested for several dimensions, each
//	                            element converted by its type; arrays of types
//	                            pgx does not know (enums, composites) as text
//	anything else               PostgreSQL's text (text, uuid, inet, enum, range,
//	                            composite, geometric, xml, ...)
type converter func(b []byte) any

// maxExactInt is the largest integer a JSON number carries exactly in a
// float64 decoder (2^53).
const maxExactInt = 1 << 53

// converterFor returns the converter of a column of type oid. tm names
// the element type of an array type.
func converterFor(tm *pgtype.Map, oid uint32) converter {
	switch oid {
	case pgtype.BoolOID:
		return nullable(func(s string) any { return s == "t" })
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID, pgtype.OIDOID, pgtype.XIDOID, pgtype.CIDOID:
		return nullable(intValue)
	case pgtype.Float4OID:
		return nullable(func(s string) any { return floatValue(s, 32) })
	case pgtype.Float8OID:
		return nullable(func(s string) any { return floatValue(s, 64) })
	case pgtype.NumericOID:
		return nullable(numericValue)
	case pgtype.TimestampOID:
		return nullable(timestampValue)
	case pgtype.TimestamptzOID:
		return nullable(timestamptzValue)
	case pgtype.TimetzOID:
		return nullable(timetzValue)
	case pgtype.JSONOID, pgtype.JSONBOID:
		return func(b []byte) any {
			if b == nil {
				return nil
			}
			if !json.Valid(b) {
				return string(b)
			}
			return json.RawMessage(append([]byte(nil), b...))
		}
	}
	if tm != nil {
		if t, ok := tm.TypeForOID(oid); ok {
			if ac, ok := t.Codec.(*pgtype.ArrayCodec); ok && ac.ElementType != nil {
				elem := converterFor(tm, ac.ElementType.OID)
				delim := byte(',')
				if ac.ElementType.OID == pgtype.BoxOID {
					delim = ';'
				}
				return func(b []byte) any {
					if b == nil {
						return nil
					}
					v, ok := parseArray(string(b), delim, elem)
					if !ok {
						return string(b)
					}
					return v
				}
			}
		}
	}
	return nullable(func(s string) any { return s })
}

// nullable applies f to non-NULL values.
func nullable(f func(string) any) converter {
	return func(b []byte) any {
		if b == nil {
			return nil
		}
		return f(string(b))
	}
}

func intValue(s string) any {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return s // an oid above 2^63 cannot be; keep the text anyway
	}
	if n > maxExactInt || n < -maxExactInt {
		return s
	}
	return n
}

func floatValue(s string, bits int) any {
	switch s {
	case "NaN", "Infinity", "-Infinity":
		return s
	}
	f, err := strconv.ParseFloat(s, bits)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return s
	}
	if bits == 32 {
		return float32(f)
	}
	return f
}

func numericValue(s string) any {
	switch s {
	case "NaN", "Infinity", "-Infinity":
		return s
	}
	return json.Number(s)
}

// timestampValue turns "2024-01-31 13:45:00.5" into ISO 8601's
// "2024-01-31T13:45:00.5". BC and infinite values keep PostgreSQL's text.
func timestampValue(s string) any {
	if strings.HasSuffix(s, " BC") || !strings.Contains(s, " ") {
		return s
	}
	return strings.Replace(s, " ", "T", 1)
}

// timestamptzValue is timestampValue with the zone in ISO 8601 form
// ("+00" becomes "Z", "+05:30" stays).
func timestamptzValue(s string) any {
	if strings.HasSuffix(s, " BC") || !strings.Contains(s, " ") {
		return s
	}
	return isoZone(strings.Replace(s, " ", "T", 1))
}

func timetzValue(s string) any { return isoZone(s) }

// isoZone rewrites a trailing PostgreSQL offset: +00 to Z, +hh to +hh:00.
func isoZone(s string) string {
	i := strings.LastIndexAny(s, "+-")
	if i < 0 || i < strings.LastIndex(s, "T") || i < 8 {
		return s
	}
	zone := s[i:]
	switch {
	case zone == "+00" || zone == "-00" || zone == "+00:00":
		return s[:i] + "Z"
	case len(zone) == 3:
		return s + ":00"
	}
	return s
}

// parseArray parses PostgreSQL's text form of an array ("{1,2,NULL}",
// "{{1,2},{3,4}}", `{"a b","c\"d"}`, "[0:1]={1,2}") into nested []any, each
// element converted by elem. ok is false on text it does not understand.
func parseArray(s string, delim byte, elem converter) (any, bool) {
	if strings.HasPrefix(s, "[") {
		// Explicit bounds: drop the decoration.
		i := strings.Index(s, "=")
		if i < 0 {
			return nil, false
		}
		s = s[i+1:]
	}
	p := arrayParser{s: s, delim: delim, elem: elem}
	v, ok := p.parse()
	if !ok || p.i != len(p.s) {
		return nil, false
	}
	return v, true
}

type arrayParser struct {
	s     string
	i     int
	delim byte
	elem  converter
}

func (p *arrayParser) parse() ([]any, bool) {
	if p.i >= len(p.s) || p.s[p.i] != '{' {
		return nil, false
	}
	p.i++
	out := []any{}
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return out, true
	}
	for {
		if p.i >= len(p.s) {
			return nil, false
		}
		switch p.s[p.i] {
		case '{':
			sub, ok := p.parse()
			if !ok {
				return nil, false
			}
			out = append(out, sub)
		case '"':
			var b strings.Builder
			p.i++
			for {
				if p.i >= len(p.s) {
					return nil, false
				}
				c := p.s[p.i]
				if c == '\\' && p.i+1 < len(p.s) {
					b.WriteByte(p.s[p.i+1])
					p.i += 2
					continue
				}
				p.i++
				if c == '"' {
					break
				}
				b.WriteByte(c)
			}
			out = append(out, p.elem([]byte(b.String())))
		default:
			start := p.i
			for p.i < len(p.s) && p.s[p.i] != p.delim && p.s[p.i] != '}' {
				p.i++
			}
			word := strings.TrimSpace(p.s[start:p.i])
			if word == "NULL" {
				out = append(out, nil)
			} else {
				out = append(out, p.elem([]byte(word)))
			}
		}
		if p.i >= len(p.s) {
			return nil, false
		}
		switch p.s[p.i] {
		case p.delim:
			p.i++
		case '}':
			p.i++
			return out, true
		default:
			return nil, false
		}
	}
}
