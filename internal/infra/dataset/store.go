package dataset

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// Dataset describes a stored dataset. It is immutable once created.
type Dataset struct {
	// ID is random and URL-safe ("ds_" + 16 hex digits).
	ID string `json:"id"`
	// Name is the name given at upload, else the sanitised file name
	// without its extension. It is for display only, never a path.
	Name string `json:"name"`
	// Format is how the upload was parsed: csv, tsv, json, ndjson, parquet
	// or xlsx.
	Format  string   `json:"format"`
	Rows    int64    `json:"rows"`
	Columns []Column `json:"columns"`
	// SizeBytes is the size of the uploaded file, not of the database.
	SizeBytes int64     `json:"size_bytes"`
	CreatedAt time.Time `json:"created_at"`
}

// Column is one column of a table or result. Type is DuckDB's type name
// (BIGINT, VARCHAR, DECIMAL(10,2), INTEGER[], ...), which is what an LLM
// writing SQL against the table needs to see.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// metadata is the on-disk record of a dataset, written last and atomically.
type metadata struct {
	Version int     `json:"version"`
	Dataset Dataset `json:"dataset"`
	Profile Profile `json:"profile"`
}

const metadataVersion = 1

// dataset and profile return copies, so that a caller that edits a slice
// cannot race with other callers or change what the Store holds.
func (m metadata) dataset() Dataset {
	d := m.Dataset
	d.Columns = slices.Clone(d.Columns)
	return d
}

func (m metadata) profile() Profile {
	p := m.Profile
	p.Columns = slices.Clone(p.Columns)
	for i := range p.Columns {
		p.Columns[i].TopValues = slices.Clone(p.Columns[i].TopValues)
	}
	return p
}

// Names in Dir. Only these are ever created, read or removed.
const (
	tmpPrefix = ".tmp-dataset-"
	dbExt     = ".duckdb"
	metaExt   = ".json"
)

var idPattern = regexp.MustCompile(`^ds_[0-9a-f]{16}$`)

// Store owns the datasets in one directory. It is safe for concurrent use.
// Close it to release every DuckDB handle.
type Store struct {
	cfg   Config
	log   *slog.Logger
	scrub scrubber
	// dataDirs are the spellings of Dir scrubbed from result values.
	dataDirs []string
	// parser is an in-memory, sandboxed DuckDB used only to ask the parser
	// about SQL text (the guard); it holds no data.
	parser *sql.DB

	mu       sync.Mutex
	closed   bool
	datasets map[string]*entry

	// openHandles counts the DuckDB handles open, stored or deleted but
	// still in use; closeIdle reads it first so that the common case (under
	// MaxOpen) costs no scan.
	openHandles atomic.Int64
}

// entry is one stored dataset and its lazily opened, sandboxed read-only
// handle. refs counts open Sessions; a deleted or closed entry's handle is
// closed (and a deleted entry's files removed) when the last one ends.
type entry struct {
	meta metadata

	openMu sync.Mutex  // serialises opening db
	db     *sql.DB     // guarded by openMu; nil until first Session
	isOpen atomic.Bool // db != nil, readable without openMu
	// openHandles is the Store's counter, kept in step with isOpen.
	openHandles *atomic.Int64

	// guarded by Store.mu
	refs     int
	deleted  bool
	retired  bool      // Store closed: close db on last release
	lastUsed time.Time // when the last Session on it closed
}

// Open opens (creating if needed) the store in cfg.Dir, loads the datasets
// found there, and removes leftovers of interrupted uploads: temp files and
// databases without metadata. Corrupt metadata is logged and skipped, so
// one bad file does not stop the service.
func Open(cfg Config, log *slog.Logger) (*Store, error) {
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("dataset: data dir: %w", err)
	}
	if strings.ContainsAny(abs, "?#%") {
		// duckdb-go reads a file path and its options as one URL: a '#'
		// would silently drop the sandbox options, a '%' or '?' breaks it.
		return nil, fmt.Errorf("dataset: data dir %q: DuckDB cannot use a path containing '?', '#' or '%%'", abs)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("dataset: create data dir: %w", err)
	}
	cfg.Dir = abs
	parser, err := openSandboxMemory(context.Background(), "", parserMemoryLimitMB, nil)
	if err != nil {
		return nil, fmt.Errorf("dataset: open parser database: %w", err)
	}
	s := &Store{
		cfg:      cfg,
		log:      log,
		scrub:    newScrubber(cfg.Dir),
		dataDirs: dirSpellings(cfg.Dir),
		parser:   parser,
		datasets: map[string]*entry{},
	}
	if err := s.load(); err != nil {
		_ = parser.Close()
		return nil, err
	}
	return s, nil
}

// load reads Dir: metadata first, then removes temp files and orphans.
func (s *Store) load() error {
	des, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return fmt.Errorf("dataset: read data dir: %w", err)
	}
	hasMeta := map[string]bool{}
	for _, de := range des {
		name := de.Name()
		id, ok := strings.CutSuffix(name, metaExt)
		if !ok || !idPattern.MatchString(id) || de.IsDir() {
			continue
		}
		hasMeta[id] = true
		meta, err := readMetadata(filepath.Join(s.cfg.Dir, name))
		if err == nil && meta.Dataset.ID != id {
			err = fmt.Errorf("metadata id %q does not match file name", meta.Dataset.ID)
		}
		if err == nil {
			_, err = os.Stat(s.dbPath(id))
		}
		if err != nil {
			s.log.Warn("dataset: skipping unreadable dataset", "id", id, "err", err)
			continue
		}
		s.datasets[id] = s.newEntry(meta)
	}
	for _, de := range des {
		name := de.Name()
		path := filepath.Join(s.cfg.Dir, name)
		switch {
		case strings.HasPrefix(name, tmpPrefix):
			s.log.Info("dataset: removing leftover of an interrupted upload", "file", name)
			_ = os.RemoveAll(path)
		case idPattern.MatchString(dbID(name)) && !hasMeta[dbID(name)]:
			// A database (or its .wal / spill dir) whose metadata was never
			// written, or whose Delete was interrupted. One with unreadable
			// metadata is kept for a person to look at.
			s.log.Info("dataset: removing database without metadata", "file", name)
			_ = os.RemoveAll(path)
		}
	}
	return nil
}

// dbID returns the id of a database file name ("ds_x.duckdb",
// "ds_x.duckdb.wal", "ds_x.duckdb.tmp"), or "".
func dbID(name string) string {
	id, _, ok := strings.Cut(name, dbExt)
	if !ok {
		return ""
	}
	return id
}

func readMetadata(path string) (metadata, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return metadata{}, err
	}
	return decodeMetadata(b)
}

// decodeMetadata is also used right after writing, so a profile looks the
// same before and after a restart (numbers as json.Number, exact).
func decodeMetadata(b []byte) (metadata, error) {
	var m metadata
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return metadata{}, err
	}
	if m.Version != metadataVersion {
		return metadata{}, fmt.Errorf("unsupported metadata version %d", m.Version)
	}
	if m.Dataset.Columns == nil {
		m.Dataset.Columns = []Column{}
	}
	for i := range m.Profile.Columns {
		if m.Profile.Columns[i].TopValues == nil {
			m.Profile.Columns[i].TopValues = []TopValue{}
		}
	}
	if m.Profile.Columns == nil {
		m.Profile.Columns = []ColumnProfile{}
	}
	return m, nil
}

func (s *Store) dbPath(id string) string   { return filepath.Join(s.cfg.Dir, id+dbExt) }
func (s *Store) metaPath(id string) string { return filepath.Join(s.cfg.Dir, id+metaExt) }

// Close closes every idle DuckDB handle and the parser. Handles still used
// by open Sessions are closed when those Sessions close. Close is
// idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var idle []*entry
	for _, e := range s.datasets {
		e.retired = true
		if e.refs == 0 {
			idle = append(idle, e)
		}
	}
	s.mu.Unlock()
	var errs []error
	for _, e := range idle {
		errs = append(errs, e.closeDB())
	}
	errs = append(errs, s.parser.Close())
	return errors.Join(errs...)
}

// Stats is a snapshot of the Store's size, for metrics.
type Stats struct {
	// Datasets is how many datasets are stored.
	Datasets int
	// OpenHandles is how many DuckDB handles are open, in use or idle (see
	// Config.MaxOpen), including those of deleted datasets still in use.
	OpenHandles int
}

// Stats returns the Store's current size.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Datasets: len(s.datasets), OpenHandles: int(s.openHandles.Load())}
}

func (s *Store) newEntry(meta metadata) *entry {
	return &entry{meta: meta, openHandles: &s.openHandles}
}

// List returns every dataset, oldest first (by CreatedAt, then ID).
func (s *Store) List(ctx context.Context) ([]Dataset, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	out := make([]Dataset, 0, len(s.datasets))
	for _, e := range s.datasets {
		out = append(out, e.meta.dataset())
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Dataset) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Get returns one dataset; an unknown id gives an error wrapping
// ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (Dataset, error) {
	m, err := s.metadata(ctx, id)
	return m.dataset(), err
}

// Profile returns the profile computed at upload; it costs no query.
func (s *Store) Profile(ctx context.Context, id string) (Profile, error) {
	m, err := s.metadata(ctx, id)
	return m.profile(), err
}

func (s *Store) metadata(ctx context.Context, id string) (metadata, error) {
	if err := ctx.Err(); err != nil {
		return metadata{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.datasets[id]
	if !ok {
		return metadata{}, fmt.Errorf("dataset %q: %w", id, ErrNotFound)
	}
	return e.meta, nil
}

// Delete removes a dataset. It is unknown (ErrNotFound) as soon as Delete
// returns; queries already running on it finish, and its database file is
// removed when the last Session on it closes.
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	e, ok := s.datasets[id]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("dataset %q: %w", id, ErrNotFound)
	}
	delete(s.datasets, id)
	e.deleted = true
	idle := e.refs == 0
	s.mu.Unlock()

	// Metadata first: from here on the dataset does not exist, even after a
	// crash (Open removes the orphaned database).
	if err := os.Remove(s.metaPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("dataset: delete %s: %w", id, err)
	}
	syncDir(s.cfg.Dir)
	s.log.Info("dataset: deleted", "id", id)
	if idle {
		return s.removeDB(e)
	}
	return nil
}

// removeDB closes the entry's handle and removes its database files.
func (s *Store) removeDB(e *entry) error {
	err := e.closeDB()
	id := e.meta.Dataset.ID
	for _, p := range []string{s.dbPath(id), s.dbPath(id) + ".wal", s.dbPath(id) + ".tmp"} {
		if rmErr := os.RemoveAll(p); rmErr != nil {
			err = errors.Join(err, rmErr)
		}
	}
	return err
}

// acquire takes a reference to a dataset for a Session.
func (s *Store) acquire(id string) (*entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	e, ok := s.datasets[id]
	if !ok {
		return nil, fmt.Errorf("dataset %q: %w", id, ErrNotFound)
	}
	e.refs++
	return e, nil
}

// release drops a Session's reference and finishes a pending Delete or
// Close.
func (s *Store) release(e *entry) error {
	s.mu.Lock()
	e.refs--
	last := e.refs == 0
	deleted, retired := e.deleted, e.retired
	s.mu.Unlock()
	switch {
	case last && deleted:
		return s.removeDB(e)
	case last && retired:
		return e.closeDB()
	case last:
		s.mu.Lock()
		e.lastUsed = time.Now()
		s.mu.Unlock()
		s.closeIdle()
	}
	return nil
}

// closeIdle closes the least recently used idle handles past
// Config.MaxOpen. It runs when a Session opens a handle and when the last
// Session on a dataset ends. The handles are chosen and detached from
// their entries under s.mu, so that no Session can be handed one of them,
// and closed after s.mu is released, so that a slow close (DuckDB stops
// its threads and frees its buffers) holds up no other caller. A detached
// entry opens a fresh handle on its next Session. Close errors are logged:
// they belong to no caller.
func (s *Store) closeIdle() {
	if s.openHandles.Load() <= int64(s.cfg.MaxOpen) {
		return
	}
	var detached []*sql.DB
	var ids []string
	s.mu.Lock()
	open := int(s.openHandles.Load())
	var idle []*entry
	for _, d := range s.datasets {
		if d.isOpen.Load() && d.refs == 0 {
			idle = append(idle, d)
		}
	}
	if open > s.cfg.MaxOpen {
		slices.SortFunc(idle, func(a, b *entry) int { return a.lastUsed.Compare(b.lastUsed) })
		for _, d := range idle[:min(len(idle), open-s.cfg.MaxOpen)] {
			if db := d.detach(); db != nil {
				detached = append(detached, db)
				ids = append(ids, d.meta.Dataset.ID)
			}
		}
	}
	s.mu.Unlock()
	for i, db := range detached {
		if err := db.Close(); err != nil {
			s.log.Warn("dataset: closing idle handle", "id", ids[i], "error", err.Error())
			continue
		}
		s.log.Debug("dataset: closed idle handle", "id", ids[i], "max_open", s.cfg.MaxOpen)
	}
}

// handle returns the entry's sandboxed read-only handle, opening it once.
// One *sql.DB per file: DuckDB refuses a second open of the same file in
// one process with different options.
func (e *entry) handle(path string, memoryLimitMB int) (*sql.DB, error) {
	e.openMu.Lock()
	defer e.openMu.Unlock()
	if e.db != nil {
		return e.db, nil
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
	e.db = sql.OpenDB(c)
	e.isOpen.Store(true)
	e.openHandles.Add(1)
	return e.db, nil
}

func (e *entry) closeDB() error {
	if db := e.detach(); db != nil {
		return db.Close()
	}
	return nil
}

// detach takes the entry's handle (nil if none is open) for the caller to
// close; the next Session opens a new one.
func (e *entry) detach() *sql.DB {
	e.openMu.Lock()
	defer e.openMu.Unlock()
	db := e.db
	if db != nil {
		e.db = nil
		e.isOpen.Store(false)
		e.openHandles.Add(-1)
	}
	return db
}

// syncDir makes renames and removals in dir durable. Errors are ignored:
// not every file system supports syncing a directory.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}
