package config

import (
	"sync"
	"time"
)

// Live holds the configuration in force and the outcome of the last
// reload. Readers call Current on every use so that reloadable settings
// take effect at once.
type Live struct {
	path string

	mu        sync.RWMutex
	cfg       Config
	loadedAt  time.Time
	lastError string
	// onSet are told of every configuration Set installs.
	onSet []func(Config)
}

// Status is what health reports about the configuration.
type Status struct {
	Path            string    `json:"path"`
	LoadedAt        time.Time `json:"loaded_at"`
	LastReloadError *string   `json:"last_reload_error"`
}

// NewLive starts with cfg, loaded from path at loadedAt.
func NewLive(path string, cfg Config, loadedAt time.Time) *Live {
	return &Live{path: path, cfg: cfg, loadedAt: loadedAt}
}

// Path is the config file's path.
func (l *Live) Path() string { return l.path }

// Current returns the configuration in force.
func (l *Live) Current() Config {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.cfg
}

// Set installs a new configuration and clears the last reload error, then
// tells the OnSet functions, in order, outside the lock.
func (l *Live) Set(cfg Config, at time.Time) {
	l.mu.Lock()
	l.cfg, l.loadedAt, l.lastError = cfg, at, ""
	subs := l.onSet
	l.mu.Unlock()
	for _, fn := range subs {
		fn(cfg)
	}
}

// OnSet registers fn to be told of every configuration Set installs, so
// that what is built from the configuration (the API keys, say) follows a
// reload without the reloader knowing of it. Register before reloads can
// run; fn must be quick: the reload waits for it.
func (l *Live) OnSet(fn func(Config)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.onSet = append(l.onSet, fn)
}

// Fail records a rejected reload; the configuration in force stays.
func (l *Live) Fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lastError = err.Error()
}

// Status reports path, load time and the last reload error (nil after a
// successful reload).
func (l *Live) Status() Status {
	l.mu.RLock()
	defer l.mu.RUnlock()
	s := Status{Path: l.path, LoadedAt: l.loadedAt.UTC()}
	if l.lastError != "" {
		e := l.lastError
		s.LastReloadError = &e
	}
	return s
}
