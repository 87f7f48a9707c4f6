package dataset

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"syscall"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// WorkerArg is the hidden first argument that turns the Nexus binary (or a
// test binary) into a DuckDB worker. A main function (or TestMain) that
// starts a Store calls RunIfWorker first.
const WorkerArg = "__nexus-duckdb-worker"

// IsWorker reports whether args (os.Args) start a worker.
func IsWorker(args []string) bool { return len(args) > 1 && args[1] == WorkerArg }

// RunIfWorker returns at once unless this process was started as a
// worker (IsWorker(os.Args)); then it serves as one and exits with
// RunWorker's code, never returning.
func RunIfWorker() {
	if IsWorker(os.Args) {
		os.Exit(RunWorker(os.Args[2:]))
	}
}

// RunWorker serves jobs on fds 3 (in) and 4 (out) until the supervisor
// closes its end, and returns the exit code. args are the flags after
// WorkerArg: -as-mb sets RLIMIT_AS, the OS backstop under the
// supervisor's RSS ceiling.
func RunWorker(args []string) int {
	fs := flag.NewFlagSet(WorkerArg, flag.ContinueOnError)
	asMB := fs.Int("as-mb", 0, "address-space limit in MiB (0: none)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *asMB > 0 && !raceEnabled {
		// DuckDB reserves about 1.5 GiB of address space when it starts,
		// so the supervisor passes the RSS ceiling plus headroom. The race
		// detector reserves terabytes of shadow memory, so race builds
		// (the test suite) rely on the RSS ceiling alone.
		lim := uint64(*asMB) << 20
		if err := syscall.Setrlimit(syscall.RLIMIT_AS, &syscall.Rlimit{Cur: lim, Max: lim}); err != nil {
			fmt.Fprintln(os.Stderr, "worker: setrlimit:", err)
			return 2
		}
	}
	in, out := os.NewFile(3, "jobs"), os.NewFile(4, "replies")
	if in == nil || out == nil {
		fmt.Fprintln(os.Stderr, "worker: fds 3 and 4 must be the supervisor's pipes")
		return 2
	}
	w := newWorker()
	defer w.close()
	if err := w.serve(in, out); err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 1
	}
	return 0
}

// worker is the process side: it runs one job at a time and keeps a few
// read-only handles warm between jobs.
type worker struct {
	parser  *sql.DB // in-memory, sandboxed; only parses (the guard)
	handles map[string]*handle
}

// handle is a cached read-only database and the file it was opened on.
type handle struct {
	db       *sql.DB
	ino      uint64
	lastUsed time.Time
}

func newWorker() *worker { return &worker{handles: map[string]*handle{}} }

func (w *worker) close() {
	for p, h := range w.handles {
		_ = h.db.Close()
		delete(w.handles, p)
	}
	if w.parser != nil {
		_ = w.parser.Close()
	}
}

// serve reads jobs and runs them one by one. While a job runs, the reader
// keeps reading, so a cancel frame can interrupt it.
func (w *worker) serve(in io.Reader, out io.Writer) error {
	type frame struct {
		j   job
		err error
	}
	frames := make(chan frame)
	go func() {
		r := bufio.NewReaderSize(in, 64<<10)
		for {
			var j job
			err := readFrame(r, &j)
			frames <- frame{j, err}
			if err != nil {
				return
			}
		}
	}()
	for {
		f := <-frames
		if f.err != nil {
			return f.err
		}
		if f.j.Op == opCancel {
			continue // the job it meant has already answered
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(f.j.TimeoutMS)*time.Millisecond)
		done := make(chan reply, 1)
		go func(j job) { done <- w.do(ctx, j) }(f.j)
		var rep reply
	wait:
		for {
			select {
			case rep = <-done:
				break wait
			case g := <-frames:
				if g.err != nil {
					cancel()
					return g.err
				}
				if g.j.Op == opCancel {
					cancel()
				}
			}
		}
		cancel()
		rep.OpenHandles = len(w.handles)
		if err := writeFrame(out, rep); err != nil {
			return err
		}
	}
}

// do runs one job; every failure is a reply, never a crash of the loop.
func (w *worker) do(ctx context.Context, j job) reply {
	defer w.sweep(j.MaxOpen)
	var err error
	var rep reply
	switch j.Op {
	case opGuard:
		err = w.guard(ctx, j.SQL, j.Tables)
	case opValidate:
		err = w.validate(ctx, j)
	case opQuery:
		rep, err = w.query(ctx, j)
	case opIngest:
		rep, err = w.ingest(ctx, j)
	default:
		err = fmt.Errorf("unknown op %q", j.Op)
	}
	if err != nil {
		return reply{Err: workerError(ctx, err)}
	}
	return rep
}

// workerError turns any error into a reply's *Error: an *Error as is, the
// job's own timeout as KindTimeout, DuckDB's complaints as KindSQL, and
// anything else as internal.
func workerError(ctx context.Context, err error) *Error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e
	case ctx.Err() != nil:
		return &Error{Kind: KindTimeout, Message: "the statement ran past its time limit and was stopped"}
	}
	var de *duckdb.Error
	if errors.As(err, &de) {
		return &Error{Kind: KindSQL, Message: de.Msg}
	}
	return &Error{Kind: kindInternal, Message: err.Error()}
}

// sweep closes handles whose file is gone or replaced (a deleted dataset
// or a finished inline table), and the least recently used past max.
func (w *worker) sweep(max int) {
	for p, h := range w.handles {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil || st.Ino != h.ino {
			_ = h.db.Close()
			delete(w.handles, p)
		}
	}
	if max <= 0 || len(w.handles) <= max {
		return
	}
	paths := make([]string, 0, len(w.handles))
	for p := range w.handles {
		paths = append(paths, p)
	}
	slices.SortFunc(paths, func(a, b string) int { return w.handles[a].lastUsed.Compare(w.handles[b].lastUsed) })
	for _, p := range paths[:len(paths)-max] {
		_ = w.handles[p].db.Close()
		delete(w.handles, p)
	}
}

// open returns the sandboxed read-only handle of a database file.
// A cached handle is used only while the path still names the file it
// was opened on: a file replaced under the same name is reopened, so a
// handle never serves a database that is no longer there.
func (w *worker) open(path string, memoryLimitMB int) (*sql.DB, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if h, ok := w.handles[path]; ok {
		if h.ino == st.Ino {
			h.lastUsed = time.Now()
			return h.db, nil
		}
		_ = h.db.Close()
		delete(w.handles, path)
	}
	// enable_external_access=false: no file, network or extension access
	// from SQL; lock_configuration=true: no SET can undo that; READ_ONLY:
	// no DDL or DML even if the guard were bypassed.
	c, err := duckdb.NewConnector(dsn(path, memoryLimitMB, url.Values{
		"access_mode":            {"READ_ONLY"},
		"enable_external_access": {"false"},
		"lock_configuration":     {"true"},
	}), nil)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(c)
	w.handles[path] = &handle{db: db, ino: st.Ino, lastUsed: time.Now()}
	return db, nil
}

func (w *worker) parserDB() (*sql.DB, error) {
	if w.parser == nil {
		// In memory, holding no data, locked down like the datasets: it
		// only parses.
		c, err := duckdb.NewConnector(dsn(":memory:", parserMemoryLimitMB, url.Values{
			"enable_external_access": {"false"},
			"lock_configuration":     {"true"},
		}), nil)
		if err != nil {
			return nil, err
		}
		w.parser = sql.OpenDB(c)
	}
	return w.parser, nil
}

func (w *worker) validate(ctx context.Context, j job) error {
	if err := w.guard(ctx, j.SQL, j.Tables); err != nil {
		return err
	}
	db, err := w.open(j.DB, j.MemoryLimitMB)
	if err != nil {
		return err
	}
	// Safe to prepare now: the guard proved it is a single statement, and
	// duckdb-go only runs statements before the last one while preparing.
	stmt, err := db.PrepareContext(ctx, j.SQL)
	if err != nil {
		return err
	}
	return stmt.Close()
}

// streamCountBudget is how many rows past the caps are counted by reading
// them on; past that, the rest is counted by DuckDB with count(*) over the
// query, which is cheaper than converting every remaining row in Go.
const streamCountBudget = 50_000

func (w *worker) query(ctx context.Context, j job) (reply, error) {
	if j.Guard {
		if err := w.guard(ctx, j.SQL, j.Tables); err != nil {
			return reply{}, err
		}
	}
	db, err := w.open(j.DB, j.MemoryLimitMB)
	if err != nil {
		return reply{}, err
	}
	rows, err := db.QueryContext(ctx, j.SQL)
	if err != nil {
		return reply{}, err
	}
	defer rows.Close()
	rep, err := collect(rows, j.MaxRows, j.MaxResultBytes)
	if err != nil || !rep.Truncated {
		return rep, err
	}
	return rep, w.countRest(ctx, db, rows, j, &rep)
}

// collect reads rows until the end or a cap. On a cap it leaves rows
// positioned on the first row not kept, counted in RowCount.
func collect(rows *sql.Rows, maxRows int, maxBytes int64) (reply, error) {
	cts, err := rows.ColumnTypes()
	if err != nil {
		return reply{}, err
	}
	rep := reply{Columns: make([]Column, len(cts)), Rows: []json.RawMessage{}}
	for i, ct := range cts {
		rep.Columns[i] = Column{Name: ct.Name(), Type: ct.DatabaseTypeName()}
	}
	vals := make([]any, len(cts))
	ptrs := make([]any, len(cts))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	row := make([]any, len(vals))
	size := int64(2) // the brackets of the rows array
	for rows.Next() {
		rep.RowCount++
		if len(rep.Rows) >= maxRows {
			rep.Truncated = true
			return rep, nil
		}
		if err := rows.Scan(ptrs...); err != nil {
			return reply{}, err
		}
		for i, v := range vals {
			row[i] = jsonValue(v, rep.Columns[i].Type)
		}
		b, err := json.Marshal(row)
		if err != nil {
			return reply{}, fmt.Errorf("encode row: %w", err)
		}
		if size+int64(len(b))+1 > maxBytes {
			rep.Truncated = true
			return rep, nil
		}
		size += int64(len(b)) + 1
		rep.Rows = append(rep.Rows, b)
	}
	return rep, rows.Err()
}

// countRest completes RowCount after a cap: first by reading on (cheap
// for a few more rows), then by DuckDB counting the same query as a
// subquery. If that wrapped text is not a single allowed SELECT (a
// trailing semicolon or comment can break the wrapping), it falls back to
// reading every remaining row.
func (w *worker) countRest(ctx context.Context, db *sql.DB, rows *sql.Rows, j job, rep *reply) error {
	for range streamCountBudget {
		if !rows.Next() {
			return rows.Err()
		}
		rep.RowCount++
	}
	// The newline ends a trailing "--" comment. The wrapped text goes
	// through the guard again like any untrusted SQL.
	wrapped := "SELECT count(*) FROM (\n" + j.SQL + "\n) AS nexus_count"
	if err := w.guard(ctx, wrapped, j.Tables); err == nil {
		var n int64
		err := db.QueryRowContext(ctx, wrapped).Scan(&n)
		if err == nil && n >= rep.RowCount {
			rep.RowCount = n
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	} else if ctx.Err() != nil {
		return err
	}
	for rows.Next() {
		rep.RowCount++
	}
	return rows.Err()
}

// ingest loads j.Sources, one table each, into the database file j.DB
// (created empty, or as a copy of j.Base), sets up the data view, profiles
// the new tables, and checkpoints and closes the file, so that it is
// complete on its own (no .wal) and can be renamed or opened read-only.
// A source's failure is an *Error naming its file.
func (w *worker) ingest(ctx context.Context, j job) (rep reply, err error) {
	if j.Base != "" {
		if err := copyFile(j.Base, j.DB); err != nil {
			return reply{}, fmt.Errorf("copy database: %w", err)
		}
	}
	c, err := duckdb.NewConnector(dsn(j.DB, j.MemoryLimitMB, nil), nil)
	if err != nil {
		return reply{}, fmt.Errorf("create database: %w", err)
	}
	db := sql.OpenDB(c)
	defer func() {
		if cerr := db.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close database: %w", cerr)
		}
	}()
	cols := make([][]Column, len(j.Sources))
	// One upload's XLSX budget is shared by all its files: each file's
	// CSV rendering is taken from what the ones before it left.
	budget := xlsxLimitsFor(j.Limits)
	for i, src := range j.Sources {
		if cols[i], err = loadSource(ctx, db, src, j.Limits, &budget); err != nil {
			return reply{}, labelled(src.Label, err)
		}
	}
	if j.DropDataView {
		if _, err := db.ExecContext(ctx, "DROP VIEW IF EXISTS "+quoteIdent(DataAlias)); err != nil {
			return reply{}, loadError(ctx, err, "drop view data")
		}
	}
	if j.DataView != "" {
		if _, err := db.ExecContext(ctx, "CREATE VIEW "+quoteIdent(DataAlias)+" AS SELECT * FROM "+quoteIdent(j.DataView)); err != nil {
			return reply{}, loadError(ctx, err, "create view data")
		}
	}
	// Checkpoint (write the tables out for good) while profiling on a
	// second connection: the checkpoint is mostly I/O and single-threaded,
	// so the overlap hides most of the profiles' cost.
	checkpointed := make(chan error, 1)
	go func() {
		_, err := db.ExecContext(ctx, "CHECKPOINT")
		checkpointed <- err
	}()
	rep.Tables = make([]loadedTable, len(j.Sources))
	var profErr error
	for i, src := range j.Sources {
		prof, err := computeProfile(ctx, db, src.Table, cols[i])
		if err != nil {
			profErr = labelled(src.Label, loadError(ctx, err, "profile"))
			break
		}
		rep.Tables[i] = loadedTable{Name: src.Table, Columns: cols[i], Profile: &prof}
	}
	ckptErr := <-checkpointed
	if profErr != nil {
		return reply{}, profErr
	}
	if ckptErr != nil && ctx.Err() == nil {
		// A checkpoint may refuse to run beside another transaction; the
		// profiles are done now.
		_, ckptErr = db.ExecContext(ctx, "CHECKPOINT")
	}
	if ckptErr != nil {
		return reply{}, loadError(ctx, ckptErr, "checkpoint")
	}
	return rep, nil
}

// loadSource loads one file into its table and returns the columns. An
// XLSX file spends budget: its inflated size and CSV rendering count
// against the whole upload's, so 64 workbooks cannot each take the lot.
func loadSource(ctx context.Context, db *sql.DB, s source, lim inputLimits, budget *XLSXLimits) ([]Column, error) {
	src := s.Src
	if s.Format == FormatXLSX {
		src = s.TmpDir + ".csv"
		if budget.MaxInflatedBytes <= 0 || budget.MaxOutputBytes <= 0 {
			return nil, &Error{Kind: KindUploadTooExpensive,
				Message: "the upload's workbooks together would take more than the upload limit allows once unpacked"}
		}
		if err := xlsxToCSV(ctx, s.Src, src, s.TmpDir, *budget); err != nil {
			return nil, err
		}
		defer os.Remove(src)
		if fi, err := os.Stat(src); err == nil {
			budget.MaxOutputBytes -= fi.Size()
		}
		if n, err := inflatedSize(s.Src); err == nil {
			budget.MaxInflatedBytes -= n
		}
	}
	if err := checkInput(src, s.Format, lim); err != nil {
		return nil, err
	}
	cols, err := loadTable(ctx, db, s.Table, src, s.Format)
	if err != nil {
		return nil, err
	}
	if len(cols) > lim.MaxColumns && lim.MaxColumns > 0 {
		return nil, tooManyColumns(len(cols), lim.MaxColumns)
	}
	return cols, nil
}

// labelled prefixes an *Error's message with the file it is about, so
// that a user who sent several files knows which one failed.
func labelled(label string, err error) error {
	var e *Error
	if label == "" || !errors.As(err, &e) {
		return err
	}
	return &Error{Kind: e.Kind, Message: label + ": " + e.Message}
}

// copyFile copies the database src to a new file dst and syncs it.
func copyFile(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	if _, err := io.Copy(out, in); err != nil {
		return err
	}
	return out.Sync()
}

func tooManyColumns(n, max int) *Error {
	return &Error{Kind: KindTooComplex, Message: fmt.Sprintf("the data has %d columns; the limit is %d (datasets.max_columns)", n, max)}
}

// checkInput bounds what DuckDB will read: JSON nesting and CSV width are
// checked by streaming scans first, because DuckDB's readers crash or
// balloon on them.
func checkInput(src, format string, lim inputLimits) error {
	switch format {
	case FormatJSON, FormatNDJSON:
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := scanJSON(bufio.NewReaderSize(f, 1<<16), lim.MaxJSONDepth); err != nil {
			var de *DepthError
			if errors.As(err, &de) {
				return &Error{Kind: KindTooComplex, Message: de.Error() + " (datasets.max_json_depth)"}
			}
			return &Error{Kind: KindInvalid, Message: "invalid JSON: " + err.Error()}
		}
	case FormatCSV, FormatTSV:
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		defer f.Close()
		n, err := csvColumns(f, maxHeaderBytes)
		if err != nil {
			return &Error{Kind: KindInvalid, Message: err.Error()}
		}
		if lim.MaxColumns > 0 && n > lim.MaxColumns {
			return tooManyColumns(n, lim.MaxColumns)
		}
	}
	return nil
}

// maxHeaderBytes bounds the header line read to count CSV columns.
const maxHeaderBytes = 1 << 20

// loadTable fills a new table from the file src and returns its columns.
// It is shared by uploads and inline data.
func loadTable(ctx context.Context, db *sql.DB, table, src, format string) ([]Column, error) {
	_, err := db.ExecContext(ctx, loadSQL(format, table, false), src)
	if err != nil && sampled(format) && ctx.Err() == nil {
		// A sampled type guess can fail deep in a valid file (text in a
		// column that looked numeric); a full scan guesses from all rows.
		// The failed statement created nothing.
		_, err = db.ExecContext(ctx, loadSQL(format, table, true), src)
	}
	if err != nil {
		return nil, loadError(ctx, err, "could not read the data as "+format)
	}
	cols, err := describe(ctx, db, table)
	if err != nil {
		return nil, loadError(ctx, err, "describe")
	}
	if len(cols) == 0 {
		return nil, &Error{Kind: KindInvalid, Message: "the data has no columns"}
	}
	if format == FormatJSON || format == FormatNDJSON {
		// An empty array loads as one column named json and no rows.
		var n int64
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+quoteIdent(table)).Scan(&n); err != nil {
			return nil, loadError(ctx, err, "count")
		}
		if n == 0 {
			return nil, &Error{Kind: KindInvalid, Message: "the JSON holds no records"}
		}
	}
	return cols, nil
}

// loadError keeps ctx errors as they are and turns DuckDB's complaint
// about the content into a short KindInvalid.
func loadError(ctx context.Context, err error, what string) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return &Error{Kind: KindInvalid, Message: what + ": " + ingestMessage(err)}
}

// describe returns the columns of a table with DuckDB's type names, the
// same names a query Result reports.
func describe(ctx context.Context, q queryer, table string) ([]Column, error) {
	rows, err := q.QueryContext(ctx, "SELECT * FROM "+quoteIdent(table)+" LIMIT 0")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cts, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	cols := make([]Column, len(cts))
	for i, ct := range cts {
		cols[i] = Column{Name: ct.Name(), Type: ct.DatabaseTypeName()}
	}
	return cols, rows.Err()
}

// xlsxLimitsFor derives the XLSX caps from the upload's: the workbook may
// inflate, and its CSV rendering grow, to 4× the upload limit.
func xlsxLimitsFor(l inputLimits) XLSXLimits {
	return XLSXLimits{
		MaxInflatedBytes: xlsxInflateFactor * l.MaxBytes,
		MaxOutputBytes:   xlsxInflateFactor * l.MaxBytes,
		MaxCells:         defaultXLSXMaxCells,
		MaxCellBytes:     defaultXLSXMaxCellBytes,
		MaxColumns:       l.MaxColumns,
	}
}
