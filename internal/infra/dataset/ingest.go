package dataset

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Create stores one uploaded file as a new dataset of one table; it is
// NewUpload, Add and Commit in one call. name is optional (else the file
// name is used); filename gives the table its name (see TableName), the
// format its extension, and the dataset a display name; it is never used
// as a path. On any failure, including a cancelled ctx (a client hanging
// up mid-upload), nothing is left behind and nothing is listed.
//
// Content that cannot be read as a table is KindInvalid; a read error from
// r (other than an *http.MaxBytesError, which is KindTooLarge) and ctx
// errors are returned wrapped as they are.
func (s *Store) Create(ctx context.Context, name, filename string, r io.Reader, opts ...UploadOption) (Dataset, error) {
	u, err := s.NewUpload(ctx, opts...)
	if err != nil {
		return Dataset{}, err
	}
	defer u.Close()
	if err := u.Add(ctx, filename, r); err != nil {
		return Dataset{}, err
	}
	return u.Commit(ctx, name)
}

// Upload is one upload of one or more files, each of which becomes a
// table: a new dataset (Store.NewUpload) or tables added to an existing
// one (Store.NewTablesUpload). Add streams each file to a temp file as it
// arrives, checking its table name and the size limit; Commit loads them
// all in one worker job into one database file and makes the result
// visible in one atomic step. Until then nothing is listed, and if any
// file fails nothing changes. Close it always: it removes the temp files.
// An Upload is not safe for concurrent use.
//
// Naming: each file's table name is TableName of its file name. A name
// that two files share, or that a table of the dataset already has, is
// KindInvalid naming the file, as is a reserved name: one starting with
// duckdb_, pg_, sqlite_ or pragma_, information_schema, pg_catalog, and
// data unless the table is the only one of a new dataset (data is the
// alias of a one-table dataset). A single file whose name leaves nothing
// (".csv") becomes table data. Names that are SQL keywords ("order") are
// allowed: they are quoted wherever Nexus writes SQL.
//
// The files together may be at most Config.MaxUploadBytes, and a dataset
// holds at most MaxTables tables.
type Upload struct {
	s *Store
	// tmp prefixes every temp name of this upload; Close removes them all.
	tmp string
	// into is the dataset AddTables adds to; "" for a new dataset.
	into string
	// existing are into's table names when the upload began; Commit
	// checks again against the current ones.
	existing []string
	// owner is the new dataset's Owner.
	owner string
	files []upFile
	size  int64
}

type upFile struct {
	clean  string // cleaned file name, for messages and display
	table  string // table name; "" when the file name leaves nothing
	path   string // the spooled copy
	format string
	size   int64
}

// UploadOption sets something about a new dataset beyond its files.
type UploadOption func(*Upload)

// WithOwner records owner (an API key's name) as the new dataset's Owner.
// Tables added later keep the dataset's owner.
func WithOwner(owner string) UploadOption {
	return func(u *Upload) { u.owner = owner }
}

// NewUpload starts an upload of a new dataset.
func (s *Store) NewUpload(ctx context.Context, opts ...UploadOption) (*Upload, error) {
	if err := s.checkOpen(ctx); err != nil {
		return nil, err
	}
	token, err := newID()
	if err != nil {
		return nil, err
	}
	u := &Upload{s: s, tmp: filepath.Join(s.cfg.Dir, tmpPrefix+token)}
	for _, o := range opts {
		o(u)
	}
	return u, nil
}

// NewTablesUpload starts an upload of tables to add to dataset id; an
// unknown id gives an error wrapping ErrNotFound.
func (s *Store) NewTablesUpload(ctx context.Context, id string) (*Upload, error) {
	m, err := s.metadata(ctx, id)
	if err != nil {
		return nil, err
	}
	u, err := s.NewUpload(ctx)
	if err != nil {
		return nil, err
	}
	u.into = id
	for _, t := range m.Dataset.Tables {
		u.existing = append(u.existing, t.Name)
	}
	return u, nil
}

// Close removes the upload's temp files. It is idempotent, and safe after
// Commit (which has moved what it keeps out of the temp names).
func (u *Upload) Close() { removeGlob(u.tmp + "*") }

// Add streams one file into the upload. Its table name is checked before
// its content is read.
func (u *Upload) Add(ctx context.Context, filename string, r io.Reader) error {
	s := u.s
	if err := s.checkOpen(ctx); err != nil {
		return err
	}
	i := len(u.files)
	f := upFile{clean: cleanFilename(filename), table: TableName(filename)}
	label := fileLabel(i, f.clean)
	if n := len(u.existing) + i + 1; n > MaxTables {
		return s.errorf(KindTooComplex, "%s: a dataset holds at most %d tables", label, MaxTables)
	}
	if msg := u.nameProblem(i, f.table, u.existing, false); msg != "" {
		return s.errorf(KindInvalid, "%s: %s", label, msg)
	}
	f.path = fmt.Sprintf("%s.%d.upload", u.tmp, i)
	size, head, err := s.spool(ctx, f.path, r, s.cfg.MaxUploadBytes-u.size)
	var e *Error
	if errors.As(err, &e) {
		if e.Kind == KindTooLarge && i > 0 {
			e = s.errorf(KindTooLarge, "the files together are larger than the limit of %d bytes", s.cfg.MaxUploadBytes)
		}
		return &Error{Kind: e.Kind, Message: label + ": " + e.Message}
	}
	if err != nil {
		return err
	}
	f.size = size
	f.format = detectFormat(f.clean, head)
	if f.format == "" {
		return s.errorf(KindInvalid, "%s: unknown format: upload a .csv, .tsv, .json, .ndjson, .parquet or .xlsx file", label)
	}
	u.size += size
	u.files = append(u.files, f)
	return nil
}

// nameProblem says what is wrong with file i's table name, or "": it is
// reserved, or taken by an existing table or an earlier file. final adds
// the checks that need every file: an empty name and data, both allowed
// only for the sole table of a new dataset.
func (u *Upload) nameProblem(i int, name string, existing []string, final bool) string {
	sole := u.into == "" && len(u.files) == 1
	switch {
	case name == "":
		if final && !sole {
			return "no table name can be made from the file name; rename the file (letters, digits or _)"
		}
		return ""
	case name == DataAlias:
		if (u.into != "" || i > 0) || (final && !sole) {
			return fmt.Sprintf("the table name %q is reserved: it is the name of a dataset's only table; rename the file", DataAlias)
		}
		return ""
	}
	if msg := reservedName(name); msg != "" {
		return msg
	}
	if slices.Contains(existing, name) {
		return fmt.Sprintf("the dataset already has a table named %q", name)
	}
	for k := range i {
		if u.files[k].table == name {
			return fmt.Sprintf("its table name %q is the same as that of %s", name, fileLabel(k, u.files[k].clean))
		}
	}
	return ""
}

// Commit loads every file added and makes the result visible at once: a
// new dataset, or the dataset with its new tables. With tables added, a
// Session opened before sees the old tables until it closes, one opened
// after sees all of them; none sees some of them. name is the new
// dataset's display name (optional); it is ignored when adding tables.
// Additions to one dataset run one at a time.
func (u *Upload) Commit(ctx context.Context, name string) (Dataset, error) {
	s := u.s
	if len(u.files) == 0 {
		return Dataset{}, s.errorf(KindInvalid, "no file was uploaded")
	}
	if u.into == "" {
		if err := u.checkNames(nil); err != nil {
			return Dataset{}, err
		}
		if len(u.files) == 1 && u.files[0].table == "" {
			u.files[0].table = DataAlias
		}
		return u.create(ctx, name)
	}
	return u.addTo(ctx)
}

// checkNames runs the final name checks against existing.
func (u *Upload) checkNames(existing []string) error {
	if n := len(existing) + len(u.files); n > MaxTables {
		return u.s.errorf(KindTooComplex, "%s: a dataset holds at most %d tables", fileLabel(len(u.files)-1, u.files[len(u.files)-1].clean), MaxTables)
	}
	for i, f := range u.files {
		if msg := u.nameProblem(i, f.table, existing, true); msg != "" {
			return u.s.errorf(KindInvalid, "%s: %s", fileLabel(i, f.clean), msg)
		}
	}
	return nil
}

// sources are the ingest job's inputs.
func (u *Upload) sources() []source {
	out := make([]source, len(u.files))
	for i, f := range u.files {
		out[i] = source{Table: f.table, Label: fileLabel(i, f.clean), Src: f.path, Format: f.format, TmpDir: fmt.Sprintf("%s.%d.xl", u.tmp, i)}
	}
	return out
}

// tables pairs the files with what the worker loaded.
func (u *Upload) tables(rep reply) ([]Table, error) {
	if len(rep.Tables) != len(u.files) {
		return nil, fmt.Errorf("dataset: the worker loaded %d tables of %d", len(rep.Tables), len(u.files))
	}
	out := make([]Table, len(u.files))
	for i, f := range u.files {
		lt := rep.Tables[i]
		if lt.Name != f.table || lt.Profile == nil {
			return nil, fmt.Errorf("dataset: the worker loaded table %q, want %q", lt.Name, f.table)
		}
		out[i] = Table{Name: f.table, File: f.clean, Format: f.format, Rows: lt.Profile.RowCount, Columns: lt.Columns, SizeBytes: f.size, Profile: *lt.Profile}
	}
	return out, nil
}

func (u *Upload) create(ctx context.Context, name string) (Dataset, error) {
	s := u.s
	id, err := newID()
	if err != nil {
		return Dataset{}, err
	}
	view := ""
	if len(u.files) == 1 && u.files[0].table != DataAlias {
		view = u.files[0].table
	}
	tmpDB := u.tmp + dbExt
	rep, err := s.runJob(ctx, job{Op: opIngest, Sources: u.sources(), DB: tmpDB, DataView: view, Limits: s.inputLimits()}, s.cfg.IngestTimeout)
	if err != nil {
		return Dataset{}, err
	}
	tables, err := u.tables(rep)
	if err != nil {
		return Dataset{}, err
	}
	metaBytes, meta, err := encodeMetadata(metadata{Dataset: Dataset{
		ID: id, Name: displayName(name, u.files[0].clean), CreatedAt: time.Now().UTC(), Tables: tables, Owner: u.owner,
	}})
	if err != nil {
		return Dataset{}, err
	}
	if err := ctx.Err(); err != nil {
		return Dataset{}, err
	}
	if err := s.commit(id, tmpDB, u.tmp+metaExt, metaBytes); err != nil {
		return Dataset{}, err
	}

	s.mu.Lock()
	if !s.closed {
		s.datasets[id] = s.newEntry(meta)
	}
	s.mu.Unlock()
	d := meta.Dataset
	s.log.Info("dataset: created", "id", id, "format", d.Format, "tables", d.TableCount, "rows", d.Rows, "bytes", d.SizeBytes)
	return meta.dataset(), nil
}

// addTo builds the dataset's next generation: a copy of the current
// database with the new tables loaded into it (and the data alias dropped,
// since the dataset no longer has one table), beside the current one.
// Then, under the Store's lock, the metadata is switched to it (an atomic
// rename) and new Sessions open it; Sessions already open keep the old
// generation, whose file is removed when the last of them closes.
func (u *Upload) addTo(ctx context.Context) (Dataset, error) {
	s := u.s
	id := u.into
	s.mu.Lock()
	e, ok := s.datasets[id]
	closed := s.closed
	s.mu.Unlock()
	switch {
	case closed:
		return Dataset{}, ErrClosed
	case !ok:
		return Dataset{}, fmt.Errorf("dataset %q: %w", id, ErrNotFound)
	}
	select {
	case e.adding <- struct{}{}:
		defer func() { <-e.adding }()
	case <-ctx.Done():
		return Dataset{}, ctx.Err()
	}
	// Pin the current generation, so that a Delete meanwhile cannot
	// remove the file being copied.
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return Dataset{}, ErrClosed
	case e.deleted:
		s.mu.Unlock()
		return Dataset{}, fmt.Errorf("dataset %q: %w", id, ErrNotFound)
	}
	old := e.cur
	old.refs++
	s.mu.Unlock()
	defer func() { _ = s.release(old) }()

	existing := make([]string, 0, len(old.meta.Dataset.Tables))
	for _, t := range old.meta.Dataset.Tables {
		existing = append(existing, t.Name)
	}
	if err := u.checkNames(existing); err != nil {
		return Dataset{}, err
	}
	oldTables := old.meta.Dataset.Tables
	tmpDB := u.tmp + dbExt
	rep, err := s.runJob(ctx, job{
		Op: opIngest, Sources: u.sources(), DB: tmpDB, Base: old.path, Limits: s.inputLimits(),
		DropDataView: len(oldTables) == 1 && oldTables[0].Name != DataAlias,
	}, s.cfg.IngestTimeout)
	if err != nil {
		return Dataset{}, err
	}
	added, err := u.tables(rep)
	if err != nil {
		return Dataset{}, err
	}
	next := old.meta
	next.Dataset = old.meta.dataset()
	next.Dataset.Tables = append(next.Dataset.Tables, added...)
	next.Generation = old.meta.Generation + 1
	metaBytes, meta, err := encodeMetadata(next)
	if err != nil {
		return Dataset{}, err
	}
	if err := ctx.Err(); err != nil {
		return Dataset{}, err
	}
	newPath := s.dbPath(id, next.Generation)
	if err := syncFile(tmpDB); err != nil {
		return Dataset{}, fmt.Errorf("dataset: sync database: %w", err)
	}
	if err := os.Rename(tmpDB, newPath); err != nil {
		return Dataset{}, fmt.Errorf("dataset: move database: %w", err)
	}
	tmpMeta := u.tmp + metaExt
	if err := writeSynced(tmpMeta, metaBytes); err != nil {
		_ = removeDBFiles(newPath)
		return Dataset{}, fmt.Errorf("dataset: write metadata: %w", err)
	}
	s.mu.Lock()
	if e.deleted || s.closed {
		closed := s.closed
		s.mu.Unlock()
		_ = removeDBFiles(newPath)
		if closed {
			return Dataset{}, ErrClosed
		}
		return Dataset{}, fmt.Errorf("dataset %q: %w", id, ErrNotFound)
	}
	// The commit point: the rename is atomic, and it happens under the
	// lock that Session and Delete take, so no Session can open the new
	// file with the old tables or the old file with the new ones.
	if err := os.Rename(tmpMeta, s.metaPath(id)); err != nil {
		s.mu.Unlock()
		_ = removeDBFiles(newPath)
		return Dataset{}, fmt.Errorf("dataset: move metadata: %w", err)
	}
	e.cur = s.newGeneration(meta)
	old.retired = true
	s.mu.Unlock()
	syncDir(s.cfg.Dir)
	names := make([]string, len(added))
	for i, t := range added {
		names[i] = t.Name
	}
	s.log.Info("dataset: tables added", "id", id, "tables", strings.Join(names, ","), "generation", next.Generation)
	return meta.dataset(), nil
}

func (s *Store) checkOpen(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	return nil
}

// spool streams r to path, enforcing limit (what is left of
// Config.MaxUploadBytes) while reading, and returns the size and the first
// bytes (for format sniffing).
func (s *Store) spool(ctx context.Context, path string, r io.Reader, limit int64) (int64, []byte, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, nil, fmt.Errorf("dataset: create temp file: %w", err)
	}
	n, err := io.CopyBuffer(f, io.LimitReader(ctxReader{ctx: ctx, r: r}, limit+1), make([]byte, 1<<20))
	if cerr := f.Close(); err == nil && cerr != nil {
		return 0, nil, fmt.Errorf("dataset: write temp file: %w", cerr)
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig) || n > limit:
		return 0, nil, s.errorf(KindTooLarge, "the upload is larger than the limit of %d bytes", s.cfg.MaxUploadBytes)
	case ctx.Err() != nil:
		return 0, nil, ctx.Err()
	case err != nil:
		return 0, nil, fmt.Errorf("dataset: read upload: %w", err)
	case n == 0:
		return 0, nil, s.errorf(KindInvalid, "the file is empty")
	}
	head, err := readHead(path, 4096)
	if err != nil {
		return 0, nil, fmt.Errorf("dataset: read temp file: %w", err)
	}
	return n, head, nil
}

func readHead(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	head := make([]byte, n)
	k, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return head[:k], nil
}

// ctxReader stops a copy as soon as ctx is done, so a cancelled upload
// does not keep writing.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func (s *Store) inputLimits() inputLimits {
	return inputLimits{MaxJSONDepth: s.cfg.MaxJSONDepth, MaxColumns: s.cfg.MaxColumns, MaxBytes: s.cfg.MaxUploadBytes}
}

// commit moves a finished dataset into place: database first, metadata
// last (written to a temp file, synced, renamed), so a dataset exists only
// once its metadata does, and a crash in between leaves an orphan that
// Open removes.
func (s *Store) commit(id, tmpDB, tmpMeta string, metaBytes []byte) error {
	if err := syncFile(tmpDB); err != nil {
		return fmt.Errorf("dataset: sync database: %w", err)
	}
	if err := os.Rename(tmpDB, s.dbPath(id, 0)); err != nil {
		return fmt.Errorf("dataset: move database: %w", err)
	}
	if err := writeSynced(tmpMeta, metaBytes); err != nil {
		_ = os.Remove(s.dbPath(id, 0))
		return fmt.Errorf("dataset: write metadata: %w", err)
	}
	if err := os.Rename(tmpMeta, s.metaPath(id)); err != nil {
		_ = os.Remove(s.dbPath(id, 0))
		return fmt.Errorf("dataset: move metadata: %w", err)
	}
	syncDir(s.cfg.Dir)
	return nil
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// removeGlob removes every file or directory matching pattern.
func removeGlob(pattern string) {
	matches, _ := filepath.Glob(pattern)
	for _, m := range matches {
		_ = os.RemoveAll(m)
	}
}

// newID returns "ds_" and 16 random hex digits.
func newID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("dataset: random id: %w", err)
	}
	return "ds_" + hex.EncodeToString(b[:]), nil
}

// Files is how many files have been added.
func (u *Upload) Files() int { return len(u.files) }

// MaxRows is Config.MaxRows: the most rows a Result carries, and so the
// largest page Session.Rows returns.
func (s *Store) MaxRows() int { return s.cfg.MaxRows }
