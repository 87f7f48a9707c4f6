package dataset

import (
	"net/url"
	"runtime"
	"strconv"
	"time"
)

// Defaults applied by Open to zero fields of Config.
const (
	DefaultMaxUploadBytes   int64 = 100 << 20
	DefaultStatementTimeout       = 10 * time.Second
	DefaultMaxRows                = 1000
	DefaultMaxResultBytes   int64 = 1 << 20
	DefaultMemoryLimitMB          = 1024
	DefaultMaxOpen                = 16
	DefaultWorkerMemoryMB         = 2048
	DefaultMaxJSONDepth           = 64
	DefaultMaxColumns             = 1024
	DefaultIngestTimeout          = 10 * time.Minute
)

// Config holds the Store's location and limits. Zero limits get the
// defaults above; negative limits are treated as zero.
type Config struct {
	// Dir is the data directory ("./data" when empty); Open creates it
	// (0700) if missing. The Store only touches its own file names in it
	// (see the package doc).
	Dir string
	// MaxUploadBytes caps an upload or inline content, enforced while
	// streaming; larger input fails with KindTooLarge.
	MaxUploadBytes int64
	// StatementTimeout bounds each Query, Sample and Validate, guard
	// included; DuckDB has no statement timeout, so the Store cancels the
	// query's context, which interrupts DuckDB within about 200 ms.
	StatementTimeout time.Duration
	// MaxRows caps the rows a Result carries; Result.RowCount still reports
	// the full size of the result.
	MaxRows int
	// MaxResultBytes caps the approximate JSON size of a Result's rows; rows
	// past it are dropped and Result.Truncated is set.
	MaxResultBytes int64
	// MemoryLimitMB is DuckDB's memory_limit, in MiB, for every database
	// the Store opens: a dataset's handle, an inline table, an upload
	// being loaded. The SQL parser used by the guard gets a small fixed
	// limit of its own.
	MemoryLimitMB int
	// MaxOpen caps the read-only handles each worker keeps open between
	// jobs; past it the least recently used are closed, and reopened by
	// their next query.
	MaxOpen int
	// Workers is the number of worker processes that run DuckDB (0: one
	// per CPU). Each runs one job at a time; further jobs wait.
	Workers int
	// WorkerMemoryMB is each worker's RSS ceiling; the supervisor kills a
	// worker past it. RLIMIT_AS is set to it plus 2 GiB of headroom for
	// the address space DuckDB reserves (not in race-detector builds).
	WorkerMemoryMB int
	// WorkerCommand starts a worker; the default is this executable with
	// WorkerArg. Its main must call RunIfWorker first.
	WorkerCommand []string
	// MaxJSONDepth caps the nesting of JSON input, checked by a streaming
	// scan before DuckDB reads it.
	MaxJSONDepth int
	// MaxColumns caps the columns of an upload or inline table.
	MaxColumns int
	// MaxInlineLoads caps inline loads in flight; past it OpenInline fails
	// at once with KindBusy. 0 means twice Workers.
	MaxInlineLoads int
	// IngestTimeout bounds loading one upload, XLSX conversion and
	// profile included.
	IngestTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.Dir == "" {
		c.Dir = "./data"
	}
	if c.MaxUploadBytes <= 0 {
		c.MaxUploadBytes = DefaultMaxUploadBytes
	}
	if c.StatementTimeout <= 0 {
		c.StatementTimeout = DefaultStatementTimeout
	}
	if c.MaxRows <= 0 {
		c.MaxRows = DefaultMaxRows
	}
	if c.MaxResultBytes <= 0 {
		c.MaxResultBytes = DefaultMaxResultBytes
	}
	if c.MemoryLimitMB <= 0 {
		c.MemoryLimitMB = DefaultMemoryLimitMB
	}
	if c.MaxOpen <= 0 {
		c.MaxOpen = DefaultMaxOpen
	}
	if c.Workers <= 0 {
		c.Workers = runtime.NumCPU()
	}
	if c.WorkerMemoryMB <= 0 {
		c.WorkerMemoryMB = DefaultWorkerMemoryMB
	}
	if c.MaxJSONDepth <= 0 {
		c.MaxJSONDepth = DefaultMaxJSONDepth
	}
	if c.MaxColumns <= 0 {
		c.MaxColumns = DefaultMaxColumns
	}
	if c.MaxInlineLoads <= 0 {
		c.MaxInlineLoads = 2 * c.Workers
	}
	if c.IngestTimeout <= 0 {
		c.IngestTimeout = DefaultIngestTimeout
	}
	return c
}

// parserMemoryLimitMB bounds the parser-only database: it holds no data.
const parserMemoryLimitMB = 64

// dsn is a DuckDB data source name: path (":memory:" or a file) with opts
// and the memory limit as its query string.
func dsn(path string, memoryLimitMB int, opts url.Values) string {
	q := url.Values{}
	for k, v := range opts {
		q[k] = v
	}
	q.Set("memory_limit", strconv.Itoa(memoryLimitMB)+"MiB")
	return path + "?" + q.Encode()
}
