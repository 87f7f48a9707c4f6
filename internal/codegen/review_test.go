package codegen_test

import (
	"context"
	"strings"
	"testing"

	"github.com/nexus/nexus/internal/codegen"
)

// codeOfLength returns valid Python of exactly n characters: a result
// assignment followed by comment lines of at most 100 characters.
func codeOfLength(n int) string {
	var b strings.Builder
	b.WriteString("result = 1\n")
	for n-b.Len() > 100 {
		b.WriteString("# " + strings.Repeat("x", 97) + "\n")
	}
	if rest := n - b.Len(); rest > 0 {
		b.WriteString("#" + strings.Repeat("x", rest-1))
	}
	return b.String()
}

// sqlOfLength returns a valid query of exactly n characters.
func sqlOfLength(n int) string {
	return "SELECT '" + strings.Repeat("x", n-len("SELECT ''")) + "'"
}

func TestReviewCodeLengthHelpers(t *testing.T) {
	t.Parallel()
	for _, n := range []int{5000, 5001} {
		if got := len(codeOfLength(n)); got != n {
			t.Fatalf("codeOfLength(%d) has length %d", n, got)
		}
		if got := len(sqlOfLength(n)); got != n {
			t.Fatalf("sqlOfLength(%d) has length %d", n, got)
		}
	}
}

func TestReviewCodePython(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		code      string
		wantValid bool
		wantErr   []string // substrings of ErrorMessage
	}{
		// Forbidden patterns from the original system.
		{name: "os.system", code: "import os\nos.system('ls')\nresult = 1", wantErr: []string{`forbidden import "os" on line 1`}},
		{name: "os.system on line 3", code: "import pandas as pd\nx = 1\nos.system('rm -rf /')", wantErr: []string{`forbidden call "os.system" on line 3`}},
		{name: "import subprocess", code: "import subprocess\nresult = 1", wantErr: []string{`forbidden import "subprocess" on line 1`}},
		{name: "from subprocess import run", code: "result = 1\nfrom subprocess import run", wantErr: []string{`"subprocess"`, "line 2"}},
		{name: "subprocess attribute", code: "result = 1\n\n\nsubprocess.run(['ls'])", wantErr: []string{`"subprocess"`, "line 4"}},
		{name: "eval", code: "result = eval('1+1')", wantErr: []string{`forbidden call "eval" on line 1`}},
		{name: "eval with space", code: "x = 1\nresult = eval ('1+1')", wantErr: []string{`"eval"`, "line 2"}},
		{name: "eval as value", code: "f = eval\nresult = f('1')", wantErr: []string{`forbidden name "eval" on line 1`}},
		{name: "exec", code: "exec('x = 1')\nresult = x", wantErr: []string{`forbidden call "exec" on line 1`}},
		{name: "__import__", code: "result = __import__('os')", wantErr: []string{`"__import__"`, "line 1"}},
		{name: "open builtin", code: "data = 1\nwith open('/etc/passwd') as f:\n    result = f.read()", wantErr: []string{`forbidden call "open" on line 2`}},
		{name: "io.open", code: "import io\nresult = io.open('/etc/passwd').read()", wantErr: []string{`forbidden import "io" on line 1`}},
		{name: "os.open", code: "import os\nresult = os.open('/etc/passwd', 0)", wantErr: []string{`forbidden import "os" on line 1`}},
		{name: "from io import open", code: "from io import open\nresult = 1", wantErr: []string{`forbidden import "io.open" on line 1`}},
		{name: "import shutil", code: "import shutil\nresult = 1", wantErr: []string{`"shutil"`, "line 1"}},
		{name: "shutil.rmtree", code: "result = 1\nshutil.rmtree('/')", wantErr: []string{`"shutil"`, "line 2"}},
		{name: "import pickle", code: "import pickle\nresult = 1", wantErr: []string{`"pickle"`, "line 1"}},
		{name: "pandas read_pickle", code: "import pandas as pd\nresult = pd.read_pickle('x.pkl')", wantErr: []string{`forbidden call "pd.read_pickle" on line 2: "read_pickle" reads or writes files`}},
		{name: "requests.get", code: "import pandas\nresult = requests.get('http://x')", wantErr: []string{`"requests"`, "line 2"}},
		{name: "import requests", code: "import requests as r\nresult = r.get('http://x')", wantErr: []string{`forbidden import "requests" on line 1`}},
		{name: "import urllib.request", code: "import urllib.request\nresult = 1", wantErr: []string{`forbidden import "urllib.request" on line 1`}},
		{name: "from urllib import request", code: "from urllib.request import urlopen\nresult = 1", wantErr: []string{`"urllib.request"`, "line 1"}},
		{name: "__builtins__", code: "result = __builtins__", wantErr: []string{`"__builtins__"`, "line 1"}},
		{name: "getattr __builtins__", code: "x = 1\nf = getattr(__builtins__, 'ev' + 'al')\nresult = f('1')", wantErr: []string{`forbidden call "getattr" on line 2`}},
		{name: "import builtins", code: "import builtins\nresult = 1", wantErr: []string{`"builtins"`, "line 1"}},
		{name: "importlib", code: "import importlib\nresult = importlib.import_module('os')", wantErr: []string{`"importlib"`, "line 1"}},
		{name: "compile builtin", code: "code = compile('1', 'x', 'eval')\nresult = 1", wantErr: []string{`forbidden call "compile" on line 1`}},
		{name: "os.popen", code: "import os\nresult = os.popen('id').read()", wantErr: []string{`forbidden import "os" on line 1`}},
		{name: "os.execv", code: "import os\nos.execv('/bin/sh', ['sh'])\nresult = 1", wantErr: []string{`forbidden import "os" on line 1`}},
		{name: "os.execvpe", code: "import os\nos.execvpe('sh', [], {})\nresult = 1", wantErr: []string{`forbidden import "os" on line 1`}},
		{name: "os.spawnl", code: "import os\nos.spawnl(os.P_WAIT, '/bin/sh')\nresult = 1", wantErr: []string{`forbidden import "os" on line 1`}},
		{name: "os.posix_spawn", code: "import os\nos.posix_spawn('/bin/sh', [], {})\nresult = 1", wantErr: []string{`forbidden import "os" on line 1`}},
		{name: "import socket", code: "import socket\nresult = 1", wantErr: []string{`"socket"`, "line 1"}},
		{name: "socket attribute", code: "result = 1\ns = socket.socket()", wantErr: []string{`"socket"`, "line 2"}},
		{name: "import ctypes", code: "import ctypes\nresult = 1", wantErr: []string{`"ctypes"`, "line 1"}},
		{name: "sys.modules", code: "import sys\nresult = sys.modules['os']", wantErr: []string{`forbidden import "sys" on line 1`}},
		{name: "from sys import modules", code: "from sys import modules\nresult = 1", wantErr: []string{`forbidden import "sys.modules" on line 1`}},
		{name: "from os import system", code: "from os import system\nsystem('ls')\nresult = 1", wantErr: []string{`forbidden import "os.system" on line 1`}},
		{name: "from os import parenthesized", code: "from os import (\n    path,\n    popen,\n)\nresult = 1", wantErr: []string{`forbidden import "os.popen" on line 3`}},
		{name: "from os import star", code: "from os import *\nresult = 1", wantErr: []string{`forbidden import "os.*" on line 1`}},
		{name: "os alias", code: "import os as o\nresult = o.remove('/tmp/x')", wantErr: []string{`forbidden import "os" on line 1`}},
		{name: "os reassigned", code: "import os\nx = os\nx.system('ls')\nresult = 1", wantErr: []string{`forbidden import "os" on line 1`}},
		{name: "os.environ", code: "import os\nresult = os.environ['SECRET']", wantErr: []string{`forbidden import "os" on line 1`}},
		{name: "import posix", code: "import posix\nresult = 1", wantErr: []string{`forbidden import "posix" on line 1`}},
		{name: "dunder escape chain", code: "result = ().__class__.__bases__[0].__subclasses__()", wantErr: []string{`forbidden name "().__class__" on line 1`}},
		{name: "backslash continuation", code: "import os\nos.\\\n    system('ls')\nresult = 1", wantErr: []string{`forbidden import "os" on line 1`}},
		{name: "call split over lines", code: "import os\nresult = (\n    os\n    .popen('id')\n)", wantErr: []string{`forbidden import "os" on line 1`}},

		// Code hidden in places that look like strings or comments but are not.
		{name: "f-string field is code", code: "result = f\"{eval('1+1')}\"", wantErr: []string{`"eval"`, "line 1"}},
		{name: "f-string backslash brace", code: "result = f\"\\{eval('1')}\"", wantErr: []string{`"eval"`}},
		{name: "f-string nested same quotes", code: "result = f\"{\"x\" + eval(\"1\")}\"", wantErr: []string{`"eval"`}},
		{name: "f-string format spec field", code: "result = f\"{1:{eval('5')}}\"", wantErr: []string{`"eval"`}},
		{name: "rf-string field", code: "result = rf'{__import__(\"os\")}'", wantErr: []string{`"__import__"`}},
		{name: "t-string field", code: "result = t'{eval(\"1\")}'", wantErr: []string{`syntax error: line 1, column 10`}},
		{name: "triple f-string multiline field", code: "result = f\"\"\"\n{\n  eval('1')\n}\"\"\"", wantErr: []string{`"eval"`, "line 3"}},
		{name: "carriage return ends comment", code: "result = 1\n# harmless\reval('1')", wantErr: []string{`"eval"`, "line 3"}},
		{name: "utf-7 coding cookie", code: "# -*- coding: utf-7 -*-\nresult = 1", wantErr: []string{"encoding", "utf-7", "line 1"}},
		{name: "non-ascii identifier", code: "result = \uff45val('1')", wantErr: []string{"non-ASCII identifier", "line 1"}},
		{name: "number glued to name", code: "result = 1eval('1')", wantErr: []string{`syntax error: line 1, column 10`}},
		{name: "unterminated string", code: "result = 'abc\nimport subprocess", wantErr: []string{"syntax error: line 1, column 10"}},
		{name: "unterminated triple string", code: "result = 1\nx = \"\"\"\nimport subprocess", wantErr: []string{"syntax error: line 2, column 5"}},
		{name: "unterminated f-string field", code: "result = f'{x'", wantErr: []string{"syntax error: line 1"}},

		// Comment and string false positives.
		{name: "comment mentioning eval", code: "# don't use eval( or os.system here\nresult = df.head()", wantValid: true},
		{name: "trailing comment", code: "result = df.head()  # never exec( or import subprocess", wantValid: true},
		{name: "single-quoted string", code: "result = 'os.system(\"ls\"); eval(x); import pickle'", wantValid: true},
		{name: "double-quoted string", code: "result = \"subprocess shutil urllib requests.get open(\"", wantValid: true},
		{name: "escaped quotes in string", code: "result = 'it\\'s eval(\"x\")'", wantValid: true},
		{name: "triple-quoted docstring", code: "def f():\n    \"\"\"Never call exec( or __import__ here.\n    import subprocess\n    \"\"\"\n    return 1\nresult = f()", wantValid: true},
		{name: "raw string", code: "import re\nresult = re.findall(r'eval\\(', text)", wantValid: true},
		{name: "bytes string", code: "result = b'open(' + b\"socket\"", wantValid: true},
		{name: "f-string literal text", code: "x = 1\nresult = f\"eval( {x} open(\"", wantValid: true},
		{name: "f-string escaped braces", code: "result = f\"{{eval(1)}}\"", wantValid: true},
		{name: "hash inside string", code: "result = '#' + \"eval(\"", wantValid: true},
		{name: "column named open", code: "result = df['open'].mean()", wantValid: true},
		{name: "attribute starting with open", code: "result = df.open_price(1)", wantValid: true},
		{name: "method named open", code: "result = store.open('x')", wantErr: []string{`forbidden call "store.open" on line 1: "open" reads or writes files`}},
		{name: "re.compile", code: "import re\npattern = re.compile(r'\\d+')\nresult = pattern.findall('a1')", wantValid: true},
		{name: "literal_eval", code: "import ast\nresult = ast.literal_eval('[1, 2]')", wantErr: []string{`forbidden import "ast" on line 1`}},
		{name: "execute method", code: "result = conn.execute('SELECT 1').fetchall()", wantValid: true},
		{name: "read_csv", code: "import pandas as pd\nresult = pd.read_csv('data.csv')", wantErr: []string{`forbidden call "pd.read_csv" on line 2`}},
		{name: "os.path", code: "import os\nresult = os.path.join('a', 'b')", wantErr: []string{`forbidden import "os" on line 1`}},
		{name: "utf-8 coding cookie", code: "# -*- coding: utf-8 -*-\nresult = 1", wantValid: true},
		{name: "non-ascii in strings and comments", code: "# größe\nresult = df['größe'].sum()  # ✓", wantValid: true},
		{name: "yield from is not an import", code: "def g():\n    yield from range(3)\nresult = list(g())", wantValid: true},
		{name: "relative import", code: "from . import helpers\nfrom .utils import clean\nresult = clean(helpers.x)", wantErr: []string{`forbidden import "." on line 1: relative imports are not allowed`}},
		{name: "relative import of forbidden name", code: "from .. import subprocess\nresult = 1", wantErr: []string{`"subprocess"`, "line 1"}},
		{name: "crlf line endings", code: "import pandas as pd\r\nresult = 1\r\n", wantValid: true},

		// Empty and length limits.
		{name: "empty", code: "", wantErr: []string{"empty"}},
		{name: "whitespace only", code: " \n\t\n", wantErr: []string{"empty"}},
		{name: "comments only", code: "# just a comment\n# another", wantErr: []string{"empty"}},
		{name: "exactly max length", code: codeOfLength(codegen.MaxCodeLength), wantValid: true},
		{name: "one over max length", code: codeOfLength(codegen.MaxCodeLength + 1), wantErr: []string{"too long", "5001"}},
		{name: "max length counted in characters", code: "result = '" + strings.Repeat("é", codegen.MaxCodeLength-11) + "'", wantValid: true},

		// while True loops.
		{name: "while True without break", code: "x = 0\nwhile True:\n    x += 1\nresult = x", wantErr: []string{"infinite loop", "line 2"}},
		{name: "while True with break", code: "x = 0\nwhile True:\n    x += 1\n    if x > 3:\n        break\nresult = x", wantValid: true},
		{name: "while True break in nested if else", code: "x = 0\nwhile True:\n    if x < 3:\n        x += 1\n    else:\n        if x:\n            break\nresult = x", wantValid: true},
		{name: "while True break in later loop", code: "x = 0\nwhile True:\n    x += 1\nfor i in range(3):\n    break\nresult = x", wantErr: []string{"infinite loop", "line 2"}},
		{name: "while True break only in nested for", code: "while True:\n    for i in range(3):\n        break\nresult = 1", wantErr: []string{"infinite loop", "line 1"}},
		{name: "while True break in nested for else", code: "while True:\n    for i in range(3):\n        pass\n    else:\n        break\nresult = 1", wantValid: true},
		{name: "while True break inside nested def", code: "while True:\n    def f():\n        return 1\nresult = 1", wantErr: []string{"infinite loop", "line 1"}},
		{name: "while True return in function", code: "def f():\n    while True:\n        return 1\nresult = f()", wantValid: true},
		{name: "while True inline break", code: "while True: break\nresult = 1", wantValid: true},
		{name: "while True inline no break", code: "x = 0\nwhile True: x += 1\nresult = x", wantErr: []string{"infinite loop", "line 2"}},
		{name: "while 1 without break", code: "while 1:\n    pass\nresult = 1", wantErr: []string{"infinite loop", "line 1"}},
		{name: "while(True) without break", code: "while(True):\n    pass\nresult = 1", wantErr: []string{"infinite loop", "line 1"}},
		{name: "while not False without break", code: "while not False:\n    pass\nresult = 1", wantErr: []string{"infinite loop"}},
		{name: "nested while True inner break only", code: "while True:\n    while True:\n        break\nresult = 1", wantErr: []string{"infinite loop", "line 1"}},
		{name: "while True with comments and blank lines", code: "while True:  # forever\n    # keep going\n\n    if done():\n        break\nresult = 1", wantValid: true},
		{name: "while True break after multiline call", code: "while True:\n    x = f(\n1)\n    break\nresult = 1", wantValid: true},
		{name: "while True body ends at dedent", code: "while True:\n    x = 1\nif x:\n    break\nresult = 1", wantErr: []string{"infinite loop", "line 1"}},
		{name: "break in string does not count", code: "while True:\n    x = 'break'\nresult = 1", wantErr: []string{"infinite loop"}},
		{name: "while with real condition", code: "x = 0\nwhile x < 3:\n    x += 1\nresult = x", wantValid: true},
		{name: "while False", code: "while False:\n    pass\nresult = 1", wantValid: true},
		{name: "tab indented break", code: "while True:\n\tif x:\n\t\tbreak\nresult = 1", wantValid: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := codegen.ReviewCode(tc.code, codegen.Python)
			checkReview(t, got, tc.wantValid, tc.wantErr)
		})
	}
}

func TestReviewCodePythonWarnings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		code      string
		wantWarns []string // one substring per expected warning, in order
	}{
		{name: "clean code", code: "import pandas as pd\nresult = df.groupby('a').sum()", wantWarns: nil},
		{name: "annotated result", code: "result: int = 1", wantWarns: nil},
		{name: "tuple target result", code: "a, result = 1, 2", wantWarns: nil},
		{name: "augmented result", code: "result = 0\nresult += 1", wantWarns: nil},
		{name: "walrus result", code: "if (result := 5):\n    pass", wantWarns: nil},
		{name: "for target result", code: "for result in range(3):\n    pass", wantWarns: nil},
		{name: "no result", code: "x = df.head()", wantWarns: []string{`"result"`}},
		{name: "result only read", code: "x = result\nprint_it(result == 1)", wantWarns: []string{`"result"`}},
		{name: "result keyword argument", code: "x = f(result=1)", wantWarns: []string{`"result"`}},
		{name: "result attribute", code: "obj.result = 1", wantWarns: []string{`"result"`}},
		{name: "print", code: "result = 1\nprint(result)", wantWarns: []string{"print() on line 2"}},
		{name: "print method is fine", code: "result = 1\nlogger.print(result)", wantWarns: nil},
		{name: "long line", code: "result = '" + strings.Repeat("x", 300) + "'", wantWarns: []string{"line 1 is longer than"}},
		{name: "several long lines", code: "result = 1\na = '" + strings.Repeat("x", 300) + "'\nb = '" + strings.Repeat("y", 300) + "'", wantWarns: []string{"2 lines|first on line 2"}},
		{name: "all warnings", code: "print('" + strings.Repeat("x", 300) + "')", wantWarns: []string{`"result"`, "print()", "longer than"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := codegen.ReviewCode(tc.code, codegen.Python)
			if !got.IsValid {
				t.Fatalf("ReviewCode(%q) is invalid: %s", tc.code, got.ErrorMessage)
			}
			if got.Warnings == nil {
				t.Fatalf("Warnings is nil, want non-nil slice")
			}
			if len(got.Warnings) != len(tc.wantWarns) {
				t.Fatalf("Warnings = %q, want %d warnings matching %q", got.Warnings, len(tc.wantWarns), tc.wantWarns)
			}
			for i, want := range tc.wantWarns {
				for _, part := range strings.Split(want, "|") {
					if !strings.Contains(got.Warnings[i], part) {
						t.Errorf("Warnings[%d] = %q, want it to contain %q", i, got.Warnings[i], part)
					}
				}
			}
		})
	}
}

// TestReviewSQL keeps the cases of the hand-written SQL review it replaced,
// now judged by DuckDB's parser through a real Store's parser-only check.
// Refusals name what DuckDB saw rather than the keyword that a lexer
// matched.
func TestReviewSQL(t *testing.T) {
	t.Parallel()
	const (
		notAQuery = "SQL refused: only a single read-only SELECT is allowed: the SQL holds a statement that is not a query"
		readsFile = "it reads files"
		fileName  = "SQL refused: a file name cannot be used as a table"
	)
	tests := []struct {
		name      string
		code      string
		wantValid bool
		wantErr   []string
	}{
		{name: "plain select", code: "SELECT a, sum(b) AS total FROM data GROUP BY a ORDER BY total DESC LIMIT 10", wantValid: true},
		{name: "lower case select", code: "select * from data where x > 1", wantValid: true},
		{name: "with cte", code: "WITH t AS (SELECT a FROM data)\nSELECT count(*) FROM t", wantValid: true},
		{name: "trailing semicolon", code: "SELECT 1;", wantValid: true},
		{name: "trailing semicolon and comment", code: "SELECT 1; -- done\n", wantValid: true},
		{name: "repeated semicolons", code: "SELECT 1;;", wantValid: true},
		{name: "keyword in string", code: "SELECT 'drop table data' AS x", wantValid: true},
		{name: "semicolon in string", code: "SELECT 'a; DROP TABLE data' AS x", wantValid: true},
		{name: "doubled quote escape", code: "SELECT 'it''s; DELETE' AS x", wantValid: true},
		{name: "escape string", code: "SELECT E'it\\'s; DROP TABLE x' AS x", wantValid: true},
		{name: "dollar quoted string", code: "SELECT $$DROP TABLE x; 'quote$$ AS x", wantValid: true},
		{name: "tagged dollar quoted string", code: "SELECT $tag$ $$ DELETE $$ $tag$ AS x", wantValid: true},
		{name: "keyword in line comment", code: "SELECT 1 -- then DROP TABLE data; INSERT", wantValid: true},
		{name: "keyword in block comment", code: "/* DELETE FROM data; */ SELECT 1", wantValid: true},
		{name: "quoted identifier keyword", code: "SELECT \"delete\", \"update\" FROM data", wantValid: true},
		{name: "quoted identifier with quote", code: "SELECT \"a\"\"; DROP\" FROM data", wantValid: true},
		{name: "from first", code: "FROM data SELECT a, b WHERE a > 1", wantValid: true},
		{name: "from only", code: "FROM data", wantValid: true},
		{name: "values", code: "VALUES (1, 'a'), (2, 'b')", wantValid: true},
		{name: "parenthesized select", code: "(SELECT 1) UNION ALL (SELECT 2)", wantValid: true},
		{name: "summarize", code: "SUMMARIZE data", wantValid: true},
		{name: "describe", code: "DESCRIBE data", wantValid: true},
		{name: "show tables", code: "SHOW TABLES", wantValid: true},
		{name: "joins and in list", code: "SELECT a.x, 'lit' FROM a JOIN b ON a.id = b.id, c WHERE a.k IN ('x', 'y')", wantValid: true},
		{name: "string after from-list ends", code: "SELECT * FROM data WHERE name = 'x' ORDER BY 1, 'a'", wantValid: true},
		{name: "quoted table name", code: "SELECT * FROM \"my table\"", wantValid: true},
		{name: "replace star modifier", code: "SELECT * REPLACE (a + 1 AS a) FROM data", wantValid: true},
		{name: "positional parameters", code: "SELECT * FROM data WHERE a = $1 AND b = ?", wantValid: true},
		// DuckDB reads nested block comments, so all of this is one
		// comment after SELECT 1; the lexer refused the nesting.
		{name: "nested block comment", code: "SELECT 1 /* /* */ ; DROP TABLE data; --*/", wantValid: true},

		{name: "mixed parameters", code: "SELECT * FROM data WHERE a = $1 AND b = ? AND c = $name", wantErr: []string{"DuckDB: Mixing named and positional parameters is not supported"}},
		{name: "explain", code: "EXPLAIN SELECT * FROM data", wantErr: []string{notAQuery}},
		{name: "two statements", code: "SELECT 1; SELECT 2", wantErr: []string{"SQL refused: only a single read-only SELECT is allowed: the SQL holds 2 statements; send exactly one"}},
		{name: "select then drop", code: "SELECT 1; DROP TABLE data", wantErr: []string{notAQuery}},
		{name: "semicolon hidden after line comment carriage return", code: "SELECT 1 -- c\r; DROP TABLE data", wantErr: []string{notAQuery}},
		{name: "drop", code: "DROP TABLE data", wantErr: []string{notAQuery}},
		{name: "delete", code: "delete from data", wantErr: []string{notAQuery}},
		{name: "insert", code: "INSERT INTO data VALUES (1)", wantErr: []string{notAQuery}},
		{name: "update", code: "UPDATE data SET a = 1", wantErr: []string{notAQuery}},
		{name: "create table as", code: "CREATE TABLE x AS SELECT 1", wantErr: []string{notAQuery}},
		{name: "copy", code: "COPY data TO '/tmp/out.csv'", wantErr: []string{notAQuery}},
		{name: "copy subquery", code: "COPY (SELECT * FROM data) TO '/tmp/out.csv'", wantErr: []string{notAQuery}},
		{name: "attach", code: "ATTACH '/tmp/other.db' AS other", wantErr: []string{notAQuery}},
		{name: "install httpfs", code: "INSTALL httpfs", wantErr: []string{notAQuery}},
		{name: "load httpfs", code: "LOAD httpfs", wantErr: []string{notAQuery}},
		{name: "pragma", code: "PRAGMA enable_profiling", wantErr: []string{notAQuery}},
		{name: "set", code: "SET enable_external_access = true", wantErr: []string{notAQuery}},
		{name: "call", code: "CALL dbgen(sf = 1)", wantErr: []string{notAQuery}},
		{name: "export", code: "EXPORT DATABASE '/tmp/x'", wantErr: []string{notAQuery}},
		{name: "dml inside cte", code: "WITH x AS (DELETE FROM data RETURNING *) SELECT * FROM x", wantErr: []string{"DuckDB: A CTE needs a SELECT"}},
		{name: "locking clause on later line", code: "SELECT *\nFROM data\nFOR UPDATE", wantErr: []string{"DuckDB: SELECT locking clause is not supported"}},
		{name: "keyword glued to number", code: "SELECT 1DROP", wantErr: []string{`DuckDB: syntax error at or near "DROP"`}},
		{name: "explain analyze", code: "EXPLAIN ANALYZE SELECT * FROM data", wantErr: []string{notAQuery}},
		{name: "unknown first keyword", code: "ANALYZE data", wantErr: []string{notAQuery}},
		{name: "read_csv", code: "SELECT * FROM read_csv('/etc/passwd')", wantErr: []string{"SQL refused: the table function read_csv() is not allowed: it reads files"}},
		{name: "read_csv_auto mixed case and space", code: "SELECT * FROM Read_CSV_Auto ('/etc/passwd')", wantErr: []string{"read_csv_auto() is not allowed", readsFile}},
		{name: "read_parquet", code: "SELECT * FROM read_parquet('s3://bucket/x.parquet')", wantErr: []string{"read_parquet()", readsFile}},
		{name: "read_json_auto", code: "SELECT * FROM read_json_auto('x.json')", wantErr: []string{"read_json_auto()", readsFile}},
		{name: "read_text", code: "SELECT content FROM read_text('/etc/passwd')", wantErr: []string{"read_text()", readsFile}},
		{name: "read_blob", code: "SELECT * FROM read_blob('/etc/shadow')", wantErr: []string{"read_blob()", readsFile}},
		{name: "glob", code: "SELECT * FROM glob('/home/*')", wantErr: []string{"glob()", readsFile}},
		{name: "parquet_scan", code: "SELECT * FROM parquet_scan('x.parquet')", wantErr: []string{"parquet_scan()", readsFile}},
		{name: "sniff_csv", code: "SELECT * FROM sniff_csv('x.csv')", wantErr: []string{"sniff_csv()", readsFile}},
		{name: "st_read", code: "SELECT * FROM st_read('x.shp')", wantErr: []string{"st_read() is not allowed"}},
		{name: "read_xlsx", code: "SELECT * FROM read_xlsx('x.xlsx')", wantErr: []string{"read_xlsx()", readsFile}},
		{name: "schema qualified read_csv", code: "SELECT * FROM main.read_csv('/etc/passwd')", wantErr: []string{"read_csv()", readsFile}},
		{name: "quoted read_csv", code: "SELECT * FROM \"read_csv\"('/etc/passwd')", wantErr: []string{"read_csv()", readsFile}},
		{name: "read_csv in subquery", code: "SELECT (SELECT count(*) FROM read_csv('/etc/passwd')) AS n", wantErr: []string{"read_csv()", readsFile}},
		{name: "query function", code: "SELECT * FROM query('SELECT 1')", wantErr: []string{"query() is not allowed: it runs SQL held in a string"}},
		{name: "string literal table", code: "SELECT * FROM '/etc/passwd'", wantErr: []string{fileName}},
		{name: "from first string literal table", code: "FROM '/etc/passwd'", wantErr: []string{fileName}},
		{name: "joined string literal table", code: "SELECT * FROM data d JOIN 'x.csv' x ON d.id = x.id", wantErr: []string{fileName}},
		{name: "comma joined string literal table", code: "SELECT * FROM data, 'x.csv'", wantErr: []string{fileName}},
		{name: "parenthesized string literal table", code: "SELECT * FROM ('x.csv')", wantErr: []string{`DuckDB: syntax error at or near ")"`}},
		{name: "escape string literal table", code: "SELECT * FROM E'/etc/passwd'", wantErr: []string{fileName}},
		{name: "summarize file", code: "SUMMARIZE '/etc/passwd'", wantErr: []string{fileName}},
		{name: "quoted identifier file path", code: "SELECT * FROM \"data.csv\"", wantErr: []string{fileName}},
		{name: "empty", code: "", wantErr: []string{"SQL is empty"}},
		{name: "whitespace", code: "  \n ", wantErr: []string{"SQL is empty"}},
		{name: "comment only", code: "-- nothing\n/* here */", wantErr: []string{"SQL is empty"}},
		{name: "semicolon only", code: ";", wantErr: []string{"SQL is empty"}},
		{name: "unterminated string", code: "SELECT 'abc", wantErr: []string{"DuckDB: unterminated quoted string"}},
		{name: "unterminated quoted identifier", code: "SELECT \"abc", wantErr: []string{"DuckDB: unterminated quoted identifier"}},
		{name: "unterminated block comment", code: "SELECT 1 /* x", wantErr: []string{"DuckDB: unterminated /* comment"}},
		{name: "unterminated dollar quote", code: "SELECT $$abc", wantErr: []string{"DuckDB: unterminated dollar-quoted string"}},
		{name: "exactly max length", code: sqlOfLength(codegen.MaxCodeLength), wantValid: true},
		{name: "one over max length", code: sqlOfLength(codegen.MaxCodeLength + 1), wantErr: []string{"SQL is too long: 5001 characters (limit 5000)"}},
	}
	s := mustStore(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := codegen.ReviewSQL(context.Background(), tc.code, s.ValidateSQL)
			checkReview(t, got, tc.wantValid, tc.wantErr)
			if len(got.Warnings) != 0 {
				t.Errorf("Warnings = %q, want none for SQL", got.Warnings)
			}
		})
	}
}

// Out-of-bounds SQL never reaches the check.
func TestReviewSQLShouldCheckBoundsFirst(t *testing.T) {
	t.Parallel()
	called := false
	check := func(context.Context, string) error { called = true; return nil }
	for _, code := range []string{"", " \n", sqlOfLength(codegen.MaxCodeLength + 1)} {
		if got := codegen.ReviewSQL(context.Background(), code, check); got.IsValid {
			t.Errorf("ReviewSQL(%.20q) is valid", code)
		}
	}
	if called {
		t.Error("the check was called for SQL out of bounds")
	}
}

// A check that fails for its own reasons (a closed store, a request that
// ended) makes the SQL invalid, without pretending to know why.
func TestReviewSQLShouldRefuseWhatItCouldNotCheck(t *testing.T) {
	t.Parallel()
	check := func(context.Context, string) error { return context.Canceled }
	got := codegen.ReviewSQL(context.Background(), "SELECT 1", check)
	checkReview(t, got, false, []string{"SQL could not be checked"})
}

// ReviewCode cannot reach DuckDB, so it never calls SQL valid.
func TestReviewCodeShouldNotReviewSQLAlone(t *testing.T) {
	t.Parallel()
	checkReview(t, codegen.ReviewCode("SELECT 1", codegen.SQL), false, []string{"SQL is reviewed by DuckDB's parser: use ReviewSQL"})
	checkReview(t, codegen.ReviewCode(" ", codegen.SQL), false, []string{"SQL is empty"})
}

func TestReviewCodeUnknownLanguage(t *testing.T) {
	t.Parallel()
	got := codegen.ReviewCode("SELECT 1", codegen.Language("cobol"))
	checkReview(t, got, false, []string{"unsupported language", "cobol"})
}

// checkReview checks the invariants of every Review and the expected
// verdict.
func checkReview(t *testing.T, got codegen.Review, wantValid bool, wantErr []string) {
	t.Helper()
	if got.Warnings == nil {
		t.Errorf("Warnings is nil, want non-nil slice")
	}
	if got.IsValid != wantValid {
		t.Fatalf("IsValid = %v (ErrorMessage %q), want %v", got.IsValid, got.ErrorMessage, wantValid)
	}
	if wantValid {
		if got.ErrorMessage != "" {
			t.Errorf("ErrorMessage = %q, want empty for valid code", got.ErrorMessage)
		}
		return
	}
	if got.ErrorMessage == "" {
		t.Fatalf("ErrorMessage is empty for invalid code")
	}
	for _, want := range wantErr {
		if !strings.Contains(got.ErrorMessage, want) {
			t.Errorf("ErrorMessage = %q, want it to contain %q", got.ErrorMessage, want)
		}
	}
}

func FuzzReviewCode(f *testing.F) {
	seeds := []string{
		"",
		"result = df.head()",
		"import os\nos.system('ls')",
		"while True:\n    if x:\n        break\n",
		"while True: pass",
		"f\"{x:{y}}\" + rf'{z!r}' + t\"{{}}\"",
		"'''unterminated",
		"x = (\n1,\n",
		"\\\n\\",
		"# coding: latin-1\n",
		"SELECT 1; DROP TABLE data",
		"SELECT $a$ x $a$, E'\\'', \"q\"\"\" FROM 'f.csv' /* c */ -- d",
		"FROM (((( ,,,, '",
		"$$",
		"/* /*",
		"\r\r\n\xff\xfe",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, code string) {
		for _, lang := range []codegen.Language{codegen.Python, codegen.SQL} {
			r := codegen.ReviewCode(code, lang)
			if r.Warnings == nil {
				t.Fatalf("%s: Warnings is nil", lang)
			}
			if r.IsValid != (r.ErrorMessage == "") {
				t.Fatalf("%s: IsValid = %v but ErrorMessage = %q", lang, r.IsValid, r.ErrorMessage)
			}
		}
	})
}
