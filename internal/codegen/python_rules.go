package codegen

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The Python review is an allow-list for imports and a short list of names
// and attributes that give a way out of plain computation. The tables are
// immutable after package initialisation.
//
// Why attributes matter even with imports allowed only from a list: the
// allowed modules hand out the others. In CPython 3.11, statistics.sys,
// json.codecs.open, re.enum.bltns (the builtins module) and
// dataclasses.inspect are all public attributes, and so are np.compat.os,
// pd.io and pd.core.generic.gc. A module-valued attribute is therefore
// refused by name, like the module it names.

// allowedImports are the modules that code may import, as full dotted
// paths: pure computation over data in memory. A submodule of an allowed
// package is allowed only if listed, except under numpy.polynomial.
// Left out on purpose: sys, os, io, pathlib, subprocess, socket, asyncio,
// timeit, pdb, cProfile, profile, code, runpy, linecache, tempfile, glob,
// shutil, importlib, ctypes, pickle, marshal, inspect, gc, threading,
// multiprocessing, builtins, types, ast, time, uuid and every other module.
var allowedImports = map[string]bool{
	// pandas and the parts of it that do no I/O.
	"pandas": true, "pandas.api": true, "pandas.api.types": true,
	"pandas.api.extensions": true, "pandas.api.indexers": true,
	"pandas.arrays": true, "pandas.errors": true, "pandas.tseries": true,
	"pandas.tseries.offsets": true, "pandas.tseries.frequencies": true,
	"pandas.tseries.holiday": true,

	// numpy and the parts of it that do no I/O.
	"numpy": true, "numpy.linalg": true, "numpy.fft": true,
	"numpy.random": true, "numpy.polynomial": true, "numpy.ma": true,
	"numpy.emath": true, "numpy.typing": true, "numpy.exceptions": true,
	"numpy.lib": true, "numpy.lib.stride_tricks": true,
	"numpy.lib.recfunctions": true, "numpy.lib.scimath": true,

	// The standard library's pure computation.
	"math": true, "cmath": true, "statistics": true, "decimal": true,
	"fractions": true, "numbers": true, "random": true, "datetime": true,
	"calendar": true, "re": true, "json": true, "string": true,
	"textwrap": true, "unicodedata": true, "collections": true,
	"collections.abc": true, "itertools": true, "functools": true,
	"operator": true, "heapq": true, "bisect": true, "copy": true,
	"typing": true, "dataclasses": true, "enum": true,
}

// allowedImport reports whether the module at dotted path may be imported.
func allowedImport(path string) bool {
	return allowedImports[path] || strings.HasPrefix(path, "numpy.polynomial.")
}

// Why a name or attribute is refused; each reads after the name, as in
// `"open" reads and writes files`.
const (
	whyModule    = "is not an allowed module"
	whyCode      = "runs code from a string"
	whyLookup    = "looks up attributes or names from strings"
	whyFiles     = "reads or writes files"
	whyProcess   = "runs or signals processes"
	whyEnv       = "reads the environment"
	whyFrames    = "reaches frames or code objects"
	whyDunder    = "is a dunder name"
	whyPrivate   = "is private"
	whyModules   = "reaches the loaded modules"
	whyImport    = "imports modules by name"
	whyMemory    = "reaches raw memory"
	whyTypeHints = "evaluates string annotations as code"
	whyNoCall    = "writes a file when given a path; call it with keyword arguments only, without a path, to get the text"
)

// forbiddenBuiltins may not appear at all: calling them, passing them,
// binding them to another name (f = open), as a default argument, all the
// same. Refusing every reference is what makes aliasing useless.
var forbiddenBuiltins = map[string]string{
	"eval": whyCode, "exec": whyCode, "compile": whyCode,
	"breakpoint": whyCode, "help": whyImport,
	"getattr": whyLookup, "setattr": whyLookup, "delattr": whyLookup,
	"vars": whyLookup, "globals": whyLookup, "locals": whyLookup,
	"open": whyFiles, "input": "reads the standard input",
}

// forbiddenNames are module names refused even as bare names. Code cannot
// import them, so they mean something else bound them; that is never
// plain analysis. Words that are also common variable names (code,
// profile, time, types, path) are left out.
var forbiddenNames = map[string]string{
	"os": whyModule, "posix": whyModule, "nt": whyModule, "sys": whyModule,
	"io": whyModule, "codecs": whyModule, "builtins": whyModule,
	"subprocess": whyModule, "shutil": whyModule, "socket": whyModule,
	"pickle": whyModule, "marshal": whyModule, "shelve": whyModule,
	"ctypes": whyModule, "importlib": whyModule, "pathlib": whyModule,
	"Path": whyFiles, "tempfile": whyModule, "glob": whyModule,
	"asyncio": whyModule, "threading": whyModule,
	"multiprocessing": whyModule, "runpy": whyModule, "pdb": whyModule,
	"cProfile": whyModule, "timeit": whyModule, "linecache": whyModule,
	"inspect": whyModule, "gc": whyModule, "urllib": whyModule,
	"requests": whyModule, "httpx": whyModule,
}

// forbiddenAttrs are refused as the attribute of any object: the receiver's
// type is unknown before run time, so pd.read_csv, df.to_pickle and
// x.system are refused alike, whatever pd, df or x turn out to be.
var forbiddenAttrs = map[string]string{
	// Code from strings, and lookups by name that get round the rules.
	"eval": whyCode, "exec": whyCode, "query": whyCode, "breakpoint": whyCode,
	"getattr": whyLookup, "setattr": whyLookup, "delattr": whyLookup,
	"vars": whyLookup, "globals": whyLookup, "locals": whyLookup,
	"attrgetter": whyLookup, "methodcaller": whyLookup,
	"Formatter": whyLookup, "get_field": whyLookup, "vformat": whyLookup,
	"get_type_hints": whyTypeHints, "ForwardRef": whyTypeHints,
	"singledispatch": whyTypeHints, "singledispatchmethod": whyTypeHints,
	// Entry points of code, pdb, profile, timeit and runpy, which run
	// code from strings or files.
	"runsource": whyCode, "runcode": whyCode, "interact": whyCode,
	"InteractiveInterpreter": whyCode, "InteractiveConsole": whyCode,
	"compile_command": whyCode, "run_path": whyCode, "run_module": whyCode,
	"runctx": whyCode, "runcall": whyCode, "set_trace": whyCode,
	"post_mortem": whyCode, "Timer": whyCode,
	"CodeType": whyFrames, "FunctionType": whyFrames, "LambdaType": whyFrames,
	"currentframe": whyFrames, "modules": whyModules,
	"lookfor": whyImport, "test": whyImport, "Tester": whyImport,
	"add_newdoc": whyImport, "help": whyImport,
	// as_strided makes an array over any memory, beyond its buffer.
	"as_strided": whyMemory,
	// pandas plots through a backend named by a string option, which it
	// imports (pd.set_option("plotting.backend", ...)).
	"plot": whyImport, "plotting": whyImport, "hist": whyImport,
	"boxplot": whyImport,

	// Modules that allowed modules hand out as attributes.
	"os": whyModule, "posix": whyModule, "nt": whyModule, "sys": whyModule,
	"io": whyModule, "codecs": whyModule, "builtins": whyModule,
	"bltns": whyModule, "importlib": whyModule, "inspect": whyModule,
	"linecache": whyModule, "tokenize": whyModule, "pathlib": whyModule,
	"shutil": whyModule, "subprocess": whyModule, "socket": whyModule,
	"ssl": whyModule, "asyncio": whyModule, "threading": whyModule,
	"multiprocessing": whyModule, "concurrent": whyModule,
	"signal": whyModule, "ctypes": whyMemory, "ctypeslib": whyMemory,
	"mmap": whyModule, "pickle": whyModule, "pkl": whyModule,
	"cPickle": whyModule, "marshal": whyModule, "shelve": whyModule,
	"dbm": whyModule, "sqlite3": whyModule, "zipfile": whyModule,
	"zipimport": whyModule, "tarfile": whyModule, "gzip": whyModule,
	"bz2": whyModule, "lzma": whyModule, "tempfile": whyModule,
	"glob": whyModule, "fileinput": whyModule, "pdb": whyModule,
	"bdb": whyModule, "codeop": whyModule, "runpy": whyModule,
	"pydoc": whyModule, "timeit": whyModule, "cProfile": whyModule,
	"profile": whyModule, "traceback": whyModule, "gc": whyModule,
	"platform": whyModule, "sysconfig": whyModule, "webbrowser": whyModule,
	"urllib": whyModule, "http": whyModule, "ftplib": whyModule,
	"smtplib": whyModule, "socketserver": whyModule, "xmlrpc": whyModule,
	"uuid": whyModule,
	// numpy's and pandas' internals and tooling, never needed for
	// analysis, which lead to the modules above.
	"compat": whyModule, "core": whyModule, "computation": whyModule,
	"testing": whyModule, "f2py": whyModule, "distutils": whyModule,

	// Processes and the environment.
	"system": whyProcess, "popen": whyProcess, "fork": whyProcess,
	"forkpty": whyProcess, "kill": whyProcess, "killpg": whyProcess,
	"posix_spawn": whyProcess, "posix_spawnp": whyProcess,
	"execl": whyProcess, "execle": whyProcess, "execlp": whyProcess,
	"execlpe": whyProcess, "execv": whyProcess, "execve": whyProcess,
	"execvp": whyProcess, "execvpe": whyProcess,
	"spawnl": whyProcess, "spawnle": whyProcess, "spawnlp": whyProcess,
	"spawnlpe": whyProcess, "spawnv": whyProcess, "spawnve": whyProcess,
	"spawnvp": whyProcess, "spawnvpe": whyProcess,
	"environ": whyEnv, "environb": whyEnv, "getenv": whyEnv,
	"getenvb": whyEnv, "putenv": whyEnv, "unsetenv": whyEnv,
	"show_versions": whyEnv, "show_runtime": whyEnv,

	// Files. read_* and most to_* are refused by prefix (forbiddenAttr).
	"open": whyFiles, "FileIO": whyFiles, "fromfile": whyFiles,
	"tofile": whyFiles, "fromregex": whyFiles, "load": whyFiles,
	"save": whyFiles, "savez": whyFiles, "savez_compressed": whyFiles,
	"savetxt": whyFiles, "loadtxt": whyFiles, "genfromtxt": whyFiles,
	"recfromcsv": whyFiles, "recfromtxt": whyFiles, "ndfromtxt": whyFiles,
	"mafromtxt": whyFiles, "memmap": whyFiles, "open_memmap": whyFiles,
	"DataSource": whyFiles, "dump": whyFiles, "ExcelFile": whyFiles,
	"ExcelWriter": whyFiles, "HDFStore": whyFiles, "style": whyFiles,
	"npyio": whyFiles, "zipfile_factory": whyFiles, "write_text": whyFiles,
	"write_bytes": whyFiles, "unlink": whyFiles, "rmdir": whyFiles,
	"mkdir": whyFiles, "makedirs": whyFiles, "touch": whyFiles,
	"chmod": whyFiles, "chown": whyFiles, "lchown": whyFiles,
	"symlink_to": whyFiles, "hardlink_to": whyFiles, "iterdir": whyFiles,
	"rglob": whyFiles, "listdir": whyFiles, "scandir": whyFiles,
	"walk": whyFiles,
}

// toSafe are the to_* methods of pandas and numpy that never take a path.
var toSafe = map[string]bool{
	"to_dict": true, "to_list": true, "to_numpy": true, "to_frame": true,
	"to_records": true, "to_period": true, "to_timestamp": true,
	"to_flat_index": true, "to_series": true, "to_julian_date": true,
	"to_pydatetime": true, "to_pytimedelta": true, "to_perioddelta": true,
	"to_datetime": true, "to_numeric": true, "to_timedelta": true,
	"to_offset": true, "to_tuples": true, "to_coo": true, "to_dense": true,
	"to_native_types": true, "to_datetime64": true, "to_timedelta64": true,
}

// toText are the to_* methods that write to a path or buffer when given
// one and otherwise return the text (or bytes). They are allowed only when
// called with keyword arguments none of which names a path or buffer.
var toText = map[string]bool{
	"to_csv": true, "to_json": true, "to_string": true, "to_html": true,
	"to_markdown": true, "to_latex": true, "to_xml": true,
	"to_parquet": true, "to_orc": true,
}

// whyTopLevel is why np.info may not be given a module: it imports
// whatever module its toplevel argument names.
const whyTopLevel = "imports the module named by its toplevel argument; pass at most the object and the width"

// frameAttrPrefixes start the attributes of frames (f_back, f_globals),
// code objects (co_code), generators (gi_frame), coroutines (cr_frame),
// async generators (ag_frame) and tracebacks (tb_frame).
var frameAttrPrefixes = []string{"f_", "co_", "gi_", "cr_", "ag_", "tb_"}

// isDunder reports whether name has the __x__ form.
func isDunder(name []byte) bool {
	return len(name) > 4 && bytes.HasPrefix(name, dunder) && bytes.HasSuffix(name, dunder)
}

var dunder = []byte("__")

// forbiddenName returns why the bare name may not be used, or "".
func forbiddenName(name []byte) string {
	if isDunder(name) {
		return whyDunder
	}
	if why := forbiddenBuiltins[string(name)]; why != "" {
		return why
	}
	return forbiddenNames[string(name)]
}

// forbiddenAttr returns why the attribute may not be used on any object,
// or "". The to_* methods of toText are not refused here: whether they
// are depends on the call (see review.toText).
func forbiddenAttr(name []byte) string {
	switch {
	case isDunder(name):
		return whyDunder
	case bytes.HasPrefix(name, []byte("_")):
		// Private names lead to the modules (random._os, np.core._x) and
		// frames (sys._getframe) that the table refuses.
		return whyPrivate
	case bytes.HasPrefix(name, []byte("read_")):
		return whyFiles
	case bytes.HasPrefix(name, []byte("to_")):
		if toSafe[string(name)] || toText[string(name)] {
			return ""
		}
		return whyFiles
	}
	for _, p := range frameAttrPrefixes {
		if bytes.HasPrefix(name, []byte(p)) {
			return whyFrames
		}
	}
	return forbiddenAttrs[string(name)]
}

// findDunder returns the first __x__ word in s and its offset, or "". A
// word is a run of letters, digits and underscores. s must be a string's
// value (appendStringValue), not its source: '\x5f\x5fclass\x5f\x5f'
// and '__cl' 'ass__' are both "__class__".
func findDunder(s []byte) (string, int) {
	for i := 0; i < len(s); {
		if !isWordByte(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isWordByte(s[j]) {
			j++
		}
		if w := s[i:j]; isDunder(w) {
			return string(w), i
		}
		i = j
	}
	return "", 0
}

func isWordByte(c byte) bool {
	return c == '_' || (c >= '0' && c <= '9') || (c|0x20 >= 'a' && c|0x20 <= 'z')
}

// formatFieldWithAccess returns the first replacement field of the format
// string s (str.format syntax; s is the string's value, with its parts
// joined and its escapes decoded) whose field name reads an attribute or
// an item, such as "{0.__class__}" or "{x[key]}", or holds a backslash,
// or "".
func formatFieldWithAccess(s []byte) string {
	for i := 0; i < len(s); i++ {
		if s[i] != '{' {
			continue
		}
		if i+1 < len(s) && s[i+1] == '{' {
			i++
			continue
		}
		j := i + 1
		for j < len(s) && !strings.ContainsRune("!:{}", rune(s[j])) {
			j++
		}
		if name := s[i+1 : j]; strings.ContainsAny(string(name), ".[\\") {
			return string(s[i:min(j+1, len(s))])
		}
	}
	return ""
}

// allowedImportList names the allowed top-level modules, sorted and
// comma-separated, for the generator's prompt: the model is told the
// rule it will be held to.
func allowedImportList() string {
	var top []string
	for path := range allowedImports {
		if !strings.Contains(path, ".") {
			top = append(top, path)
		}
	}
	slices.Sort(top)
	return strings.Join(top, ", ")
}

// appendStringValue appends to dst the value of s, the text of one
// string_content part of a string literal as written in the source, and
// returns it. raw, isBytes and isF come from the literal's prefix. When
// offs is not nil, the source offset (base plus the index in s) of the
// escape or character each byte of the value comes from is appended to
// it. named is the source offset of the first named escape (\N{...}) of a
// str literal, which Python resolves through the Unicode database and the
// review cannot, or -1.
//
// Escapes follow CPython: \newline, \\, \', \", \a \b \f \n \r \t \v,
// octal \o \oo \ooo, \xhh, and in str literals \uhhhh and \Uhhhhhhhh; any
// other backslash stays as written. In an f-string "{{" and "}}" are "{"
// and "}".
func appendStringValue(dst []byte, offs []int, s []byte, base int, raw, isBytes, isF bool) (value []byte, offsets []int, named int) {
	named = -1
	emit := func(at int, b ...byte) {
		dst = append(dst, b...)
		if offs != nil {
			for range b {
				offs = append(offs, base+at)
			}
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		if isF && (c == '{' || c == '}') && i+1 < len(s) && s[i+1] == c {
			emit(i, c)
			i += 2
			continue
		}
		if c != '\\' || raw || i+1 >= len(s) {
			emit(i, c)
			i++
			continue
		}
		e := s[i+1]
		switch e {
		case '\n':
			i += 2
			continue
		case '\\', '\'', '"':
			emit(i, e)
			i += 2
			continue
		case 'a', 'b', 'f', 'n', 'r', 't', 'v':
			emit(i, "\a\b\f\n\r\t\v"[strings.IndexByte("abfnrtv", e)])
			i += 2
			continue
		case 'x', 'u', 'U':
			digits := 2
			switch e {
			case 'u':
				digits = 4
			case 'U':
				digits = 8
			}
			if e != 'x' && isBytes {
				break
			}
			if i+2+digits > len(s) {
				break
			}
			v, err := strconv.ParseUint(string(s[i+2:i+2+digits]), 16, 32)
			if err != nil {
				break
			}
			if e == 'x' && isBytes {
				emit(i, byte(v))
			} else {
				emit(i, utf8.AppendRune(nil, rune(v))...)
			}
			i += 2 + digits
			continue
		case 'N':
			if isBytes {
				break
			}
			if named < 0 {
				named = base + i
			}
			emit(i, '\\', 'N')
			i += 2
			continue
		}
		if e >= '0' && e <= '7' {
			j, v := i+1, 0
			for j < len(s) && j < i+4 && s[j] >= '0' && s[j] <= '7' {
				v = v*8 + int(s[j]-'0')
				j++
			}
			if isBytes {
				emit(i, byte(v))
			} else {
				emit(i, utf8.AppendRune(nil, rune(v))...)
			}
			i = j
			continue
		}
		// Not an escape: the backslash stays, and the next character is
		// read on its own.
		emit(i, c)
		i++
	}
	return dst, offs, named
}

// dispatcher describes a pandas method or function that calls a method
// named in a string argument: df.agg("sum") calls df.sum, and so would
// df.agg("to_pickle", path) call df.to_pickle. Every string literal in
// the arguments of such a call is read as a method name (checkDispatch),
// whatever the object the call is made on.
type dispatcher struct {
	// funcArgs are the positions of the arguments that name the function
	// to call; an argument there may not be a string built at run time.
	// The keywords func, arg and aggfunc are such arguments too.
	funcArgs []int
	// columnArgs are the positions of arguments that are column labels,
	// never method names.
	columnArgs []int
	// relabels reports agg's keyword form, total=("column", "sum"): the
	// first item of a pair is a column, the second a method name.
	relabels bool
}

// dispatchers are the callables that dispatch on a method name, by the
// name they are called by.
var dispatchers = map[string]dispatcher{
	"agg":       {funcArgs: []int{0}, relabels: true},
	"aggregate": {funcArgs: []int{0}, relabels: true},
	"apply":     {funcArgs: []int{0}},
	"applymap":  {funcArgs: []int{0}},
	"map":       {funcArgs: []int{0}},
	"transform": {funcArgs: []int{0}},
	"pipe":      {},
	"pivot":     {},
	// df.pivot_table(values, index, columns, aggfunc) and
	// pd.pivot_table(data, values, index, columns, aggfunc).
	"pivot_table": {funcArgs: []int{3, 4}},
	// pd.crosstab(index, columns, values, rownames, colnames, aggfunc).
	"crosstab": {funcArgs: []int{5}},
	"NamedAgg": {funcArgs: []int{1}, columnArgs: []int{0}},
}

// dispatchFuncKeywords name the function a dispatcher calls.
var dispatchFuncKeywords = map[string]bool{"func": true, "arg": true, "aggfunc": true}

// dispatchLabelKeywords are keywords of the dispatchers whose values are
// column or index labels or options, which pandas never calls.
var dispatchLabelKeywords = map[string]bool{
	"column": true, "columns": true, "index": true, "values": true,
	"by": true, "level": true, "axis": true, "result_type": true,
	"na_action": true, "margins_name": true, "rownames": true,
	"colnames": true,
}

// whyDispatchedTo is why a to_* method may not be named in a string.
const whyDispatchedTo = "is a to_* method, which may write a file, and the arguments of a method named in a string cannot be checked"

// forbiddenMethodName returns why name, a string passed to a dispatcher,
// may not be called as a method, or "": for the attributes that
// forbiddenAttr refuses, every to_* method (whose arguments cannot be
// checked here as they are for a call), and info, which numpy's version
// turns into an import.
func forbiddenMethodName(name []byte) string {
	if why := forbiddenAttr(name); why != "" {
		return why
	}
	switch {
	case bytes.HasPrefix(name, []byte("to_")):
		return whyDispatchedTo
	case string(name) == "info":
		return whyTopLevel
	case string(name) == "format" || string(name) == "format_map":
		return whyLookup
	}
	return ""
}
