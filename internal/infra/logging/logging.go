// Package logging is Nexus's log adapter: the log/slog API that every
// package takes, with zerolog writing JSON lines behind it through
// slog-zerolog (github.com/samber/slog-zerolog/v2, the project's fixed
// choice), into a Sink that never blocks the goroutine that logs.
//
// slog-zerolog converts each record through a map, which costs about
// 10 µs and 20 allocations a line (BenchmarkAccessLine). That stays:
// the adapter is fixed. What the Sink removes is the other cost on the
// request path: a write syscall per line, and a slow stdout stalling the
// request that logs.
package logging

import (
	"io"
	"log/slog"
	"time"

	"github.com/rs/zerolog"
	slogzerolog "github.com/samber/slog-zerolog/v2"
)

// New returns a logger writing JSON lines to w: "level", the attributes,
// one "time" (RFC 3339, UTC, nanoseconds) and "message". slog groups nest
// as JSON objects. Records below level are dropped before any work is
// done.
//
// w receives one Write per line and must be safe for concurrent use; a
// *Sink is.
func New(w io.Writer, level slog.Leveler) *slog.Logger {
	zl := zerolog.New(w).Level(zerolog.TraceLevel).Hook(timeHook{})
	return slog.New(slogzerolog.Option{Level: level, Logger: &zl, NoTimestamp: true}.NewZerologHandler())
}

// timeHook writes the line's one "time" key. slog-zerolog's own timestamp
// follows the process-wide zerolog.TimeFieldFormat (whole seconds unless
// someone changes the global), so it is turned off and this one, fixed,
// is written instead, without touching the global.
type timeHook struct{}

func (timeHook) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	var buf [len(time.RFC3339Nano) + 8]byte
	e.Bytes(zerolog.TimestampFieldName, time.Now().UTC().AppendFormat(buf[:0], time.RFC3339Nano))
}
