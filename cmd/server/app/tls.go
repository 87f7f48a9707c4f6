package app

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/nexus/nexus/config"
)

// certificate is the TLS certificate the server presents, swapped whole
// when a reload reads a new one from server.tls_cert_file and
// server.tls_key_file, so that a certificate is renewed without a restart
// and without dropping a connection. The paths themselves are read at
// start-up only.
type certificate struct {
	certFile, keyFile string
	log               *slog.Logger
	current           atomic.Pointer[tls.Certificate]
}

// loadCertificate reads the configured pair; nil (and no error) when the
// server speaks plain HTTP. A pair that does not load fails start-up.
func loadCertificate(cfg config.Server, log *slog.Logger) (*certificate, error) {
	if !cfg.TLS() {
		return nil, nil
	}
	c := &certificate{certFile: cfg.TLSCertFile, keyFile: cfg.TLSKeyFile, log: log}
	if err := c.load(); err != nil {
		return nil, fmt.Errorf("server.tls_cert_file, server.tls_key_file: %w", err)
	}
	c.logLoaded("TLS certificate loaded")
	return c, nil
}

func (c *certificate) load() error {
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return err
	}
	c.current.Store(&pair)
	return nil
}

// reload re-reads the files. A pair that does not load (a half-written
// renewal, a key that does not match) is logged at ERROR and the one in
// force stays. A nil certificate (plain HTTP) does nothing.
func (c *certificate) reload() {
	if c == nil {
		return
	}
	if err := c.load(); err != nil {
		c.log.Error("TLS certificate reload failed; the previous certificate stays in force",
			slog.String("cert_file", c.certFile), slog.String("key_file", c.keyFile), slog.String("error", err.Error()))
		return
	}
	c.logLoaded("TLS certificate reloaded")
}

func (c *certificate) logLoaded(msg string) {
	leaf := c.current.Load().Leaf
	c.log.Info(msg, slog.String("cert_file", c.certFile), slog.String("subject", leaf.Subject.String()),
		slog.String("serial", leaf.SerialNumber.String()), slog.Time("not_after", leaf.NotAfter))
}

// tlsConfig serves whichever certificate is current at each handshake.
func (c *certificate) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return c.current.Load(), nil
		},
	}
}
