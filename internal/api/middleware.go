package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/nexus/nexus/internal/infra/circuit"
	"github.com/nexus/nexus/internal/infra/llm"
)

const requestIDKey = "request_id"

// requestID gives every request an X-Request-ID, keeping a sane one that
// the client sent so that calls can be traced across services.
func requestID() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			id := c.Request().Header.Get(echo.HeaderXRequestID)
			if !validRequestID(id) {
				var b [12]byte
				_, _ = rand.Read(b[:])
				id = hex.EncodeToString(b[:])
			}
			c.Set(requestIDKey, id)
			c.Response().Header().Set(echo.HeaderXRequestID, id)
			return next(c)
		}
	}
}

// validRequestID accepts printable ASCII up to 128 bytes, so a client's ID
// can neither flood nor forge log lines.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

func requestIDOf(c echo.Context) string {
	id, _ := c.Get(requestIDKey).(string)
	return id
}

// accessLog writes one JSON line per request. It hands errors to the error
// handler itself so that it logs the status actually sent; a request whose
// client hung up is logged as 499.
func accessLog(log *slog.Logger, m Metrics) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			// The connection's own context: a route's deadline replaces
			// the request's context, and its expiry is not a hang-up.
			conn := c.Request().Context()
			c.Set(connContextKey, conn)
			if err := next(c); err != nil {
				c.Error(err)
			}
			status := c.Response().Status
			if conn.Err() != nil && !bodyCut(c) {
				status = StatusClientClosed
			}
			route := c.Path()
			if route == "" {
				route = "unmatched"
			}
			took := time.Since(start)
			if m != nil {
				m.ObserveHTTP(route, methodLabel(c.Request().Method), status, took)
			}
			level := slog.LevelInfo
			if status >= 500 {
				level = slog.LevelWarn
			}
			log.LogAttrs(c.Request().Context(), level, "request",
				slog.String("request_id", requestIDOf(c)),
				slog.String("method", c.Request().Method),
				slog.String("route", route),
				slog.String("remote", c.RealIP()),
				slog.Int("status", status),
				slog.Float64("duration_ms", float64(took.Microseconds())/1000),
			)
			return nil
		}
	}
}

// errRequestTimeout is the cause given to a request's context when
// requestDeadline expires, to tell it from the client hanging up.
var errRequestTimeout = errors.New("request timeout")

// connContextKey holds the connection's own context, before any route's
// deadline replaced the request's: it ends only when the client goes.
const connContextKey = "conn_context"

func connContext(c echo.Context) context.Context {
	if ctx, ok := c.Get(connContextKey).(context.Context); ok {
		return ctx
	}
	return c.Request().Context()
}

// timedOut reports whether err is what the request's deadline left
// behind: the deadline fired and err is a cancellation (of a query, an
// LLM call or the pipeline itself), not some other failure that happened
// to come late.
func timedOut(c echo.Context, err error) bool {
	if !errors.Is(context.Cause(c.Request().Context()), errRequestTimeout) {
		return false
	}
	le, _ := errors.AsType[*circuit.LLMError](err)
	return errors.Is(err, errRequestTimeout) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, context.Canceled) || (le != nil && le.Kind == llm.KindCanceled)
}

// stillWanted is checked before a handler answers 200: a request whose
// deadline fired (or whose client left) while its last steps fell back
// gets the 504 (or 499), not a result that says the client canceled.
func stillWanted(c echo.Context) error {
	return c.Request().Context().Err()
}

// requestDeadline bounds the request: its context ends after d (none when
// d is 0), which cancels the LLM calls and queries it is waiting on; the
// error handler then answers 504.
func requestDeadline(d time.Duration) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if d <= 0 {
			return next
		}
		return func(c echo.Context) error {
			ctx, cancel := context.WithTimeoutCause(c.Request().Context(), d, errRequestTimeout)
			defer cancel()
			c.SetRequest(c.Request().WithContext(ctx))
			return next(c)
		}
	}
}

// recoverPanics turns a handler panic into a 500 with the detail in the log.
func recoverPanics(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			defer func() {
				if r := recover(); r != nil {
					if r == http.ErrAbortHandler {
						panic(r)
					}
					log.Error("panic in handler", slog.String("request_id", requestIDOf(c)), slog.String("panic", fmt.Sprint(r)))
					err = fmt.Errorf("panic: %v", r)
				}
			}()
			return next(c)
		}
	}
}

// methodLabel keeps the method label bounded: a client can send any
// method name.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete,
		http.MethodPatch, http.MethodHead, http.MethodOptions:
		return m
	default:
		return "OTHER"
	}
}
