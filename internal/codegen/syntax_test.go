package codegen_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/nexus/nexus/internal/codegen"
)

func TestCheckPythonSyntaxShouldAcceptValidPython(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, code string }{
		{"assignment", "result = 1"},
		{"pandas chain", "result = (df.groupby('region')['sales']\n    .sum()\n    .sort_values(ascending=False))"},
		{"decorated def", "@cache\ndef f(x, *a, **k):\n    return x\nresult = f(1)"},
		{"f-string", "name = 'x'\nresult = f\"hello {name!r:>10}\""},
		{"match", "match x:\n    case [a, b]:\n        result = a\n    case _:\n        result = None"},
		{"walrus", "if (n := len(df)) > 10:\n    result = n"},
		{"async", "async def g():\n    await h()"},
		{"multiline string and comment", "# note\ns = '''a\nb'''\nresult = s"},
		{"empty", "   \n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := codegen.CheckPythonSyntax(tc.code); err != nil {
				t.Fatalf("CheckPythonSyntax(%q) = %v", tc.code, err)
			}
		})
	}
}

func TestCheckPythonSyntaxShouldReportTheFirstErrorLine(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		code string
		line int
	}{
		{"unclosed paren", "a = 1\nb = (2 +\nc = 3\n", 2},
		{"bad def", "x = 1\ndef f(:\n    pass\n", 2},
		{"if without colon", "if x\n    y = 1\n", 1},
		{"double equals", "result = = 1\n", 1},
		{"unterminated string", "x = 1\ns = 'abc\n", 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := codegen.CheckPythonSyntax(tc.code)
			if err == nil {
				t.Fatalf("CheckPythonSyntax(%q) = nil, want an error", tc.code)
			}
			if err.Line != tc.line || err.Message == "" || !strings.HasPrefix(err.Error(), "line ") {
				t.Fatalf("CheckPythonSyntax(%q) = %+v, want line %d", tc.code, err, tc.line)
			}
		})
	}
}

func TestCheckPythonSyntaxShouldBeSafeConcurrently(t *testing.T) {
	t.Parallel()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if codegen.CheckPythonSyntax("result = df['a'].sum()") != nil || codegen.CheckPythonSyntax("result = (") == nil {
					t.Error("wrong verdict under concurrency")
					return
				}
			}
		}()
	}
	wg.Wait()
}

func BenchmarkCheckPythonSyntax(b *testing.B) {
	code := strings.Repeat("total = df.groupby('region')['sales'].sum()\nif total.max() > 10:\n    result = total.idxmax()\n", 16)
	for b.Loop() {
		if err := codegen.CheckPythonSyntax(code); err != nil {
			b.Fatal(err)
		}
	}
}
