package dataset

import (
	"bytes"
	"path/filepath"
	"strings"
)

// The formats a Dataset can have.
const (
	FormatCSV     = "csv"
	FormatTSV     = "tsv"
	FormatJSON    = "json"
	FormatNDJSON  = "ndjson"
	FormatParquet = "parquet"
	FormatXLSX    = "xlsx"
)

// formatOfExt maps a file extension to a format, or "".
func formatOfExt(ext string) string {
	switch strings.ToLower(ext) {
	case ".csv":
		return FormatCSV
	case ".tsv", ".tab":
		return FormatTSV
	case ".json":
		return FormatJSON
	case ".ndjson", ".jsonl":
		return FormatNDJSON
	case ".parquet":
		return FormatParquet
	case ".xlsx":
		return FormatXLSX
	}
	return ""
}

// detectFormat picks the format from the extension, then from the first
// bytes of the content. It returns "" when neither tells.
func detectFormat(filename string, head []byte) string {
	format := formatOfExt(filepath.Ext(filename))
	first := firstJSONByte(head)
	switch {
	case format == FormatJSON && first == '{':
		// Files named .json are often newline-delimited.
		return FormatNDJSON
	case format != "":
		return format
	case bytes.HasPrefix(head, []byte("PAR1")):
		return FormatParquet
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return FormatXLSX
	case first == '[':
		return FormatJSON
	case first == '{':
		return FormatNDJSON
	}
	return ""
}

// firstJSONByte returns the first byte after a UTF-8 BOM and whitespace.
func firstJSONByte(head []byte) byte {
	head = bytes.TrimPrefix(head, []byte("\xef\xbb\xbf"))
	head = bytes.TrimLeft(head, " \t\r\n")
	if len(head) == 0 {
		return 0
	}
	return head[0]
}

// loadSQL returns the statement that loads a file of the given format into
// a new table; full asks for type detection over the whole file instead of
// a sample (slower; used as a retry when a sampled guess fails later in the
// file). The file path is bound as the only parameter.
func loadSQL(format, table string, full bool) string {
	sample := ""
	if full {
		sample = ", sample_size=-1"
	}
	var src string
	switch format {
	case FormatCSV:
		src = "read_csv(?" + sample + ")"
	case FormatTSV:
		src = "read_csv(?, delim='\\t'" + sample + ")"
	case FormatJSON:
		src = "read_json(?, format='array'" + sample + ")"
	case FormatNDJSON:
		// auto also takes pretty-printed objects one after another.
		src = "read_json(?, format='auto'" + sample + ")"
	case FormatParquet:
		src = "read_parquet(?)"
	case FormatXLSX:
		// Our own CSV rendering of the first sheet (see xlsx.go).
		src = "read_csv(?, header=true, delim=',', quote='\"', escape='\"'" + sample + ")"
	}
	return "CREATE TABLE " + quoteIdent(table) + " AS SELECT * FROM " + src
}

// sampled reports whether the format's reader guesses types from a sample,
// so that a failure may go away with a full scan.
func sampled(format string) bool { return format != FormatParquet }
