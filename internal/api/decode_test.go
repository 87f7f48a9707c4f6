package api

// An internal test: decode is unexported, and its errors are the contract
// every JSON endpoint shares (test/api_test.go covers them end to end).

import (
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

// decodeProbe exercises what the request types do not: maps, arrays of
// objects, an embedded struct, a json:"-" field and an untagged field.
type decodeProbe struct {
	probeBase
	Labels  map[string]string `json:"labels"`
	Items   []probeItem       `json:"items"`
	Skipped string            `json:"-"`
	Plain   *string
}

type probeBase struct {
	ID *string `json:"id"`
}

type probeItem struct {
	Name *string `json:"name"`
}

func (*decodeProbe) Validate() error { return nil }

// chunked hides a body's length, as a streaming client does, so that the
// limit is enforced while reading rather than from Content-Length.
type chunked struct{ io.Reader }

func TestDecodeShouldAnswerEachBadBodyAlike(t *testing.T) {
	t.Parallel()
	const limit = 64
	tests := []struct {
		name    string
		body    string
		ctype   string
		chunked bool
		status  int
		code    string
		message string
		field   string
	}{
		{name: "decode200Valid", body: `{"query":"q","data":{"format":"csv","content":"a"}}`},
		{name: "decode200KeyCaseIgnored", body: `{"QUERY":"q"}`},
		{name: "decode400UnknownField", body: `{"query":"q","qurey":"x"}`,
			status: 400, code: "invalid_request", message: `unknown field "qurey"`, field: "qurey"},
		{name: "decode400NestedUnknownField", body: `{"query":"q","data":{"format":"csv","extra":1}}`,
			status: 400, code: "invalid_request", message: `unknown field "extra"`, field: "extra"},
		{name: "decode400FirstUnknownFieldWins", body: `{"b":1,"query":"q","a":2}`,
			status: 400, code: "invalid_request", message: `unknown field "b"`, field: "b"},
		{name: "decode400UnknownBeforeWrongType", body: `{"zz":1,"query":2}`,
			status: 400, code: "invalid_request", message: `unknown field "zz"`, field: "zz"},
		{name: "decode400WrongTypeBeforeUnknown", body: `{"query":2,"zz":1}`,
			status: 400, code: "invalid_request", message: "query must be a string, got number", field: "query"},
		{name: "decode400NestedWrongType", body: `{"query":"q","data":{"format":1}}`,
			status: 400, code: "invalid_request", message: "data.format must be a string, got number", field: "data.format"},
		{name: "decode400ObjectWanted", body: `{"query":"q","data":[1]}`,
			status: 400, code: "invalid_request", message: "data must be an object, got array", field: "data"},
		{name: "decode400TrailingData", body: `{"query":"q"}{"query":"r"}`,
			status: 400, code: "invalid_request", message: "body must hold a single JSON object"},
		{name: "decode400TrailingGarbage", body: `{"query":"q"} x`,
			status: 400, code: "invalid_request", message: "body must hold a single JSON object"},
		{name: "decode400Array", body: ` [{"query":"q"}]`,
			status: 400, code: "invalid_request", message: "the request body must be a JSON object, got an array"},
		{name: "decode400String", body: `"x"`,
			status: 400, code: "invalid_request", message: "the request body must be a JSON object, got a string"},
		{name: "decode400Number", body: "\n42",
			status: 400, code: "invalid_request", message: "the request body must be a JSON object, got a number"},
		{name: "decode400Negative", body: `-1`,
			status: 400, code: "invalid_request", message: "the request body must be a JSON object, got a number"},
		{name: "decode400Boolean", body: `true`,
			status: 400, code: "invalid_request", message: "the request body must be a JSON object, got a boolean"},
		{name: "decode400Null", body: `null`,
			status: 400, code: "invalid_request", message: "the request body must be a JSON object, got null"},
		{name: "decode400Empty", body: ``,
			status: 400, code: "invalid_request", message: "request body is empty"},
		{name: "decode400Truncated", body: `{"query":`,
			status: 400, code: "invalid_request", message: "malformed JSON: unexpected end of body"},
		{name: "decode400Syntax", body: `{"query" "q"}`,
			status: 400, code: "invalid_request", message: "malformed JSON at byte 10"},
		{name: "decode400Validation", body: `{"query":""}`,
			status: 400, code: "invalid_request", message: "query must be 1..4000 characters, got 0", field: "query"},
		{name: "decode413ByLength", body: `{"query":"` + strings.Repeat("y", limit) + `"}`,
			status: 413, code: "payload_too_large", message: "request body exceeds the limit of 64 bytes"},
		{name: "decode413WhileReading", body: `{"query":"` + strings.Repeat("y", limit) + `"}`, chunked: true,
			status: 413, code: "payload_too_large", message: "request body exceeds the limit of 64 bytes"},
		{name: "decode415", body: `{"query":"q"}`, ctype: "text/plain",
			status: 415, code: "unsupported_media_type", message: "Content-Type must be application/json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var body io.Reader = strings.NewReader(tt.body)
			if tt.chunked {
				body = chunked{body}
			}
			req := httptest.NewRequest(http.MethodPost, "/analyze", body)
			req.Header.Set(echo.HeaderContentType, "application/json; charset=utf-8")
			if tt.ctype != "" {
				req.Header.Set(echo.HeaderContentType, tt.ctype)
			}
			c := echo.New().NewContext(req, httptest.NewRecorder())

			_, err := decode[analyzeRequest](c, limit)

			if tt.status == 0 {
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				return
			}
			want := Error{Status: tt.status, Code: tt.code, Message: tt.message, Field: tt.field}
			got, ok := err.(*Error)
			if !ok || *got != want {
				t.Fatalf("decode error = %#v, want %#v", err, want)
			}
		})
	}
}

func TestFirstUnknownKeyShouldFollowTheTypeLikeEncodingJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body, want string
	}{
		{"every known kind of field", `{"id":"1","labels":{"any":"x"},"items":[{"name":"n"}],"Plain":"p","plain":"p"}`, ""},
		{"embedded field is known", `{"ID":"1"}`, ""},
		{"map keys are free", `{"labels":{"whatever":"x"}}`, ""},
		{"unknown key in an array element", `{"items":[{"name":"n"},{"nmae":"m"}]}`, "nmae"},
		{"json:\"-\" field is unknown", `{"Skipped":"s"}`, "Skipped"},
		{"unknown key after nested values", `{"items":[[{}]],"labels":{"a":{"b":[1]}},"zz":1}`, "zz"},
		{"null for a struct", `{"items":null,"zz":1}`, "zz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := firstUnknownKey([]byte(tt.body), reflect.TypeFor[decodeProbe]())
			if got != tt.want || ok != (tt.want != "") {
				t.Fatalf("firstUnknownKey = %q, %v; want %q", got, ok, tt.want)
			}
		})
	}
}
