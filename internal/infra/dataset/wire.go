package dataset

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// The supervisor and a worker talk over two pipes (the worker's fds 3
// and 4) with length-prefixed JSON frames: a 4-byte big-endian length,
// then one JSON object.
//
// Why this protocol: pipes need no socket path to create, secure or clean
// up, and a worker that dies closes its end, so the supervisor sees EOF
// at once. Separate fds keep the protocol away from stdout and stderr,
// where the Go runtime or DuckDB may print. The length prefix lets either
// side refuse an oversized frame before reading it (a worker's reply is
// bounded by the result caps), and JSON keeps numbers exact (UseNumber)
// and frames readable when debugging; its cost is small next to DuckDB's
// work and is measured by the package benchmarks.

// maxFrame bounds one frame. Results are capped by MaxResultBytes and
// profiles are small, so a larger frame means a broken peer.
const maxFrame = 256 << 20

// Job ops.
const (
	opGuard    = "guard"    // parse only: is SQL one allowed SELECT?
	opQuery    = "query"    // run SQL on a database file, read-only
	opValidate = "validate" // guard, then prepare against a database file
	opIngest   = "ingest"   // load a file into a new database, profile it
	opCancel   = "cancel"   // stop the job in progress (no reply of its own)
)

// job is one request to a worker. Limits travel with each job, so a
// reload or a second Store needs no new workers.
type job struct {
	Op        string `json:"op"`
	TimeoutMS int64  `json:"timeout_ms,omitempty"`
	// SQL for guard, query and validate.
	SQL string `json:"sql,omitempty"`
	// Guard runs the guard before a query (untrusted SQL).
	Guard bool `json:"guard,omitempty"`
	// Tables the guard lets SQL read; nil for parse-only checks that have
	// no database to bind against.
	Tables []string `json:"tables,omitempty"`
	// DB is the database file queried, or created by ingest.
	DB             string `json:"db,omitempty"`
	MaxRows        int    `json:"max_rows,omitempty"`
	MaxResultBytes int64  `json:"max_result_bytes,omitempty"`
	MemoryLimitMB  int    `json:"memory_limit_mb,omitempty"`
	// MaxOpen caps the read-only handles the worker keeps open.
	MaxOpen int `json:"max_open,omitempty"`
	// Ingest: the files to load, one table each, and the input caps.
	Sources []source    `json:"sources,omitempty"`
	Limits  inputLimits `json:"limits"`
	// Base, for an ingest, is an existing database that DB starts as a
	// copy of (tables added to a dataset); "" creates DB empty.
	Base string `json:"base,omitempty"`
	// DataView names the table that a view named data selects from (a
	// dataset of one table); DropDataView drops Base's view data first.
	DataView     string `json:"data_view,omitempty"`
	DropDataView bool   `json:"drop_data_view,omitempty"`
}

// source is one file an ingest loads into one table.
type source struct {
	Table string `json:"table"`
	// Label names the file in error messages ("" for inline data).
	Label  string `json:"label,omitempty"`
	Src    string `json:"src"`
	Format string `json:"format"`
	// TmpDir is a scratch name for converting XLSX.
	TmpDir string `json:"tmp_dir"`
}

// inputLimits bound what an ingest reads before DuckDB sees it.
type inputLimits struct {
	MaxJSONDepth int   `json:"max_json_depth,omitempty"`
	MaxColumns   int   `json:"max_columns,omitempty"`
	MaxBytes     int64 `json:"max_bytes,omitempty"` // the upload cap; XLSX caps derive from it
}

// reply is a worker's answer to one job.
type reply struct {
	// Err is set when the job failed; Kind "internal" is a server-side
	// failure, not the input's fault.
	Err *Error `json:"error,omitempty"`
	// Query result.
	Columns   []Column          `json:"columns,omitempty"`
	Rows      []json.RawMessage `json:"rows,omitempty"`
	RowCount  int64             `json:"row_count,omitempty"`
	Truncated bool              `json:"truncated,omitempty"`
	// Ingest result: the tables loaded, in the order of the sources.
	Tables []loadedTable `json:"tables,omitempty"`
	// OpenHandles is how many read-only handles the worker holds now.
	OpenHandles int `json:"open_handles"`
}

// loadedTable is one table an ingest loaded.
type loadedTable struct {
	Name    string   `json:"name"`
	Columns []Column `json:"columns"`
	Profile *Profile `json:"profile"`
}

// kindInternal marks a worker-side failure that is not the input's fault
// (a file that could not be created, say); it never leaves the package.
const kindInternal Kind = "internal"

func writeFrame(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > maxFrame {
		return fmt.Errorf("frame of %d bytes exceeds %d", len(b), maxFrame)
	}
	buf := make([]byte, 4+len(b))
	binary.BigEndian.PutUint32(buf, uint32(len(b)))
	copy(buf[4:], b)
	_, err = w.Write(buf)
	return err
}

// readFrame reads one frame into v; numbers decode as json.Number, so
// values pass through exactly.
func readFrame(r *bufio.Reader, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxFrame {
		return fmt.Errorf("frame of %d bytes exceeds %d", n, maxFrame)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}
