// Package logging is Nexus's log adapter: the log/slog API that every
// package takes, with zerolog writing JSON lines behind it, through a Sink
// that never blocks the goroutine that logs.
//
// The slog handler is zerolog's own (zerolog.NewSlogHandler): it writes each
// attribute straight into the zerolog event. slog-zerolog, used before,
// built a map per line and sorted its keys; at about 10 µs and 21
// allocations per access-log line it was the costliest part of the access
// log, well ahead of the write itself.
package logging

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/rs/zerolog"
)

// New returns a logger writing JSON lines to w: "level", the attributes in
// the order given, one "time" (RFC 3339, UTC, nanoseconds) and "message".
// slog groups nest as JSON objects. Records below level are dropped before
// any work is done.
//
// w receives one Write per line and must be safe for concurrent use; a
// *Sink is.
func New(w io.Writer, level slog.Leveler) *slog.Logger {
	zl := zerolog.New(w).Level(zerolog.TraceLevel).Hook(timeHook{})
	return slog.New(handler{next: zerolog.NewSlogHandler(zl), level: level})
}

// timeHook writes the line's one "time" key. zerolog's own timestamp
// follows the process-wide zerolog.TimeFieldFormat (whole seconds unless
// someone changes the global); this one is fixed, without touching it.
type timeHook struct{}

func (timeHook) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	var buf [len(time.RFC3339Nano) + 8]byte
	e.Bytes(zerolog.TimestampFieldName, time.Now().UTC().AppendFormat(buf[:0], time.RFC3339Nano))
}

// handler adapts zerolog's slog handler to what Nexus's logs promise: the
// level is checked against a slog.Leveler (so any slog level works, not
// only zerolog's five), the record's own time is left to timeHook so that
// "time" appears once, and a group attribute nests as a JSON object
// instead of zerolog's dotted keys.
type handler struct {
	next  slog.Handler
	level slog.Leveler
}

func (h handler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h handler) Handle(ctx context.Context, r slog.Record) error {
	// zerolog's handler adds record.Time unless it is zero.
	r.Time = time.Time{}
	grouped := false
	r.Attrs(func(a slog.Attr) bool {
		grouped = a.Value.Kind() == slog.KindGroup && a.Key != ""
		return !grouped
	})
	if grouped {
		nr := slog.NewRecord(time.Time{}, r.Level, r.Message, r.PC)
		r.Attrs(func(a slog.Attr) bool {
			nr.AddAttrs(nest(a))
			return true
		})
		r = nr
	}
	return h.next.Handle(ctx, r)
}

func (h handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	nested := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		nested[i] = nest(a)
	}
	return handler{next: h.next.WithAttrs(nested), level: h.level}
}

// WithGroup keeps zerolog's behaviour: the group's name prefixes the keys
// that follow, joined with a dot.
func (h handler) WithGroup(name string) slog.Handler {
	return handler{next: h.next.WithGroup(name), level: h.level}
}

// nest turns a named group into one attribute whose value zerolog writes
// as a JSON object. Other attributes, and groups without a name (which
// slog inlines), pass unchanged.
func nest(a slog.Attr) slog.Attr {
	if a.Value.Kind() != slog.KindGroup || a.Key == "" {
		return a
	}
	return slog.Any(a.Key, object(a.Value.Group()))
}

// object is a group's attributes, written as a JSON object.
type object []slog.Attr

// MarshalZerologObject implements zerolog.LogObjectMarshaler.
func (o object) MarshalZerologObject(e *zerolog.Event) {
	for _, a := range o {
		appendAttr(e, a)
	}
}

func appendAttr(e *zerolog.Event, a slog.Attr) {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		attrs := v.Group()
		switch {
		case len(attrs) == 0:
		case a.Key == "":
			object(attrs).MarshalZerologObject(e)
		default:
			e.Object(a.Key, object(attrs))
		}
		return
	}
	if a.Key == "" {
		return
	}
	switch v.Kind() {
	case slog.KindString:
		e.Str(a.Key, v.String())
	case slog.KindInt64:
		e.Int64(a.Key, v.Int64())
	case slog.KindUint64:
		e.Uint64(a.Key, v.Uint64())
	case slog.KindFloat64:
		e.Float64(a.Key, v.Float64())
	case slog.KindBool:
		e.Bool(a.Key, v.Bool())
	case slog.KindDuration:
		e.Dur(a.Key, v.Duration())
	case slog.KindTime:
		e.Time(a.Key, v.Time())
	default:
		if err, ok := v.Any().(error); ok {
			e.AnErr(a.Key, err)
			return
		}
		e.Interface(a.Key, v.Any())
	}
}
