package app

import (
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/netutil"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/api"
)

// readHeaderTimeout bounds reading a request's headers; a shorter
// server.read_timeout_seconds shortens it too.
const readHeaderTimeout = 10 * time.Second

// listener is the server's listener: at most max_connections connections
// are open at once, so that the process's descriptors cannot run out
// however many clients connect and hold on. Past the cap, new connections
// wait in the kernel's accept queue (and, once it is full, are refused
// there) until one closes; the server's timeouts make sure one does. It
// counts its open connections for nexus_http_open_connections.
type listener struct {
	net.Listener
	open atomic.Int64
}

// listen opens cfg.Addr with cfg.MaxConnections as the cap.
func listen(cfg config.Server) (*listener, error) {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	return &listener{Listener: netutil.LimitListener(ln, cfg.MaxConnections)}, nil
}

// Accept returns the next connection once one of the cap's places is free.
func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.open.Add(1)
	return &countedConn{Conn: c, l: l}, nil
}

// countedConn leaves the count when it closes: before its place under the
// cap is freed, so that the count never shows more than the cap.
type countedConn struct {
	net.Conn
	l    *listener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}

// newHTTPServer builds the http.Server for cfg. ReadTimeout bounds reading
// each request, headers and body (the upload routes move their own
// deadline further: see api.Edge); once a body has been read, the server
// clears the deadline, so a long /analyze is not cut by it. There is no
// WriteTimeout: request_timeout_seconds bounds the work instead. With cert
// set, the server speaks TLS (and HTTP/2) with the certificate it holds.
func newHTTPServer(cfg config.Server, h http.Handler, log *slog.Logger, cert *certificate) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: min(readHeaderTimeout, cfg.ReadTimeoutSeconds.Duration()),
		ReadTimeout:       cfg.ReadTimeoutSeconds.Duration(),
		IdleTimeout:       cfg.IdleTimeoutSeconds.Duration(),
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if cert != nil {
		srv.TLSConfig = cert.tlsConfig()
	}
	return srv
}

// serve serves ln until the server closes, over TLS when it has a
// certificate.
func serve(srv *http.Server, ln net.Listener) error {
	if srv.TLSConfig != nil {
		return srv.ServeTLS(ln, "", "")
	}
	return srv.Serve(ln)
}

// edgeConfig is the API's share of the edge settings.
func edgeConfig(cfg config.Config) api.Edge {
	return api.Edge{
		TrustedProxies:          cfg.Server.TrustedProxyPrefixes(),
		CORSOrigins:             cfg.Server.CORSOrigins,
		ReadTimeout:             cfg.Server.ReadTimeoutSeconds.Duration(),
		UploadReadTimeout:       cfg.Datasets.UploadReadTimeoutSeconds.Duration(),
		UploadMinBytesPerSecond: cfg.Datasets.UploadMinBytesPerSecond,
		UploadMinRateGrace:      cfg.Datasets.UploadMinRateGraceSeconds.Duration(),
	}
}
