package codegen

import "github.com/nexus/nexus/internal/infra/llm"

// languageFenceTags lists, per language, the fence info-string tags
// (lower-case, first word only) that mark a block as written in that
// language.
var languageFenceTags = map[Language][]string{
	Python: {"python", "py", "python3", "py3"},
	SQL:    {"sql", "duckdb", "postgresql", "postgres", "psql"},
}

// ExtractCode returns the code from an LLM reply so it can be reviewed: the
// first fenced block tagged with lang ("python"/"py" for Python, "sql" for
// SQL), else the first fenced block, else the whole reply, dedented and
// trimmed (see llm.ExtractFenced). It does no validation: always pass the
// result to ReviewCode.
func ExtractCode(reply string, lang Language) string {
	return llm.ExtractFenced(reply, languageFenceTags[lang])
}
