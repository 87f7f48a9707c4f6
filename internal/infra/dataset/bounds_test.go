package dataset

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// nested returns n arrays around 1: nested(2) is [[1]].
func nested(n int) string {
	return strings.Repeat("[", n) + "1" + strings.Repeat("]", n)
}

func TestScanJSON(t *testing.T) {
	t.Parallel()
	// The shape that crashes DuckDB: an array of objects holding 10,000
	// levels of arrays.
	deep := `[{"a": ` + nested(10_000) + `}]`
	tests := []struct {
		name     string
		input    string
		maxDepth int
		// wantErr is the exact error text; "" means no error.
		wantErr string
		// wantDepth is set when the error must be a *DepthError.
		wantDepth bool
	}{
		{name: "array of objects", input: `[{"a":1,"b":"x"},{"a":2,"b":null}]`, maxDepth: 2},
		{name: "depth at the cap passes", input: nested(5), maxDepth: 5},
		{name: "depth one past the cap fails", input: nested(6), maxDepth: 5,
			wantErr: "the JSON nests deeper than the limit of 5 levels", wantDepth: true},
		{name: "objects count as levels", input: `{"a":{"b":{"c":1}}}`, maxDepth: 2,
			wantErr: "the JSON nests deeper than the limit of 2 levels", wantDepth: true},
		{name: "10,000 deep fails at the cap", input: deep, maxDepth: 64,
			wantErr: "the JSON nests deeper than the limit of 64 levels", wantDepth: true},
		{name: "10,000 unclosed brackets fail at the cap", input: strings.Repeat("[", 10_000), maxDepth: 64,
			wantErr: "the JSON nests deeper than the limit of 64 levels", wantDepth: true},
		{name: "ndjson", input: "{\"a\":1}\n{\"a\":[2,3]}\n\n{\"a\":{\"b\":4}}\n", maxDepth: 2},
		{name: "ndjson with CRLF and no final newline", input: "{\"a\":1}\r\n{\"a\":2}", maxDepth: 1},
		{name: "ndjson too deep on a later line", input: "{\"a\":1}\n{\"a\":[[1]]}\n", maxDepth: 2,
			wantErr: "the JSON nests deeper than the limit of 2 levels", wantDepth: true},
		{name: "ndjson with a broken line", input: "{\"a\":1}\n{\"a\" 2}\n", maxDepth: 2,
			wantErr: "invalid character '2' after object key at byte 13"},
		{name: "scalar document", input: `42`, maxDepth: 2},
		{name: "empty", input: "", maxDepth: 2},
		{name: "whitespace only", input: " \n\t", maxDepth: 2},
		{name: "byte order mark is skipped", input: "\uFEFF[{\"a\":1}]", maxDepth: 2},
		{name: "offset counts the byte order mark", input: "\uFEFF[1,]", maxDepth: 2,
			wantErr: "invalid character ']' looking for beginning of value at byte 6"},
		{name: "trailing garbage", input: `[{"a":1}] x`, maxDepth: 2,
			wantErr: "invalid character 'x' looking for beginning of value at byte 10"},
		{name: "extra closing bracket", input: `[1]]`, maxDepth: 2,
			wantErr: "invalid character ']' looking for beginning of value at byte 3"},
		{name: "bad literal", input: `[1, tru]`, maxDepth: 2,
			wantErr: "invalid character ']' in literal true (expecting 'e') at byte 4"},
		{name: "truncated array", input: `[{"a":1},`, maxDepth: 2, wantErr: "the document ends early"},
		{name: "truncated inside a string", input: `[{"a":"xy`, maxDepth: 2, wantErr: "the document ends early"},
		{name: "truncated after a value", input: `[{"a":1}`, maxDepth: 2, wantErr: "the document ends early"},
		{name: "truncated last ndjson line", input: "{\"a\":1}\n{\"a\":", maxDepth: 2, wantErr: "the document ends early"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := scanJSON(strings.NewReader(tc.input), tc.maxDepth)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("scanJSON = %v, want nil", err)
				}
				return
			}
			if err == nil || err.Error() != tc.wantErr {
				t.Fatalf("scanJSON = %v, want %q", err, tc.wantErr)
			}
			var de *DepthError
			if got := errors.As(err, &de); got != tc.wantDepth {
				t.Fatalf("errors.As(*DepthError) = %v, want %v", got, tc.wantDepth)
			}
			if tc.wantDepth && de.Max != tc.maxDepth {
				t.Fatalf("DepthError.Max = %d, want %d", de.Max, tc.maxDepth)
			}
		})
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// scanJSON stops at the first level past the cap instead of reading the
// rest of the document.
func TestScanJSONStopsAtTheFirstViolation(t *testing.T) {
	t.Parallel()
	doc := strings.Repeat("[", 100) + strings.Repeat(" ", 10<<20) + "1" + strings.Repeat("]", 100)
	cr := &countingReader{r: strings.NewReader(doc)}
	var de *DepthError
	if err := scanJSON(cr, 64); !errors.As(err, &de) {
		t.Fatalf("scanJSON = %v, want *DepthError", err)
	}
	// One buffer of bufio and one of the decoder at most, not 10 MiB.
	if cr.n > 64<<10 {
		t.Fatalf("read %d bytes before refusing, want at most %d", cr.n, 64<<10)
	}
}

func BenchmarkScanJSONDeep(b *testing.B) {
	doc := `[{"a": ` + nested(10_000) + `}]`
	for b.Loop() {
		var de *DepthError
		if err := scanJSON(strings.NewReader(doc), 64); !errors.As(err, &de) {
			b.Fatal(err)
		}
	}
}

func TestCSVColumns(t *testing.T) {
	t.Parallel()
	wide := strings.Repeat("c,", 1999) + "c\n1\n"
	tests := []struct {
		name      string
		input     string
		maxHeader int
		want      int
		// wantErr is the exact error text; "" means no error.
		wantErr string
	}{
		{name: "comma", input: "a,b,c\n1,2,3\n", maxHeader: 1024, want: 3},
		{name: "quoted delimiters are no field breaks", input: "\"a,b\",\"c;d\",e\n1,2,3\n", maxHeader: 1024, want: 3},
		{name: "quoted header spanning lines", input: "\"a\nb\",c,d\n1,2,3\n", maxHeader: 1024, want: 3},
		{name: "tsv", input: "a\tb\tc\td\n1\t2\t3\t4\n", maxHeader: 1024, want: 4},
		{name: "semicolon", input: "a;b;c;d;e\n1;2;3;4;5\n", maxHeader: 1024, want: 5},
		{name: "pipe", input: "a|b\n1|2\n", maxHeader: 1024, want: 2},
		{name: "semicolon wins over the commas in it", input: "a,b;c;d\n", maxHeader: 1024, want: 3},
		{name: "lazy quote inside a field", input: "a\"b,c\n1,2\n", maxHeader: 1024, want: 2},
		{name: "2,000 columns", input: wide, maxHeader: 64 << 10, want: 2000},
		{name: "byte order mark is skipped", input: "\uFEFFa,b\n1,2\n", maxHeader: 1024, want: 2},
		{name: "CRLF", input: "a,b\r\n1,2\r\n", maxHeader: 1024, want: 2},
		{name: "header only, no line break", input: "a,b,c", maxHeader: 5, want: 3},
		{name: "header with its line break exactly at the limit", input: "a,b,c\n1,2,3\n", maxHeader: 6, want: 3},
		{name: "header one byte past the limit", input: "a,b,c\n1,2,3\n", maxHeader: 5,
			wantErr: "the first line is longer than 5 bytes"},
		{name: "overlong header", input: wide, maxHeader: 1024,
			wantErr: "the first line is longer than 1024 bytes"},
		{name: "empty", input: "", maxHeader: 1024, want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := csvColumns(strings.NewReader(tc.input), tc.maxHeader)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("csvColumns = %d, %v; want error %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("csvColumns = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

// csvColumns reads no more than the header limit allows, however large
// the file.
func TestCSVColumnsReadsAtMostTheLimit(t *testing.T) {
	t.Parallel()
	cr := &countingReader{r: strings.NewReader("a,b\n" + strings.Repeat("1,2\n", 1<<20))}
	got, err := csvColumns(cr, 4096)
	if err != nil || got != 2 {
		t.Fatalf("csvColumns = %d, %v; want 2", got, err)
	}
	if cr.n != 4097 {
		t.Fatalf("read %d bytes, want 4097", cr.n)
	}
}
