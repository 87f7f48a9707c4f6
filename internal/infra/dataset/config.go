package dataset

import "time"

// Defaults applied by Open to zero fields of Config.
const (
	DefaultMaxUploadBytes   int64 = 100 << 20
	DefaultStatementTimeout       = 10 * time.Second
	DefaultMaxRows                = 1000
	DefaultMaxResultBytes   int64 = 1 << 20
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
	return c
}
