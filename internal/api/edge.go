package api

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// Edge configures the HTTP edge: who the client is, which browsers may call
// the API, how long a request body may take to arrive, and how many failed
// authentication attempts an address gets. The http.Server enforces the
// rest (server.read_timeout_seconds, max_connections, TLS): see
// cmd/server/app.
type Edge struct {
	// TrustedProxies are the proxies whose X-Forwarded-For and X-Real-IP
	// name the client. A request from any other peer is known by the
	// peer's own address, whatever headers it sends. Empty: every request
	// is known by its peer.
	TrustedProxies []netip.Prefix
	// CORSOrigins are the origins browsers may call the API from. Empty:
	// no CORS headers at all, so browsers refuse cross-origin calls.
	CORSOrigins []string
	// ReadTimeout is server.read_timeout_seconds, which the http.Server
	// enforces on every request; here it only words the 408.
	ReadTimeout time.Duration
	// UploadReadTimeout replaces ReadTimeout for the upload routes,
	// counted from when the request reaches its handler.
	UploadReadTimeout time.Duration
	// UploadMinBytesPerSecond is the slowest average rate an upload body
	// may arrive at once UploadMinRateGrace has passed since its first
	// byte was read; 0 means no floor.
	UploadMinBytesPerSecond int64
	UploadMinRateGrace      time.Duration
	// AuthFailures limits failed authentication attempts per client
	// address; its zero value is 10 a minute over 10,000 addresses.
	AuthFailures AuthFailureLimits
}

// clientIPExtractor is how c.RealIP() finds the client, and so what every
// log line, the admin audit and the failed-auth limiter see: the peer's
// address, unless the peer is a trusted proxy. Then X-Forwarded-For gives
// the rightmost address that is not a trusted proxy (the leftmost ones are
// whatever the client wrote), or, without that header, X-Real-IP gives it.
// Echo's own extractors do the parsing; its default trust of loopback,
// link-local and private addresses is turned off, so that only the
// configured ranges are trusted.
func clientIPExtractor(trusted []netip.Prefix) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range trusted {
		opts = append(opts, echo.TrustIPRange(&net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}))
	}
	xff := echo.ExtractIPFromXFFHeader(opts...)
	realIP := echo.ExtractIPFromRealIPHeader(opts...)
	return func(r *http.Request) string {
		if len(r.Header.Values(echo.HeaderXForwardedFor)) > 0 {
			return xff(r)
		}
		return realIP(r)
	}
}

// edgeMiddleware returns the edge's middleware, in order: CORS (when
// origins are configured) and the request body's read deadlines. It goes
// after the access log, so that what it answers is logged.
func edgeMiddleware(cfg Config) []echo.MiddlewareFunc {
	var out []echo.MiddlewareFunc
	if len(cfg.Edge.CORSOrigins) > 0 {
		out = append(out, cors(cfg.Edge.CORSOrigins))
	}
	return append(out, bodyDeadlines(cfg.Logger, cfg.Edge.ReadTimeout))
}

// cors answers preflights and marks responses for the configured origins
// alone; a request from any other origin gets no CORS header, so a browser
// refuses to hand it the answer. Credentials (cookies) are not allowed:
// the API takes bearer tokens. The request headers a preflight asks for
// are allowed as asked, the methods are the route's own.
func cors(origins []string) echo.MiddlewareFunc {
	return middleware.CORSWithConfig(middleware.CORSConfig{
		AllowOrigins:  origins,
		ExposeHeaders: []string{echo.HeaderXRequestID, "Retry-After"},
		MaxAge:        600,
	})
}

// headRoutes answers HEAD wherever GET is answered: it adds a HEAD route
// beside every GET route registered so far, which runs the GET route's
// handler with its middleware; the http.Server sends the headers and drops
// the body. Echo adds no HEAD routes of its own. Being routes, they pass
// through every global middleware as GET does.
func headRoutes(e *echo.Echo) {
	for _, r := range e.Routes() {
		if r.Method != http.MethodGet {
			continue
		}
		e.HEAD(r.Path, func(c echo.Context) error {
			e.Router().Find(http.MethodGet, echo.GetPath(c.Request()), c)
			return c.Handler()(c)
		})
	}
}

// timedBodyKey holds the request's *timedBody.
const timedBodyKey = "timed_body"

// bodyDeadlines watches each request body for the read deadline: the
// http.Server's read timeout, or an upload's own (see uploadDeadlines).
// A body cut by it answers 408 request_body_timeout, whatever the handler
// made of the failed read, and closes the connection. readTimeout is
// server.read_timeout_seconds, for the message.
func bodyDeadlines(log *slog.Logger, readTimeout time.Duration) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			if req.Body == nil || req.Body == http.NoBody {
				return next(c)
			}
			b := &timedBody{body: req.Body, rc: http.NewResponseController(c.Response()), readTimeout: readTimeout}
			req.Body = b
			c.Set(timedBodyKey, b)
			err := next(c)
			reason := b.cutReason()
			if reason == "" {
				return err
			}
			log.Warn("request body cut", slog.String("request_id", requestIDOf(c)), slog.String("route", c.Path()),
				slog.String("remote", c.RealIP()), slog.Int64("bytes_read", b.read.Load()), slog.String("reason", reason))
			c.Response().Header().Set(echo.HeaderConnection, "close")
			return &Error{Status: http.StatusRequestTimeout, Code: "request_body_timeout", Message: reason}
		}
	}
}

// bodyCut reports whether bodyDeadlines cut the request's body. The read
// that failed also cancelled the request's context, as a hang-up would,
// but the client is still there and gets the 408.
func bodyCut(c echo.Context) bool {
	b, _ := c.Get(timedBodyKey).(*timedBody)
	return b != nil && b.cutReason() != ""
}

// uploadDeadlines gives an upload route's body its own read deadline in
// place of the server's read timeout: UploadReadTimeout from now, and a
// floor on the average rate once UploadMinRateGrace has passed since the
// first read, so that a body sent a byte at a time is cut long before it.
func uploadDeadlines(edge Edge) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if b, ok := c.Get(timedBodyKey).(*timedBody); ok && edge.UploadReadTimeout > 0 {
				b.limit(time.Now().Add(edge.UploadReadTimeout), edge.UploadReadTimeout, edge.UploadMinBytesPerSecond, edge.UploadMinRateGrace)
			}
			return next(c)
		}
	}
}

// deadlineStep is how far the allowed time must have moved before the
// connection's read deadline is moved with it, so that a fast body does not
// move it on every read. A body at the floor may be cut this much early.
const deadlineStep = 250 * time.Millisecond

// timedBody is a request body that knows when a read failed on the read
// deadline, and, once limit is called, moves the deadline itself: never
// past hard, and no later than the floor rate allows for what has been
// read. Reads are sequential, as for any body; read and cut are atomic
// because the handler may read from a goroutine of its own.
type timedBody struct {
	body        io.ReadCloser
	rc          *http.ResponseController
	readTimeout time.Duration
	read        atomic.Int64
	cut         atomic.Pointer[string]

	// Set by limit; zero when the server's read timeout applies.
	hard     time.Time
	timeout  time.Duration
	minRate  int64
	grace    time.Duration
	first    time.Time // of the first read; the floor's clock
	deadline time.Time // last set on the connection
	done     bool      // EOF seen
}

func (b *timedBody) limit(hard time.Time, timeout time.Duration, minRate int64, grace time.Duration) {
	b.hard, b.timeout, b.minRate, b.grace = hard, timeout, minRate, grace
	b.setDeadline(hard)
}

func (b *timedBody) Read(p []byte) (int, error) {
	if b.minRate > 0 && b.first.IsZero() {
		b.first = time.Now()
		b.setDeadline(b.allowed(0))
	}
	n, err := b.body.Read(p)
	read := b.read.Add(int64(n))
	switch {
	case err == nil:
		if b.minRate > 0 && !b.done {
			if d := b.allowed(read); d.Sub(b.deadline) >= deadlineStep || (d.Equal(b.hard) && !b.deadline.Equal(b.hard)) {
				b.setDeadline(d)
			}
		}
	case errors.Is(err, io.EOF):
		if !b.hard.IsZero() && !b.done {
			// Over HTTP/1 the server has already cleared the deadline,
			// to watch for the client going away; over HTTP/2 the
			// stream's timer would otherwise still run.
			_ = b.rc.SetReadDeadline(time.Time{})
		}
		b.done = true
	case isTimeout(err):
		reason := b.reason()
		b.cut.CompareAndSwap(nil, &reason)
	}
	return n, err
}

func (b *timedBody) Close() error { return b.body.Close() }

// allowed is the latest time by which read bytes must have arrived: the
// grace, then one second for every minRate bytes, but never past hard.
func (b *timedBody) allowed(read int64) time.Time {
	d := b.first.Add(b.grace + time.Duration(float64(read)/float64(b.minRate)*float64(time.Second)))
	if d.After(b.hard) {
		return b.hard
	}
	return d
}

// setDeadline moves the connection's read deadline. A writer that cannot
// (a test recorder) leaves the server's own in force.
func (b *timedBody) setDeadline(d time.Time) {
	if err := b.rc.SetReadDeadline(d); err == nil {
		b.deadline = d
	}
}

// reason words which deadline cut the body.
func (b *timedBody) reason() string {
	switch {
	case b.hard.IsZero():
		return fmt.Sprintf("the request body did not arrive within the read timeout of %s", b.readTimeout)
	case b.deadline.Equal(b.hard):
		return fmt.Sprintf("the upload did not arrive within its read timeout of %s", b.timeout)
	default:
		return fmt.Sprintf("the upload arrived slower than the minimum of %d bytes per second", b.minRate)
	}
}

func (b *timedBody) cutReason() string {
	if r := b.cut.Load(); r != nil {
		return *r
	}
	return ""
}

// isTimeout reports whether err is a read that hit its deadline.
func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
