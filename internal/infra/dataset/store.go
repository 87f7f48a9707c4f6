package dataset

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
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
	// pool runs every DuckDB job in worker processes; the server process
	// itself never opens a database.
	pool *pool
	// inline bounds the inline loads in flight (Config.MaxInlineLoads).
	inline chan struct{}

	mu       sync.Mutex
	closed   bool
	datasets map[string]*entry
}

// entry is one stored dataset. refs counts open Sessions; a deleted
// entry's files are removed when the last one ends.
type entry struct {
	meta metadata

	// guarded by Store.mu
	refs    int
	deleted bool
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
	s := &Store{
		cfg:      cfg,
		log:      log,
		scrub:    newScrubber(cfg.Dir),
		dataDirs: dirSpellings(cfg.Dir),
		inline:   make(chan struct{}, cfg.MaxInlineLoads),
		datasets: map[string]*entry{},
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	cmd := cfg.WorkerCommand
	if len(cmd) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("dataset: find own executable for workers: %w", err)
		}
		cmd = []string{exe, WorkerArg}
	}
	pool, err := newPool(cfg.Workers, cmd, workerEnv(cfg.Dir), cfg.WorkerMemoryMB, log)
	if err != nil {
		return nil, err
	}
	s.pool = pool
	return s, nil
}

// workerEnv is a worker's whole environment, built from nothing so that
// no secret (the LLM key, the admin token) or other variable of the
// server reaches it. HOME and TMPDIR point into the private data dir.
func workerEnv(dir string) []string {
	return []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + dir, "TMPDIR=" + dir, "LANG=C.UTF-8"}
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

// Close stops the worker processes; a job still running fails. Files of
// deleted datasets still in use are removed when their Sessions close.
// Close is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.pool.close()
	return nil
}

// Stats is a snapshot of the Store's size, for metrics.
type Stats struct {
	// Datasets is how many datasets are stored.
	Datasets int
	// OpenHandles is how many read-only DuckDB handles the workers keep
	// open (at most Config.MaxOpen each), as of each worker's last job.
	OpenHandles int
	// Workers is the worker pool's state.
	Workers PoolStats
	// InlineLoads is how many inline loads are in flight (at most
	// Config.MaxInlineLoads), waiting for a worker or loading.
	InlineLoads int
}

// Stats returns the Store's current size and its workers' state.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	n := len(s.datasets)
	s.mu.Unlock()
	return Stats{Datasets: n, OpenHandles: s.pool.openHandles(), Workers: s.pool.stats(), InlineLoads: len(s.inline)}
}

func (s *Store) newEntry(meta metadata) *entry { return &entry{meta: meta} }

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

// removeDB removes a deleted dataset's database files. A worker that
// still holds the file open notices on its next job and closes it.
func (s *Store) removeDB(e *entry) error {
	return removeDBFiles(s.dbPath(e.meta.Dataset.ID))
}

// removeDBFiles removes a database file and what DuckDB keeps beside it.
func removeDBFiles(path string) error {
	var err error
	for _, p := range []string{path, path + ".wal", path + ".tmp"} {
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

// release drops a Session's reference and finishes a pending Delete.
func (s *Store) release(e *entry) error {
	s.mu.Lock()
	e.refs--
	last := e.refs == 0
	deleted := e.deleted
	s.mu.Unlock()
	if last && deleted {
		return s.removeDB(e)
	}
	return nil
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
