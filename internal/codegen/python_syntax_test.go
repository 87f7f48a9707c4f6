package codegen_test

import (
	"strings"
	"testing"

	"github.com/nexus/nexus/internal/codegen"
)

// nested returns an assignment of a list nested n levels deep.
func nested(n int) string {
	return "result = " + strings.Repeat("[", n) + strings.Repeat("]", n)
}

// ReviewCode refuses code past MaxCodeLength before it parses, but
// CheckPythonSyntax has no limit: input 100,000 levels deep must neither
// exhaust the stack nor pass.
func TestCheckPythonSyntaxShouldSurviveInput100000Deep(t *testing.T) {
	t.Parallel()
	const deep = 100_000
	cases := []struct {
		name string
		code string
		want string
	}{
		{"brackets", nested(deep), "line 1, column 110: too many levels of nesting: more than 100 nested blocks and brackets"},
		{"unary minus then an error", "x = " + strings.Repeat("-", deep) + "(1 +)", "line 1, column 1002: invalid syntax: too deeply nested"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := codegen.CheckPythonSyntax(tc.code); got == nil || got.Error() != tc.want {
				t.Fatalf("CheckPythonSyntax = %v, want %q", got, tc.want)
			}
		})
	}
}

func TestCheckPythonSyntaxShouldRefuseNestingPast100Levels(t *testing.T) {
	t.Parallel()
	if got := codegen.CheckPythonSyntax(nested(100)); got != nil {
		t.Fatalf("CheckPythonSyntax(100 levels) = %v, want nil", got)
	}
	want := "line 1, column 110: too many levels of nesting: more than 100 nested blocks and brackets"
	if got := codegen.CheckPythonSyntax(nested(101)); got == nil || got.Error() != want {
		t.Fatalf("CheckPythonSyntax(101 levels) = %v, want %q", got, want)
	}
}
