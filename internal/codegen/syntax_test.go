package codegen_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/nexus/nexus/internal/codegen"
)

func TestCheckPythonSyntaxShouldAcceptValidPython(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		code string
	}{
		{name: "simple assignment", code: "result = 1\n"},
		{name: "empty code", code: ""},
		{name: "only whitespace", code: "  \n\t\n"},
		{name: "pandas groupby chain", code: `import pandas as pd
result = (
    df.groupby(["region", "month"], as_index=False)
    .agg(total=("sales", "sum"), n=("sales", "size"))
    .sort_values("total", ascending=False)
    .head(10)
)
`},
		{name: "function def with decorators", code: `import functools

@functools.lru_cache(maxsize=None)
@staticmethod
def share(part, *args, whole=1, **kwargs) -> float:
    """Return part as a share of whole."""
    return part / whole

result = share(1, whole=4)
`},
		{name: "f-strings", code: `name, width = "x", 10
result = f"{name!r:>{width}} {df['a'].sum():,.2f} {'nested'}"
`},
		{name: "match statement", code: `match command.split():
    case [action]:
        result = action
    case [action, obj] if obj:
        result = (action, obj)
    case {"k": v, **rest}:
        result = v
    case _:
        result = None
`},
		{name: "walrus", code: `if (n := len(df)) > 10:
    result = n
rows = [y for x in data if (y := x * 2) > 0]
`},
		{name: "async def", code: `async def fetch(session, urls):
    async with session:
        async for chunk in stream(urls):
            await handle(chunk)
    return [await u for u in urls]
`},
		{name: "multi-line strings", code: `sql = """
SELECT *
  FROM t
"""
doc = '''a
    b'''; result = sql + doc
`},
		{name: "comments at any indentation", code: `# header
for x in range(3):
    # inside
        # deeper, still fine
    total = x  # trailing
  # odd, still fine
result = total
`},
		{name: "if elif else and try except finally", code: `try:
    if a:
        pass
    elif b:
        pass
    else:
        pass
except* ValueError:
    pass
finally:
    result = 1
`},
		{name: "one-line bodies", code: "if x: y = 1; z = 2\nclass A: pass\nresult = y\n"},
		{name: "tabs used consistently", code: "if x:\n\tif y:\n\t\tresult = 1\n"},
		{name: "print redirection is a Python 3 expression", code: "print >> sys.stderr, 'message'\n"},
		{name: "return inside a method", code: "class A:\n    def f(self):\n        return 1\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := codegen.CheckPythonSyntax(tc.code); err != nil {
				t.Fatalf("CheckPythonSyntax(%q) = %v, want nil", tc.code, err)
			}
		})
	}
}

func TestCheckPythonSyntaxShouldReportTheFirstError(t *testing.T) {
	t.Parallel()
	// Lines are the ones CPython 3.11 reports for the same code.
	cases := []struct {
		name    string
		code    string
		line    int
		column  int
		message string
	}{
		{
			name: "unclosed paren on line 2",
			code: "import pandas as pd\nresult = (df.groupby(\"region\"\n",
			line: 2, column: 1, message: `invalid syntax near "result = (df.groupby(\"region\""`,
		},
		{
			name: "def with an unclosed parameter list",
			code: "x = 1\ndef f(:\n    return x\n",
			line: 2, column: 7, message: `missing ")"`,
		},
		{
			name: "stray indent",
			code: "x = 1\n    y = 2\n",
			line: 2, column: 5, message: "unexpected indent",
		},
		{
			name: "if without colon",
			code: "x = 1\nif x\n    y = 1\n",
			line: 2, column: 1, message: `invalid syntax near "if x"`,
		},
		{
			name: "unterminated string",
			code: "x = 1\ns = 'abc\nresult = s\n",
			line: 2, column: 5, message: `invalid syntax near "'"`,
		},
		{
			name: "double equals sign",
			code: "x = 1\nresult = = 1\n",
			line: 2, column: 10, message: `invalid syntax near "="`,
		},
		{
			name: "column counts characters not bytes",
			code: "name = 'héllo' + = 2\n",
			line: 1, column: 18, message: `invalid syntax near "="`,
		},
		{
			name: "function without a body",
			code: "def f(df):\nresult = f(df)\n",
			line: 2, column: 1, message: "expected an indented block after line 1",
		},
		{
			name: "dedent to no outer level",
			code: "if x:\n    a = 1\n  b = 2\n",
			line: 3, column: 3, message: "unindent does not match any outer indentation level",
		},
		{
			name: "clause dedented to no outer level",
			code: "try:\n    a = 1\n  finally:\n    b = 2\n",
			line: 3, column: 3, message: "unindent does not match any outer indentation level",
		},
		{
			name: "tabs and spaces mixed",
			code: "if x:\n\ta = 1\n        b = 2\n",
			line: 3, column: 9, message: "inconsistent use of tabs and spaces in indentation",
		},
		{
			name: "Python 2 print statement",
			code: "x = 1\nprint 'done'\n",
			line: 2, column: 1, message: "Python 2 print statement: call print(...)",
		},
		{
			name: "return outside a function",
			code: "total = 1\nreturn total\n",
			line: 2, column: 1, message: "'return' outside function",
		},
		{
			name: "only the first of two errors",
			code: "a = (\nb = = 2\n",
			line: 1, column: 3,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := codegen.CheckPythonSyntax(tc.code)
			if err == nil {
				t.Fatalf("CheckPythonSyntax(%q) = nil, want an error on line %d", tc.code, tc.line)
			}
			if err.Line != tc.line || err.Column != tc.column {
				t.Errorf("CheckPythonSyntax(%q) at line %d, column %d, want line %d, column %d (%v)",
					tc.code, err.Line, err.Column, tc.line, tc.column, err)
			}
			if tc.message != "" && err.Message != tc.message {
				t.Errorf("CheckPythonSyntax(%q).Message = %q, want %q", tc.code, err.Message, tc.message)
			}
		})
	}
}

func TestSyntaxErrorShouldFormatLineColumnAndMessage(t *testing.T) {
	t.Parallel()
	err := &codegen.SyntaxError{Line: 3, Column: 5, Message: `missing ")"`}
	if got, want := err.Error(), `line 3, column 5: missing ")"`; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
}

func TestCheckPythonSyntaxShouldBeSafeForConcurrentUse(t *testing.T) {
	t.Parallel()
	// Given code whose verdicts are known from a single goroutine
	valid, invalid := benchmarkSnippet, "x = 1\ndef f(:\n    return x\n"
	wantInvalid := codegen.CheckPythonSyntax(invalid)
	if codegen.CheckPythonSyntax(valid) != nil || wantInvalid == nil {
		t.Fatal("the fixtures do not have the verdicts this test relies on")
	}
	// When 8 goroutines check them 50 times each at once
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				code := valid
				if (g+i)%2 == 1 {
					code = invalid
				}
				got := codegen.CheckPythonSyntax(code)
				// Then every verdict is the single-goroutine one
				switch {
				case code == valid && got != nil:
					t.Errorf("goroutine %d, parse %d: valid code got %v", g, i, got)
					return
				case code == invalid && (got == nil || *got != *wantInvalid):
					t.Errorf("goroutine %d, parse %d: got %v, want %v", g, i, got, wantInvalid)
					return
				}
			}
		})
	}
	wg.Wait()
}

// benchmarkSnippet is about 50 lines of the kind of code the generator is
// asked for.
var benchmarkSnippet = strings.TrimLeft(`
import pandas as pd
import numpy as np


def summarize(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Total and average sales per group, largest first."""
    grouped = frame.groupby(by, as_index=False)
    out = grouped.agg(
        total=("sales", "sum"),
        mean=("sales", "mean"),
        n=("sales", "size"),
    )
    return out.sort_values("total", ascending=False)


def label(row) -> str:
    if row["total"] > 1_000_000:
        return "large"
    elif row["total"] > 10_000:
        return "medium"
    return "small"


df = df.dropna(subset=["sales"])
df["month"] = pd.to_datetime(df["date"]).dt.to_period("M")
summary = summarize(df, ["region", "month"])
summary["size"] = summary.apply(label, axis=1)

# Share of each region in its month.
totals = summary.groupby("month")["total"].transform("sum")
summary["share"] = np.where(totals > 0, summary["total"] / totals, 0.0)

top = {}
for (region, month), part in summary.groupby(["region", "month"]):
    if (best := part["total"].max()) > 0:
        top[(region, month)] = best

match summary.shape:
    case (0, _):
        note = "no data"
    case (rows, cols):
        note = f"{rows} rows, {cols} columns"

try:
    pivot = summary.pivot_table(index="region", columns="month", values="total")
except (KeyError, ValueError) as exc:
    pivot = None
    note = f"{note}; no pivot: {exc!s}"

result = {"summary": summary, "pivot": pivot, "top": top, "note": note}
`, "\n")

func BenchmarkCheckPythonSyntax(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchmarkSnippet)))
	for b.Loop() {
		if err := codegen.CheckPythonSyntax(benchmarkSnippet); err != nil {
			b.Fatal(err)
		}
	}
}

func ExampleCheckPythonSyntax() {
	fmt.Println(codegen.CheckPythonSyntax("x = 1\n    y = 2\n"))
	// Output: line 2, column 5: unexpected indent
}
