package dataset

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// This file checks untrusted input before any engine reads it. DuckDB
// cannot be stopped from Go while it plans or parses (see PITFALLS.md):
// deeply nested JSON crashes it and a very wide CSV makes it allocate
// far more than the file's size. These functions are free functions taking
// their limits as parameters, so that a worker process can call them too.

// utf8BOM is the byte order mark some tools put at the start of a file.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// DepthError reports JSON that nests deeper than the configured limit
// (datasets.max_json_depth). The input was refused before DuckDB saw it.
type DepthError struct {
	// Max is the limit that was exceeded.
	Max int
}

// Error implements error.
func (e *DepthError) Error() string {
	return fmt.Sprintf("the JSON nests deeper than the limit of %d levels", e.Max)
}

// errEndsEarly reports a document cut off inside a value.
var errEndsEarly = errors.New("the document ends early")

// scanJSON reads r once and checks that it holds well-formed JSON: either
// one value (typically an array of objects) or a sequence of values, one
// per line (NDJSON), and that no value nests deeper than maxDepth arrays
// and objects (a scalar is depth 0, [1] depth 1, [{"a":1}] depth 2). A
// leading UTF-8 byte order mark is skipped; input that is empty or only
// whitespace passes (the loader reports "no records").
//
// It stops at the first problem and never holds the document: memory is
// bounded by maxDepth and by the longest single string or number. A
// depth violation is a *DepthError; a syntax error is a plain error
// naming the offset of the bad token (0-based, from the start of r); a document cut off inside a value is "the
// document ends early". Errors from r are returned as they are.
func scanJSON(r io.Reader, maxDepth int) error {
	br := bufio.NewReader(r)
	skipped := 0
	if head, _ := br.Peek(len(utf8BOM)); bytes.Equal(head, utf8BOM) {
		_, _ = br.Discard(len(utf8BOM))
		skipped = len(utf8BOM)
	}
	dec := json.NewDecoder(br)
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			var se *json.SyntaxError
			switch {
			case errors.Is(err, io.EOF):
				// Token does not check that the nesting is closed.
				if depth != 0 {
					return errEndsEarly
				}
				return nil
			case errors.Is(err, io.ErrUnexpectedEOF):
				return errEndsEarly
			case errors.As(err, &se):
				// se.Offset is relative to the value being decoded for
				// scalars; the decoder's offset is where the bad token
				// starts, counted from the start of the input.
				return fmt.Errorf("%s at byte %d", se.Error(), dec.InputOffset()+int64(skipped))
			default:
				return err
			}
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '[', '{':
				depth++
				// The decoder keeps a frame per open level: stop here,
				// before the next level costs anything.
				if depth > maxDepth {
					return &DepthError{Max: maxDepth}
				}
			default:
				depth--
			}
		}
	}
}

// csvDelimiters are the delimiters DuckDB's sniffer tries for CSV and TSV.
var csvDelimiters = []rune{',', '\t', ';', '|'}

// csvColumns returns the number of fields in the first record (the header)
// of a CSV or TSV whose delimiter is not known: the most fields any
// candidate delimiter (, tab ; |) gives, so that whichever one DuckDB's
// sniffer picks, the table is no wider than this. Quotes are handled as
// encoding/csv does with LazyQuotes, so a quoted delimiter is no field
// break and a quoted header may span lines. A leading UTF-8 byte order
// mark is skipped; empty input has 0 columns.
//
// It reads at most maxHeaderBytes+1 bytes of r. If no candidate's first
// record, line break included, ends within the first maxHeaderBytes bytes,
// the header is refused with an error: a count taken from a cut-off
// header could be too low.
func csvColumns(r io.Reader, maxHeaderBytes int) (int, error) {
	buf, err := io.ReadAll(io.LimitReader(r, int64(maxHeaderBytes)+1))
	if err != nil {
		return 0, err
	}
	cut := len(buf) > maxHeaderBytes
	buf = bytes.TrimPrefix(buf, utf8BOM)
	// The header must end within maxHeaderBytes of input; when r had
	// more, the last byte of buf lies past that.
	limit := int64(len(buf))
	if cut {
		limit--
	}
	most, complete := 0, false
	for _, d := range csvDelimiters {
		cr := csv.NewReader(bytes.NewReader(buf))
		cr.Comma = d
		cr.LazyQuotes = true
		cr.FieldsPerRecord = -1
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return 0, nil
		}
		if err != nil {
			// With LazyQuotes and no field count, encoding/csv only fails
			// on read errors, and bytes.Reader has none.
			return 0, fmt.Errorf("read the header: %w", err)
		}
		most = max(most, len(rec))
		if cr.InputOffset() <= limit {
			complete = true
		}
	}
	if !complete {
		return 0, fmt.Errorf("the first line is longer than %d bytes", maxHeaderBytes)
	}
	return most, nil
}
