package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
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
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return v, describeJSONError(err)
	}
	if dec.More() {
		return v, invalid("", "body must hold a single JSON object")
	}
	if err := PT(&v).Validate(); err != nil {
		return v, err
	}
	return v, nil
}

func tooLarge(limit int64) *Error {
	return &Error{Status: http.StatusRequestEntityTooLarge, Code: "payload_too_large",
		Message: fmt.Sprintf("request body exceeds the limit of %d bytes", limit)}
}

func describeJSONError(err error) *Error {
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
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		f = strings.Trim(f, `"`)
		return invalid(f, fmt.Sprintf("unknown field %q", f))
	}
	return invalid("", "malformed JSON: "+err.Error())
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
