package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/nexus/nexus/config"
)

// options are the command line and the environment, resolved once at
// start: a flag wins over its variable. Every variable is read through
// config.EnvVars, the table that -h prints.
type options struct {
	// configPath is the config file; configGiven is true when -config or
	// NEXUS_CONFIG named it, in which case an absent file is an error
	// rather than a reason to run on the built-in defaults.
	configPath  string
	configGiven bool
	// settings holds the variables (or their flags) that are set, by
	// variable name.
	settings map[string]setting
}

// setting is one variable's value and where it came from.
type setting struct {
	value  string
	source string // the variable's name, or its flag as "-addr"
}

// value returns the variable's value, or "" when it is not set.
func (o options) value(name string) string { return o.settings[name].value }

// errHelp reports that -h printed the usage: Run then returns nil.
var errHelp = errors.New("help requested")

// parseOptions reads the flags and the environment. -h prints the usage,
// flags and every environment variable, to stdout.
func parseOptions(args []string, getenv func(string) string, stdout, stderr io.Writer) (options, error) {
	vars := config.EnvVars()
	set := flag.NewFlagSet("nexus", flag.ContinueOnError)
	set.SetOutput(stderr)
	set.Usage = func() {} // printed below, with the environment
	flags := map[string]*string{}
	for _, e := range vars {
		if e.Flag != "" {
			flags[e.Name] = set.String(e.Flag, "", e.Usage+" (env "+e.Name+")")
		}
	}
	if err := set.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout, set, vars)
			return options{}, errHelp
		}
		printUsage(stderr, set, vars)
		return options{}, err
	}
	if set.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected argument %q (the config file is given with -config)", set.Arg(0))
	}
	o := options{configPath: config.DefaultPath, settings: map[string]setting{}}
	for _, e := range vars {
		if f := flags[e.Name]; f != nil && *f != "" {
			o.settings[e.Name] = setting{value: *f, source: "-" + e.Flag}
		} else if v := getenv(e.Name); v != "" {
			o.settings[e.Name] = setting{value: v, source: e.Name}
		}
	}
	if p := o.value(config.EnvConfig); p != "" {
		o.configPath, o.configGiven = p, true
	}
	return o, nil
}

// printUsage writes -h's text: what the command does, its flags, and every
// environment variable from the same table that the flags come from.
func printUsage(w io.Writer, set *flag.FlagSet, vars []config.EnvVar) {
	fmt.Fprintf(w, `Usage: nexus [flags]
       nexus hash-key < key-file   (prints the key's SHA-256 for auth.keys)

Nexus serves the data-analyst and code-generator agents over HTTP. Settings
come from the config file (or the built-in defaults when the default file
is absent), then the environment, then flags: each wins over the one before.

Flags:
`)
	set.SetOutput(w)
	set.PrintDefaults()
	fmt.Fprintf(w, "\nEnvironment:\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, e := range vars {
		var also []string
		if e.Flag != "" {
			also = append(also, "flag -"+e.Flag)
		}
		if e.Key != "" {
			also = append(also, "overrides "+e.Key)
		}
		line := e.Usage
		if len(also) > 0 {
			line += " (" + strings.Join(also, "; ") + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\n", e.Name, line)
	}
	_ = tw.Flush()
}

// loaded is a configuration as read, before and after the overrides.
type loaded struct {
	// file is what the config file held over the built-in defaults, or the
	// defaults alone when there is no file.
	file config.Config
	// cfg is file with the environment and flag overrides applied: the
	// configuration to put in force.
	cfg config.Config
	// defaults is true when no file was read.
	defaults bool
}

// loadConfig reads the config file, applies the environment and flag
// overrides, and validates the result. When the default file is absent
// and no path was given, the built-in defaults stand in for it, so that a
// binary run outside the repository starts; an absent file that -config or
// NEXUS_CONFIG named is an error.
func loadConfig(opts options) (loaded, error) {
	var l loaded
	file, err := config.Load(opts.configPath)
	if errors.Is(err, fs.ErrNotExist) && !opts.configGiven {
		file, err, l.defaults = config.Default(), nil, true
	}
	if err != nil {
		return loaded{}, err
	}
	l.file, l.cfg = file, file
	for _, e := range config.EnvVars() {
		if s, ok := opts.settings[e.Name]; ok {
			e.Set(&l.cfg, s.value)
		}
	}
	if err := l.cfg.Validate(); err != nil {
		return loaded{}, fmt.Errorf("config after overrides:\n%w", err)
	}
	if l.cfg, err = securedConfig(l.cfg, opts.configPath); err != nil {
		return loaded{}, err
	}
	return l, nil
}

// override is a config key whose file value the environment or a flag
// replaces.
type override struct {
	env    config.EnvVar
	key    string
	source string // the variable's name, or the flag as "-addr"
}

// overriddenKeys lists the config keys that opts override.
func overriddenKeys(opts options) []override {
	var out []override
	for _, e := range config.EnvVars() {
		if s, ok := opts.settings[e.Name]; ok && e.Key != "" {
			out = append(out, override{env: e, key: e.Key, source: s.source})
		}
	}
	return out
}

// absPath is path made absolute for a log line, or path itself if that
// fails.
func absPath(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}
