package codegen_test

import (
	"strings"
	"testing"

	"github.com/nexus/nexus/internal/codegen"
)

func TestExtractCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		reply string
		lang  codegen.Language
		want  string
	}{
		{
			name:  "python fence",
			reply: "Here is the code:\n```python\nresult = df.head()\n```\nDone.",
			lang:  codegen.Python,
			want:  "result = df.head()",
		},
		{
			name:  "py fence",
			reply: "```py\nresult = 1\n```",
			lang:  codegen.Python,
			want:  "result = 1",
		},
		{
			name:  "info string case-insensitive",
			reply: "```Python\nresult = 1\n```",
			lang:  codegen.Python,
			want:  "result = 1",
		},
		{
			name:  "info string with attributes",
			reply: "```python title=analysis.py\nresult = 1\n```",
			lang:  codegen.Python,
			want:  "result = 1",
		},
		{
			name:  "sql fence preferred over earlier python fence",
			reply: "```python\nresult = 1\n```\nOr in SQL:\n```sql\nSELECT 1\n```",
			lang:  codegen.SQL,
			want:  "SELECT 1",
		},
		{
			name:  "python fence preferred over earlier sql fence",
			reply: "```sql\nSELECT 1\n```\n```python\nresult = 1\n```",
			lang:  codegen.Python,
			want:  "result = 1",
		},
		{
			name:  "SQL fence upper case",
			reply: "```SQL\nSELECT 2;\n```",
			lang:  codegen.SQL,
			want:  "SELECT 2;",
		},
		{
			name:  "first matching fence wins",
			reply: "```sql\nSELECT 1\n```\n```sql\nSELECT 2\n```",
			lang:  codegen.SQL,
			want:  "SELECT 1",
		},
		{
			name:  "fence without info string",
			reply: "Code:\n```\nresult = 2\n```",
			lang:  codegen.Python,
			want:  "result = 2",
		},
		{
			name:  "first block when none matches",
			reply: "```json\n{\"a\": 1}\n```\n```text\nhello\n```",
			lang:  codegen.SQL,
			want:  "{\"a\": 1}",
		},
		{
			name:  "no fence returns whole reply trimmed",
			reply: "\n  SELECT count(*) FROM data  \n\n",
			lang:  codegen.SQL,
			want:  "SELECT count(*) FROM data",
		},
		{
			name:  "unterminated fence runs to end",
			reply: "Sure:\n```python\nimport pandas as pd\nresult = 1\n",
			lang:  codegen.Python,
			want:  "import pandas as pd\nresult = 1",
		},
		{
			name:  "tilde fence",
			reply: "~~~python\nresult = 3\n~~~",
			lang:  codegen.Python,
			want:  "result = 3",
		},
		{
			name:  "backticks inside tilde fence",
			reply: "~~~python\ns = '```'\nresult = s\n~~~",
			lang:  codegen.Python,
			want:  "s = '```'\nresult = s",
		},
		{
			name:  "longer fence contains shorter one",
			reply: "````markdown\n```python\nx = 1\n```\n````",
			lang:  codegen.SQL,
			want:  "```python\nx = 1\n```",
		},
		{
			name:  "indented fence is dedented",
			reply: "1. Run this:\n   ```python\n   if x:\n       result = 1\n   ```",
			lang:  codegen.Python,
			want:  "if x:\n    result = 1",
		},
		{
			name:  "indentation inside block is kept",
			reply: "```python\n\n\ndef f():\n    return 1\n\nresult = f()\n\n```",
			lang:  codegen.Python,
			want:  "def f():\n    return 1\n\nresult = f()",
		},
		{
			name:  "crlf line endings",
			reply: "```sql\r\nSELECT 1\r\nFROM data\r\n```\r\n",
			lang:  codegen.SQL,
			want:  "SELECT 1\nFROM data",
		},
		{
			name:  "inline triple backticks are not a fence",
			reply: "Use ```SELECT 1``` here",
			lang:  codegen.SQL,
			want:  "Use ```SELECT 1``` here",
		},
		{
			name:  "empty fence",
			reply: "```python\n```",
			lang:  codegen.Python,
			want:  "",
		},
		{
			name:  "empty reply",
			reply: "",
			lang:  codegen.Python,
			want:  "",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := codegen.ExtractCode(tc.reply, tc.lang); got != tc.want {
				t.Errorf("ExtractCode(%q, %q) = %q, want %q", tc.reply, tc.lang, got, tc.want)
			}
		})
	}
}

func FuzzExtractCode(f *testing.F) {
	for _, s := range []string{"", "```", "```python\nx\n```", "~~~\n", "  ```sql\n  a\n", "````\n```\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, reply string) {
		for _, lang := range []codegen.Language{codegen.Python, codegen.SQL} {
			got := codegen.ExtractCode(reply, lang)
			if got != strings.TrimSpace(got) {
				t.Fatalf("ExtractCode(%q, %q) = %q is not trimmed", reply, lang, got)
			}
		}
	})
}
