package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"

	"github.com/labstack/echo/v4"
)

// validator is implemented by every request body type.
type validator interface {
	// Validate returns an *Error naming the first invalid field.
	Validate() error
}

// decode reads one JSON object into T and validates it. It is the only
// place that reads request bodies, so every endpoint answers 415, 413 and
// 400 alike. Unknown fields are rejected, naming the field, so that a typo
// is not silently ignored.
func decode[T any, PT interface {
	*T
	validator
}](c echo.Context, limit int64) (T, error) {
	var v T
	req := c.Request()
	mt, _, err := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType))
	if err != nil || mt != echo.MIMEApplicationJSON {
		return v, &Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
			Message: "Content-Type must be application/json"}
	}
	if req.ContentLength > limit {
		return v, tooLarge(limit)
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	if err != nil {
		return v, err
	}
	if int64(len(body)) > limit {
		return v, tooLarge(limit)
	}
	if kind := topLevelKind(body); kind != "" {
		return v, invalid("", "the request body must be a JSON object, got "+kind)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return v, describeJSONError(err, body, reflect.TypeFor[T]())
	}
	if dec.More() {
		return v, invalid("", "body must hold a single JSON object")
	}
	if err := PT(&v).Validate(); err != nil {
		return v, err
	}
	return v, nil
}

// topLevelKind names the JSON value body starts with when it is not an
// object ("an array", "a string", ...), and is "" for an object, an empty
// body or one that is not JSON: the decoder words those. Without it, "[]"
// would get encoding/json's type error, which names no field.
func topLevelKind(body []byte) string {
	body = bytes.TrimLeft(body, " \t\r\n")
	if len(body) == 0 {
		return ""
	}
	switch c := body[0]; {
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	case c == '-' || (c >= '0' && c <= '9'):
		return "a number"
	}
	return ""
}

func tooLarge(limit int64) *Error {
	return &Error{Status: http.StatusRequestEntityTooLarge, Code: "payload_too_large",
		Message: fmt.Sprintf("request body exceeds the limit of %d bytes", limit)}
}

// describeJSONError turns a decode error into the client's 400. Type,
// syntax and end-of-input errors carry their own structure. Any other error
// is what DisallowUnknownFields produces, which encoding/json gives only as
// text, so the body is walked again (see firstUnknownKey) to find the key
// it named instead of parsing that text. That second walk runs on the error
// path alone: a valid body is decoded once.
func describeJSONError(err error, body []byte, t reflect.Type) *Error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return invalid(te.Field, fmt.Sprintf("%s must be %s, got %s", te.Field, jsonKind(te.Type.Kind().String()), te.Value))
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return invalid("", fmt.Sprintf("malformed JSON at byte %d", se.Offset))
	}
	if errors.Is(err, io.EOF) {
		return invalid("", "request body is empty")
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return invalid("", "malformed JSON: unexpected end of body")
	}
	if key, ok := firstUnknownKey(body, t); ok {
		return invalid(key, fmt.Sprintf("unknown field %q", key))
	}
	return invalid("", "malformed JSON: "+err.Error())
}

// firstUnknownKey walks the first JSON value in body against t and returns
// the first object key, in document order, that t has no field for: the key
// that DisallowUnknownFields stopped at, since encoding/json also reports
// the first one it meets. Like encoding/json it matches keys to fields
// case-insensitively, descends only into objects decoded into structs (a
// map takes any key), and names the key alone, not its path. body must be
// valid JSON, as it is once Decode has got past the syntax check.
func firstUnknownKey(body []byte, t reflect.Type) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	key, err := unknownIn(dec, t)
	return key, err == nil && key != ""
}

// unknownIn reads one value from dec, which t describes (nil: anything
// goes), and returns the first unknown key in it, or "" if there is none.
// It stops reading as soon as it finds one.
func unknownIn(dec *json.Decoder, t reflect.Type) (string, error) {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := dec.Token()
	if err != nil {
		return "", err
	}
	switch tok {
	case json.Delim('{'):
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return "", err
			}
			key, _ := k.(string)
			var vt reflect.Type
			switch {
			case t == nil:
			case t.Kind() == reflect.Struct:
				f, ok := fieldFor(t, key)
				if !ok {
					return key, nil
				}
				vt = f
			case t.Kind() == reflect.Map:
				vt = t.Elem()
			}
			if unknown, err := unknownIn(dec, vt); unknown != "" || err != nil {
				return unknown, err
			}
		}
	case json.Delim('['):
		var et reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			et = t.Elem()
		}
		for dec.More() {
			if unknown, err := unknownIn(dec, et); unknown != "" || err != nil {
				return unknown, err
			}
		}
	default:
		return "", nil // a scalar
	}
	_, err = dec.Token() // the closing delimiter
	return "", err
}

// fieldFor returns the type of the field of struct t that encoding/json
// would decode key into: the one named key by its json tag (or its Go name
// when untagged), compared case-insensitively, embedded structs included.
func fieldFor(t reflect.Type, key string) (reflect.Type, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			et := f.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				if ft, ok := fieldFor(et, key); ok {
					return ft, true
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if strings.EqualFold(name, key) {
			return f.Type, true
		}
	}
	return nil, false
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "struct", "map":
		return "an object"
	case "slice", "array":
		return "an array"
	case "int", "int64", "float64", "float32", "int32":
		return "a number"
	default:
		return goKind
	}
}
